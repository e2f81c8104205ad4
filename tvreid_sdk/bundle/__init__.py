"""Model bundles: a directory with ``manifest.json`` and hash-pinned artifacts."""
from .engine import LocalEngineSide, check_engine_compat
from .io import Bundle, BundleWriter, load_bundle, sha256_file
from .manifest import SCHEMA_VERSION, ArtifactInfo, EngineMeta, Manifest

__all__ = ["Bundle", "BundleWriter", "load_bundle", "sha256_file", "SCHEMA_VERSION", "ArtifactInfo",
           "EngineMeta", "Manifest", "LocalEngineSide", "check_engine_compat"]
