"""Gallery store: create/open/add/get/delete, validation errors, persistence and integrity checks."""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from _gallery_reference import unit_rows
from tvreid_sdk.errors import GalleryCorruptError, GalleryError, GalleryModelMismatchError
from tvreid_sdk.gallery import Gallery, TrackletRecord
from tvreid_sdk.gallery.store import GALLERY_DB

MODEL = "sha256:" + "ab" * 32
DIM = 16


def records(n, start=0, camera_of=lambda i: f"C{i % 3 + 1}"):
    return [TrackletRecord(key=f"t{i:04d}", camera=camera_of(i), start_time=1000.0 + i, end_time=1010.0 + i,
                           source="mars/bbox_test", frame_paths=(f"f{i}_0.jpg", f"f{i}_1.jpg"),
                           thumbnail=bytes([i % 256]) * (i % 5) or None, person_id=f"{i % 7:04d}",
                           caption=f"person {i}")
            for i in range(start, start + n)]


@pytest.fixture
def gallery(tmp_path):
    g = Gallery.create(tmp_path / "g", MODEL, DIM)
    yield g
    g.close()


def test_add_get_roundtrip_is_bit_exact(gallery):
    emb = unit_rows(np.random.default_rng(0), 10, DIM)
    assert gallery.add(records(10), emb) == []
    assert len(gallery) == 10
    assert gallery.keys() == [f"t{i:04d}" for i in range(10)]
    assert gallery.cameras() == ["C1", "C2", "C3"]
    entry = gallery.get("t0007")
    assert entry.record == records(10)[7]
    assert entry.embedding.dtype == np.float32 and entry.embedding.tobytes() == emb[7].tobytes()
    assert entry.rowid == 8
    assert gallery.has("t0003") and "t0003" in gallery and not gallery.has("nope")


def test_reopen_persists_everything(tmp_path):
    emb = unit_rows(np.random.default_rng(1), 6, DIM)
    with Gallery.create(tmp_path / "g", MODEL, DIM) as g:
        g.add(records(6), emb)
        g.delete(["t0002"])
    with Gallery.open(tmp_path / "g", model_id=MODEL) as g:
        assert g.keys() == ["t0000", "t0001", "t0003", "t0004", "t0005"]
        assert g.get("t0005").embedding.tobytes() == emb[5].tobytes()
        assert g.meta.embed_dim == DIM and g.model_id == MODEL
        snap = g.snapshot()
        assert snap.rowids.tolist() == [1, 2, 4, 5, 6]
        np.testing.assert_array_equal(snap.vectors, emb[[0, 1, 3, 4, 5]])
    with Gallery.open(tmp_path / "g" / GALLERY_DB) as g:  # the database file path is accepted too
        assert len(g) == 5


def test_delete_and_missing_keys(gallery):
    gallery.add(records(4), unit_rows(np.random.default_rng(2), 4, DIM))
    with pytest.raises(GalleryError, match="'zzz'.*nothing was deleted"):
        gallery.delete(["t0000", "zzz"])
    assert len(gallery) == 4  # all-or-nothing
    assert gallery.delete(["t0000", "zzz"], missing_ok=True) == 1
    assert gallery.delete("t0001") == 1
    assert gallery.keys() == ["t0002", "t0003"]
    with pytest.raises(GalleryError, match="no tracklet with key 't0000'"):
        gallery.get("t0000")
    # Keys can be re-added after deletion; they get a new, higher rowid.
    gallery.add(records(1), unit_rows(np.random.default_rng(3), 1, DIM))
    assert gallery.get("t0000").rowid == 5


def test_duplicate_keys_and_skip_existing(gallery):
    emb = unit_rows(np.random.default_rng(4), 6, DIM)
    gallery.add(records(4), emb[:4])
    with pytest.raises(GalleryError, match="already in gallery.*skip_existing=True"):
        gallery.add(records(6), emb)
    assert len(gallery) == 4  # the failed batch added nothing, not even its new keys
    skipped = gallery.add(records(6), emb, skip_existing=True)
    assert skipped == ["t0000", "t0001", "t0002", "t0003"]
    assert gallery.keys() == [f"t{i:04d}" for i in range(6)]
    assert gallery.get("t0005").embedding.tobytes() == emb[5].tobytes()
    with pytest.raises(GalleryError, match="duplicate keys inside one add"):
        gallery.add(records(1, 10) * 2, emb[:2])


