"""tvreid SDK: find a person in camera footage from a sentence.

Public API (imported lazily, so ``import tvreid_sdk`` stays light and never imports torch)::

    from tvreid_sdk import Encoder, Gallery, load_bundle, demo_paths
    enc = Encoder.from_bundle(bundle_dir)
    hits = Gallery.open(gallery_dir).search(enc.encode_text(["man in red jacket walking"]), k=10)
"""
from ._version import __version__

_EXPORTS = {
    "Encoder": ".encoder",
    "Gallery": ".gallery",
    "TrackletRecord": ".gallery",
    "Hit": ".gallery",
    "load_bundle": ".bundle",
    "Bundle": ".bundle",
    "Tokenizer": ".text",
    "get_tokenizer": ".text",
    "PreprocessCfg": ".config",
    "TokenizerCfg": ".config",
    "SamplerCfg": ".config",
    "demo_paths": ".assets",
    "TvreidError": ".errors",
    "FamilySpec": ".modeling.family",
    "get_family": ".modeling.family",
    "list_families": ".modeling.family",
    "TrackletBuilder": ".ingest",
    "StreamCfg": ".ingest",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        from importlib import import_module  # local: the package namespace holds only the public API

        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module 'tvreid_sdk' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (what ``from tvreid_sdk import *`` gives), for ``dir()`` and tab completion."""
    return sorted(__all__)
