"""The manifest speaks the family contract: vector length per family, typed ``family_cfg`` read from a hand-written
version-1 tfclip manifest, and the demo bundle under its version-1 manifest (as it shipped before its re-export)
still loads and searches the demo gallery."""
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tvreid_sdk import Encoder, Gallery, demo_paths
from tvreid_sdk.backends.base import Backend
from tvreid_sdk.bundle import Bundle, Manifest, load_bundle
from tvreid_sdk.errors import BundleError, ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.family import TfclipBundleCfg

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("arch, family, dim", [("dmca-vit-b32", "dmca", 512), ("cffa-vit-b16", "cffa", 1536),
                                               ("tfclip-vit-b16", "tfclip", 2048)])
def test_every_family_s_manifest_gives_its_vector_length(arch, family, dim):
    manifest = Manifest(arch=get_arch(arch), model_id="m")
    assert manifest.spec.name == family and manifest.embed_dim == dim
    again = Manifest.from_dict(json.loads(manifest.to_json()))
    assert again.embed_dim == dim and json.loads(manifest.to_json())["embed_dim"] == dim


def _v1_tfclip() -> dict:
    return json.loads((FIXTURES / "manifest_v1_tfclip.json").read_text())


def test_version_1_tfclip_manifest_is_read_into_a_typed_family_cfg():
    data = _v1_tfclip()
    assert data["schema_version"] == 1 and "family_cfg" not in data  # the fixture really is version 1
    manifest = Manifest.from_dict(data)
    assert manifest.schema_version == 2 and manifest.family == "tfclip" and manifest.embed_dim == 2048
    assert manifest.family_cfg == TfclipBundleCfg(
        num_cameras=6, camera_input=True, tmd_layers=1, camera_index={f"C{i + 1}": i for i in range(6)})
    spec = manifest.spec
    assert spec.required_role == "video_encoder" and not spec.has_text and not spec.frame_embeddings
    assert spec.num_cameras(manifest.family_cfg) == 6
    assert spec.camera_index(manifest.family_cfg)["C6"] == 5
    assert spec.tower_options(manifest.family_cfg) == {"num_cameras": 6, "tmd_layers": 1}
    written = json.loads(manifest.to_json())  # a re-written manifest is version 2 with the typed section
    assert written["schema_version"] == 2 and written["family_cfg"]["num_cameras"] == 6
    assert Manifest.from_dict(written) == manifest


def test_a_version_1_manifest_with_a_bad_family_section_is_refused():
    data = _v1_tfclip()
    data["export"]["tfclip"]["camera_index"] = {"C9": 9}
    with pytest.raises(BundleError, match="malformed: TfclipBundleCfg: camera_index rows .* outside 0..5"):
        Manifest.from_dict(data)


class _NoRun(Backend):
    """A backend that runs nothing: enough to see what the runtime reads from a manifest."""

    def _run_text(self, ids, eot):
        raise AssertionError("not run")

    _run_video = _run_frames = _run_text


def test_the_runtime_takes_cameras_from_a_version_1_tfclip_manifest(tmp_path):
    bundle = Bundle(tmp_path, Manifest.from_dict(_v1_tfclip()))
    backend = _NoRun(bundle)
    assert backend.takes_cameras
    encoder = Encoder(bundle, backend)
    assert encoder._camera_ids([5, None, 0], 3).tolist() == [5, -1, 0]
    with pytest.raises(ConfigError, match=r"outside 0..5"):
        encoder._camera_ids([6], 1)
    no_sie = Bundle(tmp_path, Manifest.from_dict({**_v1_tfclip(), "export": {}}))  # v1 without the section
    assert no_sie.manifest.family_cfg == TfclipBundleCfg() and not _NoRun(no_sie).takes_cameras


def _demo_under_its_version_1_manifest(tmp_path: Path) -> Path:
    """The shipped demo's files under the version-1 manifest it shipped with (``fixtures/manifest_v1_demo.json``,
    verbatim but for each artifact's digest and size, which now name the re-exported files)."""
    root = tmp_path / "demo-v1"
    shutil.copytree(demo_paths().bundle, root)
    data = json.loads((FIXTURES / "manifest_v1_demo.json").read_text())
    for art in data["artifacts"]:
        blob = (root / art["path"]).read_bytes()
        art.update(sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    (root / "manifest.json").write_text(json.dumps(data))
    return root


def test_the_demo_bundle_under_its_version_1_manifest_loads_and_searches(tmp_path):
    root = _demo_under_its_version_1_manifest(tmp_path)
    assert json.loads((root / "manifest.json").read_text())["schema_version"] == 1
    bundle = load_bundle(root)
    assert bundle.manifest.schema_version == 2 and bundle.manifest.family_cfg is None
    with Encoder.from_bundle(bundle, backend="ort-cpu") as encoder, \
            Gallery.open(demo_paths().gallery, model_id=bundle.manifest.model_id, readonly=True) as gallery:
        query = encoder.encode_text("man in red jacket walking")
        assert query.shape == (1, encoder.embed_dim) == (1, 64)
        np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)
        hits = gallery.search(query, k=5)[0]
        assert len(hits) == 5 and hits[0].score >= hits[-1].score
        assert gallery.model_id == encoder.model_id
        with Encoder.from_bundle(demo_paths().bundle, backend="ort-cpu") as current:
            np.testing.assert_array_equal(current.encode_text("man in red jacket walking"), query)
