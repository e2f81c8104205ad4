"""Safe decoding of tracklet frames (JPEG/PNG files and in-memory arrays) into uint8 RGB arrays.

Frames come from cameras, crop extractors and downloaded datasets, so every file is treated as
untrusted:

* only the JPEG and PNG decoders of Pillow are allowed (``Image.open(fp, formats=["JPEG", "PNG"])``),
  so a GIF, BMP, TIFF, FITS... named ``.jpg`` never reaches a less-audited decoder;
* the pixel count declared in the header is checked against our own cap (``DEFAULT_MAX_PIXELS``)
  *before* any pixel is decoded, independently of Pillow's ``MAX_IMAGE_PIXELS`` (which a host
  application may have disabled); a PNG declaring 80000×80000 is rejected without allocating;
* ``Image.load()`` runs eagerly, and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, so a truncated
  file raises instead of coming back half grey (the OpenCV failure mode);
* every failure becomes a :class:`~tvreid_sdk.errors.CorruptInputError` naming the file and the
  frame's index in its tracklet, and saying what to do next.

No EXIF orientation is applied and alpha is dropped (not composited), exactly as the training
loaders' ``Image.open(path).convert("RGB")`` do, so train-time and deploy-time pixels are the same.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
from PIL import Image

from ..errors import ConfigError, CorruptInputError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: far above any person crop, far below a decompression bomb
ALLOWED_FORMATS = ("JPEG", "PNG")
BAD_FRAME_POLICIES = ("fail", "skip")

# Leading bytes of formats we refuse, to tell the user what the file really is.
_MAGIC = (
    (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"RIFF", "RIFF/WebP"), (b"SIMPLE  =", "FITS"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"), (b"%PDF", "PDF"),
)


def _where(path: str, frame_index: int | None) -> str:
    return f"frame {frame_index} ({path!r})" if frame_index is not None else f"image {path!r}"


def _corrupt(path: str, frame_index: int | None, problem: str) -> CorruptInputError:
    message = (f"Cannot decode {_where(path, frame_index)}: {problem}. Re-extract the frame from its source video "
               "(as JPEG or PNG), or skip unreadable frames (CLI: --on-bad-frame skip; SDK: on_bad_frame='skip').")
    return CorruptInputError(message, path=path, frame_index=frame_index)


def _sniff(head: bytes) -> str:
    """Names the real format of a rejected file from its first bytes, for the error message."""
    if head.startswith(b"\xff\xd8\xff"):
        return "its JPEG header is corrupt"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "its PNG header is corrupt"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return f"it is a {name} file; only JPEG and PNG are accepted"
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "it is a text file, not an image"
    return "it is not a JPEG or PNG image (unrecognised header)"


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Converts any decoded Pillow mode to a writable uint8 array [H,W,3] in RGB order."""
    if img.mode == "RGB":
        return np.array(img, dtype=np.uint8)  # [H,W,3]
    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit greyscale PNG: scale to 8 bits, don't clip
        grey = np.asarray(img).astype(np.int64)  # [H,W]
        grey8 = np.clip((grey * 255 + 32767) // 65535, 0, 255).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)  # [H,W,3]
    return np.array(img.convert("RGB"), dtype=np.uint8)  # L, LA, P, PA, RGBA, CMYK, 1... -> [H,W,3]


class _DecodeProblem(Exception):
    """Internal: why a file failed to decode (the problem only; the public error adds path and advice)."""


def _decode(path: str, max_pixels: int) -> np.ndarray:
    try:
        fp = open(path, "rb")
    except OSError as exc:
        raise _DecodeProblem(f"the file cannot be opened ({exc.strerror or exc})") from None
    with fp:
        if os.fstat(fp.fileno()).st_size == 0:
            raise _DecodeProblem("the file is empty (0 bytes)")
        try:
            img = Image.open(fp, formats=list(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _DecodeProblem(f"its header declares too many pixels, above Pillow's decompression-bomb "
                                 f"safety cap ({exc})") from None
        except Exception:  # UnidentifiedImageError, SyntaxError from a broken header, struct.error...
            fp.seek(0)
            raise _DecodeProblem(_sniff(fp.read(16))) from None
        with img:
            width, height = img.size  # from the header only: nothing is decoded yet
            if width <= 0 or height <= 0:
                raise _DecodeProblem(f"its header declares an empty size {width}x{height}")
            if width * height > max_pixels:
                raise _DecodeProblem(f"its header declares {width}x{height} = {width * height:,} pixels, above the "
                                     f"{max_pixels:,}-pixel safety cap (decompression-bomb guard)")
            try:
                img.load()  # decodes everything now; truncated data raises (LOAD_TRUNCATED_IMAGES is False)
                return _to_rgb_array(img)
            except Exception as exc:  # OSError("image file is truncated"), SyntaxError("broken PNG file")...
                detail = str(exc) or type(exc).__name__  # MemoryError has no message
                raise _DecodeProblem(f"the {img.format} data is truncated or corrupt ({detail})") from None


def load_image(path: str | os.PathLike[str], *, frame_index: int | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes one JPEG or PNG file safely into RGB pixels.

    Args:
        path: image file on disk.
        frame_index: position of the frame in its tracklet; only used in error messages.
        max_pixels: largest accepted width × height, checked from the header before decoding.

    Returns:
        uint8 array [H,W,3], RGB order, C-contiguous and writable.

    Raises:
        CorruptInputError: the file is missing, unreadable, empty, not a JPEG/PNG, declares more than
            ``max_pixels`` pixels, or is truncated/corrupt. ``.path`` and ``.frame_index`` are set.
    """
    spath = os.fspath(path)
    try:
        return _decode(spath, max_pixels)
    except _DecodeProblem as problem:
        raise _corrupt(spath, frame_index, str(problem)) from None


def validate_array(arr: object, index: int | None = None, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Checks an in-memory frame (e.g. from a video decoder) before it enters preprocessing.

    Args:
        arr: the frame; must be a numpy uint8 array [H,W,3] in RGB order.
        index: position of the frame in its tracklet, for the error message.
        max_pixels: largest accepted H × W.

    Returns:
        The same array, unchanged.

    Raises:
        CorruptInputError: wrong type, dtype, rank or channel count, an empty frame or too many pixels.
    """
    where = f"in-memory frame {index}" if index is not None else "in-memory frame"
    problem = None
    if not isinstance(arr, np.ndarray):
        problem = f"expected a numpy array, got {type(arr).__name__}"
    elif arr.dtype != np.uint8:
        problem = f"expected dtype uint8 (0..255), got {arr.dtype}"
    elif arr.ndim != 3 or arr.shape[2] != 3:
        problem = f"expected shape [H,W,3] (RGB), got {list(arr.shape)}"
    elif arr.shape[0] < 1 or arr.shape[1] < 1:
        problem = f"the frame is empty ({arr.shape[0]}x{arr.shape[1]})"
    elif arr.shape[0] * arr.shape[1] > max_pixels:
        problem = f"{arr.shape[0]}x{arr.shape[1]} pixels exceed the {max_pixels:,}-pixel cap"
    if problem is not None:
        raise CorruptInputError(f"Invalid {where}: {problem}. Pass decoded RGB frames as uint8 arrays [H,W,3] "
                                "(convert BGR/float/greyscale frames first).", path="<array>", frame_index=index)
    return arr  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class SkippedFrame:
    """One frame dropped by ``load_tracklet(..., on_bad_frame="skip")``."""

    index: int
    path: str
    reason: str


@dataclasses.dataclass(frozen=True)
class TrackletLoadReport:
    """What ``load_tracklet`` did: which input positions were kept and which were skipped, and why."""

    num_requested: int
    kept: tuple[int, ...]
    skipped: tuple[SkippedFrame, ...]

    @property
    def ok(self) -> bool:
        return not self.skipped


def load_tracklet(paths: Sequence[str | os.PathLike[str]], *, on_bad_frame: str = "fail",
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[np.ndarray], TrackletLoadReport]:
    """Decodes the frames of one tracklet, in order.

    Args:
        paths: frame files in temporal order.
        on_bad_frame: ``"fail"`` raises on the first bad frame; ``"skip"`` drops it and records it in the
            report (the caller then samples from the frames that remain).
        max_pixels: per-frame pixel cap, see :func:`load_image`.

    Returns:
        ``(frames, report)``: the decoded uint8 [H,W,3] RGB frames, and a :class:`TrackletLoadReport` whose
        ``kept[i]`` is the position in ``paths`` of ``frames[i]``.

    Raises:
        ConfigError: unknown ``on_bad_frame``.
        CorruptInputError: a bad frame under ``"fail"``; an empty tracklet; or every frame bad under ``"skip"``.
    """
    if on_bad_frame not in BAD_FRAME_POLICIES:
        raise ConfigError(f"on_bad_frame must be one of {list(BAD_FRAME_POLICIES)}, got {on_bad_frame!r}.")
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise CorruptInputError("Cannot load an empty tracklet (no frame paths). Drop it, or check the frame "
                                "list it was built from.", path=None, frame_index=None)
    frames: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[SkippedFrame] = []
    for index, path in enumerate(paths):
        try:
            frames.append(_decode(path, max_pixels))
            kept.append(index)
        except _DecodeProblem as problem:
            if on_bad_frame == "fail":
                raise _corrupt(path, index, str(problem)) from None
            skipped.append(SkippedFrame(index=index, path=path, reason=str(problem)))
    if not frames:
        first = skipped[0]
        raise CorruptInputError(f"All {len(paths)} frames of the tracklet are unreadable (frame {first.index} "
                                f"{first.path!r}: {first.reason}). Re-extract the tracklet's frames, or drop "
                                "the tracklet.",
                                path=first.path, frame_index=first.index)
    return frames, TrackletLoadReport(num_requested=len(paths), kept=tuple(kept), skipped=tuple(skipped))
