"""Every user-facing failure of the ``tvreid`` CLI is one ``error:`` line that names the problem and the next step.

Pass criterion (issue 8 item 8), for each error path reachable from the CLI: exit status 2, no traceback, nothing
on stdout, exactly one line on stderr, starting with ``error:``, containing the offending thing (path, value, option)
and an imperative next step (``re-export``, ``use``, ``pass``, ``run``, ``create``, ``choose``...).

Every case must meet the criterion: exit 2, one `error:` line naming the offending thing, and a next step.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

from tvreid_sdk import Gallery, TrackletRecord
from tvreid_sdk.bundle import load_bundle

NEXT_STEP = re.compile(
    r"\b(re-?export|re-?index|re-?extract|re-?save|rebuild|upgrade|use|pass|run|create|build|install|describe|"
    r"write|choose|give|check|shorten|swap|fix|drop|point|add|remove|rename|convert|select|delete|try)\b",
    re.IGNORECASE)


class Case(NamedTuple):
    args: Callable[[dict], list]  # env -> CLI arguments
    names: Callable[[dict], list[str]]  # env -> substrings the line must contain


@pytest.fixture(scope="module")
def env(tiny_bundle, tmp_path_factory, write_frames) -> dict:
    """Paths every case may use: a good bundle and gallery, damaged copies, a tracklet folder with a bad frame."""
    import shutil

    root = tmp_path_factory.mktemp("error-messages")
    model_id = load_bundle(tiny_bundle).manifest.model_id
    gallery = root / "gallery"
    with Gallery.create(gallery, model_id=model_id, embed_dim=32) as g:
        g.add([TrackletRecord(key="k1", camera="C1", start_time=1.0, end_time=2.0)],
              np.full((1, 32), 32 ** -0.5, np.float32))
    other_gallery = root / "other-gallery"
    Gallery.create(other_gallery, model_id="another-model", embed_dim=32).close()

    corrupt = Path(shutil.copytree(tiny_bundle, root / "corrupt-bundle"))
    graph = corrupt / "text_encoder.onnx"  # the graph a text query reads (graphs are hashed when first used)
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))

    future = Path(shutil.copytree(tiny_bundle, root / "future-bundle"))
    manifest = json.loads((future / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (future / "manifest.json").write_text(json.dumps(manifest))

    frames = root / "frames"
    write_frames(frames / "t1", 3)
    bad = frames / "t1" / "f001x.jpg"
    bad.write_bytes(b"not a jpeg at all, just text\n")
    empty_dir = root / "empty-dir"
    empty_dir.mkdir()
    return {"bundle": tiny_bundle, "gallery": gallery, "other_gallery": other_gallery, "corrupt": corrupt,
            "corrupt_file": graph, "future": future, "frames": frames, "bad_frame": bad, "empty": empty_dir,
            "root": root, "model_id": model_id}


def match(e, *extra, text="a man in a red coat", bundle="bundle", gallery="gallery"):
    bpath = e[bundle] if bundle in e else e["root"] / bundle
    gpath = e[gallery] if gallery in e else e["root"] / gallery
    return ["match", text, "--bundle", bpath, "--gallery", gpath, "--backend", "ort-cpu", *extra]


def train(e, *extra, data="empty"):
    dpath = e[data] if data in e else e["root"] / data
    return ["train", "synthetic_tiny", "--data", dpath, "--out", e["root"] / "run", *extra]


CASES = [
    pytest.param(Case(lambda e: match(e, bundle="no-such-bundle"), lambda e: [str(e["root"] / "no-such-bundle")]),
                 id="missing-bundle"),
    pytest.param(Case(lambda e: match(e, bundle="corrupt"), lambda e: [str(e["corrupt_file"])]), id="corrupt-bundle"),
    pytest.param(Case(lambda e: match(e, bundle="future"), lambda e: ["manifest.json", "schema_version 99"]),
                 id="unknown-schema"),
    pytest.param(Case(lambda e: match(e, gallery="no-such-gallery"), lambda e: [str(e["root"] / "no-such-gallery")]),
                 id="missing-gallery"),
    pytest.param(Case(lambda e: match(e, gallery="other_gallery"), lambda e: ["another-model", e["model_id"]]),
                 id="gallery-model-mismatch"),
    pytest.param(Case(lambda e: match(e, text="  \t "), lambda e: ["query is empty"]), id="empty-query"),
    pytest.param(Case(lambda e: match(e, "--camera", "C9"), lambda e: ["'C9'", "C1"]), id="unknown-camera"),
    pytest.param(Case(lambda e: match(e, "--since", "yesterday"), lambda e: ["--since", "'yesterday'"]),
                 id="bad-since"),
    pytest.param(Case(lambda e: match(e, "--since", "2024-05-02T00:00:00", "--until", "2024-05-01T00:00:00"),
                      lambda e: ["since", "until"]), id="since-after-until"),
    pytest.param(Case(lambda e: match(e)[:-1] + ["tensorflow"], lambda e: ["'tensorflow'", "ort-cpu"]),
                 id="unknown-backend"),
    pytest.param(Case(lambda e: ["index", e["frames"], "--bundle", e["bundle"], "--gallery", e["root"] / "g-idx",
                                 "--backend", "ort-cpu", "--on-bad-frame", "fail"],
                      lambda e: [str(e["bad_frame"]), "frame 2"]), id="corrupt-frame"),
    pytest.param(Case(lambda e: ["index", e["empty"], "--bundle", e["bundle"], "--gallery", e["root"] / "g-empty"],
                      lambda e: [str(e["empty"])]), id="index-source-without-tracklets"),
    pytest.param(Case(lambda e: ["index", e["root"] / "no-such-source", "--bundle", e["bundle"], "--gallery",
                                 e["root"] / "g-none"], lambda e: [str(e["root"] / "no-such-source")]),
                 id="index-missing-source"),
    pytest.param(Case(lambda e: ["export", e["root"] / "no-such-ckpt", "--out", e["root"] / "out"],
                      lambda e: [str(e["root"] / "no-such-ckpt")]), id="export-missing-checkpoint"),
    pytest.param(Case(lambda e: train(e, "--set", "nope"), lambda e: ["'nope'"]), id="override-without-equals"),
    pytest.param(Case(lambda e: train(e, "--set", "optim.nope=1"), lambda e: ["nope"]), id="override-unknown-key"),
    pytest.param(Case(lambda e: train(e, "--set", "optim.lr=abc"), lambda e: ["lr", "'abc'"]),
                 id="override-wrong-type"),
    pytest.param(Case(lambda e: ["train", "no_such_recipe", "--data", e["empty"], "--out", e["root"] / "run"],
                      lambda e: ["'no_such_recipe'", "synthetic_tiny"]), id="unknown-recipe"),
    pytest.param(Case(lambda e: train(e, data="no-such-data"), lambda e: [str(e["root"] / "no-such-data")]),
                 id="train-missing-dataset-dir"),
    pytest.param(Case(lambda e: train(e), lambda e: [str(e["empty"])]), id="train-dataset-dir-wrong-layout"),
]


@pytest.mark.parametrize("case", CASES)
def test_cli_error_is_one_actionable_line(run_cli, env, case):
    result = run_cli(*case.args(env))
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    line = lines[0]
    missing = [name for name in case.names(env) if name not in line]
    assert missing == [], f"{line!r} does not name {missing}"
    assert NEXT_STEP.search(line.removeprefix("error: ")), f"no next step in {line!r}"


def test_next_step_pattern_is_not_trivially_true():
    assert NEXT_STEP.search("re-export the bundle") and NEXT_STEP.search("choose one of: a, b")
    assert not NEXT_STEP.search("unknown camera(s) 'C9' in the search filter; cameras in this gallery: C1")
    assert not NEXT_STEP.search("OptimSection.lr must be a number, got 'abc'")
