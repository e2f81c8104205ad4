"""Text attention dropout is training-only: towers trained with it export the same text graph, with no Dropout."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from export_test_utils import export_role, random_feeds
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CFFATowers, CLIPTowers


@pytest.mark.parametrize("arch_name, cls", [("tiny-test", CLIPTowers), ("tiny-cffa", CFFATowers)])
def test_text_graph_is_unchanged_by_training_time_attention_dropout(tmp_path, arch_name, cls):
    arch = get_arch(arch_name)
    torch.manual_seed(0)
    plain = cls(arch).eval()
    dropped = cls(arch.replace(text=arch.text.replace(attn_dropout=0.05)))
    dropped.load_state_dict(plain.state_dict())
    dropped.eval()
    graphs = {name: export_role(towers, "text_encoder", tmp_path / f"{name}.onnx", num_frames=1)
              for name, towers in (("plain", plain), ("dropped", dropped))}
    ops = {name: [node.op_type for node in model.graph.node] for name, model in graphs.items()}
    assert ops["dropped"] == ops["plain"] and "Dropout" not in ops["dropped"]
    feeds = random_feeds("text_encoder", 3, seed=1, cfg=arch)
    outputs = {name: ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
               .run(None, feeds)[0] for name in graphs}
    np.testing.assert_array_equal(outputs["dropped"], outputs["plain"])
