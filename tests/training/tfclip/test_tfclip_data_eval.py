"""TF-CLIP data (video-only train set, clips), CLIP-Memory and the mars-protocol evaluation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.data import DATASETS
from training.metrics import evaluate_mars
from training.tfclip.config import TfclipDataSection, TfclipModelSection
from training.tfclip.data import ClipSet, VideoTrainSet, infer_num_cameras, load_video_dataset
from training.tfclip.evaluate import compute_clip_memory, embed_tracklets, evaluate_model
from training.tfclip.model import TFCLIP
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.decode import load_image
from tvreid_sdk.vision.preprocess import normalize_torch, resize_frame
from tvreid_sdk.vision.sampling import sample_indices

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data(tiny_mars):
    return DATASETS.get("mars")(tiny_mars[0])


@pytest.fixture(scope="module")
def model(data):
    torch.manual_seed(0)
    return TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), data.num_train_pids, infer_num_cameras(data)).eval()


def test_train_set_items_are_deterministic_and_labelled(data):
    pre = get_arch("tiny-tfclip").preprocess
    ds = VideoTrainSet(list(data.train), pre, num_frames=4, erasing_prob=0.5, camera_drop_prob=0.0, seed=3)
    a, b = ds[2], ds[2]
    assert a["frames"].shape == (4, 64, 32, 3) and a["frames"].dtype == torch.uint8
    assert torch.equal(a["frames"], b["frames"]) and a["pids"] == data.train[2].pid
    assert a["camids"] == data.train[2].camid
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["frames"], a["frames"])  # rrs_train + erasing redrawn per epoch
    dropped = VideoTrainSet(list(data.train), pre, num_frames=4, camera_drop_prob=1.0)
    assert all(int(dropped[i]["camids"]) == -1 for i in range(3))


def test_the_faithful_recipe_erases_where_the_release_pastes(data):
    from training.tfclip.config import load_tfclip_recipe

    assert load_tfclip_recipe("tfclip_mars_vitb16").data.erasing_placement == "at-size"
    assert load_tfclip_recipe("tfclip_synthetic_tiny").data.erasing_placement == "random"
    pre = get_arch("tiny-tfclip").preprocess
    drawn = VideoTrainSet(list(data.train), pre, num_frames=4, flip_prob=0.0, erasing_prob=1.0, seed=3)
    pasted = VideoTrainSet(list(data.train), pre, num_frames=4, flip_prob=0.0, erasing_prob=1.0, seed=3,
                           erasing_placement="at-size")
    moved = 0
    for i in range(len(drawn)):
        a, b = drawn[i]["frames"].numpy(), pasted[i]["frames"].numpy()
        assert a.shape == b.shape
        moved += int(not np.array_equal(a, b))  # same draws, the rectangle lands elsewhere
    assert moved >= len(drawn) // 2
    with pytest.raises(ValueError, match="erasing_placement"):
        TfclipDataSection(erasing_placement="centre")


def test_dense_clips_cover_the_tracklet(data):
    trk = max(data.gallery, key=lambda t: len(t.frames))
    clips = ClipSet([trk], get_arch("tiny-tfclip").preprocess, 4, "dense")[0]
    assert clips.shape == (-(-len(trk.frames) // 4), 4, 64, 32, 3)
    assert ClipSet([trk], get_arch("tiny-tfclip").preprocess, 4, "rss")[0].shape == (1, 4, 64, 32, 3)


def test_clip_memory_is_the_per_identity_mean_of_tracklet_features(data, model, one_thread):
    pre, train = model.arch.preprocess, list(data.train)
    memory = compute_clip_memory(model, train, data.num_train_pids, pre, 4, "rss", CPU)
    assert memory.shape == (data.num_train_pids, model.arch.embed_dim)
    feats = []
    for trk in train:  # independent path: decode + resize + normalise, then the projected CLS mean over T
        idx = sample_indices("rss", len(trk.frames), 4)
        frames = np.stack([resize_frame(load_image(trk.frames[i]), pre) for i in idx])
        with torch.no_grad():
            x = normalize_torch(torch.from_numpy(frames), pre)[None]  # [1,T,3,H,W]
            feats.append(model.visual(x[0])[:, 0].mean(0))
    pids = torch.tensor([t.pid for t in train])
    for pid in range(data.num_train_pids):
        torch.testing.assert_close(memory[pid], torch.stack(feats)[pids == pid].mean(0), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("eval_gallery", ["query+gallery", "gallery"])
def test_mars_protocol_evaluation_matches_the_metric_on_hand_built_scores(data, model, eval_gallery, one_thread):
    cfg = TfclipDataSection(num_frames=4, eval_gallery=eval_gallery, workers=0)
    got = evaluate_model(model, data, cfg, CPU)
    pre, q, g = model.arch.preprocess, list(data.query), list(data.gallery)
    qe = F.normalize(embed_tracklets(model.encode, q, pre, 4, "rss", CPU, with_camera=True), dim=-1)
    ge = F.normalize(embed_tracklets(model.encode, g, pre, 4, "rss", CPU, with_camera=True), dim=-1)
    if eval_gallery == "query+gallery":
        ge, g = torch.cat([qe, ge]), q + g
    want = evaluate_mars((qe @ ge.t()).numpy(), [t.pid for t in q], [t.pid for t in g], [t.camid for t in q],
                         [t.camid for t in g], kind="similarity")
    assert got["protocol"] == "mars" and got["with_camera"] is True and got["eval_gallery"] == eval_gallery
    for key in ("R1", "R5", "R10", "R20", "mAP", "num_valid_queries", "num_skipped_queries"):
        assert got[key] == pytest.approx(want[key])
    assert all(t.pid != -1 for t in data.gallery)  # junk dropped by the loader (and by the metric)
    assert any(t.pid == 0 for t in data.gallery)  # distractors stay in the gallery


def test_text_video_sets_are_refused(tmp_path):
    from training.synth import generate

    generate(tmp_path / "tv", ids=4, seed=1, fmt="tvmars", image_size=(64, 32), frames_per_tracklet=(4, 4))
    with pytest.raises(ConfigError, match="mars protocol"):
        load_video_dataset(TfclipDataSection(dataset="tvmars"), str(tmp_path / "tv"))


def test_training_camera_index_names_each_sie_row_by_its_index_label(data, tmp_path):
    from training.tfclip.checkpoint import save_tfclip, training_camera_index

    cams = sorted({t.camid for split in (data.train, data.query, data.gallery) for t in split})
    assert len(cams) > 2
    full = training_camera_index(data, infer_num_cameras(data))
    assert full == {f"C{c + 1}": c for c in cams}  # MARS C1 = camid 0 = SIE row 0, as `tvreid index` labels it
    assert training_camera_index(data, 2) == {k: v for k, v in full.items() if v < 2}  # rows the table has
    assert training_camera_index(data, 0) == {}  # no SIE: no camera is fed at deployment
    small = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), 2, num_cameras=2)
    with pytest.raises(ValueError, match="outside the model's 2 SIE rows"):
        save_tfclip(small, tmp_path / "x.safetensors", TfclipDataSection(), camera_index={"C3": 2})
    assert not (tmp_path / "x.safetensors").exists()
