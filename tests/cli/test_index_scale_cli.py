"""`tvreid manifest`, `tvreid index MANIFEST`, `tvreid index --shard I/N` and `tvreid gallery merge`: every way to
index one source stores the same gallery (keys, provenance, embeddings bit for bit); bad options are one line."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tvreid_sdk import Gallery
from tvreid_sdk.assets import demo_paths

INDEX = ("--bundle", demo_paths().bundle, "--backend", "ort-cpu", "-q")


@pytest.fixture(scope="module")
def source(tmp_path_factory, write_tracklets):
    return write_tracklets(tmp_path_factory.mktemp("scale-cli") / "cams", 40, frames=3, seed=4)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, run_cli):
    out = tmp_path_factory.mktemp("scale-cli") / "ref"
    run_cli("index", source, "--gallery", out, *INDEX)
    return out


def stored(path) -> dict:
    with Gallery.open(path, readonly=True) as g:
        assert len(set(g.keys())) == len(g)
        return {k: (g.get(k).record, g.get(k).embedding) for k in g.keys()}


def assert_same(got, want):
    got, want = stored(got), stored(want)
    assert sorted(got) == sorted(want)
    for key, (record, emb) in want.items():
        assert got[key][0] == record and np.array_equal(got[key][1], emb), key


def one_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_indexing_a_manifest_stores_what_indexing_its_source_stores(tmp_path, run_cli, source, reference, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    manifest = tmp_path / f"m{suffix}"
    result = run_cli("manifest", source, "--out", manifest)
    assert f"wrote 40 tracklet(s) of folders {source}" in result.output
    result = run_cli("index", manifest, "--gallery", tmp_path / "g", *INDEX)
    assert "added 40 tracklet(s)" in result.output and "(source 'cams')" in result.output
    assert_same(tmp_path / "g", reference)
    again = run_cli("index", manifest, "--gallery", tmp_path / "g", *INDEX)
    assert "added 0 tracklet(s), 40 already in the gallery" in again.output


def test_shards_into_galleries_of_their_own_merge_into_the_full_gallery(tmp_path, run_cli, source, reference):
    counts = []
    for i in range(3):
        out = run_cli("index", source, "--gallery", tmp_path / f"s{i}", "--shard", f"{i}/3", *INDEX).output
        counts.append(int(out.split("added ")[1].split()[0]))
        assert f"shard {i}/3" in out
    assert sum(counts) == 40 and all(counts)
    merged = run_cli("gallery", "merge", tmp_path / "all", *[tmp_path / f"s{i}" for i in range(3)]).output
    assert "merged 40 tracklet(s)" in merged and "(40 in all)" in merged
    assert_same(tmp_path / "all", reference)
    for i in range(3):  # the same shards into one gallery: the same gallery again
        run_cli("index", source, "--gallery", tmp_path / "one", "--shard", f"{i}/3", *INDEX)
    assert_same(tmp_path / "one", reference)
    listed = run_cli("manifest", source, "--out", tmp_path / "s1.jsonl", "--shard", "1/3").output
    assert f"wrote {counts[1]} tracklet(s)" in listed


def test_merge_refuses_another_model_in_one_line(tmp_path, run_cli, reference):
    with Gallery.create(tmp_path / "other", model_id="another-model", embed_dim=64):
        pass
    one_line(run_cli("gallery", "merge", tmp_path / "out", reference, tmp_path / "other", ok=False),
             "another-model", "only galleries of the same model can be merged")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, needles", [
    (["--shard", "3/3"], ["shard 3/3 does not exist", "0/3 .. 2/3"]),
    (["--shard", "one"], ["--shard 'one'", "I/N"]),
    (["--address", "auto"], ["--address only apply with --ray"]),
    (["--actors", "2", "--gpus-per-actor", "1"], ["--actors, --gpus-per-actor only apply with --ray"]),
])
def test_bad_scale_options_are_one_line(tmp_path, run_cli, source, args, needles):
    one_line(run_cli("index", source, "--gallery", tmp_path / "g", *INDEX, *args, ok=False), *needles)
    assert not (tmp_path / "g").exists()


def test_a_bad_manifest_is_one_line_naming_the_row(tmp_path, run_cli):
    bad = tmp_path / "m.jsonl"
    bad.write_text(json.dumps({"key": "a", "camera": "C1", "source": "s"}) + "\n")
    one_line(run_cli("index", bad, "--gallery", tmp_path / "g", *INDEX, ok=False), "line 1", "'frames' or 'video'")
    rows = [{"key": k, "camera": "C1", "source": src, "frames": ["f.jpg"]} for k, src in (("a", "s1"), ("b", "s2"))]
    two = tmp_path / "two.jsonl"
    two.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one_line(run_cli("index", two, "--gallery", tmp_path / "g", "--source-name", "x", *INDEX, ok=False),
             "--source-name names one source", "2 source roots")
