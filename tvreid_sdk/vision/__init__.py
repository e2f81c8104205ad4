"""Frames in, model input out: safe decoding, the one preprocessing, and tracklet frame samplers.

Training and deployment both use this package, so the pixels a model sees never drift between them.
Importing it loads numpy and Pillow only; the torch path (:func:`normalize_torch`) imports torch lazily.
"""
from .augment import (TrainAugment, normalized_fill_colour, random_erasing, random_erasing_sequence,
                      random_horizontal_flip_sequence, random_pad_crop)
from .decode import (DEFAULT_MAX_PIXELS, SkippedFrame, TrackletLoadReport, load_image, load_tracklet,
                     validate_array)
from .preprocess import normalize, normalize_torch, preprocess_frames, resize_frame, resize_frames
from .sampling import SAMPLERS, FrameSampler, chunk_strip, rss_train_samples, sample_indices

__all__ = [
    "DEFAULT_MAX_PIXELS", "SkippedFrame", "TrackletLoadReport", "load_image", "load_tracklet", "validate_array",
    "normalize", "normalize_torch", "preprocess_frames", "resize_frame", "resize_frames",
    "random_erasing", "random_erasing_sequence", "random_horizontal_flip_sequence", "random_pad_crop",
    "TrainAugment", "normalized_fill_colour",
    "SAMPLERS", "FrameSampler", "chunk_strip", "rss_train_samples", "sample_indices",
]
