"""gallery.merge: shard galleries merge into one exactly (rows as stored), mismatched models are refused before
anything is written, and keys present in both are handled deterministically."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from tvreid_sdk import Gallery
from tvreid_sdk.errors import GalleryConflictError, GalleryError, GalleryModelMismatchError
from tvreid_sdk.gallery import TrackletRecord
from tvreid_sdk.gallery.merge import merge_galleries, merge_into

DIM = 16


def unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def record(i: int, fp: str = "same", source: str = "/data/synth") -> TrackletRecord:
    return TrackletRecord(key=f"synth/{i:04d}", camera=f"C{i % 3 + 1}", start_time=1.7e9 + i, end_time=1.7e9 + i + 2,
                          source=source, frame_paths=(f"{source}/{i}/a.jpg",), thumbnail=b"\xff\xd8jpeg",
                          person_id=str(i % 5), caption="a person", native_id=f"{i:04d}", fingerprint=f"{fp}-{i}")


def make(path, keys, seed=0, model="m1", dim=DIM, fp="same", source="/data/synth") -> None:
    with Gallery.create(path, model_id=model, embed_dim=dim) as g:
        g.source_name(source)  # registers "synth"
        if keys:
            vecs = unit(len(keys), seed) if dim == DIM else unit(len(keys), seed)[:, :1].repeat(dim, 1)
            g.add([record(i, fp, source) for i in keys], vecs / np.linalg.norm(vecs, axis=1, keepdims=True))


def rows(path) -> dict:
    """Every stored column but the rowid, by key (what a merge must preserve)."""
    conn = sqlite3.connect(path / "gallery.sqlite")
    try:
        out = {r[0]: r for r in conn.execute("SELECT key, camera, start_time, end_time, person_id, meta_crc32, crc32, "
                                             "embedding, created, source, frame_paths, caption, extra_crc32, "
                                             "thumbnail, native_id, fingerprint FROM tracklet")}
        sources = set(conn.execute("SELECT name, location FROM source"))
    finally:
        conn.close()
    return {"rows": out, "sources": sources}


def test_shard_galleries_merge_into_the_union_with_every_column_as_stored(tmp_path):
    make(tmp_path / "s0", [0, 2, 4, 6], seed=1)
    make(tmp_path / "s1", [1, 3, 5], seed=2)
    report, total = merge_into(tmp_path / "all", [tmp_path / "s0", tmp_path / "s1"])
    assert total == 7 and report.added == 7 and [s.added for s in report.sources] == [4, 3]
    merged, parts = rows(tmp_path / "all"), [rows(tmp_path / "s0"), rows(tmp_path / "s1")]
    assert merged["rows"] == {**parts[0]["rows"], **parts[1]["rows"]}  # bytes, checksums, created, provenance
    assert merged["sources"] == {("synth", "/data/synth")}
    with Gallery.open(tmp_path / "all", readonly=True, full_check=True) as g:
        hit = g.search(g.get("synth/0003").embedding, k=1)[0][0]
        assert hit.key == "synth/0003" and g.resolve_key("0003") == "synth/0003"


def test_a_rerun_skips_what_is_there_and_a_conflict_is_resolved_by_policy(tmp_path):
    make(tmp_path / "a", [0, 1, 2], seed=1)
    make(tmp_path / "b", [2, 3], seed=2, fp="other")  # key synth/0002 holds another tracklet
    merge_into(tmp_path / "out", [tmp_path / "a"])
    again, _ = merge_into(tmp_path / "out", [tmp_path / "a"])
    assert again.added == 0 and again.sources[0].skipped_existing == 3
    before = rows(tmp_path / "out")
    with pytest.raises(GalleryConflictError, match="synth/0002.*nothing of it was merged"):
        merge_into(tmp_path / "out", [tmp_path / "b"])
    assert rows(tmp_path / "out") == before  # the source's transaction rolled back: synth/0003 not added either
    skip, total = merge_into(tmp_path / "out", [tmp_path / "b"], on_conflict="skip")
    assert (skip.added, skip.sources[0].conflicts_skipped, total) == (1, 1, 4)
    assert rows(tmp_path / "out")["rows"]["synth/0002"] == before["rows"]["synth/0002"]
    replace, total = merge_into(tmp_path / "out", [tmp_path / "b"], on_conflict="replace")
    assert (replace.sources[0].replaced, replace.sources[0].skipped_existing, total) == (1, 1, 4)
    assert rows(tmp_path / "out")["rows"]["synth/0002"] == rows(tmp_path / "b")["rows"]["synth/0002"]
    with Gallery.open(tmp_path / "out", readonly=True) as g:
        assert len(g.snapshot()) == 4  # the cache dropped the replaced row


def test_mismatched_models_are_refused_before_anything_is_written(tmp_path):
    make(tmp_path / "a", [0, 1], model="m1")
    make(tmp_path / "b", [2], model="m2")
    make(tmp_path / "c", [3], dim=32)
    for bad in ("b", "c"):
        with pytest.raises(GalleryModelMismatchError, match="only galleries of the same model.*nothing was merged"):
            merge_into(tmp_path / f"new-{bad}", [tmp_path / "a", tmp_path / bad])
        assert not (tmp_path / f"new-{bad}").exists()  # not even created
    merge_into(tmp_path / "out", [tmp_path / "a"])
    with pytest.raises(GalleryModelMismatchError, match="'m2'"):
        merge_into(tmp_path / "out", [tmp_path / "b"])
    assert len(rows(tmp_path / "out")["rows"]) == 2


def test_a_name_the_target_gives_another_location_is_kept_and_reported(tmp_path):
    make(tmp_path / "a", [0], source="/data/synth")
    make(tmp_path / "b", [7], source="/elsewhere/synth")  # also registered as "synth" in its own gallery
    report, total = merge_into(tmp_path / "out", [tmp_path / "a", tmp_path / "b"])
    assert total == 2 and report.sources[1].name_clashes == ["synth"] and "kept as the target" in report.summary()
    assert rows(tmp_path / "out")["sources"] == {("synth", "/data/synth")}


def test_a_gallery_is_not_merged_into_itself_nor_into_a_read_only_one(tmp_path):
    make(tmp_path / "a", [0])
    with Gallery.open(tmp_path / "a") as g:
        with pytest.raises(GalleryError, match="target gallery itself"):
            merge_galleries(g, [tmp_path / "a"])
    with Gallery.open(tmp_path / "a", readonly=True) as g:
        with pytest.raises(GalleryError, match="read-only"):
            merge_galleries(g, [tmp_path / "a"])
    with pytest.raises(GalleryError, match="at least one"):
        merge_into(tmp_path / "x", [])
