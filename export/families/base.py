"""The export half of a model family: :class:`ExportFamily` hooks, registered in :data:`EXPORT_FAMILIES` under the
family's name (the same name as its :class:`~tvreid_sdk.modeling.family.FamilySpec` in
:data:`tvreid_sdk.modeling.family.FAMILIES`).

:func:`export.build.export_bundle` asks these hooks, and nothing else, what is family-specific: how to check the
loaded checkpoint, which wrapper module and I/O spec each role's graph has, what the parity probe and the eager
reference are, and what the manifest's ``family_cfg`` holds. The roles come from ``FamilySpec.roles`` and the ONNX
variants from ``FamilySpec.variants``.
"""
from __future__ import annotations

import abc

import numpy as np
from torch import nn

from tvreid_sdk.config import JsonCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint
from tvreid_sdk.modeling.family import FamilySpec, get_family
from tvreid_sdk.registry import Registry

from ..onnx_export import GraphSpec, graph_spec
from ..parity import Probe, make_probe, towers_reference


class ExportFamily(abc.ABC):
    """How one family's checkpoints become graphs. Subclasses set :attr:`name` and implement :meth:`build_wrapper`;
    the other hooks default to CLIP-style towers (``encode_text``/``encode_video``/``encode_image``) and the standard
    graph I/O of :func:`export.onnx_export.graph_spec`.

    Attributes:
        name: the family (``FamilySpec.name``).
        carry_metadata: checkpoint header keys copied into the bundle's ``weights.safetensors`` (tfclip:
            ``tvreid_tfclip``), so a re-export from the bundle sees them.
    """

    name: str = ""
    carry_metadata: tuple[str, ...] = ()

    @property
    def spec(self) -> FamilySpec:
        """The family's :class:`FamilySpec`."""
        return get_family(self.name)

    def check_towers(self, towers: nn.Module) -> None:
        """Raise unless ``towers`` is the family's inference module (``FamilySpec.towers``).

        Raises:
            ModelFormatError: another module class.
        """
        cls = self.spec.load_towers()
        if not isinstance(towers, cls):
            raise ModelFormatError(f"{self.name} export needs {cls.__name__} (got {type(towers).__name__}); load the "
                                   "checkpoint with tvreid_sdk.modeling.checkpoint.load_checkpoint")

    def load(self, ckpt: LoadedCheckpoint) -> LoadedCheckpoint:
        """Check (and, in a subclass, prepare) a loaded checkpoint before any export work.

        Raises:
            ModelFormatError: towers of another class, or in training mode.
        """
        self.check_towers(ckpt.towers)
        if ckpt.towers.training:
            raise ModelFormatError("the towers are in training mode; call .eval() before exporting "
                                   "(dropout/checkpointing would be traced into the graph)")
        return ckpt

    def graph_module(self, towers: nn.Module, role: str, num_frames: int, fused: bool = False) -> nn.Module:
        """The eval-mode wrapper whose trace is ``role``'s graph (inputs in :meth:`graph_spec` order).

        Raises:
            ModelFormatError: towers of another class, a role the family does not export, or a fused variant it
                does not have.
        """
        self.check_towers(towers)
        spec = self.spec
        if role not in spec.roles:
            raise ModelFormatError(f"{self.name} bundles have no {role} (roles: {', '.join(spec.roles)})")
        if fused and "cuda-fused" not in spec.variants:
            raise ModelFormatError(f"{self.name} graphs have no cuda-fused variant (it exports {spec.variants}); "
                                   "export the default variant")
        return self.build_wrapper(towers, role, num_frames, fused).eval()

    @abc.abstractmethod
    def build_wrapper(self, towers: nn.Module, role: str, num_frames: int, fused: bool) -> nn.Module:
        """Build ``role``'s wrapper module (called by :meth:`graph_module`, which checks the request)."""

    def graph_spec(self, arch: ArchCfg, role: str, num_frames: int, towers: nn.Module) -> GraphSpec:
        """``role``'s graph I/O for ``towers`` (default: :func:`export.onnx_export.graph_spec`, ``arch.output_dim``
        wide)."""
        return graph_spec(arch, role, num_frames)

    def graph_metadata(self, towers: nn.Module, role: str) -> dict[str, str]:
        """Extra ``tvreid.*`` ONNX metadata of ``role``'s graph (default: none)."""
        return {}

    def probe(self, ckpt: LoadedCheckpoint, seed: int = 0) -> Probe:
        """Parity inputs for every role of the family (default: :func:`export.parity.make_probe`)."""
        return make_probe(ckpt.arch, ckpt.num_frames, self.spec.roles, seed=seed)

    def reference(self, ckpt: LoadedCheckpoint, feeds: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Eager fp32 outputs per role for ``feeds`` (default: :func:`export.parity.towers_reference`)."""
        return towers_reference(ckpt.towers, ckpt.arch.preprocess, feeds)

    def family_cfg(self, ckpt: LoadedCheckpoint) -> JsonCfg | None:
        """The manifest's typed ``family_cfg`` (``FamilySpec.bundle_cfg``); default: none."""
        return None


#: family name → its export hooks.
EXPORT_FAMILIES: Registry[ExportFamily] = Registry("export family")


def register_export_family(hooks: ExportFamily) -> ExportFamily:
    """Add ``hooks`` under ``hooks.name``, which must be a registered :class:`FamilySpec` (a duplicate is an error).

    Raises:
        KeyError: unknown family name, or hooks already registered for it.
    """
    get_family(hooks.name)
    EXPORT_FAMILIES.register(hooks.name, hooks)
    return hooks


def export_family(name: str) -> ExportFamily:
    """The export hooks of family ``name``.

    Raises:
        ModelFormatError: no hooks are registered for it.
    """
    try:
        return EXPORT_FAMILIES.get(name)
    except KeyError as exc:
        raise ModelFormatError(f"{exc.args[0]}; this tvreid cannot export {name!r} models (register its hooks in "
                               "export.families.EXPORT_FAMILIES)") from None
