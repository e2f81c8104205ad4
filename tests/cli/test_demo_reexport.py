"""`python -m cli.demo --reexport`: the shipped bundle re-exported from its own weights keeps its model id and gallery,
and a re-export whose graphs disagree with the shipped ones leaves the bundle as it was."""
import json
import shutil

import pytest

from cli import demo
from tvreid_sdk import Gallery, demo_paths, load_bundle
from tvreid_sdk.backends import create_backend
from tvreid_sdk.errors import ModelFormatError


@pytest.fixture()
def assets(tmp_path):
    paths = demo_paths()
    out = tmp_path / "assets"
    shutil.copytree(paths.bundle, out / "demo_bundle")
    shutil.copytree(paths.gallery, out / "demo_gallery")
    shutil.copy(paths.bundle.parent / "demo_provenance.json", out / "demo_provenance.json")
    return out


def test_reexport_keeps_the_model_id_and_the_gallery(assets):
    before = load_bundle(assets / "demo_bundle").manifest.model_id
    result = demo.reexport_demo(assets, log=lambda _: None)
    bundle = load_bundle(assets / "demo_bundle")
    assert result["model_id"] == bundle.manifest.model_id == before
    assert set(result["max_abs_diff"]) == {"text_encoder", "video_encoder", "frame_encoder"}
    assert all(d <= demo.REEXPORT_ATOL for d in result["max_abs_diff"].values())
    assert bundle.manifest.export["source"]["reexported_from"].startswith("the shipped demo bundle")
    with create_backend(bundle, "ort-cpu") as backend:
        assert backend.text_takes_prefix()  # the current exporter's dynamic token axis
    with Gallery.open(assets / "demo_gallery", model_id=bundle.manifest.model_id, readonly=True) as gallery:
        assert len(gallery) > 0
    facts = json.loads((assets / "demo_provenance.json").read_text())
    assert facts["reexport"]["max_abs_diff"] == result["max_abs_diff"]
    assert not list(assets.glob(".demo.*"))


def test_a_reexport_that_disagrees_leaves_the_bundle_as_it_was(assets, monkeypatch):
    files = {p.name: p.read_bytes() for p in (assets / "demo_bundle").iterdir()}
    monkeypatch.setattr(demo, "REEXPORT_ATOL", -1.0)  # any difference, even 0.0, is now too much
    with pytest.raises(ModelFormatError, match="differ from the shipped ones"):
        demo.reexport_demo(assets, log=lambda _: None)
    assert {p.name: p.read_bytes() for p in (assets / "demo_bundle").iterdir()} == files
    assert not list(assets.glob(".demo.*"))
