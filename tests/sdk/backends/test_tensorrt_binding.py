"""TensorRT backend input binding (frames + the tfclip camera input), with TensorRT, CUDA and torch's device side
faked: this machine has no GPU, so no engine is ever executed here. The fakes stand in for exactly the calls the
backend makes (engine I/O names/modes, ``set_input_shape``/``set_tensor_address``/``execute_async_v3``, device
copies); the fake engine writes back what it was bound, so the tests check which array reached which input."""
from __future__ import annotations

import contextlib
import json
import types

import numpy as np
import pytest

from tvreid_sdk.bundle import Bundle, BundleWriter, EngineMeta, Manifest, load_bundle
from tvreid_sdk.errors import BackendUnavailableError, BundleError, EngineMismatchError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.family import TfclipBundleCfg
from tvreid_sdk.backends import tensorrt as trt_backend
from tvreid_sdk.backends.tensorrt import TensorRTBackend, video_inputs

T = 2
INPUT, OUTPUT = "input", "output"
_MEMORY: dict[int, "_DeviceArray"] = {}  # fake device address -> buffer
_CURRENT = {"stream": None, "device": 0}  # torch's current stream (None = the default stream) and device
_DEVICES_ENTERED: list[int] = []  # every torch.cuda.device(index) the backend entered


@contextlib.contextmanager
def _device(index):
    """``torch.cuda.device``: makes ``index`` the current GPU inside."""
    _DEVICES_ENTERED.append(index)
    before, _CURRENT["device"] = _CURRENT["device"], index
    try:
        yield
    finally:
        _CURRENT["device"] = before


@contextlib.contextmanager
def _stream(stream):
    """``torch.cuda.stream``: work enqueued inside goes on ``stream``."""
    before, _CURRENT["stream"] = _CURRENT["stream"], stream
    try:
        yield
    finally:
        _CURRENT["stream"] = before


class _DeviceArray:
    """A 'device' copy of a numpy array (what torch.from_numpy(...).to('cuda') gives the backend); records the stream
    its host-to-device copy (``stream``) and its device-to-host read-back (``read_stream``) were enqueued on."""

    def __init__(self, array: np.ndarray, stream=None):
        self.array, self.stream, self.read_stream = array, stream, "never read back"
        _MEMORY[id(self)] = self

    def to(self, device, non_blocking=False):
        self.device, self.stream = device, _CURRENT["stream"]
        return self

    def data_ptr(self) -> int:
        return id(self)

    def cpu(self):
        self.read_stream = _CURRENT["stream"]
        return self

    def numpy(self) -> np.ndarray:
        return self.array


_FAKE_TORCH = types.SimpleNamespace(
    from_numpy=_DeviceArray, float32=np.float32,
    empty=lambda shape, dtype, device: _DeviceArray(np.zeros(shape, dtype), _CURRENT["stream"]),
    cuda=types.SimpleNamespace(stream=_stream, device=_device))
_FAKE_TRT = types.SimpleNamespace(TensorIOMode=types.SimpleNamespace(INPUT=INPUT, OUTPUT=OUTPUT), __version__="10.9.0",
                                  Runtime=lambda logger: object())


class _FakeContext:
    """Records the bindings; 'runs' by writing [mean of each video's frames, its camera] into the output."""

    def __init__(self, inputs: list[str], dim: int):
        self.inputs, self.dim = inputs, dim
        self.shapes, self.addresses, self.runs, self.streams = {}, {}, 0, []

    def set_input_shape(self, name, shape):
        assert name in self.inputs
        self.shapes[name] = tuple(shape)

    def set_tensor_address(self, name, address):
        self.addresses[name] = address

    def get_tensor_shape(self, name):
        return (self.shapes["frames"][0], self.dim)

    def execute_async_v3(self, stream_handle):
        self.runs += 1
        self.streams.append(stream_handle)
        frames = _MEMORY[self.addresses["frames"]].array
        out = _MEMORY[self.addresses["embeddings"]].array
        out[:, 0] = frames.reshape(frames.shape[0], -1).mean(1)
        out[:, 1] = _MEMORY[self.addresses["camera"]].array if "camera" in self.inputs else 99
        return True


