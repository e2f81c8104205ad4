"""The embedded default: `tvreid match "..."` with no --bundle/--gallery searches the shipped demo."""
import json

import pytest

from tvreid_sdk import Gallery, demo_paths, load_bundle
from tvreid_sdk.errors import BundleError

try:
    DEMO = demo_paths()
except BundleError:  # a source checkout without the built assets (python -m cli.demo builds them)
    DEMO = None

pytestmark = pytest.mark.skipif(DEMO is None, reason="demo assets not built (python -m cli.demo --out tvreid_sdk/assets)")


def _captions(keys):
    with Gallery.open(DEMO.gallery, readonly=True) as gallery:
        return [gallery.get(key).record.caption.lower() for key in keys]


def test_demo_assets_fit_the_budget_and_agree():
    bundle = load_bundle(DEMO.bundle)
    size = sum(p.stat().st_size for root in (DEMO.bundle, DEMO.gallery) for p in root.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024
    with Gallery.open(DEMO.gallery, model_id=bundle.manifest.model_id, readonly=True) as gallery:
        assert len(gallery) >= 300
    assert not (DEMO.gallery / "gallery.sqlite-wal").exists(), "demo gallery must open from a read-only install"


def test_match_without_options_finds_red_jacket_walkers(run_cli):
    result = run_cli("match", "man in red jacket walking", "--json", "-k", "5")
    rows = json.loads(result.output)["results"]
    assert len(rows) == 5
    captions = _captions([r["tracklet"] for r in rows])
    assert sum("red" in c for c in captions) >= 4, captions  # colour is learned well
    walking = sum(any(w in c for w in ("walk", "on foot")) for c in captions)
    assert walking >= 2, captions  # the action more weakly; garment type (jacket vs t-shirt) is not reliable yet


@pytest.mark.parametrize("query,words", [
    ("a woman wearing a blue coat", (("blue",), ("coat",))),
    ("person in a yellow t-shirt riding a bicycle", (("yellow",), ("bicycle", "bike", "cycling", "pedal"))),
])
def test_demo_retrieves_what_the_words_say(run_cli, query, words):
    rows = json.loads(run_cli("match", query, "--json", "-k", "5").output)["results"]
    captions = _captions([r["tracklet"] for r in rows])
    for alternatives in words:
        assert sum(any(w in c for w in alternatives) for c in captions) >= 3, (alternatives, captions)
