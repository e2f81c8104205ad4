"""synth (CUHK-PEDES format) → train cffa → export → index the test images → match by text and by example image."""
import json
import shutil

import pytest

from cli.data_cmds import _records_from_source
from tvreid_sdk import Gallery, load_bundle


@pytest.fixture(scope="module")
def pedes_root(run_cli, tmp_path_factory):
    root = tmp_path_factory.mktemp("cffa-cli") / "CUHK-PEDES"
    run_cli("synth", "--out", root, "--format", "cuhk-pedes", "--ids", 24, "--seed", 5, "--image-size", "64x32")
    return root


@pytest.fixture(scope="module")
def cffa_bundle(run_cli, pedes_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("cffa-cli")
    run_cli("train", "cffa_synthetic_tiny", "--data", pedes_root, "--out", base / "run", "--set", "optim.epochs=1",
            "--set", "run.max_steps_per_epoch=1")
    run_cli("export", base / "run", "--out", base / "bundle")
    return base / "bundle"


@pytest.fixture(scope="module")
def test_images(pedes_root):
    entries = json.loads((pedes_root / "reid_raw.json").read_text())
    return [e for e in entries if e["split"] == "test"]


def test_train_and_export_make_a_cffa_bundle(cffa_bundle, pedes_root):
    run = cffa_bundle.parent / "run"
    record = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert {"mal_loss", "mlm_loss", "id_loss", "test_R1", "test_mAP", "test_mINP"} <= set(record)
    assert record["test_num_queries"] == 2 * len([e for e in json.loads((pedes_root / "reid_raw.json").read_text())
                                                  if e["split"] == "test"])  # every caption is a query (IRRA)
    man = load_bundle(cffa_bundle).manifest
    assert man.family == "cffa" and man.arch.name == "tiny-cffa" and man.num_frames == 1 and man.arch.output_dim == 192


def test_index_reads_a_cuhk_pedes_root_and_match_finds_an_example_image(run_cli, cffa_bundle, pedes_root,
                                                                       test_images, tmp_path):
    gallery_dir = tmp_path / "gallery"
    result = run_cli("index", pedes_root, "--bundle", cffa_bundle, "--gallery", gallery_dir)
    assert f"added {len(test_images)} tracklet(s)" in result.output
    with Gallery.open(gallery_dir) as gallery:
        assert len(gallery) == len(test_images) and gallery.embed_dim == 192
        entry = gallery.get(test_images[0]["file_path"])
        assert entry.record.camera == "unknown" and entry.record.person_id == str(test_images[0]["id"])
        assert entry.record.caption == test_images[0]["captions"][0]
    probe = test_images[3]
    out = json.loads(run_cli("match", "--image", pedes_root / "imgs" / probe["file_path"], "--bundle", cffa_bundle,
                             "--gallery", gallery_dir, "-k", 3, "--json").output)
    assert out["query_image"].endswith(probe["file_path"]) and "query" not in out
    top = out["results"][0]
    assert top["tracklet"] == probe["file_path"] and top["score"] == pytest.approx(1, abs=1e-3)
    text = json.loads(run_cli("match", probe["captions"][0], "--bundle", cffa_bundle, "--gallery", gallery_dir,
                              "-k", 5, "--json").output)["results"]
    scores = [r["score"] for r in text]
    assert len(text) == 5 and scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    html = tmp_path / "sheet.html"
    run_cli("match", "--image", pedes_root / "imgs" / probe["file_path"], "--bundle", cffa_bundle, "--gallery",
            gallery_dir, "-k", 2, "--html", html)
    assert "image: " in html.read_text() and html.read_text().count("data:image/jpeg;base64,") == 2


def test_match_needs_exactly_one_kind_of_query(run_cli, cffa_bundle, pedes_root, test_images, tmp_path):
    image = pedes_root / "imgs" / test_images[0]["file_path"]
    both = run_cli("match", "a man", "--image", image, "--bundle", cffa_bundle, "--gallery", tmp_path, ok=False)
    assert both.exit_code == 2 and "not both" in both.output
    neither = run_cli("match", "--bundle", cffa_bundle, "--gallery", tmp_path, ok=False)
    assert neither.exit_code == 2 and "query is empty" in neither.output and "--image" in neither.output


def test_index_detects_icfg_pedes_and_rstpreid_layouts(pedes_root, test_images, tmp_path):
    entries = json.loads((pedes_root / "reid_raw.json").read_text())
    icfg = tmp_path / "ICFG-PEDES"
    rstp = tmp_path / "data" / "RSTPReid"  # IRRA style: the parent of the dataset directory works too
    for root in (icfg, rstp):
        shutil.copytree(pedes_root / "imgs", root / "imgs")
    (icfg / "ICFG_PEDES.json").write_text(json.dumps(entries))  # the README's spelling of the file name
    (rstp / "data_captions.json").write_text(json.dumps(
        [{"id": e["id"], "img_path": e["file_path"], "captions": e["captions"], "split": e["split"]}
         for e in entries]))
    for source, kind in ((pedes_root, "cuhk-pedes"), (icfg, "icfg-pedes"), (rstp.parent, "rstpreid")):
        found, records = _records_from_source(str(source), None)
        assert found == kind
        assert sorted(r.key for r in records) == sorted(e["file_path"] for e in test_images)
        assert all(len(r.frame_paths) == 1 and r.camera == "unknown" for r in records)
    _, named = _records_from_source(str(icfg), "cam7")
    assert {r.camera for r in named} == {"cam7"}
