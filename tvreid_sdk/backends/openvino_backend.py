"""OpenVINO backend (optional extra ``openvino``): the bundle's ONNX graphs on OpenVINO's CPU plugin (GPU/NPU device
names are passed through).

Precisions: ``fp32`` (the fp32 graphs, ``INFERENCE_PRECISION_HINT=f32``), ``bf16`` (the fp32 graphs with the bf16
hint: AMX/AVX-512 BF16 on CPUs that have them) and ``int8`` (the ``--int8`` QDQ graphs; on a CPU with bf16 units
the float remainder — attention, LayerNorm, GELU — runs with the bf16 hint, elsewhere in f32; a graph OpenVINO
cannot compile that way, e.g. an older bundle with S8 activations, falls back to f32).

Video batches of two or more tracklets on a CPU run on a second compiled model with ``PERFORMANCE_HINT=THROUGHPUT``
(one stream per few cores, the batch split over parallel infer requests): on the 2-core development CPU that is
~1.2× the frames/s of one latency-mode request. Text and single tracklets use the latency model. ``backend="auto"`` picks
it on Intel CPUs when it is installed (:func:`~tvreid_sdk.backends.auto_backend_order`); ask for it by name
elsewhere: ``Encoder.from_bundle(b, backend="openvino", precision="bf16")``.
"""
from __future__ import annotations

import numpy as np

from ..bundle import Bundle
from ..bundle.onnx_guard import require_self_contained
from ..cpuinfo import host_cpu
from ..errors import BackendUnavailableError, BundleError, ConfigError
from ..modeling.family import ENCODER_ROLES
from .base import BACKENDS, Backend

#: tvreid precision → (graph precision in the manifest, OpenVINO INFERENCE_PRECISION_HINT; "auto": bf16 on CPUs
#: with bf16 units, else f32)
PRECISIONS = {"fp32": ("fp32", "f32"), "bf16": ("fp32", "bf16"), "int8": ("int8", "auto")}


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
        if self._hint == "auto":
            self._hint = "bf16" if self._ov_device == "CPU" and host_cpu().has_bf16 else "f32"
        self._ov = openvino
        self._core = openvino.Core()
        self._artifacts = {r: a for r in ENCODER_ROLES
                           if (a := self.manifest.find(r, kind="onnx", precision=graph_precision,
                                                       variant="default")) is not None}
        if self.manifest.spec.required_role not in self._artifacts:
            flag = " --int8" if graph_precision == "int8" else ""
            raise BundleError(f"{bundle.root}: no {graph_precision} {self.manifest.spec.required_role} ONNX graph; "
                              f"re-export the bundle with `tvreid export{flag}`")
        self._compiled: dict = {}
        self._queues: dict = {}  # role -> AsyncInferQueue of its throughput model (calls are serialised by _lock)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._artifacts)

    def compiled(self, role: str, mode: str = "LATENCY"):
        """The compiled model of ``role`` for ``PERFORMANCE_HINT=mode``, built on first use from the hash-verified
        graph bytes."""
        if (role, mode) not in self._compiled:
            art = self._artifacts.get(role)
            if art is None:
                raise BundleError(f"{self.bundle.root}: the bundle has no {role} graph; re-export it")
            data = self.bundle.read(art)
            require_self_contained(data, str(self.bundle.path_of(art)))
            hints = [self._hint] + (["f32"] if self.precision == "int8" and self._hint != "f32" else [])
            for i, hint in enumerate(hints):
                try:
                    model = self._core.read_model(data, b"")
                    self._check_context(model, art)
                    self._compiled[(role, mode)] = self._core.compile_model(
                        model, self._ov_device, {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": mode})
                    break
                except RuntimeError as exc:
                    if i + 1 < len(hints):
                        continue  # int8 graphs OpenVINO cannot mix with bf16 (S8 activations): all-f32 float part
                    reason = " ".join(str(exc).split())[:300]
                    raise BundleError(f"{self.bundle.path_of(art)}: OpenVINO cannot compile this graph for "
                                      f"{self._ov_device} at {self.precision} ({reason}); try another precision or "
                                      "backend='ort-cpu'") from None
        return self._compiled[(role, mode)]

    def _check_context(self, model, art) -> None:
        """The text graph's ``tvreid.context_length`` (ONNX metadata, kept as rt_info) against the manifest."""
        key = ["framework", "tvreid.context_length"]
        if art.role == "text_encoder" and model.has_rt_info(key):
            self._check_text_context(model.get_rt_info(key).astype(str), self.bundle.path_of(art))

    def _text_graph_takes_prefix(self) -> bool:
        """On the CPU, when the text graph's token axis is dynamic (GPU/NPU plugins keep the full context)."""
        if self._ov_device != "CPU" or "text_encoder" not in self._artifacts:
            return False
        return self.compiled("text_encoder").inputs[0].get_partial_shape()[1].is_dynamic

    def _run(self, role: str, inputs: list[np.ndarray]) -> np.ndarray:
        compiled = self.compiled(role)
        return np.asarray(compiled(inputs[:len(compiled.inputs)])[0], dtype=np.float32)

    def _requests(self, role: str) -> int:
        """How many parallel infer requests the throughput model of ``role`` wants (its streams)."""
        return int(self.compiled(role, "THROUGHPUT").get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def _run_parallel(self, role: str, inputs: list[np.ndarray]) -> np.ndarray:
        """A batch split over the throughput model's parallel infer requests (one per stream), rows in order."""
        if role not in self._queues:
            self._queues[role] = self._ov.AsyncInferQueue(self.compiled(role, "THROUGHPUT"), self._requests(role))
        queue, n = self._queues[role], inputs[0].shape[0]
        step = -(-n // self._requests(role))  # ceil: one contiguous chunk per request
        parts: dict[int, np.ndarray] = {}
        queue.set_callback(lambda req, start: parts.__setitem__(start, np.array(req.get_output_tensor(0).data,
                                                                                   dtype=np.float32)))
        for start in range(0, n, step):
            queue.start_async([x[start:start + step] for x in inputs], start)
        queue.wait_all()
        return np.concatenate([parts[s] for s in sorted(parts)])  # [B,D]

    def _run_text(self, ids, eot):
        return self._run("text_encoder", [ids, eot])

    def _run_video(self, frames, cameras=None):
        role = "video_encoder"
        parallel = (frames.shape[0] >= 2 and self._ov_device == "CPU" and host_cpu().logical_cpus >= 2
                    and frames.shape[0] >= self._requests(role))  # fewer tracklets than streams: latency model
        inputs = [frames]
        if len(self.compiled(role, "THROUGHPUT" if parallel else "LATENCY").inputs) > 1:  # tfclip camera (SIE)
            inputs.append(cameras if cameras is not None else np.full(frames.shape[0], -1, np.int32))  # -1: unknown
        return self._run_parallel(role, inputs) if parallel else self._run(role, inputs)

    def _run_frames(self, frames):
        return self._run("frame_encoder", [frames])

    def close(self) -> None:
        self._queues.clear()
        self._compiled.clear()


BACKENDS.register("openvino", OpenVinoBackend)
