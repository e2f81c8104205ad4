"""Python-backend model files that :mod:`export.triton.repository` copies into a model repository as
``<model>/1/model.py``: :mod:`.tokenizer_model` (text → token ids) and :mod:`.onnx_model` (an ONNX graph on ONNX
Runtime CPU, the CPU-only variant's encoders).

They run inside Triton's python-backend stub, not in tvreid: they import only the standard library, numpy, their
vendored files and (``onnx_model``) onnxruntime, and import ``triton_python_backend_utils`` (which the stub provides)
inside their methods, so they also import anywhere for tests.
"""
