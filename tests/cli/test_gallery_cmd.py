"""`tvreid gallery info|verify|remove` on a copy of the demo gallery (372 tracklets, 6 cameras, timed)."""
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections import Counter

import pytest

from tvreid_sdk import Gallery, demo_paths

T0 = dt.datetime(2024, 5, 1, 11, 0, tzinfo=dt.timezone.utc).timestamp()  # inside the demo span 10:00-13:48 UTC


@pytest.fixture()
def gdir(tmp_path):
    """A private copy of the demo gallery (never touch the package assets)."""
    return shutil.copytree(demo_paths().gallery, tmp_path / "g")


def _records(path):
    with Gallery.open(path, readonly=True) as g:
        return {k: g.get(k).record for k in g.keys()}


def _one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _sha(path):
    return hashlib.sha256((path / "gallery.sqlite").read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- info
def test_info_json_matches_the_gallery_api(run_cli, gdir):
    info = json.loads(run_cli("gallery", "info", gdir, "--json").output)
    records = _records(gdir)
    with Gallery.open(gdir, readonly=True) as g:
        assert (info["model_id"], info["embed_dim"], info["items"]) == (g.model_id, g.embed_dim, len(g))
        assert sorted(info["cameras"]) == g.cameras()
    assert info["cameras"] == dict(Counter(r.camera for r in records.values()))
    assert sum(info["cameras"].values()) == len(records) == 372
    start = min(r.start_time for r in records.values())
    end = max(r.end_time for r in records.values())
    assert info["start"].endswith("Z") and info["end"].endswith("Z")
    assert dt.datetime.fromisoformat(info["start"]).timestamp() == pytest.approx(start, abs=1e-3)
    assert dt.datetime.fromisoformat(info["end"]).timestamp() == pytest.approx(end, abs=1e-3)
    assert info["path"] == str(gdir.resolve())
    assert info["bytes_on_disk"] == (gdir / "gallery.sqlite").stat().st_size


def test_info_text_lists_cameras_and_time_span(run_cli, gdir):
    out = run_cli("gallery", "info", gdir).output
    counts = Counter(r.camera for r in _records(gdir).values())
    lines = out.splitlines()
    for camera, n in counts.items():
        assert f"  {camera}".ljust(10) + f" {n}" in lines, (camera, out)
    assert "items      372" in lines
    assert "time span  2024-05-01T10:00:00Z .. 2024-05-01T13:48:47.480Z" in lines


def test_info_of_a_missing_gallery_is_one_error_line(run_cli, tmp_path):
    _one_error_line(run_cli("gallery", "info", tmp_path / "nothing", ok=False), "no gallery at")
    assert not (tmp_path / "nothing").exists()


# ---------------------------------------------------------------------------------------------------- verify
@pytest.mark.parametrize("flags, label", [((), "quick"), (("--full",), "full")])
def test_verify_ok_on_a_good_gallery(run_cli, gdir, flags, label):
    out = run_cli("gallery", "verify", gdir, *flags).output  # the demo gallery predates fingerprints
    assert out == (f"ok: 372 items ({label} check); 372 without a fingerprint (indexed before fingerprints: a re-run "
                   "trusts their key)\n")


def test_verify_reports_a_flipped_embedding_byte(run_cli, gdir):
    db = gdir / "gallery.sqlite"
    with sqlite3.connect(db) as con:
        key, blob = con.execute("SELECT key, embedding FROM tracklet ORDER BY id LIMIT 1 OFFSET 5").fetchone()
    con.close()
    raw = bytearray(db.read_bytes())
    at = raw.find(blob)
    assert at > 0 and raw.find(blob, at + 1) == -1
    raw[at + 7] ^= 0x40  # bit rot inside the blob: SQLite's own checks cannot see it
    db.write_bytes(bytes(raw))
    _one_error_line(run_cli("gallery", "verify", gdir, ok=False), "corrupt", "damaged embedding", repr(key))


def test_verify_reports_a_truncated_file(run_cli, gdir):
    db = gdir / "gallery.sqlite"
    os.truncate(db, db.stat().st_size // 2 // 4096 * 4096)
    _one_error_line(run_cli("gallery", "verify", gdir, ok=False), "corrupt", str(db))


def test_only_the_full_check_reads_captions(run_cli, gdir):
    with sqlite3.connect(gdir / "gallery.sqlite") as con:
        con.execute("UPDATE tracklet SET caption = caption || 'x' WHERE id = (SELECT MAX(id) FROM tracklet)")
    con.close()
    assert run_cli("gallery", "verify", gdir).output.startswith("ok: 372 items")
    _one_error_line(run_cli("gallery", "verify", gdir, "--full", ok=False), "extra_crc32 mismatch")


# ---------------------------------------------------------------------------------------------------- remove
def _search_keys(path, vectors):
    """Every key search returns for these query vectors (k = whole gallery)."""
    with Gallery.open(path, readonly=True) as g:
        return {h.key for hits in g.search(vectors, k=len(g)) for h in hits}


def test_remove_by_key_and_search_no_longer_returns_them(run_cli, gdir):
    keys = list(_records(gdir))[3:5]
    with Gallery.open(gdir, readonly=True) as g:
        vectors = [g.get(k).embedding for k in keys]
        assert [g.search(v, k=1)[0][0].key for v in vectors] == keys  # each is its own best match
    out = run_cli("gallery", "remove", gdir, *keys).output
    assert out.startswith("removed 2 tracklet(s)") and "370 left" in out
    with Gallery.open(gdir) as g:
        assert len(g) == 370 and not any(k in g for k in keys)
    assert not set(keys) & _search_keys(gdir, vectors)


def test_remove_by_camera(run_cli, gdir):
    before = _records(gdir)
    gone = {k for k, r in before.items() if r.camera in ("C6", "C2")}
    with Gallery.open(gdir, readonly=True) as g:
        vectors = [g.get(k).embedding for k in sorted(gone)[:5]]
    assert set(sorted(gone)[:5]) <= _search_keys(gdir, vectors)
    out = run_cli("gallery", "remove", gdir, "--camera", "C6", "--camera", "C2").output
    assert out.startswith(f"removed {len(gone)} tracklet(s)") and len(gone) == 52 + 53
    assert set(_records(gdir)) == set(before) - gone
    with Gallery.open(gdir, readonly=True) as g:
        assert g.cameras() == ["C1", "C3", "C4", "C5"]
    assert not gone & _search_keys(gdir, vectors)


def test_remove_by_time_window_and_camera_combines_filters_with_and(run_cli, gdir):
    before = _records(gdir)
    lo, hi = T0, T0 + 3600
    run_cli("gallery", "remove", gdir, "--after", "2024-05-01T11:00:00Z", "--before", "2024-05-01T12:00:00Z",
            "--camera", "C1")
    gone = {k for k, r in before.items() if r.camera == "C1" and r.start_time >= lo and r.end_time < hi}
    assert gone and set(_records(gdir)) == set(before) - gone


def test_remove_before_keeps_items_still_running_at_the_bound(run_cli, gdir):
    before = _records(gdir)
    spanning = next(r for r in before.values() if r.start_time < r.end_time)
    cut = (spanning.start_time + spanning.end_time) / 2  # inside that tracklet
    run_cli("gallery", "remove", gdir, "--before", repr(cut))  # Unix seconds
    left = _records(gdir)
    assert set(left) == {k for k, r in before.items() if r.end_time >= cut} and spanning.key in left


def test_remove_after_keeps_items_already_running_at_the_bound(run_cli, gdir):
    before = _records(gdir)
    spanning = next(r for r in before.values() if r.start_time < r.end_time)
    cut = (spanning.start_time + spanning.end_time) / 2
    run_cli("gallery", "remove", gdir, "--after", repr(cut))
    left = _records(gdir)
    assert set(left) == {k for k, r in before.items() if r.start_time < cut} and spanning.key in left


def test_keys_are_added_to_the_filter_selection(run_cli, gdir):
    before = _records(gdir)
    extra = next(k for k, r in before.items() if r.camera == "C1")
    out = run_cli("gallery", "remove", gdir, extra, "--camera", "C6").output
    assert out.startswith("removed 53 tracklet(s)")
    assert set(_records(gdir)) == {k for k, r in before.items() if r.camera != "C6" and k != extra}


@pytest.fixture()
def local_tz_not_utc(monkeypatch):
    """Local time 5 h behind UTC (POSIX TZ string, no tzdata needed): naive times must still mean UTC."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    assert time.timezone == 5 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("when", ["2024-05-01T11:00:00Z", "2024-05-01T11:00:00", "2024-05-01T13:00:00+02:00",
                                  str(int(T0)), f"{T0:.1f}"])
def test_time_spellings_select_the_same_items(run_cli, gdir, when, local_tz_not_utc):
    expected = sum(r.end_time < T0 for r in _records(gdir).values())
    out = run_cli("gallery", "remove", gdir, "--before", when, "--dry-run").output
    assert out.startswith(f"would remove {expected} of 372 tracklet(s)") and "before 2024-05-01T11:00:00Z" in out


def test_dry_run_lists_20_keys_and_removes_nothing(run_cli, gdir):
    sha = _sha(gdir)
    out = run_cli("gallery", "remove", gdir, "--camera", "C3", "--dry-run").output.splitlines()
    c3 = [k for k, r in _records(gdir).items() if r.camera == "C3"]
    assert out[0].startswith("would remove 59 of 372 tracklet(s)")
    assert out[1:21] == [f"  {k}" for k in c3[:20]] and out[21] == "  ... and 39 more" and len(out) == 22
    assert _sha(gdir) == sha and len(_records(gdir)) == 372


def test_no_selection_is_an_error(run_cli, gdir):
    _one_error_line(run_cli("gallery", "remove", gdir, ok=False), "KEY", "--camera", "--before")


def test_unknown_key_names_it_and_removes_nothing(run_cli, gdir):
    before = _records(gdir)
    good = list(before)[0]
    line = _one_error_line(run_cli("gallery", "remove", gdir, good, "no-such-key", "--camera", "C1", ok=False),
                           "'no-such-key'", "nothing was removed")
    assert repr(good) not in line
    assert _records(gdir) == before


@pytest.mark.parametrize("args, needle", [
    (["--before", "yesterday"], "--before 'yesterday'"),
    (["--after", "nan"], "--after 'nan'"),
    (["--before", "1e20"], "--before '1e20'"),
    (["--after", "2024-05-01T12:00:00Z", "--before", "2024-05-01T11:00:00Z"], "is not before"),
    (["--camera", "C9"], "'C9'"),
])
def test_bad_filters_are_one_error_line_and_remove_nothing(run_cli, gdir, args, needle):
    before = _records(gdir)
    _one_error_line(run_cli("gallery", "remove", gdir, *args, ok=False), needle)
    assert _records(gdir) == before


def test_a_number_that_looks_like_a_year_is_refused_not_read_as_1970():
    from cli.times import parse_time
    from tvreid_sdk.errors import ConfigError

    with pytest.raises(ConfigError, match=r"--after '2024' would be read as Unix seconds \(1970-01-01T00:33:44Z\)"):
        parse_time("2024", "--after")
    assert parse_time("1714559400", "--after") == 1714559400.0
    assert parse_time("2024-05-01T10:30:00Z", "--after") == parse_time("2024-05-01T10:30:00", "--after") == 1714559400.0
