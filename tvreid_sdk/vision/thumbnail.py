"""Small JPEG thumbnails of person crops, stored with each gallery tracklet for contact sheets."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

THUMB_HEIGHT = 96  # rows of a stored thumbnail (at most; smaller crops are not upscaled by the stream builder)


def make_thumbnail(frame: np.ndarray, height: int = THUMB_HEIGHT) -> bytes:
    """A small JPEG of one ``uint8 [H,W,3]`` frame, ``height`` rows high (width keeps the aspect ratio)."""
    img = Image.fromarray(frame)
    width = max(1, round(img.width * height / img.height))
    buf = io.BytesIO()
    img.resize((width, height), Image.BILINEAR).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def thumbnail_source(crop: np.ndarray) -> np.ndarray:
    """A copy of ``crop`` ``uint8 [h,w,3]`` scaled down to at most THUMB_HEIGHT rows and 4x as many columns."""
    h, w = crop.shape[:2]
    scale = min(1.0, THUMB_HEIGHT / h, 4 * THUMB_HEIGHT / w)
    if scale >= 1.0:
        return crop.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.BILINEAR))
