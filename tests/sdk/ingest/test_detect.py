"""YOLO output decoding + NMS on hand-made tensors, the ONNX detector's layout check, and HOG on a real crop."""
from __future__ import annotations

import numpy as np
import pytest

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.ingest.detect import DetectorCfg, OnnxDetector, decode_yolo, letterbox, nms, yolo_layout

# three candidate people (cx, cy, w, h) in model pixels: A, a near-duplicate of A, and B far away
A, A2, B = (100, 200, 40, 120), (102, 203, 42, 118), (400, 300, 50, 150)


def v8_output(classes: int = 80, person: int = 0) -> np.ndarray:
    """[1, 4+C, N]: 5 candidates: A (0.9), A2 (0.8), B (0.7), a low-score box, a box of another class; the rest
    empty."""
    out = np.zeros((1, 4 + classes, 100), np.float32)
    other = (person + 2) % classes
    for i, (box, score, cls) in enumerate([(A, 0.9, person), (A2, 0.8, person), (B, 0.7, person),
                                           ((50, 50, 20, 20), 0.1, person), ((300, 50, 30, 30), 0.95, other)]):
        out[0, :4, i] = box
        out[0, 4 + cls, i] = score
    return out


def v5_output(classes: int = 80) -> np.ndarray:
    """[1, N, 5+C] with objectness: score = objectness x class score."""
    out = np.zeros((1, 100, 5 + classes), np.float32)  # 4 candidates, the rest empty
    for i, (box, obj, cls_score) in enumerate([(A, 0.9, 0.9), (A2, 0.9, 0.8), (B, 0.8, 0.9), (B, 0.3, 0.9)]):
        out[0, i, :4], out[0, i, 4], out[0, i, 5] = box, obj, cls_score
    return out


def xyxy(box):
    cx, cy, w, h = box
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_v8_decode_keeps_the_person_boxes_over_the_threshold_after_nms():
    dets = decode_yolo(v8_output(), DetectorCfg(score_threshold=0.5))
    np.testing.assert_allclose(dets.boxes, [xyxy(A), xyxy(B)], atol=1e-4)  # A2 suppressed by A, other class out
    np.testing.assert_allclose(dets.scores, [0.9, 0.7], atol=1e-6)
    transposed = decode_yolo(v8_output().transpose(0, 2, 1), DetectorCfg(score_threshold=0.5))  # [1, N, 84]
    np.testing.assert_allclose(transposed.boxes, dets.boxes)


def test_v5_decode_multiplies_objectness_and_class_score():
    dets = decode_yolo(v5_output(), DetectorCfg(score_threshold=0.5))
    np.testing.assert_allclose(dets.scores, [0.81, 0.72], atol=1e-6)  # A (A2 suppressed), B; 0.27 dropped
    np.testing.assert_allclose(dets.boxes, [xyxy(A), xyxy(B)], atol=1e-4)


def test_the_person_class_is_selectable():
    out = v8_output(classes=3, person=2)
    assert len(decode_yolo(out, DetectorCfg(score_threshold=0.5, person_class=0, layout="v8"))) == 0
    assert len(decode_yolo(out, DetectorCfg(score_threshold=0.5, person_class=1, layout="v8"))) == 1  # other box
    assert len(decode_yolo(out, DetectorCfg(score_threshold=0.5, person_class=2, layout="v8"))) == 2  # A, B
    with pytest.raises(ModelFormatError, match="person class 5 is beyond"):
        decode_yolo(out, DetectorCfg(person_class=5, layout="v8"))


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.5, 0.9, 0.8, 0.1], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 2, 0]  # identical boxes (IoU 1) still merge
    assert nms(boxes, scores, 0.5, limit=1).tolist() == [1]


@pytest.mark.parametrize("shape", [(1, 1000), (2, 84, 100), (1, 3, 4), (1, 20, 30, 40)])
def test_unsupported_shapes_say_which_layouts_are(shape):
    with pytest.raises(ModelFormatError, match="supported are the YOLO layouts"):
        yolo_layout(shape)


def test_an_ambiguous_channels_last_layout_asks_for_it():
    with pytest.raises(ModelFormatError, match="--yolo-layout"):
        yolo_layout((1, 100, 10))
    assert yolo_layout((1, 100, 10), "v5") == ("v5", False)


def test_letterbox_maps_back_to_frame_pixels():
    canvas, scale, (px, py) = letterbox(np.zeros((240, 320, 3), np.uint8), (640, 640))
    assert canvas.shape == (640, 640, 3) and scale == 2.0 and (px, py) == (0.0, 80.0)


def _onnx_model(path, output_shape):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # a fixed-output "model": Constant -> output (only its output SHAPE matters to the layout check)
    value = helper.make_tensor("v", TensorProto.FLOAT, output_shape, np.zeros(output_shape, np.float32).ravel())
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["out"], value=value)], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, output_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_onnx_detector_with_an_unsupported_output_fails_at_load(tmp_path):
    with pytest.raises(ModelFormatError, match="supported are the YOLO layouts"):
        OnnxDetector(_onnx_model(tmp_path / "bad.onnx", [1, 1000]))
    det = OnnxDetector(_onnx_model(tmp_path / "v8.onnx", [1, 84, 100]))
    assert det.layout == "v8" and det.input_size == (64, 64)
    assert len(det(np.zeros((48, 64, 3), np.uint8))) == 0
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        OnnxDetector(tmp_path / "junk.onnx")