class _FakeEngine:
    def __init__(self, inputs: list[str], dim: int):
        self.names = [*inputs, "embeddings"]
        self.num_io_tensors = len(self.names)
        self.context = _FakeContext(inputs, dim)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return OUTPUT if name == "embeddings" else INPUT

    def create_execution_context(self):
        return self.context


def _bundle(tmp_path, family: str = "tfclip", camera: bool = True):
    """A bundle holding one (fake) video engine whose profile has a camera input when ``camera``."""
    arch = get_arch("tiny-tfclip") if family == "tfclip" else get_arch("tiny-test")
    frames = ["frames", [1, T, 64, 32, 3], [2, T, 64, 32, 3], [3, T, 64, 32, 3]]
    profiles = (frames, ["camera", [1], [2], [3]]) if camera else (frames,)
    with BundleWriter(tmp_path / f"{family}-{camera}") as writer:
        writer.path("video_encoder.plan").write_bytes(b"not a real plan: deserialisation is faked")
        writer.add("video_encoder.plan", "trt_plan", role="video_encoder", precision="fp16",
                   engine=EngineMeta(trt_version="10.9.0", gpu_name="Fake GPU", compute_capability="9.0",
                                     precision="fp16", profiles=profiles))
        family_cfg = TfclipBundleCfg(num_cameras=3, camera_input=camera) if family == "tfclip" else None
        return writer.commit(Manifest(arch=arch, model_id="fake", num_frames=T, family_cfg=family_cfg))


