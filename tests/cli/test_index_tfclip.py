"""`tvreid index` with a tfclip bundle: each tracklet's camera label is looked up in the training camera index that
export carried into the manifest, and the SIE row it names is fed to the model (unknown labels: no camera)."""
import numpy as np
import torch

from tvreid_sdk import Encoder, Gallery


def test_index_feeds_the_training_camera_of_each_tracklet(run_cli, tmp_path):
    from training.data import DATASETS
    from training.tfclip.checkpoint import save_tfclip, training_camera_index
    from training.tfclip.config import TfclipDataSection, TfclipModelSection
    from training.tfclip.model import TFCLIP
    from tvreid_sdk.modeling.arch import get_arch

    run_cli("synth", "--out", tmp_path / "mars", "--ids", 4, "--seed", 5, "--format", "mars", "--image-size", "64x32")
    data = DATASETS.get("mars")(str(tmp_path / "mars"), on_missing="fail")
    torch.manual_seed(0)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), num_classes=2, num_cameras=6).eval()
    with torch.no_grad():
        model.sie.normal_(std=0.5)  # a trained-looking SIE table: a wrong camera shows in the embedding
    index = training_camera_index(data, model.num_cameras)  # what the training loop stores at save time
    save_tfclip(model, tmp_path / "run" / "best.safetensors", TfclipDataSection(num_frames=2), camera_index=index)
    run_cli("export", tmp_path / "run", "--out", tmp_path / "bundle")
    run_cli("index", tmp_path / "mars", "--bundle", tmp_path / "bundle", "--gallery", tmp_path / "gallery", "--backend",
            "ort-cpu")  # the backend the Ray stages below run

    tracklets = {t.track_id: t for t in list(data.query) + list(data.gallery)}
    with Gallery.open(tmp_path / "gallery") as gallery, Encoder.from_bundle(tmp_path / "bundle") as enc:
        assert enc.manifest.family_cfg.camera_index == index and index
        keys = gallery.keys()
        entries = [gallery.get(k) for k in keys]
        frames = [list(tracklets[e.record.native_id].frames) for e in entries]
        cams = [tracklets[e.record.native_id].camid for e in entries]
        assert [e.record.camera for e in entries] == [f"C{c + 1}" for c in cams]
        stored = np.stack([e.embedding for e in entries])
        np.testing.assert_allclose(stored, enc.encode_tracklets(frames, cameras=cams), atol=1e-5)
        unknown = enc.encode_tracklets(frames)
        ray_stages = _through_the_ray_stages(enc, tmp_path / "bundle", [e.record for e in entries])
    assert len(set(cams)) > 1 and ((stored * unknown).sum(1) < 0.9999).all()
    assert np.array_equal(ray_stages, stored)  # `index --ray` feeds the same cameras, bit for bit


def _through_the_ray_stages(enc, bundle, records):
    """What `tvreid index --ray`'s decode tasks and encoder actor compute (run here without Ray)."""
    from tvreid_sdk.ingest import sie_camera_index
    from tvreid_sdk.scale.stages import EncodeActor, decode_batch
    from tvreid_sdk.vision.prepare import ClipPreparer

    index = sie_camera_index(enc.manifest)
    frames = np.empty(len(records), dtype=object)
    frames[:] = [list(r.frame_paths) for r in records]
    batch = {"i": np.arange(len(records)), "frames": frames,
             "cam": np.array([index.get(r.camera, -1) for r in records], np.int32)}
    decoded = decode_batch(batch, ClipPreparer.from_manifest(enc.manifest), on_bad_frame="fail", thumbnails=False)
    return EncodeActor(str(bundle), backend="ort-cpu", use_cameras=True)(decoded)["emb"]
