"""Export hooks per model family (:data:`EXPORT_FAMILIES`), keyed like
:data:`tvreid_sdk.modeling.family.FAMILIES`: ``dmca`` (:mod:`.dmca`), ``cffa`` (:mod:`.cffa`), ``tfclip``
(:mod:`.tfclip`).

Adding a family to export: register its :class:`~tvreid_sdk.modeling.family.FamilySpec`, subclass
:class:`ExportFamily` (at least :meth:`~ExportFamily.build_wrapper`) and :func:`register_export_family` an instance;
:func:`export.build.export_bundle` needs no edit.
"""
from .base import EXPORT_FAMILIES, ExportFamily, export_family, register_export_family
from .cffa import CffaExport
from .dmca import DmcaExport
from .tfclip import TfclipExport

for _hooks in (DmcaExport(), CffaExport(), TfclipExport()):
    register_export_family(_hooks)

__all__ = ["EXPORT_FAMILIES", "ExportFamily", "export_family", "register_export_family"]
