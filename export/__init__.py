"""Export stage: trained towers → a deployable bundle (ONNX fp32/fp16, fused-attention variant, TensorRT engines).

Entry point: :func:`export.build.export_bundle` (what ``tvreid export`` calls). Modules: ``checkpoint`` (the
checkpoint convention), ``onnx_graphs``/``onnx_export`` (graphs), ``fp16``, ``optimize`` (fused attention),
``parity`` (the gate), ``trt`` (engine builds), ``formats``
(``EXPORT_FORMATS``). Importing this package imports nothing heavy; the submodules import torch/onnx.
"""
__all__ = ["export_bundle"]


def __getattr__(name: str):
    if name == "export_bundle":
        from .build import export_bundle

        return export_bundle
    raise AttributeError(f"module 'export' has no attribute {name!r}")
