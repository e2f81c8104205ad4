"""TensorRT backend: the bundle's engines, checked against the local TensorRT/GPU before deserialising.

Device buffers come from torch when it is installed, else from ``cuda.bindings.runtime`` (cuda-python).
This module imports neither TensorRT nor CUDA until a backend is built.
"""
from __future__ import annotations

import threading

import numpy as np

from ..bundle import Bundle, LocalEngineSide, check_engine_compat
from ..bundle.engine_safety import deserialize_checked, make_logger
from ..errors import BackendUnavailableError, BundleError
from ..modeling.family import ENCODER_ROLES
from .base import BACKENDS, Backend


def import_tensorrt():
    """``(module, runtime_name)`` for TensorRT or TensorRT-RTX; BackendUnavailableError when neither imports."""
    try:
        import tensorrt as trt

        return trt, "tensorrt"
    except ImportError:
        pass
    try:
        import tensorrt_rtx_bindings as trt  # TensorRT for RTX keeps the same API family

        return trt, "tensorrt_rtx"
    except ImportError as exc:
        raise BackendUnavailableError(
            "TensorRT is not installed; `pip install \"tvreid[trt]\"` (or TensorRT-RTX) on a machine with an "
            "NVIDIA GPU, or use backend='ort-cuda' / 'ort-cpu'") from exc


def local_gpu(index: int = 0) -> tuple[str, str]:
    """``(gpu name, "major.minor")`` of CUDA device ``index`` through cuda-python or torch."""
    try:
        from cuda.bindings import runtime as cudart

        err, prop = cudart.cudaGetDeviceProperties(index)
        if int(err) == 0:
            name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
            return name.rstrip("\x00"), f"{prop.major}.{prop.minor}"
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(index)
            return torch.cuda.get_device_name(index), f"{major}.{minor}"
    except ImportError:
        pass
    raise BackendUnavailableError("no CUDA GPU found (neither cuda-python nor torch sees one); "
                                  "TensorRT engines need an NVIDIA GPU")


def video_inputs(in_names: list[str], frames: np.ndarray, cameras: np.ndarray | None, where: str) -> list[np.ndarray]:
    """The arrays to bind, in the engine's input order, for a video engine with inputs ``in_names``.

    A tfclip engine trained with SIE has a second input, ``camera`` int32 ``[B]``: it gets ``cameras`` or, when
    None, -1 (unknown: no camera embedding) for every video. An engine without it refuses cameras.

    Raises:
        BundleError: cameras for an engine without a camera input, or an engine whose inputs are neither.
    """
    if len(in_names) == 1:
        if cameras is not None:
            raise BundleError(f"{where}: this bundle's video encoder takes no camera input; encode without cameras")
        return [frames]
    if len(in_names) != 2:
        raise BundleError(f"{where}: the video engine takes inputs {in_names}; expected frames (+ camera) — rebuild "
                          "it with `tvreid export --trt`")
    cams = np.full(frames.shape[0], -1, np.int32) if cameras is None else np.ascontiguousarray(cameras, np.int32)
    by_name = {"frames": frames, "camera": cams}
    if set(in_names) == set(by_name):
        return [by_name[n] for n in in_names]  # bind by name when the engine keeps the ONNX names
    return [frames, cams]  # else the ONNX order: frames, camera


def cuda_index(device: str) -> int:
    """The GPU index of a device string: ``cuda`` → 0, ``cuda:N`` → N.

    Raises:
        BackendUnavailableError: not a CUDA device string.
    """
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise BackendUnavailableError(f"TensorRT runs on a CUDA device ('cuda' or 'cuda:N'), not {device!r}")
    return int(index or 0)


