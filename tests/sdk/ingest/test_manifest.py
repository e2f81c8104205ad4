"""ingest.manifest: rows round-trip through JSONL and Parquet, bad rows are named, and a manifest gives the records
(hence keys, native ids and fingerprints) that indexing the source itself gives."""
from __future__ import annotations

import json

import pytest

from tvreid_sdk import Gallery
from tvreid_sdk.assets import demo_paths
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import ConfigError, DatasetFormatError
from tvreid_sdk.ingest import (ManifestRow, discover_tracklet_folders, group_by_source, identify_records,
                               read_manifest, write_manifest)


@pytest.fixture(scope="module")
def source(tmp_path_factory, write_tracklets):
    return write_tracklets(tmp_path_factory.mktemp("manifest") / "cams", 7, frames=3)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_rows_round_trip(tmp_path, source, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    records = discover_tracklet_folders(source)
    extra = ManifestRow(key="v1", camera="gate", source=str(source), video=str(source / "a.mp4"), track_id="17",
                        start=1.7e9, end=1.7e9 + 4.5)
    path = tmp_path / f"m{suffix}"
    assert write_manifest([*records, extra], path) == len(records) + 1
    rows = read_manifest(path)
    assert rows[-1] == extra
    assert [r.to_record() for r in rows[:-1]] == records
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_a_manifest_gives_the_keys_and_fingerprints_of_its_source(tmp_path, source):
    manifest = load_bundle(demo_paths().bundle).manifest
    path = tmp_path / "m.jsonl"
    write_manifest(discover_tracklet_folders(source), path)
    groups, duplicates = group_by_source(read_manifest(path))
    assert list(groups) == [str(source)] and duplicates == []
    with Gallery.create(tmp_path / "g", model_id=manifest.model_id, embed_dim=manifest.arch.output_dim) as g:
        direct = identify_records(g, discover_tracklet_folders(source), source=source, manifest=manifest)
        via = identify_records(g, groups[str(source)], source=str(source), manifest=manifest)
    assert direct == via
    assert direct[1][0].key == f"cams/{direct[1][0].native_id}" and direct[1][0].fingerprint


def test_relative_paths_are_taken_from_the_manifest_folder_and_repeats_are_dropped(tmp_path, source):
    lines = [{"key": "a", "camera": "C1", "source": "data", "frames": ["data/a/1.jpg"]},
             {"key": "a", "camera": "C1", "source": str(tmp_path / "data"), "frames": ["data/a/2.jpg"]},
             {"key": "b", "camera": "C2", "source": "other", "frames": ["/abs/b.jpg"]}]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    rows = read_manifest(path)
    assert rows[0].source == str(tmp_path / "data") and rows[0].frames == (str(tmp_path / "data/a/1.jpg"),)
    assert rows[2].frames == ("/abs/b.jpg",)
    groups, duplicates = group_by_source(rows)
    assert duplicates == ["a"]  # same source root and key: the first row wins
    assert [[r.key for r in recs] for recs in groups.values()] == [["a"], ["b"]]
    assert groups[str(tmp_path / "data")][0].frame_paths == (str(tmp_path / "data/a/1.jpg"),)


@pytest.mark.parametrize("row, problem", [
    ({"camera": "C1", "source": "s", "frames": ["f.jpg"]}, "'key' must be a non-empty string"),
    ({"key": "a", "camera": "", "source": "s", "frames": ["f.jpg"]}, "'camera' must be a non-empty string"),
    ({"key": "a", "camera": "C1", "source": "s", "frames": "f.jpg"}, "'frames' must be a list"),
    ({"key": "a", "camera": "C1", "source": "s"}, "either 'frames' or 'video'"),
    ({"key": "a", "camera": "C1", "source": "s", "video": "v.mp4"}, "needs its 'track_id'"),
    ({"key": "a", "camera": "C1", "source": "s", "frames": ["f"], "start": "noon"}, "Unix seconds"),
    (["not", "an", "object"], "not an object"),
])
def test_a_bad_row_is_named_by_its_line(tmp_path, row, problem):
    path = tmp_path / "m.jsonl"
    good = {"key": "ok", "camera": "C1", "source": "s", "frames": ["f.jpg"]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DatasetFormatError, match=f"line 2: .*{problem}"):
        read_manifest(path)


def test_unreadable_manifests_say_what_to_do(tmp_path):
    (tmp_path / "m.jsonl").write_text("{not json\n")
    with pytest.raises(DatasetFormatError, match="line 1: not JSON"):
        read_manifest(tmp_path / "m.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DatasetFormatError, match="no rows"):
        read_manifest(tmp_path / "e.jsonl")
    (tmp_path / "m.csv").write_text("key,camera\n")
    with pytest.raises(ConfigError, match=r"\.jsonl or \.parquet"):
        read_manifest(tmp_path / "m.csv")
    with pytest.raises(ConfigError, match=r"\.jsonl or \.parquet"):
        write_manifest([], tmp_path / "m.csv")
    with pytest.raises(ConfigError, match="tvreid manifest"):
        read_manifest(tmp_path / "missing.jsonl")


def test_a_video_row_is_refused_by_frame_indexing_with_the_command_to_use():
    row = ManifestRow(key="v", camera="gate", source="/s", video="/s/a.mp4", track_id="3")
    with pytest.raises(ConfigError, match="tvreid ingest"):
        row.to_record()


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.split(".")[0] == "pyarrow":
            raise ImportError("blocked")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ConfigError, match=r"'pyarrow'.*tvreid\[scale\]"):
        write_manifest([], tmp_path / "m.parquet")
