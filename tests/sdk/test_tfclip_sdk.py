"""SDK with a tfclip bundle: no text encoder, encode_tracklets (+ optional cameras) on ONNX Runtime and PyTorch,
query-by-tracklet in a gallery, indexing with the training camera index."""
import numpy as np
import pytest
import torch

from export.build import export_bundle
from training.tfclip.checkpoint import save_tfclip
from training.tfclip.config import TfclipDataSection, TfclipModelSection
from training.tfclip.model import TFCLIP
from tvreid_sdk import Encoder, Gallery, TrackletRecord
from tvreid_sdk.errors import BundleError, ConfigError, QueryRejectedError
from tvreid_sdk.ingest import index_records, sie_camera_index
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.preprocess import normalize_torch

T = 4
CAMERA_INDEX = {"C1": 0, "C2": 1, "C3": 2}


@pytest.fixture(scope="module")
def tfclip(tmp_path_factory):
    """``(training model, Encoder on its exported bundle)``."""
    root = tmp_path_factory.mktemp("tfclip-sdk")
    torch.manual_seed(1)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), num_classes=4, num_cameras=3).eval()
    with torch.no_grad():
        model.sie.normal_(std=0.5)
    save_tfclip(model, root / "best.safetensors", TfclipDataSection(num_frames=T), camera_index=CAMERA_INDEX)
    export_bundle(root, root / "bundle", progress=lambda _: None)
    with Encoder.from_bundle(root / "bundle", backend="ort-cpu") as enc:
        yield model, enc


def _tracklets(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(3, 9)), 80, 40, 3), dtype=np.uint8) for _ in range(n)]


def _reference(model, enc, tracklets, cameras=None):
    clips = np.stack([enc.prepare_tracklet(t) for t in tracklets])  # [N,T,H,W,3] resized by the SDK
    x = normalize_torch(torch.from_numpy(clips), model.arch.preprocess)
    cams = None if cameras is None else torch.tensor([-1 if c is None else c for c in cameras])
    with torch.no_grad():
        return model.encode(x, cams).numpy()


def test_text_queries_are_refused_with_a_pointer_to_search_by_example(tfclip):
    _, enc = tfclip
    with pytest.raises(QueryRejectedError, match="no text encoder. It searches by example.*--like TRACKLET_ID"):
        enc.encode_text(["a man in a red jacket"])
    with pytest.raises(ConfigError, match="whole tracklets"):
        enc.encode_frames([np.zeros((64, 32, 3), np.uint8)])
    assert enc.embed_dim == 160 and enc.backend.roles == ("video_encoder",)


def test_encode_tracklets_matches_the_training_model(tfclip):
    model, enc = tfclip
    tracklets = _tracklets(3)
    emb = enc.encode_tracklets(tracklets)
    assert emb.shape == (3, 160) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    ref = _reference(model, enc, tracklets)
    assert ((emb * ref).sum(1)).min() >= 0.9999
    cams = [2, None, 0]
    with_cams = enc.encode_tracklets(tracklets, cameras=cams)
    assert ((with_cams * _reference(model, enc, tracklets, cams)).sum(1)).min() >= 0.9999
    np.testing.assert_allclose(with_cams[1], emb[1], atol=1e-6)  # None = unknown = no camera embedding
    assert (with_cams[[0, 2]] * emb[[0, 2]]).sum(1).max() < 0.9999


def test_bad_cameras_and_backends_are_clear_errors(tfclip, tiny_bundle):
    _, enc = tfclip
    tracklets = _tracklets(2)
    with pytest.raises(ConfigError, match=r"outside 0..2"):
        enc.encode_tracklets(tracklets, cameras=[0, 3])
    with pytest.raises(ConfigError, match="one per tracklet"):
        enc.encode_tracklets(tracklets, cameras=[0])
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as dmca:
        with pytest.raises(ConfigError, match="takes no camera input"):
            dmca.encode_tracklets(tracklets, cameras=[0, 1])
        frames = np.stack([dmca.prepare_tracklet(t) for t in tracklets])
        with pytest.raises(BundleError, match="takes no camera input"):
            dmca.backend.encode_video(frames, cameras=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match="cameras int32"):
        enc.backend.encode_video(np.stack([enc.prepare_tracklet(t) for t in tracklets]), cameras=np.zeros(3, np.int32))


