"""The bundle manifest: everything needed to serve a model, in one JSON file.

A bundle is a directory::

    manifest.json            this schema
    weights.safetensors      the towers' fp32 weights (torch backend, re-export)
    text_encoder.onnx        int32 ids [B,77] + int32 eot [B] -> float32 [B,D], L2-normalised
    video_encoder.onnx       uint8 [B,T,H,W,3] -> float32 [B,D], L2-normalised
    frame_encoder.onnx       uint8 [N,H,W,3] -> float32 [N,D], not normalised
    *.fp16.onnx / *.plan     optional variants and TensorRT engines (with engine metadata)
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import JsonCfg, PreprocessCfg, SamplerCfg, TokenizerCfg
from ..errors import BundleError, ConfigError
from ..modeling.arch import ArchCfg
from ..modeling.family import FamilySpec, get_family

SCHEMA_VERSION = 2
#: Versions this tvreid reads: 1 kept family settings untyped in ``export[<family section>]``; 2 has ``family_cfg``.
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
ARTIFACT_KINDS = ("onnx", "safetensors", "trt_plan", "json", "timing_cache")


@dataclasses.dataclass(frozen=True)
class EngineMeta(JsonCfg):
    """Where and how a TensorRT plan was built; compared with the local side before deserialising."""

    trt_version: str = ""
    gpu_name: str = ""
    compute_capability: str = ""  # "9.0"
    cuda_version: str = ""
    precision: str = "fp32"
    profiles: tuple = ()  # ((name, min, opt, max), ...)
    onnx_sha256: str = ""
    plan_sha256: str = ""
    runtime: str = "tensorrt"  # tensorrt | tensorrt_rtx


@dataclasses.dataclass(frozen=True)
class ArtifactInfo(JsonCfg):
    """One file of the bundle, pinned by size and sha256."""

    path: str
    kind: str
    sha256: str
    size: int
    role: str = ""  # text_encoder | video_encoder | frame_encoder | weights | ...
    precision: str = "fp32"
    variant: str = "default"  # default | cuda-fused | fp16 ...
    engine: EngineMeta | None = None

    _nested = {"engine": EngineMeta}

    def __post_init__(self) -> None:
        if self.kind not in ARTIFACT_KINDS:
            raise ValueError(f"artifact kind must be one of {ARTIFACT_KINDS}, got {self.kind!r}")
        parts = self.path.replace("\\", "/").split("/")
        if self.path.startswith(("/", "\\")) or ".." in parts or not self.path or ":" in parts[0]:
            raise ValueError(f"artifact path {self.path!r} must be a relative path inside the bundle")


@dataclasses.dataclass(frozen=True)
class Manifest(JsonCfg):
    """The content of ``manifest.json``."""

    arch: ArchCfg
    model_id: str  # identifies the embedding space: sha256 of the fp32 weights
    num_frames: int = 8
    tokenizer: TokenizerCfg = TokenizerCfg()
    sampler: SamplerCfg = SamplerCfg()
    artifacts: tuple[ArtifactInfo, ...] = ()
    export: dict = dataclasses.field(default_factory=dict)  # tool versions, opset, date, parity results (informative)
    family_cfg: Any = None  # the family's typed settings (FamilySpec.bundle_cfg), e.g. TF-CLIP's cameras
    schema_version: int = SCHEMA_VERSION
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        try:
            spec = self.arch.spec
        except KeyError as exc:
            raise ValueError(f"{exc.args[0]} (this tvreid cannot serve the bundle's family)") from None
        object.__setattr__(self, "family_cfg", spec.parse_cfg(self.family_cfg))  # typed; defaults when absent

    @property
    def family(self) -> str:
        return self.arch.family

    @property
    def spec(self) -> FamilySpec:
        """The bundle's :class:`~tvreid_sdk.modeling.family.FamilySpec`."""
        return self.arch.spec

    @property
    def embed_dim(self) -> int:
        """Length of the one vector per item the encoders return and galleries store (``arch.output_dim``)."""
        return self.arch.output_dim

    @property
    def preprocess(self) -> PreprocessCfg:
        return self.arch.preprocess

    def find(self, role: str, *, kind: str | None = None, precision: str | None = None,
             variant: str | None = None) -> ArtifactInfo | None:
        """First artifact with ``role`` (and the given kind/precision/variant when set)."""
        for art in self.artifacts:
            if art.role == role and (kind is None or art.kind == kind) \
                    and (precision is None or art.precision == precision) \
                    and (variant is None or art.variant == variant):
                return art
        return None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["embed_dim"] = self.embed_dim  # informative copies for people reading the file
        data["family"] = self.family
        data["family_cfg"] = None if self.family_cfg is None else self.family_cfg.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        if not isinstance(data, dict):
            raise BundleError("manifest.json must hold a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise BundleError(
                f"manifest.json has schema_version {version!r}, this tvreid reads {list(READABLE_VERSIONS)}; "
                "upgrade tvreid or re-export the bundle with this version (`tvreid export`)")
        data = {k: v for k, v in data.items() if k not in ("embed_dim", "family")}
        if version == 1:  # family settings lived untyped in export[<section>]: lift them into family_cfg
            data = _upgrade_v1(data)
        try:
            return cls(
                arch=ArchCfg.from_dict(data.pop("arch")),
                tokenizer=TokenizerCfg.from_dict(data.pop("tokenizer", {})),
                sampler=SamplerCfg.from_dict(data.pop("sampler", {})),
                artifacts=tuple(ArtifactInfo.from_dict(a) for a in data.pop("artifacts", [])),
                **data,
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise BundleError(f"manifest.json is malformed: {exc}; re-export the bundle") from None


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest dict in version-2 form (in memory; the file is not rewritten)."""
    data = dict(data, schema_version=SCHEMA_VERSION)
    try:
        family = get_family(dict(data.get("arch") or {}).get("family", "dmca"))
    except KeyError:
        return data  # reported by ArchCfg/Manifest with the list of families
    section = family.manifest_section
    if section and isinstance(data.get("export"), dict) and isinstance(data["export"].get(section), dict):
        data["family_cfg"] = data["export"][section]
    return data
