"""vision.thumbnail: JPEG thumbnails of crops, and the bounded copy the stream builder keeps."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tvreid_sdk.vision.thumbnail import THUMB_HEIGHT, make_thumbnail, thumbnail_source


def test_make_thumbnail_is_a_jpeg_of_the_asked_height_keeping_the_aspect():
    frame = np.full((200, 100, 3), 120, np.uint8)
    thumb = Image.open(io.BytesIO(make_thumbnail(frame)))
    assert thumb.format == "JPEG" and thumb.size == (48, THUMB_HEIGHT)
    assert Image.open(io.BytesIO(make_thumbnail(frame, height=20))).size == (10, 20)


def test_thumbnail_source_copies_small_crops_and_shrinks_large_ones():
    small = np.zeros((40, 20, 3), np.uint8)
    kept = thumbnail_source(small)
    assert kept.shape == small.shape and not np.shares_memory(kept, small)
    assert thumbnail_source(np.zeros((960, 100, 3), np.uint8)).shape == (THUMB_HEIGHT, 10, 3)
    assert thumbnail_source(np.zeros((50, 3840, 3), np.uint8)).shape == (5, 4 * THUMB_HEIGHT, 3)  # width bound
