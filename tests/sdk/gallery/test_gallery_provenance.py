"""Gallery schema 2: fingerprints, key conflicts, source names, and the in-place upgrade of schema-1 galleries."""
from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from _gallery_reference import unit_rows
from tvreid_sdk.assets import demo_paths
from tvreid_sdk.errors import GalleryConflictError, GalleryCorruptError, GalleryError
from tvreid_sdk.gallery import Gallery, TrackletRecord
from tvreid_sdk.gallery.store import GALLERY_DB
from tvreid_sdk.gallery.provenance import fingerprint, relative_frames

MODEL = "sha256:" + "cd" * 32
DIM = 8


def rec(key, fp, source="siteA", native=None):
    return TrackletRecord(key=key, camera="C1", source=source, frame_paths=(f"{key}.jpg",), fingerprint=fp,
                          native_id=native)


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.create(tmp_path / "g", MODEL, DIM)
    yield g
    g.close()


def _rows(n, seed=0):
    return unit_rows(np.random.default_rng(seed), n, DIM)


def test_same_fingerprint_is_skipped_other_fingerprint_is_a_conflict_and_nothing_is_written(gallery):
    gallery.add([rec("s/a", "f1", native="a"), rec("s/b", "f2")], _rows(2))
    assert gallery.add([rec("s/a", "f1")], _rows(1, 1), skip_existing=True) == ["s/a"]
    with pytest.raises(GalleryConflictError) as info:
        gallery.add([rec("s/c", "f3"), rec("s/b", "OTHER", source="siteB")], _rows(2, 2), skip_existing=True)
    err = info.value
    assert [(c.key, c.stored_source, c.new_source) for c in err.conflicts] == [("s/b", "siteA", "siteB")]
    assert "siteA" in str(err) and "siteB" in str(err) and "'s/b'" in str(err)
    assert not gallery.has("s/c")  # the whole batch was refused
    stored = gallery.get("s/b")
    assert stored.record.fingerprint == "f2"
    assert gallery.get("s/a").record.native_id == "a"


def test_conflict_policies_skip_and_replace(gallery):
    first = _rows(1, 0)
    gallery.add([rec("k", "old")], first)
    assert gallery.add([rec("k", "new")], _rows(1, 5), skip_existing=True, on_conflict="skip") == ["k"]
    np.testing.assert_array_equal(gallery.get("k").embedding, first[0])
    new = _rows(1, 7)
    assert gallery.add([rec("k", "new", source="siteB")], new, skip_existing=True, on_conflict="replace") == []
    entry = gallery.get("k")
    assert entry.record.fingerprint == "new" and entry.record.source == "siteB"
    np.testing.assert_array_equal(entry.embedding, new[0])
    assert len(gallery) == 1
    hits = gallery.search(new, k=1)[0]
    assert hits[0].key == "k" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    gallery.verify(full=True)
    with pytest.raises(GalleryError, match="on_conflict"):
        gallery.add([rec("z", "x")], _rows(1), skip_existing=True, on_conflict="merge")


def test_rows_without_fingerprint_match_any(gallery):
    gallery.add([rec("legacy", None)], _rows(1))
    assert gallery.add([rec("legacy", "anything")], _rows(1, 1), skip_existing=True) == ["legacy"]
    assert gallery.count_without_fingerprint() == 1


def test_source_names_are_stable_unique_and_overridable(gallery, tmp_path):
    a, b = tmp_path / "x" / "synth", tmp_path / "y" / "synth"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    name_a = gallery.source_name(a)
    assert name_a == "synth"
    name_b = gallery.source_name(b)
    assert name_b.startswith("synth-") and len(name_b) == len("synth-") + 6
    assert gallery.source_name(a) == name_a and gallery.source_name(str(b) + "/") == name_b
    assert gallery.source_name(tmp_path / "z" / "cam 3.mp4") == "cam-3"
    assert gallery.source_name(b, requested="site-b") == "site-b"
    assert gallery.source_name(b) == "site-b"  # the location keeps the name it was given
    with pytest.raises(GalleryError, match="source name"):
        gallery.source_name(a, requested="bad/name")


