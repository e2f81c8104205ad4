"""OpenVINO backend (optional extra ``openvino``): the bundle's ONNX graphs on OpenVINO's CPU plugin (GPU/NPU device
names are passed through).

Precisions: ``fp32`` (the fp32 graphs, ``INFERENCE_PRECISION_HINT=f32``), ``bf16`` (the fp32 graphs with the bf16
hint: AMX/AVX-512 BF16 on CPUs that have them) and ``int8`` (the ``--int8`` QDQ graphs). Not chosen by
``backend="auto"``; ask for it by name: ``Encoder.from_bundle(b, backend="openvino", precision="bf16")``.
"""
from __future__ import annotations

import numpy as np

from ..bundle import Bundle
from ..bundle.onnx_guard import require_self_contained
from ..errors import BackendUnavailableError, BundleError, ConfigError
from ..modeling.family import ENCODER_ROLES
from .base import BACKENDS, Backend

#: tvreid precision → (graph precision in the manifest, OpenVINO INFERENCE_PRECISION_HINT)
PRECISIONS = {"fp32": ("fp32", "f32"), "bf16": ("fp32", "bf16"), "int8": ("int8", "f32")}


class OpenVinoBackend(Backend):
    """Runs the bundle's ONNX graphs with OpenVINO; each role's compiled model is built on first use.

    Args:
        bundle: the bundle.
        device: ``cpu`` (default), or an OpenVINO device name (``GPU``, ``GPU.1``, ``NPU``), passed through.
        precision: ``fp32`` (default), ``bf16`` or ``int8`` (needs a bundle exported with ``--int8``).
    """

    name = "openvino"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None):
        try:
            import openvino
        except ImportError as exc:
            raise BackendUnavailableError('the openvino backend needs OpenVINO: `pip install "tvreid[openvino]"`') \
                from exc
        super().__init__(bundle, device or "cpu")
        self.precision = precision or "fp32"
        if self.precision not in PRECISIONS:
            raise ConfigError(f"openvino precision {self.precision!r}: choose from {', '.join(PRECISIONS)}")
        graph_precision, self._hint = PRECISIONS[self.precision]
        self._ov_device = "CPU" if self.device == "cpu" else self.device.upper()
        self._core = openvino.Core()
        self._artifacts = {r: a for r in ENCODER_ROLES
                           if (a := self.manifest.find(r, kind="onnx", precision=graph_precision,
                                                       variant="default")) is not None}
        if self.manifest.spec.required_role not in self._artifacts:
            flag = " --int8" if graph_precision == "int8" else ""
            raise BundleError(f"{bundle.root}: no {graph_precision} {self.manifest.spec.required_role} ONNX graph; "
                              f"re-export the bundle with `tvreid export{flag}`")
        self._compiled: dict = {}

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._artifacts)

    def compiled(self, role: str):
        """The compiled model of ``role``, built on first use from the hash-verified graph bytes."""
        if role not in self._compiled:
            art = self._artifacts.get(role)
            if art is None:
                raise BundleError(f"{self.bundle.root}: the bundle has no {role} graph; re-export it")
            data = self.bundle.read(art)
            require_self_contained(data, str(self.bundle.path_of(art)))
            try:
                model = self._core.read_model(data, b"")
                self._check_context(model, art)
                self._compiled[role] = self._core.compile_model(
                    model, self._ov_device, {"INFERENCE_PRECISION_HINT": self._hint, "PERFORMANCE_HINT": "LATENCY"})
            except RuntimeError as exc:
                reason = " ".join(str(exc).split())[:300]
                raise BundleError(f"{self.bundle.path_of(art)}: OpenVINO cannot compile this graph for "
                                  f"{self._ov_device} at {self.precision} ({reason}); try another precision or "
                                  "backend='ort-cpu'") from None
        return self._compiled[role]

    def _check_context(self, model, art) -> None:
        """A text graph's ``tvreid.context_length`` (ONNX metadata, kept as rt_info) must be the manifest's."""
        key = ["framework", "tvreid.context_length"]
        if art.role != "text_encoder" or not model.has_rt_info(key):
            return
        context = int(model.get_rt_info(key).astype(str))
        if context != self.manifest.tokenizer.context_length:
            raise BundleError(f"{self.bundle.path_of(art)}: the text graph was exported for {context} tokens but "
                              f"manifest.json says {self.manifest.tokenizer.context_length}; the manifest and graphs "
                              "come from different exports — re-export the bundle")

    def text_takes_prefix(self) -> bool:
        """On the CPU, when the text graph's token axis is dynamic (GPU/NPU plugins keep the full context)."""
        if self._ov_device != "CPU" or "text_encoder" not in self._artifacts:
            return False
        return self.compiled("text_encoder").inputs[0].get_partial_shape()[1].is_dynamic

    def _run(self, role: str, inputs: list[np.ndarray]) -> np.ndarray:
        compiled = self.compiled(role)
        return np.asarray(compiled(inputs[:len(compiled.inputs)])[0], dtype=np.float32)

    def _run_text(self, ids, eot):
        return self._run("text_encoder", [ids, eot])

    def _run_video(self, frames, cameras=None):
        n_inputs = len(self.compiled("video_encoder").inputs)
        if n_inputs > 1:  # tfclip camera input (SIE): -1 = camera unknown
            cams = cameras if cameras is not None else np.full(frames.shape[0], -1, np.int32)
            return self._run("video_encoder", [frames, cams])
        return self._run("video_encoder", [frames])

    def _run_frames(self, frames):
        return self._run("frame_encoder", [frames])

    def close(self) -> None:
        self._compiled.clear()


BACKENDS.register("openvino", OpenVinoBackend)
