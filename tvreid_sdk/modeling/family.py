"""The model-family contract: every family declared once, torch-free (``FAMILIES``).

A *family* fixes what a bundle's vectors mean and how they are made: which encoders its bundles carry, which
queries it answers, how long its vectors are, which PyTorch module its weights load into, what it adds to the bundle
manifest and how it is evaluated. Everything else in tvreid (encoder, backends, export, training, bench) asks the
family's :class:`FamilySpec` instead of testing the family's name.

The spec is plain data plus a few small functions of the architecture, so ``import tvreid_sdk`` stays torch-free:
the tower class is named as ``"module:Class"`` and imported on first use (:meth:`FamilySpec.load_towers`).

The torch-side halves of a family register under the same name in their own registries:
``export.families.EXPORT_FAMILIES`` (graph export hooks) and ``training.families.TRAIN_FAMILIES`` (training hooks).

Adding a family:

    >>> register_family(FamilySpec(name="toy", task="text-to-video", roles=("text_encoder", "video_encoder"),
    ...                            queries=("text", "tracklet"), towers="mypkg.towers:ToyTowers"))  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..config import JsonCfg
from ..errors import ConfigError
from ..registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from .arch import ArchCfg

#: Every encoder role a bundle may carry, in export order.
ENCODER_ROLES = ("text_encoder", "video_encoder", "frame_encoder")
#: Every kind of query a family may answer.
QUERY_KINDS = ("text", "image", "tracklet")
#: Evaluation protocols (``training.metrics``): text-to-video/-image ranking, or MARS-style CMC + mAP.
EVAL_PROTOCOLS = ("t2v", "mars")


@dataclasses.dataclass(frozen=True)
class TfclipBundleCfg(JsonCfg):
    """What a TF-CLIP bundle records beyond its architecture (the manifest's ``family_cfg``).

    Attributes:
        num_cameras: rows of the SIE camera-embedding table (0: trained without SIE).
        camera_input: whether the video encoder graph has a ``camera`` input.
        tmd_layers: temporal memory diffusion blocks of the model.
        camera_index: ``{camera label: SIE row}`` recorded by the training run (may be empty).
        feature: what the vector is, for people reading the manifest.
        text_encoder: always False (video-to-video family); kept for readers of version-1 manifests.
    """

    num_cameras: int = 0
    camera_input: bool = False
    tmd_layers: int = 1
    camera_index: dict = dataclasses.field(default_factory=dict)
    feature: str = "L2-normalised cat[CLS, projection, TMD]"
    text_encoder: bool = False

    def __post_init__(self) -> None:
        if self.num_cameras < 0 or self.tmd_layers < 1:
            raise ValueError(f"num_cameras must be >= 0 and tmd_layers >= 1, got {self.num_cameras}, "
                             f"{self.tmd_layers}")
        if self.camera_input and not self.num_cameras:
            raise ValueError("camera_input needs num_cameras >= 1")
        bad = {k: v for k, v in dict(self.camera_index).items()
               if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < max(self.num_cameras, 1)}
        if bad:
            raise ValueError(f"camera_index rows {bad} are outside 0..{self.num_cameras - 1}")


def _embed_dim(arch: "ArchCfg") -> int:
    return arch.embed_dim


def _no_local(arch: "ArchCfg") -> int:
    return 0


def _no_weight_options(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """One model family, declared once.

    Attributes:
        name: the ``ArchCfg.family`` value.
        task: ``text-to-video``, ``text-to-image`` or ``video-to-video`` (shown to users).
        roles: the encoder roles (:data:`ENCODER_ROLES`) its bundles carry, in export order.
        queries: what it can search with (:data:`QUERY_KINDS`); ``text`` needs a ``text_encoder`` role.
        towers: the inference ``nn.Module`` class as ``"module:Class"``, built as ``cls(arch, **tower_options)``.
        output_dim: ``arch -> int``, the length of the one vector per item its encoders return and a gallery stores.
        local_dim: ``arch -> int``, width of a local embedding head the family trains (0: none).
        bundle_cfg: a frozen :class:`JsonCfg` class for the manifest's typed ``family_cfg`` (None: nothing extra).
        manifest_section: where version-1 manifests kept that data (``export[<section>]``); read on upgrade.
        eval_protocol: :data:`EVAL_PROTOCOLS` entry used by ``tvreid eval`` and model selection.
        still_images: trained and served on single images (T = 1 tracklets).
        camera_input: its video encoder may take camera ids (when ``bundle_cfg`` says so).
        variants: ONNX variants it exports (``default``, ``cuda-fused``).
        bench_frames: T of the random-weight bundles ``tvreid bench`` exports for this family; None:
            :meth:`bench_num_frames` decides from the architecture.
        no_text_hint: what to tell a user who sends a text query to a family without a text encoder.
        weight_options: ``{tensor name: shape} -> dict``, the tower keyword arguments a checkpoint's tensors fix
            (tfclip: SIE rows and TMD blocks); what :func:`tvreid_sdk.modeling.checkpoint.load_checkpoint` builds
            the towers with. Default: none.
    """

    name: str
    task: str
    roles: tuple[str, ...]
    queries: tuple[str, ...]
    towers: str
    output_dim: Callable[["ArchCfg"], int] = _embed_dim
    local_dim: Callable[["ArchCfg"], int] = _no_local
    bundle_cfg: type | None = None
    manifest_section: str = ""
    eval_protocol: str = "t2v"
    still_images: bool = False
    camera_input: bool = False
    variants: tuple[str, ...] = ("default", "cuda-fused")
    bench_frames: int | None = None
    no_text_hint: str = ""
    weight_options: Callable[[Mapping[str, tuple[int, ...]]], dict[str, Any]] = _no_weight_options

    def __post_init__(self) -> None:
        unknown = [r for r in self.roles if r not in ENCODER_ROLES] + [q for q in self.queries if q not in QUERY_KINDS]
        if unknown or not self.roles:
            raise ValueError(f"family {self.name!r}: unknown roles/queries {unknown}; roles come from {ENCODER_ROLES},"
                             f" queries from {QUERY_KINDS}")
        if "text" in self.queries and "text_encoder" not in self.roles:
            raise ValueError(f"family {self.name!r} answers text queries but has no text_encoder role")
        if self.eval_protocol not in EVAL_PROTOCOLS:
            raise ValueError(f"family {self.name!r}: eval_protocol must be one of {EVAL_PROTOCOLS}")
        if ":" not in self.towers:
            raise ValueError(f"family {self.name!r}: towers must be 'module:Class', got {self.towers!r}")

    # -- what a bundle of this family holds ----------------------------------------------------
    @property
    def has_text(self) -> bool:
        """Whether its bundles answer text queries."""
        return "text" in self.queries

    @property
    def required_role(self) -> str:
        """The encoder every bundle of the family must carry (text for text-query families, else video)."""
        return "text_encoder" if self.has_text else "video_encoder"

    @property
    def frame_embeddings(self) -> bool:
        """Whether single frames have a meaningful per-frame embedding (``Encoder.encode_frames``)."""
        return "frame_encoder" in self.roles

    def bench_num_frames(self, arch: "ArchCfg") -> int:
        """T of a random-weight ``tvreid bench`` bundle of ``arch``: :attr:`bench_frames` when set; else 8 for the
        family's own published architectures (named ``<family>-...``, e.g. ``dmca-vit-b32``, trained on 8-frame
        tracklets) and 4 for the others (CLIP and tiny test architectures), to keep the bench small."""
        if self.bench_frames is not None:
            return self.bench_frames
        return 8 if arch.name.startswith(f"{self.name}-") else 4

    def parse_cfg(self, data: Any) -> JsonCfg | None:
        """The typed ``family_cfg`` from its JSON form (None or ``{}`` gives the defaults, or None without a class).

        Raises:
            ConfigError: fields that do not fit :attr:`bundle_cfg`.
        """
        if self.bundle_cfg is None:
            if data:
                raise ConfigError(f"family {self.name!r} keeps no family_cfg in its manifest, got {data!r}")
            return None
        if isinstance(data, self.bundle_cfg):
            return data
        try:
            return self.bundle_cfg.from_dict(dict(data or {}))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.bundle_cfg.__name__}: {exc}") from None

    def num_cameras(self, family_cfg: JsonCfg | None) -> int:
        """Camera ids the video encoder accepts (0: it takes none)."""
        if not self.camera_input or family_cfg is None or not getattr(family_cfg, "camera_input", False):
            return 0
        return int(getattr(family_cfg, "num_cameras", 0))

    def camera_index(self, family_cfg: JsonCfg | None) -> dict[str, int]:
        """``{camera label: camera id}`` recorded at training (empty when unknown or without camera input)."""
        if not self.num_cameras(family_cfg):
            return {}
        return {str(k): int(v) for k, v in dict(getattr(family_cfg, "camera_index", {}) or {}).items()}

    def tower_options(self, family_cfg: JsonCfg | None) -> dict[str, Any]:
        """Keyword arguments of the tower class that the architecture does not fix (from ``family_cfg``)."""
        if family_cfg is None:
            return {}
        options = {}
        if self.camera_input:
            options["num_cameras"] = int(getattr(family_cfg, "num_cameras", 0))
        if hasattr(family_cfg, "tmd_layers"):
            options["tmd_layers"] = int(family_cfg.tmd_layers)
        return options

    def load_towers(self) -> type:
        """Import and return the inference tower class (imports torch).

        Raises:
            ConfigError: the module or class cannot be imported.
        """
        module, _, cls = self.towers.partition(":")
        try:
            return getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"family {self.name!r}: cannot import its towers {self.towers!r} ({exc}); install the "
                              "training extra: pip install \"tvreid[train]\"") from None

    def text_rejection(self, model_name: str) -> str:
        """The message for a text query sent to a bundle of this family."""
        return (f"bundle {model_name!r} is a {self.name} ({self.task}) model: it has no text encoder. "
                + (self.no_text_hint or "Search by example instead: gallery.search(gallery.get(key).embedding)."))

    def frame_rejection(self, model_name: str) -> str:
        """The message for single frames sent to a bundle of this family (no per-frame embedding)."""
        return (f"bundle {model_name!r} is a {self.name} ({self.task}) model: it embeds whole tracklets (T frames "
                "together), not single frames; collect the track's frames and call encode_tracklets")


FAMILIES: Registry[FamilySpec] = Registry("model family")


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add a family to :data:`FAMILIES` (a duplicate name is an error)."""
    FAMILIES.register(spec.name, spec)
    return spec