def test_torch_backend_matches_onnx_runtime_with_and_without_cameras(tfclip):
    model, ort_enc = tfclip
    tracklets = _tracklets(5, seed=7)
    with Encoder.from_bundle(ort_enc.bundle, backend="torch") as torch_enc:
        assert torch_enc.backend.name == "torch" and torch_enc.backend.model.num_cameras == 3
        for cams in (None, [0, None, 2, 1, None]):
            a = ort_enc.encode_tracklets(tracklets, cameras=cams)
            b = torch_enc.encode_tracklets(tracklets, cameras=cams)
            assert b.shape == (5, 160) and ((a * b).sum(1)).min() >= 0.9999
            assert ((b * _reference(model, ort_enc, tracklets, cams)).sum(1)).min() >= 0.9999
        unknown = torch_enc.encode_tracklets(tracklets[:2])
        known = torch_enc.encode_tracklets(tracklets[:2], cameras=[1, 2])
        assert (unknown * known).sum(1).max() < 0.9999  # the torch backend does feed the cameras


def test_query_by_tracklet_through_the_gallery(tfclip, tmp_path):
    model, enc = tfclip
    tracklets = _tracklets(6, seed=3)
    records = [TrackletRecord(key=f"t{i}", camera=f"C{i % 3 + 1}", frame_paths=()) for i in range(6)]
    with Gallery.create(tmp_path / "g", model_id=enc.model_id, embed_dim=enc.embed_dim) as gallery:
        gallery.add(records, enc.encode_tracklets(tracklets))
        entry = gallery.get("t2")
        hits = gallery.search(entry.embedding, k=3)[0]
        assert hits[0].key == "t2" and hits[0].score == pytest.approx(1.0, abs=1e-5)
        scores = (enc.encode_tracklets(tracklets) @ entry.embedding)  # the same ranking from fresh encodings
        assert [h.key for h in hits] == [f"t{i}" for i in np.argsort(-scores)[:3]]
        # a new observation of person 2 (frames slightly perturbed) finds t2 first
        noisy = np.clip(tracklets[2].astype(int) + np.random.default_rng(0).integers(-6, 7, tracklets[2].shape),
                        0, 255).astype(np.uint8)
        assert gallery.search(enc.encode_tracklets([noisy]), k=1)[0][0].key == "t2"


def _write_records(tmp_path, cameras: list[str], seed: int = 5) -> list[TrackletRecord]:
    from PIL import Image

    records = []
    for i, (trk, camera) in enumerate(zip(_tracklets(len(cameras), seed=seed), cameras)):
        folder = tmp_path / "frames" / f"trk{i}"
        folder.mkdir(parents=True)
        paths = []
        for j, frame in enumerate(trk):
            Image.fromarray(frame).save(folder / f"{j:03d}.png")
            paths.append(str(folder / f"{j:03d}.png"))
        records.append(TrackletRecord(key=f"trk{i}", camera=camera, frame_paths=tuple(paths)))
    return records


def test_index_records_builds_a_tfclip_gallery_from_files(tfclip, tmp_path):
    _, enc = tfclip
    records = _write_records(tmp_path, ["C1", "C1", "C1"])
    with Gallery.create(tmp_path / "g", model_id=enc.model_id, embed_dim=enc.embed_dim) as gallery:
        report = index_records(enc, gallery, records, known_cameras=False)
        assert report.added == 3 and gallery.embed_dim == 160
        np.testing.assert_allclose(gallery.get("trk1").embedding,
                                   enc.encode_tracklets([list(records[1].frame_paths)])[0], atol=1e-6)


def test_index_records_feeds_the_training_camera_of_each_label(tfclip, tmp_path):
    _, enc = tfclip
    assert sie_camera_index(enc.manifest) == CAMERA_INDEX
    records = _write_records(tmp_path, ["C3", "lobby", "C1", "C2"], seed=6)
    frames = [list(r.frame_paths) for r in records]
    with Gallery.create(tmp_path / "g", model_id=enc.model_id, embed_dim=enc.embed_dim) as gallery:
        assert index_records(enc, gallery, records, batch_size=3).added == 4
        stored = np.stack([gallery.get(r.key).embedding for r in records])
    np.testing.assert_allclose(stored, enc.encode_tracklets(frames, cameras=[2, None, 0, 1]), atol=1e-6)
    unknown = enc.encode_tracklets(frames)
    np.testing.assert_allclose(stored[1], unknown[1], atol=1e-6)  # a label training never saw: camera unknown
    assert (stored[[0, 2, 3]] * unknown[[0, 2, 3]]).sum(1).max() < 0.9999
