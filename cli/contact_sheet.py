"""An HTML contact sheet of search results with embedded thumbnails (one self-contained file)."""
from __future__ import annotations

import base64
import html
import os
import tempfile
from pathlib import Path


def write_contact_sheet(path: str, query: str, rows: list[dict], gallery) -> None:
    """Write ``rows`` (from ``tvreid match``) as an HTML page; thumbnails come from the gallery, and a row's
    ``caption`` (the tracklet's stored description, when it has one) is shown under its thumbnail."""
    cards = []
    for row in rows:
        entry = gallery.get(row["tracklet"])
        thumb = entry.record.thumbnail if entry is not None else None
        img = (f'<img src="data:image/jpeg;base64,{base64.b64encode(thumb).decode()}" alt="">' if thumb
               else '<div class="noimg">no thumbnail</div>')
        caption = row.get("caption")  # the stored description (datasets, the demo): judge the ranking at a glance
        said = f'<br><q class="caption">{html.escape(caption)}</q>' if caption else ""
        cards.append(
            f'<figure>{img}<figcaption><b>#{row["rank"]}</b> {row["score"]:.3f}<br>'
            f'{html.escape(row["tracklet"])}<br>{html.escape(row["camera"])}<br>'
            f'<small>{html.escape(row["start"])} → {html.escape(row["end"])}</small>{said}</figcaption></figure>')
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tvreid: {html.escape(query)}</title>
<style>body{{font-family:sans-serif;margin:1em}} figure{{display:inline-block;margin:.4em;text-align:center;
vertical-align:top;width:160px}} img{{height:160px;border:1px solid #888}} .noimg{{height:160px;background:#eee}}
figcaption{{font-size:12px}} .caption{{display:block;color:#333;font-style:italic;text-align:left}}</style></head>
<body><h2>“{html.escape(query)}”</h2><p>{len(rows)} result(s)</p>
{''.join(cards)}
</body></html>
"""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, out)