@pytest.fixture
def fake_runtime(monkeypatch):
    """Fake TensorRT + CUDA for TensorRTBackend; yields a function giving the engine per input list."""
    import torch

    engines = {}
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: (_FAKE_TRT, "tensorrt"))
    monkeypatch.setattr(trt_backend, "local_gpu", lambda index=0: ("Fake GPU", "9.0"))
    monkeypatch.setattr(trt_backend, "make_logger", lambda trt: None)
    monkeypatch.setattr(trt_backend, "deserialize_checked", lambda *a, **k: engines["next"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "Stream", lambda: types.SimpleNamespace(cuda_stream=7, synchronize=lambda: None,
                                                                            device=_CURRENT["device"]))
    monkeypatch.setattr(torch.cuda, "device", _device)
    _DEVICES_ENTERED.clear()

    def start(bundle, inputs, device=None):
        engines["next"] = _FakeEngine(inputs, bundle.manifest.embed_dim)
        backend = TensorRTBackend(bundle, device=device)
        backend.torch = _FAKE_TORCH  # device copies, output buffer and stream go through the fakes
        return backend, engines["next"].context

    return start


def _frames(n: int) -> np.ndarray:
    return (np.arange(n)[:, None, None, None, None] * 10 + np.zeros((n, T, 64, 32, 3))).astype(np.uint8)


def test_video_inputs_fill_order_and_refusals():
    frames = _frames(2)
    cams = np.array([2, -1], np.int32)
    assert video_inputs(["frames"], frames, None, "b")[0] is frames
    with pytest.raises(BundleError, match="takes no camera input"):
        video_inputs(["frames"], frames, cams, "b")
    bound = video_inputs(["frames", "camera"], frames, None, "b")
    assert bound[0] is frames and bound[1].dtype == np.int32 and bound[1].tolist() == [-1, -1]  # unknown
    assert video_inputs(["camera", "frames"], frames, cams, "b")[0].tolist() == [2, -1]  # bound by name
    with pytest.raises(BundleError, match="rebuild"):
        video_inputs(["frames", "camera", "extra"], frames, cams, "b")


def test_tfclip_engine_binds_frames_and_cameras_per_micro_batch(fake_runtime, tmp_path):
    backend, ctx = fake_runtime(_bundle(tmp_path), ["frames", "camera"])
    assert backend.max_batch == 3  # from the engine profile's max batch
    frames = _frames(5)
    out = backend.encode_video(frames, np.array([0, 2, -1, 1, 2], np.int32))
    assert out.shape == (5, 160) and ctx.runs == 2  # 5 videos in micro-batches of 3 + 2
    np.testing.assert_allclose(out[:, 0], [0, 10, 20, 30, 40])
    assert out[:, 1].tolist() == [0, 2, -1, 1, 2]  # each video's camera reached the camera input
    assert ctx.shapes == {"frames": (2, T, 64, 32, 3), "camera": (2,)}  # the last micro-batch
    assert backend.encode_video(frames[:2])[:, 1].tolist() == [-1, -1]  # no cameras: unknown


def test_input_copies_engine_and_read_back_all_run_on_the_backend_stream(fake_runtime, tmp_path):
    """torch's side streams do not wait for the default stream: an input copied there could still be in flight when
    the engine starts on the backend's stream, so every device step must be enqueued on that one stream."""
    backend, ctx = fake_runtime(_bundle(tmp_path), ["frames", "camera"])
    backend.encode_video(_frames(2), np.array([1, -1], np.int32))
    assert ctx.streams == [backend.stream.cuda_stream]  # the engine ran on the backend's stream
    inputs = [_MEMORY[ctx.addresses[name]] for name in ("frames", "camera")]
    output = _MEMORY[ctx.addresses["embeddings"]]
    assert [buf.stream for buf in (*inputs, output)] == [backend.stream] * 3  # copies and output buffer: same stream
    assert output.read_stream is backend.stream  # read back after the engine, in stream order


def test_engine_without_camera_input_refuses_cameras(fake_runtime, tmp_path):
    backend, ctx = fake_runtime(_bundle(tmp_path, camera=False), ["frames"])
    assert backend.encode_video(_frames(2))[:, 1].tolist() == [99, 99]
    with pytest.raises(BundleError, match="takes no camera input"):
        backend.encode_video(_frames(2), np.zeros(2, np.int32))
    assert "camera" not in ctx.shapes


def test_tfclip_needs_only_a_video_engine_and_dmca_still_needs_text(fake_runtime, tmp_path):
    fake_runtime(_bundle(tmp_path), ["frames", "camera"])  # no text engine: fine for tfclip
    with pytest.raises(BundleError, match="no TensorRT text_encoder engine"):
        fake_runtime(_bundle(tmp_path, family="dmca", camera=False), ["frames"])


def test_a_chosen_gpu_holds_the_stream_and_every_buffer(tmp_path, fake_runtime):
    backend, ctx = fake_runtime(_bundle(tmp_path, camera=False), ["frames"], device="cuda:1")
    assert backend.stream.device == 1 and _DEVICES_ENTERED == [1]  # the stream made on GPU 1
    assert backend.engines == {}  # engines are deserialised on first use...
    backend._execute("video_encoder", [_frames(2)])
    assert list(backend.engines) == ["video_encoder"]
    assert _DEVICES_ENTERED == [1, 1, 1]  # ...on GPU 1 too, and the run
    assert _MEMORY[ctx.addresses["frames"]].device == "cuda:1"


def test_cuda_index_parses_device_strings():
    assert trt_backend.cuda_index("cuda") == 0 and trt_backend.cuda_index("cuda:3") == 3
    for bad in ("cpu", "cuda:x", "gpu:0"):
        with pytest.raises(BackendUnavailableError, match="CUDA device"):
            trt_backend.cuda_index(bad)


def test_engines_are_deserialised_on_first_use_and_mismatches_fail_at_construction(fake_runtime, tmp_path,
                                                                                   monkeypatch):
    reads = []
    real_read = Bundle.read
    monkeypatch.setattr(Bundle, "read", lambda self, art: reads.append(art.path) or real_read(self, art))
    backend, ctx = fake_runtime(_bundle(tmp_path, camera=False), ["frames"])
    assert backend.roles == ("video_encoder",) and backend.engines == {} and reads == []  # nothing read yet
    backend.encode_video(_frames(2))
    backend.encode_video(_frames(1))
    assert list(backend.engines) == ["video_encoder"] and reads == ["video_encoder.plan"]  # read once
    stale = _bundle(tmp_path / "stale", camera=False)
    data = stale.manifest.to_dict()
    data["artifacts"][0]["engine"]["trt_version"] = "10.8.0"
    (stale.root / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="TensorRT version: plan 10.8.0, local 10.9.0"):
        fake_runtime(load_bundle(stale.root), ["frames"])  # checked from the manifest, before any bytes are read
    assert reads == ["video_encoder.plan"]
