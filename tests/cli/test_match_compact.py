"""``tvreid match --compact``: int8 matrix + exact re-rank gives the float32 answers (same scores, same filter)."""
import json


def test_match_compact_equals_float(run_cli, gallery_dir, bundle_dir):
    for extra in ([], ["--camera", "C1"]):
        args = ["match", "a man in a red jacket walking", "--bundle", bundle_dir, "--gallery", gallery_dir, "-k", 5,
                "--json", *extra]
        full = json.loads(run_cli(*args).output)["results"]
        small = json.loads(run_cli(*args, "--compact").output)["results"]
        assert [(r["tracklet"], round(r["score"], 5)) for r in small] == [(r["tracklet"], round(r["score"], 5)) for r in full]
        assert full and all(r["camera"] == "C1" for r in full) if extra else len(full) == 5
