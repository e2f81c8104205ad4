"""``tvreid bench --quick`` on the tiny-test model: JSON schema, rows per backend, ratios, markdown, train step."""
import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.bench_cmd import bench, parse_counts
from cli.main import _Group
from tvreid_sdk.bench import validate_report
from tvreid_sdk.cpuinfo import host_cpu
from tvreid_sdk.errors import ConfigError


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture
def keep_torch_threads():
    """--threads changes torch's process-wide setting; put it back for the other tests."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _invoke(args):
    group = _Group()
    group.add_command(bench)
    return CliRunner().invoke(group, ["bench", *args])


@pytest.fixture(scope="module")
def quick_run(bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = _invoke(["--quick", "--bundle", str(bundle), "--backends", "ort-cpu,torch", "--matchers",
                      "numpy,onnxruntime,faiss", "--gallery-sizes", "2e3,5e3", "--json", str(out / "b.json"),
                      "--markdown", str(out / "b.md"), "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads((out / "b.json").read_text()), (out / "b.md").read_text(), result.output


def test_quick_json_has_the_shared_schema(quick_run):
    report, _, stdout = quick_run
    assert stdout == ""  # --quiet
    assert validate_report(report) == []
    assert report["tool"] == "tvreid-bench" and report["version"]
    assert report["device"]["kind"] == "cpu" and report["device"]["name"]
    assert "numpy" in report["versions"] and "onnxruntime" in report["versions"]
    assert report["bundle"]["arch"] == "tiny-test" and report["bundle"]["num_frames"] == 4
    assert report["command"].startswith("tvreid bench --bundle ")
    assert "--gallery-sizes 2e3,5e3" in report["command"] and report["command"].endswith("--quick --quiet")
    for row in report["rows"]:
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert {"task", "backend", "precision", "device", "mean_ms", "reps"} <= set(row)


def test_quick_rows_per_backend_with_ratios(quick_run):
    report, markdown, _ = quick_run
    rows = report["rows"]
    paths = [("ort-cpu", "fp32"), ("torch", "fp32")] + ([("torch", "bf16")] if host_cpu().has_bf16 else [])
    text = [(r["backend"], r["precision"], r["batch"]) for r in rows if r["task"] == "text_encode"]
    assert text == [(*p, n) for p in paths for n in (1, 4)]  # --quick text batches 1,4
    assert [(r["backend"], r["precision"], r["batch"]) for r in rows if r["task"] == "video_embed"] == [
        (*p, n) for p in paths for n in (1, 2)]
    match = [(r["backend"], r["gallery_size"], r["queries"]) for r in rows if r["task"] == "match"]
    matchers = ("numpy", "onnxruntime") + (("faiss-flat-ip",) if importlib.util.find_spec("faiss") else ())
    assert match == [(b, n, q) for n in (2000, 5000) for b in matchers for q in (1, 4)]
    assert all(r["copy_gb_per_s"] > 0 and r["bandwidth_fraction"] > 0 for r in rows if r["task"] == "match")
    for r in rows:
        if r["task"] in ("text_encode", "video_embed", "text_query"):
            assert r["speedup_vs"]["torch-fp32"] > 0
    assert "× torch-fp32" in markdown and "**Not measured**" in markdown
    assert "× best torch, same class" in markdown and "matrix features" in markdown
    assert report["device"]["matrix_features"] == list(host_cpu().matrix_features)


def test_quick_run_records_what_it_could_not_measure(quick_run):
    report, markdown, _ = quick_run
    reasons = {(s["task"], s["backend"]): s["reason"] for s in report["skipped"]}
    if importlib.util.find_spec("faiss") is None:
        assert "pip install faiss-cpu" in reasons[("match", "faiss-flat-ip")]
    if report["device"]["kind"] == "cpu":
        assert "CUDA" in reasons[("encoders", "torch")]
        assert any("no CUDA GPU in this run" in n for n in report["notes"])
        assert "no CUDA GPU in this run" in markdown


def test_generated_bundle_and_train_step(tmp_path, keep_torch_threads):
    out = tmp_path / "train.json"
    result = _invoke(["--quick", "--arch", "tiny-test", "--keep-bundle", str(tmp_path / "b"), "--tasks",
                      "text_encode", "--backends", "ort-cpu", "--train", "--train-arch", "tiny-test", "--threads", "1",
                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "manifest.json").is_file()  # reusable with --bundle
    report = json.loads(out.read_text())
    assert validate_report(report) == []
    assert [r["task"] for r in report["rows"]] == ["text_encode", "text_encode", "train_step"]
    train = report["rows"][-1]
    assert (train["backend"], train["batch"], train["frames_per_tracklet"], train["reps"]) == ("torch-eager", 2, 8, 2)
    assert train["tracklets_per_s"] == pytest.approx(2 / (train["p50_ms"] / 1e3))
    assert train["flops_per_step"] > 1e6 and train["achieved_tflops"] > 0
    assert set(train["last_losses"]) == {"msc_loss", "vtc_loss"}
    if train["device"] == "cpu":
        assert train["mfu"] is None and train["peak_memory_kind"] == "process_peak_rss"
    assert report["device"]["torch_threads"] == 1
    assert "Training step" in result.output and "199.5" in result.output  # anchor shown, labelled as not measured


def test_parse_counts_accepts_scientific_notation():
    assert parse_counts("1e5, 1e6,32", "--x") == (100_000, 1_000_000, 32)
    for bad in ("1.5", "0", "abc", "1e5,,2"):
        with pytest.raises(ConfigError, match="positive whole number"):
            parse_counts(bad, "--gallery-sizes")


def test_bad_options_exit_2_with_one_clear_line(bundle):
    result = _invoke(["--quick", "--bundle", str(bundle), "--gallery-sizes", "1e5,x"])
    assert result.exit_code == 2
    assert "error: --gallery-sizes '1e5,x': 'x' is not a positive whole number" in result.output
    result = _invoke(["--quick", "--bundle", str(bundle), "--backends", "nope"])
    assert result.exit_code == 2 and "unknown backend 'nope'" in result.output


def test_a_failing_train_step_is_recorded_and_fails_the_command(tmp_path):
    out = tmp_path / "fail.json"
    result = _invoke(["--train-only", "--train-arch", "tiny-test", "--train-set", "model.losses=vtc+bogus",
                      "--json", str(out), "--quiet"])
    assert result.exit_code == 1
    assert "the training-step benchmark failed: RegistryKeyError: unknown loss 'bogus'" in result.output
    report = json.loads(out.read_text())  # the report is still written
    assert report["rows"] == []
    assert report["skipped"][0]["task"] == "train_step" and "bogus" in report["skipped"][0]["reason"]


@pytest.mark.parametrize("arch, frames, dim, text", [("tiny-cffa", 1, 192, True), ("tiny-tfclip", 4, 160, False)])
def test_generated_bundle_follows_the_family(tmp_path, arch, frames, dim, text):
    out = tmp_path / "b.json"
    result = _invoke(["--quick", "--arch", arch, "--tasks", "text_encode,video_embed", "--backends", "ort-cpu",
                      "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["bundle"]["arch"], report["bundle"]["num_frames"], report["bundle"]["embed_dim"]) == \
        (arch, frames, dim)
    tasks = [r["task"] for r in report["rows"]]
    assert tasks.count("video_embed") == 2 and tasks.count("text_encode") == (2 if text else 0)
    if not text:  # a family without a text encoder is reported as such, not as a failure
        assert [(s["task"], s["reason"]) for s in report["skipped"]] == [
            ("text_encode", "the tfclip family (video-to-video) has no text encoder")]


def test_cpu_default_is_sized_for_the_machine_and_full_keeps_the_sweep(bundle, tmp_path):
    """Without --quick or --full a CPU run takes the small CPU preset; --full the whole sweep. Progress goes to
    stderr, one line per stage with the time left, then the total."""
    runs = {}
    for flag in ([], ["--full"]):
        out = tmp_path / f"r{len(flag)}.json"
        result = _invoke(["--bundle", str(bundle), "--device", "cpu", "--tasks", "text_encode", "--backends",
                          "ort-cpu", "--json", str(out), *flag])
        assert result.exit_code == 0, result.output
        runs[bool(flag)] = json.loads(out.read_text())
        assert "[1/1] encoders: ort-cpu fp32 on cpu (0:00 so far, about " in result.stderr
        assert "benchmark done in " in result.stderr and "[1/1]" not in result.stdout
    assert [r["batch"] for r in runs[False]["rows"]] == [1]  # CPU preset: text batch 1
    assert [r["batch"] for r in runs[True]["rows"]] == [1, 8, 64]