@pytest.mark.parametrize("make, match", [
    (lambda e: e[:, :DIM - 1], r"shape \[3,16\]"),
    (lambda e: e[:2], r"shape \[3,16\]"),
    (lambda e: e * 2.0, "L2 norm 2.0"),
    (lambda e: np.where(np.arange(DIM) == 0, np.nan, e), "NaN or Inf"),
    (lambda e: (e * 100).astype(np.int32), "floating"),
])
def test_bad_embeddings_are_rejected_and_nothing_is_written(gallery, make, match):
    emb = unit_rows(np.random.default_rng(5), 3, DIM)
    with pytest.raises(GalleryError, match=match):
        gallery.add(records(3), make(emb))
    assert len(gallery) == 0


def test_float64_embeddings_are_stored_as_float32(gallery):
    emb = unit_rows(np.random.default_rng(6), 2, DIM).astype(np.float64)
    gallery.add(records(2), emb)
    assert gallery.get("t0001").embedding.tobytes() == emb[1].astype(np.float32).tobytes()


@pytest.mark.parametrize("kwargs, match", [
    (dict(key="", camera="C1"), "key must be a non-empty string"),
    (dict(key="a", camera=""), "camera must be a non-empty string"),
    (dict(key="a", camera="C1", start_time=5.0, end_time=1.0), "before start_time"),
    (dict(key="a", camera="C1", start_time=float("nan")), "finite unix seconds"),
    (dict(key="a", camera="C1", frame_paths="x.jpg"), "sequence of path strings"),
    (dict(key="a", camera="C1", person_id=7), "person_id must be a string"),
    (dict(key="a", camera="C1", thumbnail="jpeg"), "JPEG bytes"),
])
def test_record_validation(kwargs, match):
    with pytest.raises(GalleryError, match=match):
        TrackletRecord(**kwargs)


def test_record_normalises_lists_and_ints():
    rec = TrackletRecord(key="a", camera="C1", start_time=3, frame_paths=["x", "y"], thumbnail=bytearray(b"j"))
    assert rec.frame_paths == ("x", "y") and rec.start_time == 3.0 and rec.thumbnail == b"j"


def test_missing_gallery_says_how_to_create_one(tmp_path):
    with pytest.raises(GalleryError, match=r"no gallery at .*missing.*tvreid index") as info:
        Gallery.open(tmp_path / "missing")
    assert not isinstance(info.value, GalleryCorruptError)


def test_create_refuses_to_overwrite(tmp_path, gallery):
    with pytest.raises(GalleryError, match="already exists"):
        Gallery.create(gallery.path, MODEL, DIM)
    assert sorted(p.name for p in gallery.path.iterdir() if p.name.startswith(".")) == []  # no temp files left


@pytest.mark.parametrize("kwargs, match", [
    (dict(model_id="", embed_dim=4), "model_id must be a non-empty string"),
    (dict(model_id="m", embed_dim=0), "embed_dim must be a positive integer"),
])
def test_create_validates_arguments(tmp_path, kwargs, match):
    with pytest.raises(GalleryError, match=match):
        Gallery.create(tmp_path / "g", **kwargs)


def test_model_mismatch_names_both_models(tmp_path, gallery):
    gallery.add(records(1), unit_rows(np.random.default_rng(7), 1, DIM))
    with pytest.raises(GalleryModelMismatchError, match=rf"{MODEL}.*'other-model'.*re-index"):
        Gallery.open(gallery.path, model_id="other-model")
    with pytest.raises(GalleryModelMismatchError, match="other-model"):
        gallery.add(records(1, 5), unit_rows(np.random.default_rng(8), 1, DIM), model_id="other-model")
    with pytest.raises(GalleryModelMismatchError, match="other-model"):
        gallery.search(np.ones(DIM, np.float32), model_id="other-model")
    assert len(gallery) == 1


def test_readonly_rejects_writes(gallery):
    gallery.add(records(2), unit_rows(np.random.default_rng(9), 2, DIM))
    with Gallery.open(gallery.path, readonly=True) as ro:
        assert ro.readonly and len(ro) == 2
        with pytest.raises(GalleryError, match="read-only"):
            ro.add(records(1, 9), unit_rows(np.random.default_rng(10), 1, DIM))
        with pytest.raises(GalleryError, match="read-only"):
            ro.delete(["t0000"])
    assert len(gallery) == 2


