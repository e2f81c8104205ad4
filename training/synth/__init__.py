"""Synthetic text-to-video person re-ID datasets (``tvreid synth``).

Rendered people (Pillow drawing, no external assets) whose look and motion follow sampled attributes,
captions written from those attributes, and writers for the real TV-MARS, MARS and CUHK-PEDES layouts::

    from training.synth import generate
    summary = generate("/data/synth-tvmars", ids=200, seed=0)  # TV-MARS layout, 256x128 crops
"""
from .generator import GENERATOR_VERSION, META_FILE, SplitCounts, SynthSummary, generate
from .options import DEFAULT_IMAGE_SIZE, FORMATS, SynthOptions

__all__ = ["generate", "SynthSummary", "SplitCounts", "SynthOptions", "FORMATS", "DEFAULT_IMAGE_SIZE",
           "GENERATOR_VERSION", "META_FILE"]
