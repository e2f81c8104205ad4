"""synth → train → eval → export → index → match through the `tvreid` command, as a user runs it."""
import json
import sqlite3

from tvreid_sdk import Gallery, load_bundle


def test_version(run_cli):
    result = run_cli("--version")
    assert "tvreid, version" in result.output


def test_train_writes_checkpoints_logs_and_refuses_to_clobber(run_cli, run_dir, synth_root):
    assert (run_dir / "last.safetensors").is_file() and (run_dir / "config.json").is_file()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["epoch"] == 1 and "msc_loss" in records[-1] and "test_R1" in records[-1]
    assert (run_dir / "best.safetensors").is_file()
    again = run_cli("train", "synthetic_tiny", "--data", synth_root, "--out", run_dir, ok=False)
    assert again.exit_code == 2 and "--resume" in again.output


def test_resume_continues_from_the_saved_epoch(run_cli, run_dir, synth_root, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run_cli("train", "synthetic_tiny", "--data", synth_root, "--out", copy, "--resume", "--set", "model.arch=tiny-test",
           "--set", "optim.epochs=2", "--set", "data.batch_size=4", "--set", "run.max_steps_per_epoch=2",
           "--set", "run.progress=false", "--set", "data.num_frames=2")
    records = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines() if '"epoch": 2' in line
               or '"epoch":2' in line]
    epochs = [json.loads(line).get("epoch") for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert epochs.count(1) >= 1 and 2 in epochs and records
    assert json.loads((copy / "resume.json").read_text())["step"] == 4


def test_eval_prints_the_protocol_and_metrics(run_cli, run_dir, synth_root):
    result = run_cli("eval", run_dir, "--data", synth_root, "--json")
    metrics = json.loads(result.output)
    assert metrics["protocol"] == "t2v"
    assert 0 <= metrics["R1"] <= metrics["R5"] <= metrics["R10"] <= 100
    table = run_cli("eval", run_dir, "--data", synth_root)
    assert table.output.startswith("protocol t2v:") and "mINP" in table.output


def test_export_writes_a_verified_bundle(run_cli, bundle_dir):
    bundle = load_bundle(bundle_dir)
    roles = {a.role for a in bundle.manifest.artifacts}
    assert {"text_encoder", "video_encoder", "frame_encoder", "weights"} <= roles
    assert bundle.manifest.arch.name == "tiny-test" and bundle.manifest.num_frames == 2


def test_index_is_resumable(run_cli, gallery_dir, synth_root, bundle_dir):
    with Gallery.open(gallery_dir) as gallery:
        n = len(gallery)
    assert n > 0
    again = run_cli("index", synth_root, "--bundle", bundle_dir, "--gallery", gallery_dir)
    assert "added 0 tracklet(s)" in again.output and f"{n} already in the gallery" in again.output


def test_match_json_html_and_camera_filter(run_cli, gallery_dir, bundle_dir, tmp_path):
    result = run_cli("match", "a man in a red jacket walking to the left", "--bundle", bundle_dir,
                    "--gallery", gallery_dir, "-k", 3, "--json")
    payload = json.loads(result.output)
    assert len(payload["results"]) == 3
    scores = [r["score"] for r in payload["results"]]
    assert scores == sorted(scores, reverse=True) and [r["rank"] for r in payload["results"]] == [1, 2, 3]
    camera = payload["results"][0]["camera"]
    only = json.loads(run_cli("match", "person", "--bundle", bundle_dir, "--gallery", gallery_dir, "--camera", camera,
                             "-k", 50, "--json").output)["results"]
    assert only and all(r["camera"] == camera for r in only)
    html = tmp_path / "sheet.html"
    table = run_cli("match", "person walking", "--bundle", bundle_dir, "--gallery", gallery_dir, "--html", html)
    assert "rank" in table.output and html.is_file()
    assert html.read_text().count("data:image/jpeg;base64,") == 10


def test_bad_inputs_give_one_clear_line_and_write_nothing(run_cli, gallery_dir, bundle_dir, tmp_path):
    before = sqlite3.connect(gallery_dir / "gallery.sqlite").execute("select count(*) from tracklet").fetchone()
    cases = [
        (["match", "   ", "--bundle", bundle_dir, "--gallery", gallery_dir], "empty"),
        (["match", "man", "--bundle", bundle_dir, "--gallery", gallery_dir, "--camera", "nope"], "nope"),
        (["match", "man", "--bundle", bundle_dir, "--gallery", tmp_path / "missing"], "missing"),
        (["match", "man", "--bundle", tmp_path / "nobundle", "--gallery", gallery_dir], "nobundle"),
        (["match", "man", "--bundle", bundle_dir, "--gallery", gallery_dir, "--since", "yesterday"], "ISO 8601"),
    ]
    for args, needle in cases:
        result = run_cli(*args, ok=False)
        assert result.exit_code == 2, (args, result.output)
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], (args, result.output)
    after = sqlite3.connect(gallery_dir / "gallery.sqlite").execute("select count(*) from tracklet").fetchone()
    assert before == after
    assert not (tmp_path / "missing").exists()
