"""Person detectors for :mod:`~tvreid_sdk.ingest.watch`: a user's ONNX YOLO model, or OpenCV's HOG people detector.

- :func:`decode_yolo` turns a raw YOLO output tensor into person boxes: the v5 layout ``[1, N, 5 + C]``
  (``cx, cy, w, h, objectness, class scores...``; score = objectness x class score) and the v8 layout
  ``[1, 4 + C, N]`` (``cx, cy, w, h, class scores...``, no objectness; also accepted transposed as ``[1, N, 4 + C]``
  when ``C + 4 = 84``). Boxes under ``score_threshold`` are dropped, the rest go through :func:`nms`.
- :class:`OnnxDetector` runs such a model with ONNX Runtime on letterboxed RGB frames and maps the boxes back to
  frame pixels. Its output layout is checked once when it is loaded, so an unsupported model fails at start.
- :class:`HogDetector` wraps ``cv2.HOGDescriptor`` with the default people detector: no model download, but WEAK
  (misses small, partly hidden or non-upright people, gives false boxes on clutter). OpenCV 5 wheels no longer
  have ``HOGDescriptor``; the ``watch`` extra installs a 4.x wheel.

Every detector is a callable ``detector(image [H,W,3] uint8 RGB) -> Detections``. Numpy and Pillow only at import.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from ..errors import BackendUnavailableError, ModelFormatError

LAYOUTS = ("auto", "v5", "v8")


@dataclasses.dataclass(frozen=True)
class Detections:
    """Person boxes of one frame: ``boxes`` [N,4] float32 ``x0, y0, x1, y1`` in pixels, ``scores`` [N] float32."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.scores)


