"""``tvreid synth``: a readable summary, a dataset its loader reads, clear errors for bad options."""
from training.data import DATASETS
from training.data.detect import detect_format


def test_synth_writes_a_loadable_dataset_and_says_what_it_wrote(run_cli, tmp_path):
    out = tmp_path / "mars"
    result = run_cli("synth", "--out", out, "--ids", 6, "--format", "mars", "--image-size", "32x16")
    first = result.output.splitlines()[0]
    assert first.startswith(f"wrote mars dataset {out}: 6 identities") and "frames of 32x16" in first
    assert detect_format(out) == "mars"
    data = DATASETS.get("mars")(str(out))
    reported = {line.split()[0]: int(line.split()[3]) for line in result.output.splitlines()[1:]}  # tracklets
    assert reported["train"] == len(data.train) and reported["query"] == len(data.query)


def test_bad_image_size_is_one_clear_error(run_cli, tmp_path):
    result = run_cli("synth", "--out", tmp_path / "x", "--image-size", "big", ok=False)
    assert result.exit_code == 2 and "write HEIGHTxWIDTH" in result.output
    assert not (tmp_path / "x").exists()
