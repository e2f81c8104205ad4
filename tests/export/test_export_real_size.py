"""One export at real size (dmca-vit-b32: ViT-B/32 stride 16 at 256×128, 12+12 layers, 512-d), fp32 text + video."""
from __future__ import annotations

import time

import onnx
import pytest

from export.families import export_family
from export.onnx_export import shape_subgraph_nodes
from export.parity import COS_MIN, GraphArtifact, make_probe, run_parity
from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint

from export_test_utils import export_role, make_towers


@pytest.mark.slow
def test_dmca_vit_b32_text_and_video_export_with_parity(tmp_path):
    start = time.perf_counter()
    towers = make_towers("dmca-vit-b32")
    arts = []
    for role in ("text_encoder", "video_encoder"):
        path = tmp_path / f"{role}.onnx"
        model = export_role(towers, role, path, num_frames=8)
        assert shape_subgraph_nodes(model) == []
        assert sum(n.op_type == "LayerNormalization" for n in model.graph.node) == 2 * 12 + (1 if role ==
                                                                                           "text_encoder" else 2)
        arts.append(GraphArtifact(path.name, role, "fp32", "default", path))
    video = onnx.load(str(arts[1].path), load_external_data=False)
    assert [d.dim_value or d.dim_param for d in video.graph.input[0].type.tensor_type.shape.dim] == [
        "batch", 8, 256, 128, 3]
    ckpt = LoadedCheckpoint(towers, towers.cfg, 8, SamplerCfg(), tmp_path / "ckpt.safetensors")
    probe = make_probe(towers.cfg, 8, ("text_encoder", "video_encoder"), num_videos=2)  # 2 tracklets: bounded time
    report = run_parity(arts, probe, export_family("dmca").reference(ckpt, probe.feeds))
    assert report["passed"], report
    assert all(e["cpu"]["cos_min"] >= COS_MIN["fp32"] for e in report["artifacts"].values())
    assert time.perf_counter() - start < 300  # bounded even on a loaded 2-core CI box