def get_family(name: str) -> FamilySpec:
    """The registered :class:`FamilySpec` called ``name``.

    Raises:
        RegistryKeyError: unknown family (a ``KeyError``); the message lists the registered ones.
    """
    return FAMILIES.get(name)


def list_families() -> list[str]:
    """Names of all registered families."""
    return FAMILIES.names()


def _cffa_local_dim(arch: "ArchCfg") -> int:
    return 2 * arch.embed_dim  # FLFR local embedding: 512 -> 1024


def _cffa_output_dim(arch: "ArchCfg") -> int:
    return arch.embed_dim + _cffa_local_dim(arch)  # normalised global ++ local: 512 + 1024 = 1536


def _tfclip_output_dim(arch: "ArchCfg") -> int:
    return 2 * arch.vision.width + arch.embed_dim  # cat[CLS, projection, TMD]: 768 + 512 + 768 = 2048


def _tfclip_weight_options(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """SIE rows (``sie`` ``[C,W]``, absent without SIE) and TMD blocks (``tmd.blocks.<i>.*``) of the checkpoint."""
    blocks = {name.split(".")[2] for name in shapes if name.startswith("tmd.blocks.")}
    return {"num_cameras": int(shapes["sie"][0]) if "sie" in shapes else 0, "tmd_layers": max(1, len(blocks))}


register_family(FamilySpec(
    name="dmca", task="text-to-video", roles=ENCODER_ROLES, queries=("text", "image", "tracklet"),
    towers="tvreid_sdk.modeling.clip:CLIPTowers"))
register_family(FamilySpec(
    name="cffa", task="text-to-image", roles=ENCODER_ROLES, queries=("text", "image", "tracklet"),
    towers="tvreid_sdk.modeling.clip:CFFATowers", output_dim=_cffa_output_dim, local_dim=_cffa_local_dim,
    still_images=True, variants=("default",), bench_frames=1))  # no cuda-fused: fused attention hides its weights
register_family(FamilySpec(
    name="tfclip", task="video-to-video", roles=("video_encoder",), queries=("image", "tracklet"),
    towers="tvreid_sdk.modeling.tfclip:TFCLIPTowers", weight_options=_tfclip_weight_options,
    output_dim=_tfclip_output_dim, bundle_cfg=TfclipBundleCfg,
    manifest_section="tfclip", eval_protocol="mars", camera_input=True, variants=("default",), bench_frames=4,
    no_text_hint="It searches by example: pick a tracklet and search with its embedding: `tvreid match --like "
                 "TRACKLET_ID --gallery G`, or in Python gallery.search(gallery.get(key).embedding) / "
                 "gallery.search(encoder.encode_tracklets([frames]))"))
