"""scale.stages without Ray: the decode stage prepares exactly what the Encoder prepares, failures travel as data
naming the file, and the driver turns them into the local path's outcome or one error naming the tracklet."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tvreid_sdk import Encoder, Gallery
from tvreid_sdk.assets import demo_paths
from tvreid_sdk.errors import CorruptInputError, GalleryModelMismatchError, TvreidError
from tvreid_sdk.gallery import TrackletRecord
from tvreid_sdk.ingest import IndexReport, discover_tracklet_folders
from tvreid_sdk.scale import RayCfg, ray_index_records
from tvreid_sdk.scale.ray_index import _row_error
from tvreid_sdk.scale.stages import EncodeActor, decode_batch
from tvreid_sdk.vision.prepare import ClipPreparer, clip_thumbnail

UNREACHABLE = RayCfg(address="127.0.0.1:1")  # a run that tried to reach a cluster would fail on it


@pytest.fixture(scope="module")
def encoder():
    return Encoder.from_bundle(demo_paths().bundle, backend="ort-cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, write_tracklets):
    return write_tracklets(tmp_path_factory.mktemp("stages") / "t", 6, frames=4, corrupt={2: {1}, 4: {0, 1, 2, 3}})


def batch_of(records):
    frames = np.empty(len(records), dtype=object)
    frames[:] = [list(r.frame_paths) for r in records]
    return {"i": np.arange(len(records)), "frames": frames, "cam": np.full(len(records), -1, np.int32)}


def test_decode_prepares_what_the_encoder_prepares_and_reports_bad_frames_by_path(encoder, folders):
    records = discover_tracklet_folders(folders)
    preparer = ClipPreparer.from_manifest(encoder.manifest)
    assert preparer == encoder.preparer  # the one preparation
    out = decode_batch(batch_of(records), preparer, on_bad_frame="skip", thumbnails=True)
    assert out["ok"].tolist() == [True, True, True, True, False, True]
    assert out["clip"].shape == (6, 4, 64, 32, 3)  # [B,T,H,W,3]: failed rows keep the shape
    for j in (0, 2, 5):
        clip = encoder.prepare_tracklet(list(records[j].frame_paths), on_bad_frame="skip")
        assert np.array_equal(out["clip"][j], clip) and out["thumb"][j] == clip_thumbnail(clip)
    skipped = json.loads(out["skipped"][2])
    assert [s[:2] for s in skipped] == [[1, records[2].frame_paths[1]]]
    err = json.loads(out["err"][4])
    assert err["kind"] == "corrupt" and err["path"] in records[4].frame_paths and "unreadable" in err["message"]
    strict = decode_batch(batch_of(records[2:3]), preparer, on_bad_frame="fail", thumbnails=False)
    err = json.loads(strict["err"][0])
    assert not strict["ok"][0] and (err["path"], err["frame"]) == (records[2].frame_paths[1], 1)


def test_the_actor_encodes_like_the_encoder_and_names_what_fails(encoder, folders):
    records = discover_tracklet_folders(folders)
    decoded = decode_batch(batch_of(records), ClipPreparer.from_manifest(encoder.manifest), "skip", True)
    actor = EncodeActor(str(demo_paths().bundle), backend="ort-cpu")
    out = actor(decoded)
    ok = [0, 1, 2, 3, 5]
    clips = [encoder.prepare_tracklet(list(records[j].frame_paths), on_bad_frame="skip") for j in ok]
    assert np.array_equal(out["emb"][ok], encoder.encode_prepared(clips)) and not out["emb"][4].any()
    assert "emb" in out and "clip" not in out

    def encode_but_not_the_third(clips, cams):
        if any(np.array_equal(c, decoded["clip"][2]) for c in clips):
            raise ValueError("bad input")
        return encoder.encode_prepared(clips)

    actor._encode = encode_but_not_the_third
    out = actor(decoded)
    assert out["ok"].tolist() == [True, True, False, True, False, True]
    assert json.loads(out["err"][2])["message"] == "bad input"
    assert np.array_equal(out["emb"][1], encoder.encode_prepared(clips[1:2])[0])


def test_failed_rows_become_the_local_outcome_or_one_error_naming_the_tracklet():
    rec = TrackletRecord(key="site/0007", camera="C1", frame_paths=("/d/a.jpg", "/d/b.jpg", "/d/c.jpg"))
    corrupt = json.dumps({"kind": "corrupt", "type": "CorruptInputError", "message": "Cannot decode frame 1",
                          "path": "/d/b.jpg", "frame": 1, "trace": ""})
    report = IndexReport()
    _row_error(rec, corrupt, "skip", report)
    assert report.failed == [("site/0007", "Cannot decode frame 1")]
    with pytest.raises(CorruptInputError, match="site/0007.*Cannot decode") as info:
        _row_error(rec, corrupt, "fail", report)
    assert (info.value.path, info.value.frame_index) == ("/d/b.jpg", 1)
    crash = json.dumps({"kind": "error", "type": "ValueError", "message": "bad input", "path": None, "frame": None,
                        "trace": ""})
    with pytest.raises(TvreidError, match=r"tracklet 'site/0007' failed on a Ray worker: ValueError: bad input"):
        _row_error(rec, crash, "skip", report)


def test_model_and_resume_checks_happen_before_ray_starts(tmp_path, encoder, folders):
    records = discover_tracklet_folders(folders)
    with Gallery.create(tmp_path / "other", model_id="another-model", embed_dim=encoder.embed_dim) as g:
        with pytest.raises(GalleryModelMismatchError, match="another-model"):
            ray_index_records(demo_paths().bundle, g, records, cfg=UNREACHABLE)
    with Gallery.create(tmp_path / "g", model_id=encoder.model_id, embed_dim=encoder.embed_dim) as g:
        g.add(records, np.eye(len(records), encoder.embed_dim, dtype=np.float32))
        report = ray_index_records(demo_paths().bundle, g, records, cfg=UNREACHABLE)  # all stored: no cluster
    assert (report.added, report.skipped_existing) == (0, len(records))