def test_closed_gallery_raises(tmp_path):
    g = Gallery.create(tmp_path / "g", MODEL, DIM)
    g.close()
    with pytest.raises(GalleryError, match="is closed"):
        len(g)


def test_garbage_file_is_corrupt_and_named(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / GALLERY_DB).write_bytes(b"this is not sqlite" * 300)
    with pytest.raises(GalleryCorruptError, match=r"g/gallery\.sqlite is corrupt"):
        Gallery.open(tmp_path / "g")


def test_foreign_sqlite_file_is_corrupt(tmp_path):
    (tmp_path / "g").mkdir()
    con = sqlite3.connect(tmp_path / "g" / GALLERY_DB)
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    with pytest.raises(GalleryCorruptError, match="not a tvreid gallery"):
        Gallery.open(tmp_path / "g")


@pytest.mark.parametrize("tamper, match", [
    ("UPDATE tracklet SET embedding = zeroblob(64) || substr(embedding, 65) WHERE key = 't0001'", "'t0001'"),
    ("UPDATE tracklet SET embedding = substr(embedding, 5) WHERE key = 't0002'", "'t0002'"),
    ("UPDATE tracklet SET embedding = CAST(zeroblob(64) || substr(embedding, 65) AS BLOB) WHERE key = 't0000'",
     "'t0000'"),
])
def test_crc_or_dimension_mismatch_is_detected_on_open(tmp_path, tamper, match):
    with Gallery.create(tmp_path / "g", MODEL, DIM) as g:
        g.add(records(3), unit_rows(np.random.default_rng(11), 3, DIM))
    con = sqlite3.connect(tmp_path / "g" / GALLERY_DB)
    con.execute(tamper)
    con.commit()
    con.close()
    with pytest.raises(GalleryCorruptError, match=match):
        Gallery.open(tmp_path / "g")


def test_metadata_checksum_is_checked_when_the_matrix_loads(tmp_path):
    with Gallery.create(tmp_path / "g", MODEL, DIM) as g:
        g.add(records(3), unit_rows(np.random.default_rng(14), 3, DIM))
    con = sqlite3.connect(tmp_path / "g" / GALLERY_DB)
    con.execute("UPDATE tracklet SET camera = 'C9' WHERE key = 't0001'")
    con.commit()
    con.close()
    with pytest.raises(GalleryCorruptError, match="row 2 has damaged metadata"):
        Gallery.open(tmp_path / "g")


def test_thumbnail_damage_is_caught_by_get_and_full_check(tmp_path):
    with Gallery.create(tmp_path / "g", MODEL, DIM) as g:
        g.add(records(3), unit_rows(np.random.default_rng(15), 3, DIM))
    con = sqlite3.connect(tmp_path / "g" / GALLERY_DB)
    con.execute("UPDATE tracklet SET thumbnail = zeroblob(length(thumbnail)) WHERE key = 't0002'")
    con.commit()
    con.close()
    with Gallery.open(tmp_path / "g") as g:  # the fast check does not read thumbnails...
        assert g.get("t0001").record == records(3)[1]
        with pytest.raises(GalleryCorruptError, match=r"'t0002'\) has damaged frame paths, caption or thumbnail"):
            g.get("t0002")  # ...but a damaged row is never returned
        with pytest.raises(GalleryCorruptError, match="t0002"):
            g.verify(full=True)
    with pytest.raises(GalleryCorruptError, match="t0002"):
        Gallery.open(tmp_path / "g", full_check=True)


def test_verify_detects_tampering_after_open(gallery):
    gallery.add(records(2), unit_rows(np.random.default_rng(12), 2, DIM))
    gallery.verify(full=True)
    con = sqlite3.connect(gallery.path / GALLERY_DB)
    con.execute("UPDATE tracklet SET crc32 = crc32 + 1 WHERE key = 't0000'")
    con.commit()
    con.close()
    with pytest.raises(GalleryCorruptError, match="'t0000'"):
        gallery.verify()


def test_store_uses_wal_and_full_sync(gallery):
    gallery.add(records(1), unit_rows(np.random.default_rng(13), 1, DIM))
    con = sqlite3.connect(gallery.path / GALLERY_DB)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    conn = gallery._store.conn
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    cols = [r[1] for r in conn.execute("PRAGMA table_info(meta)")]
    assert cols[:5] == ["id", "schema_version", "model_id", "embed_dim", "created"]


def test_import_does_not_load_torch_or_onnx():
    code = ("import sys, tvreid_sdk.gallery as g; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
