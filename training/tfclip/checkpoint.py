"""TF-CLIP checkpoints: the shared convention of :mod:`training.checkpoint` plus the TF-CLIP recipe in metadata.

Metadata written by :func:`save_tfclip` (all strings): ``tvreid_arch`` (family ``tfclip``), ``tvreid_num_frames``,
``tvreid_sampler`` (the test sampler), ``tvreid_tfclip`` = ``{"model": <model section>, "data": <data section>,
"num_classes": N, "num_cameras": C, "camera_index": {camera label: SIE row}}`` as JSON. ``camera_index`` maps the
training set's camera labels (``C1``, ``C2``...: :func:`tvreid_sdk.ingest.folders.camera_label`) to the SIE rows they
trained; export carries it into the bundle so ``tvreid index`` can feed known cameras. Tensors: see
:mod:`training.tfclip.model`.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.ingest.folders import camera_label
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import resolve_checkpoint

from ..checkpoint import save_model
from ..config import require_family
from ..data.records import Dataset
from .config import FAMILY, TfclipDataSection, TfclipModelSection
from .model import TFCLIP

META_TFCLIP = "tvreid_tfclip"


def training_camera_index(data: Dataset, num_cameras: int) -> dict[str, int]:
    """``{camera label: SIE row}`` for the cameras of ``data`` (every split) that have an SIE row.

    The loaders store cameras 0-based (MARS ``C1`` → 0), and that index is the SIE row training adds
    (:class:`training.tfclip.data.VideoTrainSet` feeds ``camid``), so the label of row ``c`` is ``C{c+1}``,
    the label ``tvreid index`` gives the same tracklets. Empty without SIE (``num_cameras`` 0).
    """
    cams = sorted({t.camid for split in (data.train, data.query, data.gallery) for t in split})
    return {camera_label(c): int(c) for c in cams if 0 <= c < num_cameras}


def save_tfclip(model: TFCLIP, path: Path, data_cfg: TfclipDataSection, extra: dict[str, str] | None = None,
                camera_index: dict[str, int] | None = None) -> None:
    """Write ``model`` (all tensors, memory included) with the metadata above, atomically.

    Args:
        model: the TF-CLIP model.
        path: destination ``.safetensors``.
        data_cfg: the recipe's data section.
        extra: more metadata strings (epoch, metrics).
        camera_index: ``{camera label: SIE row}`` of the training data (:func:`training_camera_index`); None or
            empty = no camera is known to deployment (every tracklet indexed camera-unknown).

    Raises:
        ValueError: a ``camera_index`` row outside ``0..num_cameras-1``.
    """
    index = {str(k): int(v) for k, v in (camera_index or {}).items()}
    bad = {k: v for k, v in index.items() if not 0 <= v < model.num_cameras}
    if bad:
        raise ValueError(f"camera_index rows {bad} are outside the model's {model.num_cameras} SIE rows")
    meta = {"model": model.model_cfg.to_dict(), "data": data_cfg.to_dict(), "num_classes": model.num_classes,
            "num_cameras": model.num_cameras, "camera_index": index}
    sampler = SamplerCfg(name=data_cfg.test_sampler, num_frames=data_cfg.num_frames)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_model(model, Path(path), model.arch, data_cfg.num_frames, sampler,
               {META_TFCLIP: json.dumps(meta, sort_keys=True), **(extra or {})})


def load_tfclip_weights(model: TFCLIP, path: str | Path) -> None:
    """Load a :func:`save_tfclip` file into ``model`` (strict)."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelFormatError(f"{path}: cannot read checkpoint ({exc}); is it a tvreid .safetensors?") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"{path}: does not fit this TF-CLIP model (missing {missing[:5]}, unexpected "
                               f"{unexpected[:5]}); resume with the recipe and dataset the run was started with")


def load_tfclip_checkpoint(path: str | Path) -> tuple[TFCLIP, dict]:
    """Rebuild a TF-CLIP model (eval mode, CPU) from a checkpoint or run directory; returns it and its metadata."""
    ckpt = resolve_checkpoint(path)
    try:
        with safe_open(str(ckpt), framework="pt") as fh:
            meta = fh.metadata() or {}
        arch = ArchCfg.from_dict(json.loads(meta["tvreid_arch"]))
        info = json.loads(meta[META_TFCLIP])
        model_cfg = TfclipModelSection.from_dict(info["model"])
    except (KeyError, ValueError, ConfigError) as exc:
        raise ModelFormatError(f"{ckpt}: not a TF-CLIP checkpoint (metadata {exc}); train one with a tfclip "
                               "recipe") from None
    require_family(arch, FAMILY, "a TF-CLIP checkpoint", error=ModelFormatError, where=f"{ckpt}: ",
                   hint="evaluate it with its own family's evaluation (`tvreid eval` picks it from the checkpoint)")
    model = TFCLIP(arch, model_cfg.replace(init_clip=""), int(info["num_classes"]), int(info["num_cameras"]))
    load_tfclip_weights(model, ckpt)
    return model.eval(), info

