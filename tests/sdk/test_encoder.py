"""Encoder API on every backend that runs here: text, tracklets (paths or arrays), frames, threads."""
import threading

import numpy as np
import pytest
from PIL import Image

from tvreid_sdk import Encoder
from tvreid_sdk.backends import BACKENDS, auto_backend_order
from tvreid_sdk.errors import BackendUnavailableError, CorruptInputError, QueryRejectedError

TEXTS = ["a man in a red jacket walking to the left", "woman wearing a blue coat riding a bicycle",
         "person " * 90, "<|endoftext|> girl in green"]


@pytest.fixture(scope="module")
def ort(tiny_bundle):
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as enc:
        yield enc


@pytest.fixture(scope="module")
def torch_enc(tiny_bundle):
    pytest.importorskip("torch")
    with Encoder.from_bundle(tiny_bundle, backend="torch") as enc:
        yield enc


def _frames(n, h=90, w=40, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _cos(a, b):
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_text_embeddings_are_normalised_and_backends_agree(ort, torch_enc):
    a, b = ort.encode_text(TEXTS), torch_enc.encode_text(TEXTS)
    assert a.shape == (4, ort.embed_dim) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert _cos(a, b).min() >= 0.9999
    assert not np.allclose(a[0], a[1])


def test_tracklets_from_paths_equal_tracklets_from_arrays(ort, torch_enc, tmp_path):
    frames = _frames(11)
    paths = []
    for i, f in enumerate(frames):
        paths.append(str(tmp_path / f"{i:03d}.png"))
        Image.fromarray(f).save(paths[-1])
    from_paths = ort.encode_tracklets([paths, paths[:3]])
    from_arrays = ort.encode_tracklets([frames, frames[:3]])
    np.testing.assert_allclose(from_paths, from_arrays, atol=1e-6)
    assert _cos(from_arrays, torch_enc.encode_tracklets([frames, frames[:3]])).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(from_arrays, axis=1), 1.0, atol=1e-5)


def test_video_embedding_is_the_normalised_mean_of_sampled_frames(ort):
    frames = _frames(8, seed=3)
    clip = ort.prepare_tracklet(frames)  # [T,H,W,3]
    assert clip.shape == (ort.manifest.num_frames, *ort.backend.frame_shape)
    per_frame = ort.backend.encode_frames(clip)  # [T,D] unnormalised
    mean = per_frame.mean(0)
    expected = mean / np.linalg.norm(mean)
    np.testing.assert_allclose(ort.encode_prepared([clip])[0], expected, atol=1e-5)


def test_micro_batches_give_the_same_result(tiny_bundle):
    enc = Encoder.from_bundle(tiny_bundle, backend="ort-cpu")
    full = enc.encode_text(TEXTS * 3)
    enc.backend.max_batch = 2
    np.testing.assert_allclose(enc.encode_text(TEXTS * 3), full, atol=1e-6)


def test_concurrent_callers_get_serial_results(ort):
    expected = ort.encode_text(TEXTS)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(ort.encode_text(TEXTS))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 20
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_bad_inputs_are_rejected_clearly(ort, tmp_path):
    with pytest.raises(QueryRejectedError):
        ort.encode_text(["   "])
    with pytest.raises(QueryRejectedError):
        ort.encode_text([])
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    good = tmp_path / "good.png"
    Image.fromarray(_frames(1)[0]).save(good)
    with pytest.raises(CorruptInputError) as err:
        ort.encode_tracklets([[str(good), str(bad)]])
    assert err.value.frame_index == 1 and "bad.jpg" in str(err.value)
    skipped = ort.encode_tracklets([[str(good), str(bad)]], on_bad_frame="skip")
    np.testing.assert_allclose(skipped, ort.encode_tracklets([[str(good)]]), atol=1e-6)
    with pytest.raises(CorruptInputError):
        ort.encode_frames([np.zeros((10, 10), np.uint8)])


def test_backend_selection(tiny_bundle):
    from tvreid_sdk import load_bundle

    bundle = load_bundle(tiny_bundle)
    assert auto_backend_order(bundle)[-1] == "ort-cpu"
    assert Encoder.from_bundle(bundle).backend.name in auto_backend_order(bundle)
    with pytest.raises(KeyError, match="choose one of"):
        Encoder.from_bundle(bundle, backend="nope")
    assert {"ort-cpu", "ort-cuda", "tensorrt", "torch"} <= set(BACKENDS.names())
    import torch

    if not torch.cuda.is_available():  # no TensorRT, or TensorRT(-RTX) without a GPU: one clear error either way
        with pytest.raises(BackendUnavailableError, match="tvreid\\[trt\\]|CUDA GPU"):
            Encoder.from_bundle(bundle, backend="tensorrt")


def test_dense_sampler_averages_clip_embeddings(tiny_bundle):
    enc = Encoder.from_bundle(tiny_bundle, backend="ort-cpu")
    enc.sampler = enc.sampler.__class__(name="dense", num_frames=enc.manifest.num_frames)
    frames = _frames(9, seed=5)
    clips = enc.prepare_tracklet(frames)  # [C,T,H,W,3]
    assert clips.shape[0] == 3
    per_clip = enc.backend.encode_video(clips)
    mean = per_clip.mean(0)
    np.testing.assert_allclose(enc.encode_tracklets([frames])[0], mean / np.linalg.norm(mean), atol=1e-5)
