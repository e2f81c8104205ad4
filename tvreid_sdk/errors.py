"""Exception hierarchy of tvreid.

Every error carries a message that says what is wrong and what to do next. The CLI prints
``str(error)`` on one line and exits non-zero, so messages must be complete sentences.
"""
from __future__ import annotations


class TvreidError(Exception):
    """Base class of every error tvreid raises on purpose."""


class RegistryKeyError(TvreidError, KeyError):
    """A name is not in a registry (model, backend, family...); the message lists the registered names.

    A :class:`KeyError` too, so ``except KeyError`` around a registry lookup keeps working; ``str()`` gives the plain
    message (``KeyError`` alone would quote it).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(TvreidError):
    """A configuration value (recipe, manifest field, CLI option) is invalid."""


class DatasetFormatError(TvreidError):
    """A dataset on disk does not follow its released layout."""


class MissingFramesError(DatasetFormatError):
    """Frame files referenced by annotations are missing on disk."""

    def __init__(self, message: str, missing: list[str] | None = None):
        super().__init__(message)
        self.missing = list(missing or [])


class ModelFormatError(TvreidError):
    """A weight file, ONNX graph or bundle artifact is malformed or inconsistent."""


class UnsafeCheckpointError(ModelFormatError):
    """A checkpoint would need arbitrary code execution (pickle globals) to load."""

    def __init__(self, message: str, globals_found: list[str] | None = None):
        super().__init__(message)
        self.globals_found = list(globals_found or [])


class BundleError(ModelFormatError):
    """A model bundle is missing, corrupt, tampered with or of an unknown schema."""


class EngineMismatchError(BundleError):
    """A TensorRT engine was built for another TensorRT version or GPU than the local one."""


class BackendUnavailableError(TvreidError):
    """The requested inference backend cannot run here (package or device missing)."""


class RemoteModelError(TvreidError):
    """A remote inference server (Triton) serves another model than expected, or failed a request."""


class CorruptInputError(TvreidError):
    """An input image or video frame cannot be decoded safely.

    Attributes:
        path: the offending file (or a description of an in-memory input).
        frame_index: index of the frame inside its tracklet, when known.
    """

    def __init__(self, message: str, path: str | None = None, frame_index: int | None = None):
        super().__init__(message)
        self.path = path
        self.frame_index = frame_index


class QueryRejectedError(TvreidError):
    """A text query is empty, too long or otherwise unusable."""


class GalleryError(TvreidError):
    """A gallery operation failed (missing gallery, wrong model, unknown camera...)."""


class GalleryCorruptError(GalleryError):
    """A gallery's files fail their integrity check."""


class GalleryModelMismatchError(GalleryError):
    """Vectors from one model were offered to a gallery bound to another model."""


class GalleryConflictError(GalleryError):
    """Keys already stored for different tracklets (other source or content); nothing was overwritten.

    Attributes:
        conflicts: one :class:`~tvreid_sdk.gallery.store.KeyConflict` per key (key, stored source, new source).
    """

    def __init__(self, message: str, conflicts: list | None = None):
        super().__init__(message)
        self.conflicts = list(conflicts or [])