@dataclasses.dataclass(frozen=True)
class DetectorCfg:
    """Options of the detectors.

    Args:
        score_threshold: boxes scoring below this are dropped (YOLO: objectness x class score; HOG: SVM weight).
        nms_iou: boxes overlapping a better one by more than this IoU are dropped.
        person_class: the class index of "person" in the YOLO model's classes (0 in COCO).
        layout: ``auto`` (from the output's shape), ``v5`` or ``v8``.
        max_detections: keep at most this many boxes per frame (best first).
    """

    score_threshold: float = 0.4
    nms_iou: float = 0.45
    person_class: int = 0
    layout: str = "auto"
    max_detections: int = 300

    def __post_init__(self) -> None:
        from ..errors import ConfigError

        if self.layout not in LAYOUTS:
            raise ConfigError(f"DetectorCfg.layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not 0 <= self.nms_iou <= 1 or self.person_class < 0 or self.max_detections < 1:
            raise ConfigError("DetectorCfg: nms_iou must be in [0, 1], person_class >= 0 and max_detections >= 1")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: Optional[int] = None) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: [N,4] ``x0, y0, x1, y1``.
        scores: [N].
        iou: drop a box overlapping a kept (better) one by more than this.
        limit: stop after this many kept boxes.

    Returns:
        [K] int64 indices of the kept boxes, best first.
    """
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = (boxes[:, i].astype(np.float64) for i in range(4))
    area = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        h = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = w * h
        overlap = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)


def yolo_layout(shape: tuple, layout: str = "auto") -> tuple[str, bool]:
    """``(layout, transposed)`` of a YOLO output of ``shape``; ``transposed``: channels come first (``[4+C, N]``).

    Raises:
        ModelFormatError: not a single-image ``[1, A, B]`` / ``[A, B]`` tensor in a supported layout.
    """
    dims = tuple(int(d) for d in shape)
    if len(dims) == 3 and dims[0] == 1:
        dims = dims[1:]
    unsupported = ModelFormatError(f"the detector's output has shape {list(shape)}; supported are the YOLO layouts "
                                   "v5 [1, N, 5+classes] and v8 [1, 4+classes, N] (batch 1, boxes not yet decoded)")
    if len(dims) != 2:
        raise unsupported
    a, b = dims
    known = {84: "v8", 85: "v5"}  # the 80 COCO classes
    if layout in ("v5", "v8"):
        found = (layout, a < b)
    elif b in known and a not in known:
        found = (known[b], False)
    elif a in known and b not in known:
        found = (known[a], True)
    elif a < b:  # channels first, as the v8 export ([1, 4+C, 8400])
        found = ("v8", True)
    else:
        raise ModelFormatError(f"cannot tell the YOLO layout of an output of shape {list(shape)}: pass the layout "
                               "(--yolo-layout v5 for [N, 5+classes] with objectness, v8 for [N, 4+classes])")
    channels = a if found[1] else b
    if channels < (6 if found[0] == "v5" else 5):
        raise unsupported
    return found


def decode_yolo(output: np.ndarray, cfg: DetectorCfg = DetectorCfg()) -> Detections:
    """Person boxes of one image from a raw YOLO output, in the model's input pixels (see the module docstring).

    Args:
        output: ``[1, N, 5+C]`` (v5), ``[1, 4+C, N]`` or ``[1, N, 4+C]`` (v8), batch dim optional.
        cfg: threshold, NMS IoU, person class and layout.

    Raises:
        ModelFormatError: unsupported shape, or ``person_class`` beyond the model's classes.
    """
    layout, transposed = yolo_layout(output.shape, cfg.layout)
    rows = np.asarray(output, dtype=np.float32).reshape(output.shape[-2:])
    rows = rows.T if transposed else rows  # [N, 4+C] or [N, 5+C]
    first = 5 if layout == "v5" else 4
    classes = rows.shape[1] - first
    if cfg.person_class >= classes:
        raise ModelFormatError(f"person class {cfg.person_class} is beyond the detector's {classes} classes "
                               f"({layout} layout); pass the right --person-class")
    score = rows[:, first + cfg.person_class]
    if layout == "v5":
        score = score * rows[:, 4]
    hit = score >= cfg.score_threshold
    rows, score = rows[hit], score[hit]
    if not len(score):
        return Detections.empty()
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)  # [K,4]
    keep = nms(boxes, score, cfg.nms_iou, cfg.max_detections)
    return Detections(boxes[keep].astype(np.float32), score[keep].astype(np.float32))


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize ``image`` [H,W,3] to fit ``size`` ``(h, w)`` keeping its aspect, pad with grey (114).

    Returns:
        ``(canvas [h,w,3] uint8, scale, (pad_x, pad_y))``: frame pixel = (model pixel - pad) / scale.
    """
    from PIL import Image

    th, tw = size
    h, w = image.shape[:2]
    scale = min(th / h, tw / w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    canvas = np.full((th, tw, 3), 114, np.uint8)
    px, py = (tw - nw) // 2, (th - nh) // 2
    resized = image if (nh, nw) == (h, w) else np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    canvas[py:py + nh, px:px + nw] = resized
    return canvas, scale, (float(px), float(py))


class OnnxDetector:
    """A YOLO person detector in ONNX (v5 or v8 output layout), run with ONNX Runtime on the CPU.

    Args:
        path: the ``.onnx`` file; its first input is ``[1, 3, H, W]`` float RGB in [0, 1] (fixed H, W, or dynamic:
            then ``input_size`` is used).
        cfg: see :class:`DetectorCfg`.
        input_size: ``(H, W)`` for models with a dynamic input size.
        threads: ONNX Runtime intra-op threads (0: its default).

    Raises:
        ModelFormatError: the file is not a loadable ONNX model, or its output is not a supported YOLO layout
            (checked by running it once on a blank image).
    """

    def __init__(self, path: str | os.PathLike, cfg: DetectorCfg = DetectorCfg(),
                 input_size: tuple[int, int] = (640, 640), threads: int = 0):
        import onnxruntime as ort

        self.path, self.cfg = str(path), cfg
        if not os.path.isfile(self.path):
            raise ModelFormatError(f"{self.path}: no such detector file; pass an .onnx YOLO model or --detector hog")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises several types for bad files
            raise ModelFormatError(f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]}); "
                                   "pass a YOLO detector exported to ONNX or --detector hog") from None
        inp = self._session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ModelFormatError(f"{self.path}: the detector's input has shape {shape}; a YOLO detector takes "
                                   "[1, 3, H, W] images")
        h, w = shape[2], shape[3]
        self.input_size = (h, w) if isinstance(h, int) and isinstance(w, int) else tuple(input_size)
        self._input = inp.name
        probe = self._session.run(None, {self._input: np.zeros((1, 3, *self.input_size), np.float32)})[0]
        self.layout, _ = yolo_layout(probe.shape, cfg.layout)
        if cfg.layout == "auto":
            self.cfg = dataclasses.replace(cfg, layout=self.layout)
        decode_yolo(probe, self.cfg)  # person class in range

    def __call__(self, image: np.ndarray) -> Detections:
        canvas, scale, (px, py) = letterbox(image, self.input_size)
        x = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0  # [1,3,H,W]
        dets = decode_yolo(self._session.run(None, {self._input: x})[0], self.cfg)
        if not len(dets):
            return dets
        boxes = (dets.boxes - np.array([px, py, px, py], np.float32)) / scale
        h, w = image.shape[:2]
        boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
        return Detections(boxes.astype(np.float32), dets.scores)


