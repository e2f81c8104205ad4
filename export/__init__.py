"""Export stage: a checkpoint of any family → a deployable bundle (ONNX fp32/fp16, fused-attention variant, TensorRT
engines).

Entry point: :func:`export.build.export_bundle` (what ``tvreid export`` calls), one pipeline for every family.
Modules: ``families`` (:data:`~export.families.EXPORT_FAMILIES`: each family's graph wrappers, probe, reference and
manifest section), ``graph_kit`` (the wrappers' shared building blocks), ``onnx_export`` (:func:`export_module`, the
one graph export), ``fp16``, ``optimize`` (fused attention), ``parity`` (the gate), ``trt`` (engine builds),
``formats`` (``EXPORT_FORMATS``). The checkpoint convention lives in :mod:`tvreid_sdk.modeling.checkpoint`.
Importing this package imports nothing heavy; the submodules import torch/onnx.
"""
__all__ = ["export_bundle"]


def __getattr__(name: str):
    if name == "export_bundle":
        from .build import export_bundle

        return export_bundle
    raise AttributeError(f"module 'export' has no attribute {name!r}")
