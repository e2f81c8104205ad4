"""ONNX Runtime backend: CPU (default, always tested) and CUDA (IOBinding, fused-attention graphs, CUDA graphs
replayed for small text batches)."""
from __future__ import annotations

import threading

import numpy as np

from ..bundle import Bundle
from ..bundle.onnx_guard import require_self_contained
from ..errors import BackendUnavailableError, BundleError
from ..modeling.family import ENCODER_ROLES
from .base import BACKENDS, Backend

ROLES = ENCODER_ROLES


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - core dependency
        raise BackendUnavailableError("onnxruntime is not installed; `pip install tvreid` installs it") from exc
    return onnxruntime


def cuda_provider_available() -> bool:
    return "CUDAExecutionProvider" in _ort().get_available_providers()


class OrtBackend(Backend):
    """Runs the bundle's ONNX graphs with ONNX Runtime.

    Each role's ``InferenceSession`` is built on first use (a text query builds only the text session and reads
    only the text graph); construction fails fast when the family's required graph is missing from the manifest.
    Graph bytes come from :meth:`Bundle.read`, i.e. they are the hash-verified bytes, and a graph loaded from bytes
    cannot pull external data from outside the bundle.

    Args:
        bundle: the bundle.
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``fp32``, ``fp16`` or ``int8`` (a bundle exported with ``--int8``; default: fp16 on CUDA when
            the bundle has it, else fp32).
        threads: intra-op threads on the CPU (0 = ONNX Runtime's default).
    """

    name = "ort-cpu"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None, threads: int = 0):
        super().__init__(bundle, device or "cpu")
        ort = _ort()
        self.cuda = self.device.startswith("cuda")
        if self.cuda and not cuda_provider_available():
            raise BackendUnavailableError("ONNX Runtime has no CUDA provider here; install the GPU extra "
                                          "(`pip install \"tvreid[gpu]\"`) or use backend='ort-cpu'")
        self.name = "ort-cuda" if self.cuda else "ort-cpu"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        # Idle intra-op threads would otherwise busy-wait after each run and steal the cores the gallery matcher
        # needs right after encoding a query (measured: 1M-row CPU match 83 ms alone, 131 ms right after an encode).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.device_id = int(self.device.split(":")[1]) if ":" in self.device else 0
        self._providers = ([("CUDAExecutionProvider", {"device_id": self.device_id})] if self.cuda else []) \
            + ["CPUExecutionProvider"]
        self.precision = precision or ("fp16" if self.cuda and any(self._has(r, "fp16") for r in ROLES) else "fp32")
        self.sessions: dict = {}  # role -> InferenceSession, built on first use
        self._ort_module, self._session_options = ort, opts
        self._graph_bytes: dict[str, bytes] = {}
        self._graph_runners: dict = {}
        self._open_lock = threading.Lock()
        self.use_cuda_graphs = self.cuda
        self._artifacts = {role: art for role in ROLES if (art := self._pick(role)) is not None}
        required = self.manifest.spec.required_role
        if required not in self._artifacts and precision is not None and not any(self._has(r, precision)
                                                                             for r in ROLES):
            flag = {"int8": " --int8", "fp16": " --fp16"}.get(precision, "")
            raise BundleError(f"{bundle.root}: the bundle has no {precision} ONNX graphs; re-export it with "
                              f"`tvreid export{flag}` or pick another precision")
        if required not in self._artifacts:
            raise BundleError(f"{bundle.root}: no {required} ONNX graph in manifest.json; re-export the bundle")

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles with a graph at this backend's precision (sessions are built when first used)."""
        return tuple(self._artifacts)

    def session(self, role: str):
        """The ``InferenceSession`` of ``role``, built on first use.

        Raises:
            BundleError: the bundle has no graph for ``role``, or its graph fails its checks.
        """
        session = self.sessions.get(role)
        if session is not None:
            return session
        art = self._artifacts.get(role)
        if art is None:
            raise BundleError(f"{self.bundle.root}: the bundle has no {role} graph; re-export it with `tvreid export`")
        with self._open_lock:  # two threads asking at once build it once
            if role not in self.sessions:
                self.sessions[role] = self._session(art)
        return self.sessions[role]

    def _session(self, art):
        """A session over the hash-verified bytes, refusing external data, with inputs checked against the manifest."""
        path = self.bundle.path_of(art)
        data = self.bundle.read(art)
        require_self_contained(data, str(path))
        if self.cuda:
            self._graph_bytes[art.role] = data
        try:
            session = self._ort_module.InferenceSession(data, sess_options=self._session_options,
                                                        providers=self._providers)
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidProtobuf...)
            reason = " ".join(str(exc).split())[:300]
            raise BundleError(f"{path}: ONNX Runtime cannot load this graph ({reason}); re-export the bundle") from None
        expected = self._expected_inputs(art.role)
        got = [tuple(d if isinstance(d, int) else None for d in i.shape) for i in session.get_inputs()]
        if len(got) < len(expected) or any(
                len(g) != len(e) or any(x is not None and y is not None and x != y for x, y in zip(g, e))
                for g, e in zip(got, expected)):
            raise BundleError(f"{path}: graph inputs {got} do not match manifest.json (expected {expected}); "
                              "the manifest and graphs come from different exports — re-export the bundle")
        if art.role == "text_encoder":
            self._check_text_context(session.get_modelmeta().custom_metadata_map.get("tvreid.context_length"), path)
        return session

    def _text_graph_takes_prefix(self) -> bool:
        """On the CPU, when the text graph's token axis is dynamic (dmca exports since the prefix change)."""
        if self.cuda or "text_encoder" not in self._artifacts:
            return False
        return not isinstance(self.session("text_encoder").get_inputs()[0].shape[1], int)

    def _expected_inputs(self, role: str) -> list[tuple]:
        h, w, _ = self.frame_shape
        if role == "text_encoder":
            return [(None, self.manifest.tokenizer.context_length), (None,)]
        if role == "video_encoder":
            camera = [(None,)] if self.takes_cameras else []
            return [(None, self.manifest.num_frames, h, w, 3), *camera]
        return [(None, h, w, 3)]

    def _has(self, role: str, precision: str) -> bool:
        return self.manifest.find(role, kind="onnx", precision=precision) is not None

    def _pick(self, role: str):
        variants = ("cuda-fused", "default") if self.cuda else ("default", "cuda-fused")
        for variant in variants:
            art = self.manifest.find(role, kind="onnx", precision=self.precision, variant=variant)
            if art is not None:
                return art
        return None

    def _run(self, role: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        session = self.session(role)
        if not self.cuda:
            return session.run(None, feeds)[0]
        runner = self._graph_runner(role, next(iter(feeds.values())).shape[0])
        if runner is not None:
            # ONNX Runtime captures the graph inside the runner's first Run(), so a kernel that cannot be captured
            # fails there, not when the session is built: fall back then; a failed replay is a real error.
            try:
                return runner.run(feeds)
            except Exception as exc:
                if runner.captured:
                    raise
                self._disable_cuda_graphs(role, exc)
        binding = session.io_binding()  # inputs copied once to the device, output fetched once
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(session.get_outputs()[0].name, "cuda", self.device_id)
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    #: batch sizes replayed from captured CUDA graphs (text queries); larger batches run normally
    CUDA_GRAPH_BATCHES = (1, 8)

    def _graph_runner(self, role: str, n: int):
        """A captured-graph runner for small text batches on CUDA, or None (other roles, large batches,
        or a graph ONNX Runtime cannot capture — then the plain IOBinding path is used)."""
        if role != "text_encoder" or not self.use_cuda_graphs:
            return None
        size = next((b for b in self.CUDA_GRAPH_BATCHES if n <= b), None)
        if size is None:
            return None
        if size not in self._graph_runners:
            from .ort_cuda_graph import CudaGraphRunner

            try:
                self._graph_runners[size] = CudaGraphRunner(self._ort_module, self._graph_bytes[role],
                                                            self._session_options, self.device_id, size)
            except Exception as exc:  # capture needs every node on the GPU; fall back rather than fail
                self._disable_cuda_graphs(role, exc)
                return None
        return self._graph_runners[size]

    def _disable_cuda_graphs(self, role: str, exc: Exception) -> None:
        """Stop using captured graphs (warned once); the plain IOBinding path runs from now on."""
        import warnings

        warnings.warn(f"CUDA graph capture unavailable for {role} ({exc}); running without it")
        self.use_cuda_graphs = False
        self._graph_runners.clear()  # their sessions hold GPU memory and are never replayed

    def _input_names(self, role: str) -> list[str]:
        return [i.name for i in self.session(role).get_inputs()]

    def _run_text(self, ids, eot):
        names = self._input_names("text_encoder")
        return self._run("text_encoder", dict(zip(names, (ids, eot))))

    def _run_video(self, frames, cameras=None):
        names = self._input_names("video_encoder")
        feeds = {names[0]: frames}
        if len(names) > 1:  # tfclip camera input (SIE): -1 = camera unknown
            feeds[names[1]] = cameras if cameras is not None else np.full(frames.shape[0], -1, np.int32)
        elif cameras is not None:
            raise BundleError(f"{self.bundle.root}: this bundle's video encoder takes no camera input; encode "
                              "without cameras")
        return self._run("video_encoder", feeds)

    def _run_frames(self, frames):
        return self._run("frame_encoder", {self._input_names("frame_encoder")[0]: frames})


class OrtCudaBackend(OrtBackend):
    name = "ort-cuda"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None, threads: int = 0):
        super().__init__(bundle, device if (device or "").startswith("cuda") else "cuda", precision, threads)


BACKENDS.register("ort-cpu", OrtBackend)
BACKENDS.register("ort-cuda", OrtCudaBackend)
