"""synth (CUHK-PEDES format) → train cffa → eval → export → index the test images → match by text and by example
image; bench on a cffa bundle."""
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
        entry = gallery.get(f"{pedes_root.name}/{test_images[0]['file_path']}")
        assert entry.record.native_id == test_images[0]["file_path"]
        assert entry.record.camera == "unknown" and entry.record.person_id == str(test_images[0]["id"])
        assert entry.record.caption == test_images[0]["captions"][0]
    probe = test_images[3]
    out = json.loads(run_cli("match", "--image", pedes_root / "imgs" / probe["file_path"], "--bundle", cffa_bundle,
                             "--gallery", gallery_dir, "-k", 3, "--json").output)
    assert out["query_image"].endswith(probe["file_path"]) and "query" not in out
    top = out["results"][0]
    assert top["tracklet"] == f"{pedes_root.name}/{probe['file_path']}" and top["native_id"] == probe["file_path"]
    assert top["score"] == pytest.approx(1, abs=1e-3)
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


# -- tvreid eval on a cffa run: IRRA's t2v protocol with CFFA's joint score ------------------------------------------

def _reference_metrics(run, pedes_root):
    """Global-only and joint t2v metrics of the run's checkpoint, computed here without the eval command."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    from training.data import DATASETS
    from training.dataset import tokenize_captions
    from training.metrics import evaluate_t2v
    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.clip import CFFATowers
    from tvreid_sdk.vision.decode import load_image
    from tvreid_sdk.vision.preprocess import normalize_torch, resize_frame

    arch = get_arch("tiny-cffa")
    towers = CFFATowers(arch)
    towers.load_state_dict({k: v for k, v in load_file(str(run / "best.safetensors")).items()
                            if k.startswith(("visual.", "text.", "flfr_"))})
    towers.eval()
    items = list(DATASETS.get("cuhk-pedes")(str(pedes_root)).gallery)
    frames = np.stack([resize_frame(load_image(t.frames[0]), arch.preprocess) for t in items])
    ids, eot = tokenize_captions([c for t in items for c in t.captions])
    q_pids = np.array([t.pid for t in items for _ in t.captions])
    g_pids = np.array([t.pid for t in items])
    with torch.no_grad():
        ig, il = towers.image_parts(normalize_torch(torch.from_numpy(frames), arch.preprocess))
        tg, tl = towers.text_parts(torch.from_numpy(ids), torch.from_numpy(eot))
    cos_g = (F.normalize(tg, dim=-1) @ F.normalize(ig, dim=-1).t()).numpy()
    cos_l = (F.normalize(tl, dim=-1) @ F.normalize(il, dim=-1).t()).numpy()
    return evaluate_t2v(cos_g, q_pids, g_pids), evaluate_t2v((cos_g + cos_l) / 2, q_pids, g_pids)


def test_eval_of_a_cffa_run_uses_the_joint_score_on_every_caption(run_cli, cffa_bundle, pedes_root, test_images):
    run = cffa_bundle.parent / "run"
    got = json.loads(run_cli("eval", run, "--data", pedes_root, "--json").output)
    assert got["protocol"] == "t2v" and got["score"] == "(cos_global + cos_local) / 2"
    assert got["dataset"] == "cuhk-pedes" and got["num_queries"] == 2 * len(test_images)  # every caption queries
    global_only, joint = _reference_metrics(run, pedes_root)
    for key in ("R1", "R5", "R10", "mAP", "mINP"):
        assert got[key] == pytest.approx(joint[key], abs=1e-6), key
    assert any(abs(global_only[k] - joint[k]) > 1e-3 for k in ("mAP", "mINP"))  # the joint score is not CLS-only
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "test_R1" in line][-1]
    assert got["mAP"] == pytest.approx(logged["test_mAP"], abs=1e-4)  # the training loop's evaluation, reproduced
    table = run_cli("eval", run / "best.safetensors", "--data", pedes_root).output
    assert table.startswith("protocol t2v, score (cos_global + cos_local) / 2: R1 ") and "mINP" in table


def test_eval_finds_the_dataset_format_or_says_how_to_name_it(run_cli, cffa_bundle, pedes_root, tmp_path):
    run = cffa_bundle.parent / "run"
    icfg = tmp_path / "data" / "ICFG-PEDES"  # IRRA style: the parent of the dataset directory works too
    shutil.copytree(pedes_root / "imgs", icfg / "imgs")
    shutil.copy(pedes_root / "reid_raw.json", icfg / "ICFG-PEDES.json")
    detected = json.loads(run_cli("eval", run, "--data", icfg.parent, "--json").output)
    named = json.loads(run_cli("eval", run, "--data", icfg, "--dataset", "icfg-pedes", "--json").output)
    assert detected["dataset"] == named["dataset"] == "icfg-pedes" and detected["mAP"] == named["mAP"]
    lone = tmp_path / "lone.safetensors"  # no config.json beside it, and a root with no known layout
    shutil.copy(run / "best.safetensors", lone)
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = run_cli("eval", lone, "--data", empty, ok=False)
    assert failed.exit_code == 2 and "pass --dataset" in failed.output and "cuhk-pedes" in failed.output
    wrong = run_cli("eval", run, "--data", empty, ok=False)  # the recipe says cuhk-pedes, whose file is absent
    assert wrong.exit_code == 2 and "reid_raw.json" in wrong.output


def test_eval_refuses_a_cffa_checkpoint_without_its_flfr_heads(cffa_bundle, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from training.cffa_eval import load_cffa_towers
    from tvreid_sdk.errors import ModelFormatError

    src = cffa_bundle.parent / "run" / "best.safetensors"
    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
        state = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("flfr_text.")}
    save_file(state, str(tmp_path / "headless.safetensors"), metadata=meta)
    towers, arch, num_frames, _ = load_cffa_towers(src)
    assert arch.family == "cffa" and num_frames == 1 and not towers.training
    with pytest.raises(ModelFormatError, match="flfr_text"):
        load_cffa_towers(tmp_path / "headless.safetensors")


def test_bench_generates_and_times_a_cffa_bundle_with_its_joint_vector_length(run_cli, tmp_path):
    report_path = tmp_path / "bench.json"
    run_cli("bench", "--quick", "--arch", "tiny-cffa", "--keep-bundle", tmp_path / "b", "--tasks",
            "video_embed,text_query", "--backends", "ort-cpu", "--matchers", "numpy", "--gallery-sizes", "1e3",
            "--e2e-gallery-size", "1e3", "--quiet", "--json", report_path)
    report = json.loads(report_path.read_text())
    assert report["bundle"]["embed_dim"] == 192 and report["bundle"]["num_frames"] == 1  # 64 + 128, still images
    assert load_bundle(tmp_path / "b").manifest.family == "cffa"
    tasks = {row["task"] for row in report["rows"]}
    assert {"video_embed", "text_query"} <= tasks and not report["skipped"]
