"""MOTChallenge tracker output: parsing, counted skips of bad lines, clear errors for unusable files."""
import pytest

from tvreid_sdk.errors import DatasetFormatError
from tvreid_sdk.ingest.mot import MotBox, parse_line, parse_mot, read_mot, write_mot


def test_parses_comma_and_whitespace_rows_with_optional_columns():
    tracks = parse_mot([
        "1,3,10.5,20,30,60,0.9,-1,-1,-1",  # MOT16 tracker result (10 columns)
        "1 4 0 0 5 6",  # whitespace, minimal 6 columns: conf defaults to 1
        "2,3.0,11,21,30,60,0.8,1,0.75",  # MOT17 gt-like (class, visibility); integral float id
        "",
        "# a comment",
    ])
    assert tracks.report.lines == 3 and tracks.report.boxes == 3 and tracks.report.skipped == 0
    assert tracks.by_frame[1] == [MotBox(1, 3, 10.5, 20.0, 30.0, 60.0, 0.9), MotBox(1, 4, 0.0, 0.0, 5.0, 6.0, 1.0)]
    assert tracks.by_frame[2] == [MotBox(2, 3, 11.0, 21.0, 30.0, 60.0, 0.8)]
    assert tracks.track_ids == [3, 4] and (tracks.first_frame, tracks.last_frame) == (1, 2)
    assert [b.frame for b in tracks.boxes()] == [1, 1, 2]


@pytest.mark.parametrize("line, reason", [
    ("1,2,3,4,5", "need at least 6"),
    ("1,2,a,4,5,6", "not a number"),
    ("1,2,nan,4,5,6", "NaN"),
    ("0,2,3,4,5,6", "1-based"),
    ("1.5,2,3,4,5,6", "frame 1.5 is not a whole number"),
    ("1,2,3,4,0,6", "not positive"),
    ("1,2,3,4,5,-6", "not positive"),
])
def test_malformed_lines_are_rejected_with_a_reason(line, reason):
    with pytest.raises(ValueError, match=reason):
        parse_line(line)


def test_bad_lines_are_counted_not_fatal():
    lines = ["1,1,0,0,10,20,1", "garbage", "1,-1,0,0,10,20,0.5", "1,1,5,5,10,20,1", "2,1,0,0,10,20,0.2",
             "3,2,0,0,10,20,1,2,3", "4,2,1,2"]
    tracks = parse_mot(lines, source="t.txt", min_conf=0.3)
    rep = tracks.report
    assert (rep.lines, rep.boxes, rep.malformed, rep.untracked, rep.duplicates, rep.low_conf) == (7, 2, 2, 1, 1, 1)
    assert rep.examples == ["line 2: 1 field(s), need at least 6 (frame,id,x,y,w,h)",
                            "line 7: 4 field(s), need at least 6 (frame,id,x,y,w,h)"]
    assert tracks.by_frame[1][0].x == 0.0  # the first of two boxes for (frame 1, id 1) is kept
    assert "2 malformed" in rep.summary() and "1 duplicate" in rep.summary()


def test_only_malformed_lines_is_an_error_naming_the_format():
    with pytest.raises(DatasetFormatError, match=r"t\.txt: none of the 2 line\(s\).*frame,id,x,y,w,h"):
        parse_mot(["hello", "world"], source="t.txt")
    assert parse_mot([], source="empty").num_boxes == 0  # an empty file is a video without people


def test_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(DatasetFormatError, match="no such tracks file"):
        read_mot(tmp_path / "missing.txt")
    binary = tmp_path / "video.mp4"
    binary.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(DatasetFormatError, match="binary data"):
        read_mot(binary)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("1,1,0,0,10,20,1 caf\xe9\n".encode("latin-1"))
    with pytest.raises(DatasetFormatError, match="not UTF-8"):
        read_mot(latin)


def test_write_read_round_trip_is_sorted_and_atomic(tmp_path):
    boxes = [MotBox(3, 2, -4.5, 10.0, 20.0, 40.0), MotBox(1, 7, 1.0, 2.0, 3.0, 4.0, 0.5), MotBox(1, 2, 0, 0, 8, 9)]
    path = write_mot(tmp_path / "tracks.txt", boxes)
    assert path.read_text().splitlines()[0] == "1,2,0.00,0.00,8.00,9.00,1,-1,-1,-1"
    back = read_mot(path)
    assert back.boxes() == sorted(boxes, key=lambda b: (b.frame, b.track_id))
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.txt"]  # no temp file left behind
