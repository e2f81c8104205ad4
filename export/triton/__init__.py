"""Triton Inference Server model repositories: ``tvreid export --format triton``.

Modules: ``repository`` (:func:`write_repository`: a bundle → tokenizer, encoders, ``text_query`` ensemble, with
:class:`TritonCfg`), ``check`` (:func:`check_repository`: any repository against Triton's ModelConfig schema, its
files and ONNX graphs, and its ensemble wiring), ``tensors`` (ONNX ↔ Triton types and shapes), ``vendor`` (the
tokenizer copied into the repository), ``models`` (the python-backend ``model.py`` files). Needs ``tritonclient``
(Triton's ModelConfig protobuf) and ``onnx``: ``pip install "tvreid[triton]"``. Importing this package imports
neither.
"""
__all__ = ["TritonCfg", "check_repository", "write_repository"]


def __getattr__(name: str):
    if name in ("TritonCfg", "write_repository"):
        from . import repository

        return getattr(repository, name)
    if name == "check_repository":
        from .check import check_repository

        return check_repository
    raise AttributeError(f"module 'export.triton' has no attribute {name!r}")