class TensorRTBackend(Backend):
    """Runs ``*.plan`` engines from the bundle (dynamic batch within the engine's profile).

    Construction checks each plan's metadata against the local TensorRT and GPU (no bytes read); a role's plan is
    read, hash-checked and deserialised on first use, so a text query never reads the video engine.
    """

    name = "tensorrt"

    def __init__(self, bundle: Bundle, device: str | None = None, precision: str | None = None):
        super().__init__(bundle, device or "cuda")
        self.trt, runtime_name = import_tensorrt()
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError("the TensorRT backend currently moves buffers with torch CUDA tensors; "
                                          "`pip install \"tvreid[train]\"` or use backend='ort-cuda'") from exc
        if not torch.cuda.is_available():
            raise BackendUnavailableError("TensorRT needs a CUDA GPU and none is visible")
        self.torch = torch
        self.device_index = cuda_index(self.device)
        self.cuda_device = f"cuda:{self.device_index}"  # where buffers, engines and the stream live
        gpu_name, cc = local_gpu(self.device_index)
        self._local = LocalEngineSide(trt_version=self.trt.__version__, gpu_name=gpu_name, compute_capability=cc,
                                      runtime=runtime_name)
        self.engines: dict = {}  # role -> (runtime, engine, context), deserialised on first use
        self._open_lock = threading.Lock()
        self._pick_plans(bundle, precision)
        with torch.cuda.device(self.device_index):  # the stream belongs to this GPU (engines too, when loaded)
            self.stream = torch.cuda.Stream()

    def _pick_plans(self, bundle: Bundle, precision: str | None) -> None:
        """Choose each role's plan and check its metadata against this machine (before any bytes are read).

        Raises:
            BundleError: a plan without metadata, or no plan for the family's required role.
            EngineMismatchError: a plan built for another TensorRT version/runtime or GPU.
        """
        self.precision = precision or "fp16"
        self._plans = {}
        for role in ENCODER_ROLES:
            art = self.manifest.find(role, kind="trt_plan", precision=self.precision) \
                or self.manifest.find(role, kind="trt_plan")
            if art is None:
                continue
            if art.engine is None:
                raise BundleError(f"{bundle.path_of(art)}: engine has no metadata in manifest.json; rebuild it with "
                                  f"`tvreid export {bundle.root}/weights.safetensors --trt --out NEW_BUNDLE`")
            check_engine_compat(art.engine, self._local, plan_name=art.path, bundle_path=str(bundle.root))
            self._plans[role] = art
            profile = art.engine.profiles[0] if art.engine.profiles else None
            if profile:
                self.max_batch = min(self.max_batch, int(profile[3][0]))
        required = self.manifest.spec.required_role
        if required not in self._plans:
            raise BundleError(f"{bundle.root}: no TensorRT {required} engine; build one with `tvreid export --trt`")

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles with an engine (deserialised when first used)."""
        return tuple(self._plans)

    def _engine(self, role: str) -> tuple:
        """``(runtime, engine, context)`` of ``role``, deserialised on this GPU on first use.

        Raises:
            BundleError: no engine for ``role``, or a plan whose bytes differ from the manifest / TensorRT refuses.
        """
        if role in self.engines:
            return self.engines[role]
        art = self._plans.get(role)
        if art is None:
            raise BundleError(f"{self.bundle.root}: no TensorRT {role} engine; rebuild with `tvreid export --trt`")
        with self._open_lock, self.torch.cuda.device(self.device_index):
            if role not in self.engines:
                runtime = self.trt.Runtime(make_logger(self.trt))  # runtime.logger keeps TensorRT's messages
                engine = deserialize_checked(self.bundle.read(art), art.engine, self._local, runtime,
                                             plan_name=art.path, bundle_path=str(self.bundle.root))
                self.engines[role] = (runtime, engine, engine.create_execution_context())
        return self.engines[role]

    def _io_names(self, role: str) -> tuple[list[str], str]:
        """``(input names in engine order, output name)`` of ``role``'s engine."""
        engine = self._engine(role)[1]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == self.trt.TensorIOMode.INPUT]
        return inputs, next(n for n in names if engine.get_tensor_mode(n) == self.trt.TensorIOMode.OUTPUT)

    def _execute(self, role: str, inputs: list[np.ndarray]) -> np.ndarray:
        torch = self.torch
        in_names, out_name = self._io_names(role)
        if len(inputs) != len(in_names):
            raise BundleError(f"{self.bundle.root}: the TensorRT {role} engine takes inputs {in_names}, got "
                              f"{len(inputs)} array(s); the manifest and engine come from different exports — "
                              "rebuild with `tvreid export --trt`")
        ctx = self._engine(role)[2]
        keep = []  # device copies must live until the engine has run
        # Copies, output buffer, engine and read-back all go on self.stream. torch's side streams are created
        # non-blocking and do not wait for the default stream, so an input copied there could still be in flight
        # when the engine starts reading it on this one.
        with torch.cuda.device(self.device_index), torch.cuda.stream(self.stream):
            for name, arr in zip(in_names, inputs):
                dev = torch.from_numpy(np.ascontiguousarray(arr)).to(self.cuda_device, non_blocking=True)
                keep.append(dev)
                ctx.set_input_shape(name, tuple(arr.shape))
                ctx.set_tensor_address(name, dev.data_ptr())
            out = torch.empty(tuple(ctx.get_tensor_shape(out_name)), dtype=torch.float32,
                              device=self.cuda_device)  # [B,D]
            ctx.set_tensor_address(out_name, out.data_ptr())
            if not ctx.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to run {role}")
            host = out.cpu()  # ordered after the engine on this stream; blocks until the embeddings are on the host
        self.stream.synchronize()
        return host.numpy()

    def _run_text(self, ids, eot):
        return self._execute("text_encoder", [ids, eot])

    def _run_video(self, frames, cameras=None):
        in_names, _ = self._io_names("video_encoder")
        return self._execute("video_encoder", video_inputs(in_names, frames, cameras, str(self.bundle.root)))

    def _run_frames(self, frames):
        return self._execute("frame_encoder", [frames])


BACKENDS.register("tensorrt", TensorRTBackend)
