"""Item "a clearer demo": the demo gallery's tracklets keep their synthetic description and `tvreid match` shows it
(JSON, HTML contact sheet, table), so a user can judge the ranking at a glance."""
import json

import pytest

from tvreid_sdk import demo_paths
from tvreid_sdk.errors import BundleError

try:
    DEMO = demo_paths()
except BundleError:  # a source checkout without the built assets
    DEMO = None

pytestmark = pytest.mark.skipif(DEMO is None,
                                reason="demo assets not built (python -m cli.demo --out tvreid_sdk/assets)")


def test_demo_results_carry_their_description_in_json_html_and_table(run_cli, tmp_path):
    rows = json.loads(run_cli("match", "man in red jacket walking", "--json", "-k", "3").output)["results"]
    captions = [r["caption"] for r in rows]
    assert all(isinstance(c, str) and len(c) > 10 for c in captions), captions
    sheet = tmp_path / "sheet.html"
    table = run_cli("match", "man in red jacket walking", "-k", "3", "--html", sheet).output
    page = sheet.read_text(encoding="utf-8")
    assert page.count('class="caption"') == 3
    import html

    for caption in captions:
        assert html.escape(caption) in page
        assert caption[:40] in table  # the table shows it too (cut to 60 characters)
    assert table.splitlines()[0].rstrip().endswith("caption")


def test_contact_sheet_escapes_captions_and_skips_missing_ones(tmp_path):
    from cli.contact_sheet import write_contact_sheet

    class _NoGallery:
        def get(self, key):
            return None

    row = {"rank": 1, "score": 0.5, "tracklet": "a/1", "camera": "c1", "start": "-", "end": "-"}
    out = tmp_path / "s.html"
    write_contact_sheet(str(out), "q", [dict(row, caption="<b>red</b> & blue"), dict(row, caption=None)], _NoGallery())
    page = out.read_text(encoding="utf-8")
    assert "&lt;b&gt;red&lt;/b&gt; &amp; blue" in page and "<b>red</b>" not in page
    assert page.count('class="caption"') == 1