def import_cv2():
    """OpenCV with ``HOGDescriptor``, or BackendUnavailableError with the install line."""
    try:
        import cv2
    except ImportError:
        raise BackendUnavailableError('--detector hog needs OpenCV 4.x: pip install "tvreid[watch]"') from None
    if not hasattr(cv2, "HOGDescriptor"):
        raise BackendUnavailableError(f"--detector hog needs OpenCV 4.x, which has HOGDescriptor (installed: "
                                      f"{cv2.__version__}); pip install \"opencv-python>=4.8,<5\" or pass an ONNX "
                                      "YOLO detector")
    return cv2


class HogDetector:
    """OpenCV's HOG + linear SVM people detector (Dalal-Triggs): works with no model file, but is WEAK.

    It finds upright, unoccluded people at least about 128 pixels tall (``upscale`` enlarges small frames first),
    misses many others and is slow on large frames. Use an ONNX YOLO detector for real deployments.

    Args:
        cfg: ``score_threshold`` applies to the SVM weight (0.4 default; 0 keeps everything), ``nms_iou`` merges
            the overlapping windows HOG returns.
        upscale: resize frames by this factor before detecting (>1 for small people).
        win_stride: sliding-window step in pixels.
    """

    def __init__(self, cfg: DetectorCfg = DetectorCfg(), upscale: float = 1.0, win_stride: int = 8):
        cv2 = import_cv2()
        self.cfg, self.upscale, self.win_stride = cfg, float(upscale), int(win_stride)
        self._cv2 = cv2
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, image: np.ndarray) -> Detections:
        cv2 = self._cv2
        src = image
        if self.upscale != 1.0:
            src = cv2.resize(image, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_LINEAR)
        rects, weights = self._hog.detectMultiScale(src, winStride=(self.win_stride, self.win_stride),
                                                    padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale  # x, y, w, h
        scores = np.asarray(weights, np.float32).reshape(-1)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)  # [N,4] xyxy
        hit = scores >= self.cfg.score_threshold
        boxes, scores = boxes[hit], scores[hit]
        keep = nms(boxes, scores, self.cfg.nms_iou, self.cfg.max_detections)
        return Detections(boxes[keep], scores[keep])


def make_detector(spec: str, cfg: DetectorCfg = DetectorCfg(), **kwargs):
    """``"hog"`` → :class:`HogDetector`, a path → :class:`OnnxDetector`."""
    if spec == "hog":
        return HogDetector(cfg, **{k: v for k, v in kwargs.items() if k in ("upscale", "win_stride")})
    return OnnxDetector(spec, cfg, **{k: v for k, v in kwargs.items() if k in ("input_size", "threads")})
