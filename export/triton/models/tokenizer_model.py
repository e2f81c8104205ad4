"""Triton python-backend model: query text → CLIP token ids, with tvreid's own tokenizer.

Written as ``<prefix>tokenizer/1/model.py`` next to ``tvreid_vendor/`` (the tokenizer modules and BPE vocabulary of
the tvreid that exported the repository, so the repository is self-contained). The tokenizer settings are the bundle
manifest's, from the config parameter ``tvreid.tokenizer``.

I/O (batched, ``max_batch_size`` > 0): ``text`` TYPE_STRING ``[1]`` (UTF-8) → ``input_ids`` TYPE_INT32 ``[ctx]``,
``eot_index`` TYPE_INT32 ``[1]``, ``truncated`` TYPE_BOOL ``[1]``. Over-long text is cut as ``Encoder.encode_text``
cuts it; an empty query fails its request with the tokenizer's message. Needs numpy and regex in the python
backend's environment (ftfy for non-ASCII text).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT = "text"
OUTPUTS = ("input_ids", "eot_index", "truncated")


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def config_parameters(config: dict) -> dict:
    """``{key: string_value}`` of a model config's ``parameters``."""
    return {key: value.get("string_value", "") for key, value in (config.get("parameters") or {}).items()}


class TritonPythonModel:
    """The tokenizer model (Triton's python-backend interface)."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = config_parameters(config)
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        from tvreid_vendor.config import TokenizerCfg
        from tvreid_vendor.errors import TvreidError
        from tvreid_vendor.text import Tokenizer

        if "tvreid.tokenizer" not in params:
            raise ValueError(f"model {config.get('name')!r}: parameters has no 'tvreid.tokenizer' (the tokenizer "
                             "settings); re-export the repository with `tvreid export --format triton`")
        self.tokenizer = Tokenizer(TokenizerCfg.from_dict(json.loads(params["tvreid.tokenizer"])))
        self.rejected = TvreidError

    def tokenize(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """object ``[B,1]`` (bytes or str) → ids int32 ``[B,ctx]``, eot int32 ``[B,1]``, truncated bool ``[B,1]``."""
        batch = self.tokenizer([_text(v) for v in np.asarray(raw, dtype=object).reshape(-1)], truncate=True)
        return batch.ids, batch.eot_index.reshape(-1, 1), batch.truncated.reshape(-1, 1)

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                arrays = self.tokenize(pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy())
            except self.rejected as exc:  # e.g. an empty query: this request fails, the others go on
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc))))
                continue
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(name, array) for name, array in zip(OUTPUTS, arrays)]))
        return responses

    def finalize(self) -> None:
        self.tokenizer = None
