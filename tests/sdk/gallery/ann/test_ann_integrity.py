"""A damaged, truncated, stale or foreign index is detected and never trusted; a killed build leaves no half index."""
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from _ann_fixtures import space
from tvreid_sdk.errors import GalleryModelMismatchError
from tvreid_sdk.gallery import Gallery
from tvreid_sdk.gallery.ann import sidecar


def _exact_fallback(gdir, caplog, needle):
    q = space().text_queries(5)
    with caplog.at_level(logging.WARNING, logger="tvreid.ann"), Gallery.open(gdir, readonly=True) as g:
        got = g.search(q, 10)
        again = g.search(q, 10)  # warned once per index state
        assert g.last_plan is None and not any(h.approximate for row in got for h in row)
        assert [[h.key for h in r] for r in got] == [[h.key for h in r] for r in g.search(q, 10, exact=True)]
        assert [[h.key for h in r] for r in again] == [[h.key for h in r] for r in got]
        info = g.index_info()
    warnings = [r.getMessage() for r in caplog.records if r.name == "tvreid.ann"]
    assert len(warnings) == 1 and needle in warnings[0] and "searching exactly" in warnings[0], warnings
    assert "\n" not in warnings[0]
    assert info["state"] == "unusable" and needle in info["problem"]


def _shard_file(gdir):
    return sorted(next(gdir.glob("ann-*")).iterdir())[1]


def test_flipped_byte_is_detected(gdir, caplog, low_floor):
    path = _shard_file(gdir)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    _exact_fallback(gdir, caplog, "damaged")


def test_truncated_file_is_detected(gdir, caplog, low_floor):
    path = _shard_file(gdir)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 3)
    _exact_fallback(gdir, caplog, "damaged")


def test_missing_file_is_detected(gdir, caplog, low_floor):
    _shard_file(gdir).unlink()
    _exact_fallback(gdir, caplog, "missing")


def test_damaged_manifest_is_detected(gdir, caplog, low_floor):
    path = gdir / sidecar.MANIFEST
    path.write_text(path.read_text().replace('"rows"', '"rowz"', 1))
    _exact_fallback(gdir, caplog, "manifest")


def _rewrite_manifest(gdir, **changes):
    outer = json.loads((gdir / sidecar.MANIFEST).read_text())
    outer["body"].update(changes)
    outer["crc32"] = zlib.crc32(json.dumps(outer["body"], sort_keys=True, separators=(",", ":")).encode())
    (gdir / sidecar.MANIFEST).write_text(json.dumps(outer))


def test_model_mismatch_is_refused(gdir, caplog, low_floor):
    _rewrite_manifest(gdir, model_id="another-model")
    manifest = sidecar.read_manifest(gdir)
    with Gallery.open(gdir, readonly=True) as g:
        with pytest.raises(GalleryModelMismatchError, match="another-model"):
            sidecar.check_against(manifest, gdir, g.model_id, g.embed_dim, g.meta.created, 10**9, 10**9)
    _exact_fallback(gdir, caplog, "another-model")


def test_index_newer_than_the_gallery_is_refused(gdir, caplog, low_floor):
    manifest = sidecar.read_manifest(gdir)
    _rewrite_manifest(gdir, max_rowid=manifest.max_rowid + 100)  # e.g. the gallery was restored from a backup
    _exact_fallback(gdir, caplog, "newer than the gallery")


def test_missing_faiss_gives_one_line(monkeypatch, gdir, caplog):
    from tvreid_sdk.gallery.ann.faisslib import AnnUnavailableError, load_faiss

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(AnnUnavailableError, match=r'pip install "tvreid\[scale\]"'):
        load_faiss()
    _exact_fallback(gdir, caplog, "tvreid[scale]")


_BUILD = """
import sys
from tvreid_sdk.gallery import Gallery
from tvreid_sdk.gallery.ann import BuildCfg
with Gallery.open(sys.argv[1], readonly=True) as g:
    print("start", flush=True)
    g.build_index(BuildCfg(kind=sys.argv[2]))
print("done", flush=True)
"""


def _state(gdir):
    """(manifest or None, problems): a present manifest must load and verify completely."""
    import faiss

    manifest = sidecar.read_manifest(gdir)
    if manifest is not None:
        sidecar.load_shards(gdir, manifest, faiss)  # raises on any half-written file
    return manifest


def test_kill_during_build_leaves_previous_index_or_none(gdir):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[4])] +
                                                       os.environ.get("PYTHONPATH", "").split(os.pathsep))}
    previous = _state(gdir).build_dir
    outcomes = set()
    for delay in (0.05, 0.4, 0.9, 1.6, 2.5):
        proc = subprocess.Popen([sys.executable, "-c", _BUILD, str(gdir), "ivf-flat"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert proc.stdout.readline().strip() == "start"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        manifest = _state(gdir)
        assert manifest is not None  # there was an index before: it is kept until a new one is complete
        assert manifest.build_dir == previous or manifest.kind == "ivf-flat"
        outcomes.add(manifest.kind)
        previous = manifest.build_dir
        builds = [p.name for p in gdir.glob("ann-*")]
        assert manifest.build_dir in builds
    # a later build cleans what the killed ones left
    with Gallery.open(gdir, readonly=True) as g:
        g.build_index()
    assert len(list(gdir.glob("ann-*"))) == 1 and not list(gdir.glob(".ann-build-*"))
    assert _state(gdir).kind == "ivf-sq8"
