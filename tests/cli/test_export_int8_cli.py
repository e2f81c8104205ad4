"""``tvreid export --int8 [--calib SOURCE] [--calib-items N]`` on the demo model."""
from __future__ import annotations

import json


def test_export_int8_calibrated_on_a_dataset(run_cli, synth_root, tmp_path):
    out = tmp_path / "demo-int8"
    result = run_cli("export", "--int8", "--calib", synth_root, "--calib-items", 5, "--no-fused", "--out", out, "-q")
    assert "video_encoder.int8.onnx" in result.output and "FAIL" not in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    calib = manifest["export"]["int8"]["calibration"]
    assert calib["source"].startswith(f"{synth_root} (tvmars): 5 tracklets, 5 captions")
    assert calib["items"] == {"text_encoder": 5, "video_encoder": 5, "frame_encoder": 5}
    assert {a["path"] for a in manifest["artifacts"] if a["precision"] == "int8"} == {
        "text_encoder.int8.onnx", "video_encoder.int8.onnx", "frame_encoder.int8.onnx"}


def test_calib_without_int8_is_refused(run_cli, synth_root, tmp_path):
    result = run_cli("export", "--calib", synth_root, "--out", tmp_path / "x", "-q", ok=False)
    assert result.exit_code != 0 and "--calib only applies to --int8" in result.output
    assert not (tmp_path / "x").exists()
