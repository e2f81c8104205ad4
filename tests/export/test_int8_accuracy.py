"""INT8 and bf16 keep retrieval accuracy: text-to-video R1 and mAP within 1 point of fp32 on held-out identities.

A fresh synthetic TV-MARS set (a seed the models never saw: every identity is held out) is encoded through the SDK
with each path: ONNX Runtime fp32 (the reference), ONNX Runtime INT8 (the ``--int8`` QDQ graphs, calibrated on
another synthetic set), OpenVINO bf16 and INT8 (when installed) and PyTorch bf16 autocast. The ``t2v``
protocol of :func:`training.metrics.evaluate_t2v` (every caption against every tracklet, matched by person id).

Default run: the shipped demo model (~40 s). Slow: a tiny DMCA model trained here on the set's training split
(1200 identities, 8 epochs, several minutes).
"""
import numpy as np
import pytest

from cli.calib import calibration_reader
from export.build import export_bundle
from training.data import DATASETS
from training.metrics import evaluate_t2v
from training.synth import generate
from tvreid_sdk import Encoder, demo_paths
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.registry import module_available

POINTS = 1.0  # the bound, in R1 / mAP percentage points


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Held-out set (1600 identities, 400 in the test split: ~1400 caption queries, so one query is 0.07 R1 points
    and the paths' differences are not lost in the noise of near-ties) and a calibration set (another seed)."""
    root = tmp_path_factory.mktemp("int8-acc")
    generate(root / "heldout", ids=1600, seed=11, image_size=(64, 32), frames_per_tracklet=(4, 6), test_fraction=0.25)
    generate(root / "calib", ids=64, seed=12, image_size=(64, 32), frames_per_tracklet=(4, 6), test_fraction=0.5)
    return root


def _paths(bundle) -> dict:
    paths = {"int8": ("ort-cpu", "int8"), "torch-bf16": ("torch", "bf16")}
    if module_available("openvino"):  # int8: bf16 float part on CPUs with bf16 units (the fastest CPU path)
        paths.update({"openvino-bf16": ("openvino", "bf16"), "openvino-int8": ("openvino", "int8")})
    return paths


def t2v(bundle, backend: str, precision: str, root) -> dict:
    data = DATASETS.get("tvmars")(str(root / "heldout"))
    tracklets = [t for t in (*data.query, *data.gallery) if t.captions]
    with Encoder.from_bundle(bundle, backend=backend, precision=precision) as enc:
        video = enc.encode_tracklets([list(t.frames) for t in tracklets])  # [N,D]
        text = enc.encode_text([t.captions[0] for t in tracklets])  # [N,D]
    pids = np.array([t.pid for t in tracklets])
    return evaluate_t2v(text @ video.T, pids, pids)


def check_paths(bundle, root) -> dict:
    ref = t2v(bundle, "ort-cpu", "fp32", root)
    assert ref["num_queries"] >= 1200 and ref["R1"] > 5.0, ref  # far above chance (~0.3%)
    out = {"fp32": ref}
    for name, (backend, precision) in _paths(bundle).items():
        got = out[name] = t2v(bundle, backend, precision, root)
        print(f"{bundle.manifest.arch.name} {name}: R1 {got['R1']:.2f} mAP {got['mAP']:.2f} "
              f"(fp32 R1 {ref['R1']:.2f} mAP {ref['mAP']:.2f}, {ref['num_queries']} queries)")  # shown with -s
        for metric in ("R1", "mAP"):
            assert abs(got[metric] - ref[metric]) <= POINTS, (name, metric, got[metric], ref[metric])
    return out


def int8_bundle(checkpoint, out, root):
    bundle, _ = export_bundle(checkpoint, out, int8=True, fused=False, calib_items=64,
                              calibration=calibration_reader(str(root / "calib"), 64), progress=lambda _: None)
    return load_bundle(bundle.root)


def test_demo_model_int8_and_bf16_within_one_point(data, tmp_path):
    bundle = int8_bundle(demo_paths().bundle, tmp_path / "demo-int8", data)
    assert "calib" in bundle.manifest.export["int8"]["calibration"]["source"]
    check_paths(bundle, data)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tiny_dmca_trained_here_int8_and_bf16_within_one_point(data, tmp_path):
    from training.config import load_recipe
    from training.engine import train

    cfg = load_recipe("synthetic_tiny", ["optim.epochs=8", "run.eval_every=8", "run.progress=false"])
    train(cfg, str(data / "heldout"), str(tmp_path / "run"), log=lambda _: None)
    check_paths(int8_bundle(tmp_path / "run", tmp_path / "tiny-int8", data), data)
