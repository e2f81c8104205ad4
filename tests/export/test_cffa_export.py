"""CFFA export: the FLFR local branch inside the graphs, one joint vector per item, parity with the training model."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from export.build import export_bundle
from export.families import export_family
from tvreid_sdk.modeling.checkpoint import load_checkpoint, save_checkpoint
from export.onnx_export import op_counts, shape_subgraph_nodes
from training.cffa import CFFA
from training.checkpoint import save_model
from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CFFATowers, CLIPTowers
from tvreid_sdk.text import get_tokenizer

CAPTIONS = ["a woman in a red coat", "man", "a man wearing a black jacket, blue jeans and white shoes, carrying a bag",
            " ".join(["a tall man in a long green coat holding an umbrella"] * 12)]  # the last one is truncated


@pytest.fixture(scope="module")
def cffa_model():
    """A tiny CFFA training model whose BatchNorm statistics have moved off their init (eval mode)."""
    torch.manual_seed(0)
    arch = get_arch("tiny-cffa")
    model = CFFA(arch, ("mal", "mlm", "id"), num_classes=3, cmt_depth=1)
    with torch.no_grad():
        for _ in range(3):
            model.image_parts(torch.randn(8, 1, 3, 64, 32))
            ids = torch.from_numpy(get_tokenizer()(CAPTIONS * 2, truncate=True).ids.astype(np.int64))
            model.text_parts(ids, ids.argmax(-1))
    return model.eval()


@pytest.fixture(scope="module")
def cffa_bundle(cffa_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("cffa")
    ckpt = root / "best.safetensors"
    save_model(cffa_model, ckpt, cffa_model.arch, 1, SamplerCfg(name="rss", num_frames=1))
    bundle, rows = export_bundle(ckpt, root / "bundle", fp16=True, progress=lambda _: None)
    return bundle, rows


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 32, 3), dtype=np.uint8)


def _pixels(frames, arch):
    x = torch.from_numpy(frames).float() / 255.0
    x = (x - torch.tensor(arch.preprocess.mean)) / torch.tensor(arch.preprocess.std)
    return x.movedim(-1, -3).contiguous()  # [N,3,H,W]


def _cos(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_bundle_is_a_cffa_bundle_with_one_joint_vector_per_item(cffa_bundle):
    bundle, rows = cffa_bundle
    man = bundle.manifest
    assert man.family == "cffa" and man.num_frames == 1 and man.arch.output_dim == 192
    assert {a.path for a in man.artifacts} == {"weights.safetensors"} | {
        f"{r}{s}" for r in ("text_encoder", "video_encoder", "frame_encoder") for s in (".onnx", ".fp16.onnx")}
    assert man.export["parity"]["passed"] is True and man.export["fused_attention_nodes"] == {}
    assert all(r.parity.endswith(" ok") for r in rows if r.artifact.endswith(".onnx") and "fp16" not in r.artifact)
    with safe_open(str(bundle.root / "weights.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
    assert {"flfr_visual.fc.weight", "flfr_text.mlp_bn.running_var", "visual.proj"} <= keys
    assert not any(k.startswith(("irr.", "classifier.")) for k in keys)  # training-only heads stay out
    for role in ("text_encoder", "video_encoder", "frame_encoder"):
        model = onnx.load(str(bundle.root / f"{role}.onnx"))
        out = model.graph.output[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in out] == ["batch", 192]
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["tvreid.family"] == "cffa" and meta["tvreid.embed_dim"] == "192"
        assert int(meta["tvreid.flfr_tokens"]) == (22 if role == "text_encoder" else 9)
        ops = op_counts(model)
        assert ops["TopK"] == 1 and ops["GatherElements"] == 1 and ops["BatchNormalization"] == 1
        assert shape_subgraph_nodes(model) == [] and model.opset_import[0].version >= 11
    assert onnx.load(str(bundle.root / "text_encoder.onnx")).metadata_props  # single-file graphs
    video = onnx.load(str(bundle.root / "video_encoder.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in video] == ["batch", 1, 64, 32, 3]


def test_graphs_match_the_training_model_and_score_like_cffa(cffa_bundle, cffa_model):
    bundle, _ = cffa_bundle
    arch = cffa_model.arch
    text_sess = ort.InferenceSession(str(bundle.root / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    video_sess = ort.InferenceSession(str(bundle.root / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    frame_sess = ort.InferenceSession(str(bundle.root / "frame_encoder.onnx"), providers=["CPUExecutionProvider"])
    tok = get_tokenizer()(CAPTIONS, truncate=True)
    assert bool(tok.truncated[-1]) and int(tok.eot_index[1]) == 2  # one over-long caption, one single word
    text = text_sess.run(None, {"input_ids": tok.ids, "eot_index": tok.eot_index})[0]
    images = _images(5)
    video = video_sess.run(None, {"frames": images[:, None]})[0]
    frames = frame_sess.run(None, {"frames": images})[0]
    ids, eot = torch.from_numpy(tok.ids.astype(np.int64)), torch.from_numpy(tok.eot_index.astype(np.int64))
    ref_text = cffa_model.encode_text(ids, eot).numpy()
    ref_image = cffa_model.encode_video(_pixels(images, arch)[:, None]).numpy()
    assert _cos(text, ref_text).min() >= 0.9999 and _cos(video, ref_image).min() >= 0.9999
    np.testing.assert_allclose(frames, video, atol=1e-5)  # T = 1: the frame graph is the image graph
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        ig, il, _ = cffa_model.image_parts(_pixels(images, arch)[:, None])
        tg, tl = cffa_model.text_parts(ids, eot)
    score = ((F.normalize(tg, dim=-1) @ F.normalize(ig, dim=-1).t() + F.normalize(tl, dim=-1) @ F.normalize(il, dim=-1)
              .t()) / 2).numpy()
    np.testing.assert_allclose(text @ video.T, score, atol=1e-5)  # one dot product = (cos_g + cos_l) / 2
    for row in range(3):  # batch 1 == batch N
        one = text_sess.run(None, {"input_ids": tok.ids[row:row + 1], "eot_index": tok.eot_index[row:row + 1]})[0]
        np.testing.assert_allclose(one[0], text[row], atol=1e-5)
        np.testing.assert_allclose(video_sess.run(None, {"frames": images[row:row + 1, None]})[0][0], video[row],
                                   atol=1e-5)


def test_cffa_export_refuses_what_it_cannot_serve(cffa_model, tmp_path):
    hooks = export_family("cffa")
    towers = CFFATowers(cffa_model.arch).eval()
    with pytest.raises(ModelFormatError, match="no cuda-fused variant"):
        hooks.graph_module(towers, "text_encoder", 1, fused=True)
    with pytest.raises(ModelFormatError, match="CFFATowers"):
        hooks.graph_module(CLIPTowers(cffa_model.arch).eval(), "text_encoder", 1)
    bare = save_checkpoint(CLIPTowers(cffa_model.arch), tmp_path / "no_heads.safetensors", num_frames=1)
    with pytest.raises(ModelFormatError, match=r"missing \['flfr_.*cffa recipe"):  # FLFR heads missing
        export_bundle(bare, tmp_path / "bundle", progress=lambda _: None)
    assert not (tmp_path / "bundle").exists()


def test_the_one_checkpoint_reader_gives_cffa_towers_with_their_heads(cffa_model, tmp_path):
    ckpt = tmp_path / "best.safetensors"
    save_model(cffa_model, ckpt, cffa_model.arch, 1, SamplerCfg(name="rss", num_frames=1))
    loaded = load_checkpoint(ckpt)
    assert isinstance(loaded.towers, CFFATowers) and not loaded.towers.training and loaded.options == {}
    images = torch.from_numpy(_images(2)).float().div(255).movedim(-1, -3)[:, None]  # any pixels: same input
    with torch.no_grad():
        np.testing.assert_allclose(loaded.towers.encode_video(images).numpy(), cffa_model.encode_video(images).numpy(),
                                   atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx_bindings") is None,
                    reason="TensorRT-RTX is not installed (pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings)")
def test_tensorrt_rtx_builds_the_cffa_graphs_with_the_local_branch(cffa_model, tmp_path):
    """The FLFR branch (attention weights, TopK, gather, max-pool) parses and builds in TensorRT (RTX, no GPU)."""
    ckpt = tmp_path / "best.safetensors"
    save_model(cffa_model, ckpt, cffa_model.arch, 1, SamplerCfg(name="rss", num_frames=1))
    bundle, rows = export_bundle(ckpt, tmp_path / "bundle", trt=True, trt_target="8.9", opt_batch=2, max_batch=4,
                                 progress=lambda _: None)
    plans = {a.role: a for a in bundle.manifest.artifacts if a.kind == "trt_plan"}
    assert {"text_encoder", "video_encoder"} <= set(plans)
    for role, plan in plans.items():
        assert plan.engine.runtime == "tensorrt_rtx" and plan.size > 10_000
        source = bundle.manifest.find(role, kind="onnx", precision=plan.precision, variant="default")
        assert plan.engine.onnx_sha256 == source.sha256
    assert all(r.parity == "built; not run here (no GPU)" for r in rows if r.artifact.endswith(".plan"))