def test_fingerprint_is_order_free_and_frames_are_relative_to_the_root(tmp_path):
    assert fingerprint(a=1, b=[1, 2]) == fingerprint(b=[1, 2], a=1) != fingerprint(a=1, b=[2, 1])
    root = tmp_path / "data"
    assert relative_frames([str(root / "t1" / "f.jpg"), "/elsewhere/g.jpg"], root) == ["t1/f.jpg", "/elsewhere/g.jpg"]


def test_tampered_fingerprint_fails_the_full_check(gallery):
    gallery.add([rec("k", "f1")], _rows(1))
    path = gallery.path / GALLERY_DB
    gallery.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE tracklet SET fingerprint = 'f2'")
    with pytest.raises(GalleryCorruptError, match="extra_crc32"):
        Gallery.open(path.parent, full_check=True)


def test_schema_1_gallery_reads_as_is_and_upgrades_when_opened_for_writing(tmp_path):
    src = demo_paths().gallery
    copy = tmp_path / "demo"
    shutil.copytree(src, copy)
    with Gallery.open(copy, readonly=True) as g:
        assert g.meta.schema_version == 1
        n = len(g)
        key = g.keys()[0]
        assert g.get(key).record.fingerprint is None
        assert g.count_without_fingerprint() == n
    with Gallery.open(copy) as g:
        assert g.meta.schema_version == 2
        g.verify(full=True)  # old rows keep their checksums
        assert g.count_without_fingerprint() == n
        emb = unit_rows(np.random.default_rng(0), 1, g.embed_dim)
        g.add([TrackletRecord(key="new/1", camera="C9", fingerprint="f", native_id="1")], emb)
        assert g.count_without_fingerprint() == n
        assert g.source_name(tmp_path) == tmp_path.name
    with Gallery.open(copy, readonly=True, full_check=True) as g:
        assert g.meta.schema_version == 2 and len(g) == n + 1
        assert g.get("new/1").record.native_id == "1"
    with sqlite3.connect(src / GALLERY_DB) as conn:  # the shipped file itself is untouched
        assert conn.execute("SELECT schema_version FROM meta").fetchone()[0] == 1


def test_open_or_create(tmp_path):
    g1 = Gallery.open_or_create(tmp_path / "g", MODEL, DIM)
    g1.add([rec("a", "f")], _rows(1))
    g2 = Gallery.open_or_create(tmp_path / "g", MODEL, DIM)
    assert g2.keys() == ["a"]
    g1.close()
    g2.close()


def test_a_reader_of_a_schema_1_gallery_sees_fingerprints_once_a_writer_upgrades_it(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(demo_paths().gallery, copy)
    with Gallery.open(copy, readonly=True) as reader:
        assert reader.meta.schema_version == 1
        with Gallery.open(copy) as writer:  # another process in real life: upgrades the file, adds a row
            emb = unit_rows(np.random.default_rng(1), 1, writer.embed_dim)
            writer.add([TrackletRecord(key="w/1", camera="C1", fingerprint="fp", native_id="1")], emb)
        assert reader.get("w/1").record.fingerprint == "fp" and reader.meta.schema_version == 2
        assert reader.stored_identity(["w/1"])["w/1"].fingerprint == "fp"
        assert reader.resolve_key("1") == "w/1"


def test_stream_urls_get_readable_names_and_lose_their_credentials():
    from tvreid_sdk.gallery.provenance import canonical_location, default_source_name

    location = canonical_location("rtsp://admin:secret@cam3.local:554/live?ch=1")
    assert location == "rtsp://cam3.local:554/live?ch=1" and "secret" not in location
    assert default_source_name(location) == "cam3.local-554-live"
    assert default_source_name(canonical_location("http://127.0.0.1:8080/")) == "127.0.0.1-8080"
