"""`tvreid match --like TRACKLET_ID`: query by a gallery tracklet (DMCA and tfclip galleries)."""
import json

import numpy as np
import pytest
import torch

from tvreid_sdk import Gallery


@pytest.fixture(scope="module")
def tfclip_setup(run_cli, tmp_path_factory):
    """A MARS-format synthetic set, a (random-weight) tfclip bundle and the gallery `tvreid index` builds with it."""
    from training.tfclip.checkpoint import save_tfclip
    from training.tfclip.config import TfclipDataSection, TfclipModelSection
    from training.tfclip.model import TFCLIP
    from tvreid_sdk.modeling.arch import get_arch

    root = tmp_path_factory.mktemp("like")
    run_cli("synth", "--out", root / "mars", "--ids", 6, "--seed", 4, "--format", "mars", "--image-size", "64x32")
    torch.manual_seed(0)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), num_classes=3, num_cameras=6).eval()
    save_tfclip(model, root / "run" / "best.safetensors", TfclipDataSection(num_frames=2))
    run_cli("export", root / "run", "--out", root / "bundle")
    run_cli("index", root / "mars", "--bundle", root / "bundle", "--gallery", root / "gallery")
    return root / "bundle", root / "gallery"


def _like(run_cli, gallery, key, *extra, ok=True):
    return run_cli("match", "--like", key, "--gallery", gallery, *extra, ok=ok)


def test_like_on_a_tfclip_gallery_ranks_by_the_stored_embedding(run_cli, tfclip_setup):
    bundle, gallery_dir = tfclip_setup
    with Gallery.open(gallery_dir) as gallery:
        keys = gallery.keys()
        key = keys[1]
        example = gallery.get(key).embedding
        want = sorted(((float(gallery.get(k).embedding @ example), k) for k in keys if k != key), reverse=True)[:4]
        assert gallery.embed_dim == 160
    payload = json.loads(_like(run_cli, gallery_dir, key, "--bundle", bundle, "-k", 4, "--json").output)
    assert payload["like"] == key and "query" not in payload
    got = [(r["score"], r["tracklet"]) for r in payload["results"]]
    assert [k for _, k in got] == [k for _, k in want]  # the example itself is left out
    np.testing.assert_allclose([s for s, _ in got], [round(s, 4) for s, _ in want], atol=1e-4)
    table = _like(run_cli, gallery_dir, key).output  # no --bundle needed: the vector is in the gallery
    assert key not in table.split("\n", 1)[1] and want[0][1] in table


def test_text_on_a_tfclip_bundle_says_it_searches_by_example(run_cli, tfclip_setup):
    bundle, gallery_dir = tfclip_setup
    result = run_cli("match", "a man in a red jacket", "--bundle", bundle, "--gallery", gallery_dir, ok=False)
    assert result.exit_code == 2 and "searches by example" in result.output and "--like" in result.output


def test_like_works_on_a_dmca_gallery_too(run_cli, gallery_dir, bundle_dir):
    with Gallery.open(gallery_dir) as gallery:
        key, n = gallery.keys()[0], len(gallery)
        camera = gallery.get(key).record.camera
    payload = json.loads(_like(run_cli, gallery_dir, key, "--bundle", bundle_dir, "-k", n, "--json").output)
    assert len(payload["results"]) == n - 1 and key not in {r["tracklet"] for r in payload["results"]}
    scores = [r["score"] for r in payload["results"]]
    assert scores == sorted(scores, reverse=True)
    same_cam = json.loads(_like(run_cli, gallery_dir, key, "--camera", camera, "--json").output)["results"]
    assert same_cam and all(r["camera"] == camera for r in same_cam)


def test_like_errors_are_one_clear_line(run_cli, tfclip_setup, bundle_dir):
    bundle, gallery_dir = tfclip_setup
    with Gallery.open(gallery_dir) as gallery:
        key = gallery.keys()[0]
    both = run_cli("match", "some text", "--like", key, "--gallery", gallery_dir, ok=False)
    assert both.exit_code == 2 and "give one of TEXT, --image PATH or --like" in both.output
    missing = _like(run_cli, gallery_dir, "NOPE", ok=False)
    assert missing.exit_code == 2 and "no tracklet with key 'NOPE'" in missing.output
    other_model = _like(run_cli, gallery_dir, key, "--bundle", bundle_dir, ok=False)
    assert other_model.exit_code == 2 and "re-index" in other_model.output
    nothing = run_cli("match", "--gallery", gallery_dir, ok=False)
    assert nothing.exit_code == 2 and "--like TRACKLET_ID" in nothing.output
