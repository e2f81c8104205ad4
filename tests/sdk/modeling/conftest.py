"""Fixtures for the modeling tests: the reference CLIP implementation (open_clip's model code).

PyPI torchvision does not import beside the local CPU torch build, and ``open_clip/__init__.py`` imports it, so the
reference is loaded module-by-file: a stub ``open_clip`` package whose ``__path__`` is the installed directory lets
``open_clip.model`` import without running ``__init__.py``. ``open_clip.utils`` needs one torchvision name
(``FrozenBatchNorm2d``, unused by ViT CLIP); when torchvision is missing a placeholder is installed for the duration
of the import only. Every ``sys.modules`` entry added here is removed again afterwards.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest

REFERENCE_PACKAGE = "open_clip_torch (tested with 3.3.0; pip install --no-deps open_clip_torch)"


def _import_open_clip_model() -> types.ModuleType:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("open_clip is not installed")
    before = set(sys.modules)
    stubs: dict[str, types.ModuleType] = {}
    package = types.ModuleType("open_clip")
    package.__path__ = list(spec.submodule_search_locations)
    stubs["open_clip"] = package
    if importlib.util.find_spec("torchvision") is None:
        misc = types.ModuleType("torchvision.ops.misc")
        misc.FrozenBatchNorm2d = type("FrozenBatchNorm2d", (), {})  # only used to freeze ResNet towers
        stubs.update({"torchvision": types.ModuleType("torchvision"), "torchvision.ops": types.ModuleType(
            "torchvision.ops"), "torchvision.ops.misc": misc})
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        return importlib.import_module("open_clip.model")
    finally:
        for name in set(sys.modules) - before:
            if name.startswith(("open_clip", "torchvision")):
                del sys.modules[name]
        for name, module in saved.items():
            if module is not None:
                sys.modules[name] = module


@pytest.fixture(scope="session")
def open_clip_model() -> types.ModuleType:
    """open_clip's ``model`` module (``CLIP``, ``CLIPVisionCfg``, ``CLIPTextCfg``), or skip with the reason."""
    try:
        return _import_open_clip_model()
    except (ImportError, ValueError) as exc:  # ValueError: find_spec on a broken sys.modules entry
        pytest.skip(f"reference CLIP code not importable ({exc}); install {REFERENCE_PACKAGE}")
