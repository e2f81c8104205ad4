"""Lazy FAISS import: the gallery works without it (exact search); only the ANN sidecar needs it."""
from __future__ import annotations

import logging
from typing import Any

from ...errors import GalleryError

log = logging.getLogger("tvreid.ann")

INSTALL_HINT = 'pip install "tvreid[scale]"'


class AnnUnavailableError(GalleryError):
    """FAISS (the ``scale`` extra) is not installed."""


def faiss_available() -> bool:
    """True when ``import faiss`` works (faiss-cpu, or a GPU build)."""
    try:
        import faiss  # noqa: F401  (import check)
    except ImportError:
        return False
    return True


def load_faiss(what: str = "the ANN index") -> Any:
    """The ``faiss`` module.

    Raises:
        AnnUnavailableError: one line naming the install command when FAISS is missing.
    """
    try:
        import faiss
    except ImportError:
        raise AnnUnavailableError(f"{what} needs the 'faiss-cpu' package, which is not installed; install it with: "
                                  f"{INSTALL_HINT} (search keeps working without it, exactly)") from None
    return faiss


def gpu_count(faiss: Any) -> int:
    """GPUs FAISS can use (0 with faiss-cpu)."""
    getter = getattr(faiss, "get_num_gpus", None)
    try:
        return int(getter()) if getter else 0
    except Exception:  # noqa: BLE001 - a broken CUDA setup means "no GPU" for an optional speed-up
        return 0
