"""``backend="auto"`` on CPUs: OpenVINO on Intel when installed and the bundle has the graph, else ONNX Runtime CPU."""
import pytest

from tvreid_sdk import backends
from tvreid_sdk.backends import auto_backend_order, create_backend
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.cpuinfo import parse_cpuinfo

INTEL = parse_cpuinfo("vendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                      "flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile\n", 2)
AMD = parse_cpuinfo("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
                    "flags\t\t: fpu avx2 avx512f\n", 2)


@pytest.fixture
def openvino_installed(monkeypatch):
    """Pretend ``openvino`` is importable (the order only asks module_available)."""
    real = backends.module_available
    monkeypatch.setattr(backends, "module_available", lambda name: name == "openvino" or real(name))


@pytest.fixture
def openvino_missing(monkeypatch):
    real = backends.module_available
    monkeypatch.setattr(backends, "module_available", lambda name: name != "openvino" and real(name))


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return load_bundle(tiny_bundle)


def test_intel_with_openvino_prefers_openvino(bundle, openvino_installed):
    order = auto_backend_order(bundle, cpu=INTEL)
    assert order[-2:] == ["openvino", "ort-cpu"]
    assert auto_backend_order(bundle, precision="bf16", cpu=INTEL)[-2:] == ["openvino", "ort-cpu"]


def test_amd_or_missing_openvino_keeps_ort_cpu(bundle, openvino_installed):
    assert "openvino" not in auto_backend_order(bundle, cpu=AMD)
    assert auto_backend_order(bundle, cpu=AMD)[-1] == "ort-cpu"


def test_openvino_not_installed(bundle, openvino_missing):
    assert "openvino" not in auto_backend_order(bundle, cpu=INTEL)


def test_openvino_skipped_when_the_bundle_lacks_the_graph_or_device_is_not_cpu(bundle, openvino_installed):
    assert "openvino" not in auto_backend_order(bundle, precision="int8", cpu=INTEL)  # no --int8 graphs
    assert "openvino" not in auto_backend_order(bundle, precision="fp16", cpu=INTEL)  # not an OpenVINO precision
    assert "openvino" not in auto_backend_order(bundle, device="cuda", cpu=INTEL)


def test_auto_builds_what_the_order_says(bundle, monkeypatch):
    """On this machine: openvino when it imports and the CPU is Intel, else ort-cpu; both encode the same."""
    import numpy as np

    name = auto_backend_order(bundle)[-2] if "openvino" in auto_backend_order(bundle) else "ort-cpu"
    with create_backend(bundle) as auto, create_backend(bundle, "ort-cpu") as ref:
        assert auto.name == name
        h, w = bundle.manifest.preprocess.image_size
        frames = np.random.default_rng(0).integers(0, 256, (2, bundle.manifest.num_frames, h, w, 3), np.uint8)
        np.testing.assert_allclose(auto.encode_video(frames), ref.encode_video(frames), atol=1e-4)
    monkeypatch.setattr(backends, "host_cpu", lambda: AMD)
    with create_backend(bundle) as auto:
        assert auto.name == "ort-cpu"
