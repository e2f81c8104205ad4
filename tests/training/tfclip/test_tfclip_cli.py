"""`tvreid train` dispatches a tfclip recipe to the TF-CLIP loop; resume and `tvreid eval` (mars protocol)."""
import json
import shutil

from click.testing import CliRunner
from safetensors import safe_open

from cli.main import cli
from training.data import DATASETS

FAST = ["--set", "optim.epochs=1", "--set", "run.eval_every=1", "--set", "data.num_frames=2"]


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_train_resume_and_eval_a_tfclip_run(tiny_mars, tmp_path, one_thread):
    root, run = tiny_mars[0], tmp_path / "run"
    result = _invoke("train", "tfclip_synthetic_tiny", "--data", root, "--out", run, *FAST)
    assert result.exit_code == 0, result.output
    assert "CLIP-Memory: 4 identities x 32" in result.output
    with safe_open(str(run / "last.safetensors"), framework="pt") as fh:
        meta, keys = fh.metadata(), set(fh.keys())
    assert json.loads(meta["tvreid_arch"])["family"] == "tfclip" and meta["tvreid_num_frames"] == "2"
    tf = json.loads(meta["tvreid_tfclip"])
    assert tf["num_classes"] == 4 and tf["num_cameras"] == 6 and tf["data"]["dataset"] == "mars"
    data = DATASETS.get("mars")(str(root), on_missing="fail")
    cams = {t.camid for split in (data.train, data.query, data.gallery) for t in split}
    assert tf["camera_index"] == {f"C{c + 1}": c for c in sorted(cams)}  # label (as `tvreid index` names it) -> SIE
    assert {"sie", "memory", "tmd.blocks.0.message_fc.weight", "ssp.out_proj.1.weight"} <= keys
    assert not any(k.startswith("text.") for k in keys)  # TF-CLIP has no text tower
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and "test_mAP" in record and "i2m_loss" in record

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    again = _invoke("train", "tfclip_synthetic_tiny", "--data", root, "--out", copy, "--resume",
                    "--set", "optim.epochs=2", "--set", "run.eval_every=1", "--set", "data.num_frames=2")
    assert again.exit_code == 0, again.output
    assert f"resumed from {copy} at epoch 1" in again.output and "CLIP-Memory" not in again.output
    epochs = [json.loads(line)["epoch"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]

    evaluated = _invoke("eval", run, "--data", root, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.output)
    assert metrics["protocol"] == "mars" and 0 <= metrics["R1"] <= metrics["R5"] <= metrics["R20"] <= 100
    table = _invoke("eval", run, "--data", root)
    assert table.output.startswith("protocol mars:") and "R20" in table.output and "mINP" not in table.output


def test_a_dmca_arch_in_a_tfclip_recipe_is_one_clear_error(tiny_mars, tmp_path):
    result = _invoke("train", "tfclip_synthetic_tiny", "--data", tiny_mars[0], "--out", tmp_path / "r",
                     "--set", "model.arch=tiny-test")
    assert result.exit_code == 2 and "tiny-tfclip" in result.output
