"""``tvreid match``: text query (or an example image, ``--image``, or a gallery tracklet, ``--like``) → ranked tracklets
(table, JSON or HTML sheet)."""
from __future__ import annotations

import json

import click

from tvreid_sdk.errors import ConfigError, QueryRejectedError

from .times import format_time, parse_time
from .triton_opts import open_encoder, triton_options


def _span(row: dict) -> str:
    if row["start"] == "-":
        return "-"
    return f"{row['start']} ({row['duration_s']:.1f} s)" if row.get("duration_s") is not None else row["start"]


def _short(caption: str | None, width: int = 60) -> str:
    if not caption:
        return "-"
    return caption if len(caption) <= width else caption[:width - 1] + "…"


@click.command()
@click.argument("text", required=False)
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False),
              help="Query by example: find the person in this image (instead of TEXT).")
@click.option("--like", "like_key", metavar="TRACKLET_ID",
              help="Query by example: the stored embedding of this gallery tracklet (instead of TEXT; the tracklet "
                   "itself is left out of the results). The way to search with a text-free (tfclip) model.")
@click.option("--bundle", "bundle_path", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--gallery", "gallery_path", type=click.Path(), help="Gallery directory (default: the demo gallery).")
@click.option("-k", "--top-k", "k", default=10, show_default=True, type=click.IntRange(1, 10000))
@click.option("--camera", "cameras", multiple=True, help="Only these cameras (repeatable).")
@click.option("--since", help="Only tracklets ending at or after this ISO 8601 time.")
@click.option("--until", help="Only tracklets starting at or before this ISO 8601 time.")
@click.option("--backend", default="auto", show_default=True)
@click.option("--exact", is_flag=True, help="Exact search even when the gallery has an ANN index.")
@click.option("--compact", is_flag=True, help="int8 in-memory matrix (4x less RAM) with an exact float32 re-rank of the "
                                             "top candidates read from the gallery; no ANN index.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML contact sheet.")
@triton_options
def match(text, image_path, like_key, bundle_path, gallery_path, k, cameras, since, until, backend, exact, compact,
          as_json, html_path, triton, triton_prefix) -> None:
    """Find the tracklets that best match TEXT, e.g. "man in red jacket walking", the person in --image, or the
    gallery tracklet --like TRACKLET_ID."""
    from tvreid_sdk import Gallery, demo_paths, load_bundle
    from tvreid_sdk.ingest.builder import is_provisional

    if like_key is not None and (text is not None or image_path is not None):
        raise ConfigError("--like TRACKLET_ID is already the query; give one of TEXT, --image PATH or --like")

    if image_path is not None and text is not None:
        raise ConfigError("give either a description (TEXT) or --image PATH, not both")
    if image_path is None and like_key is None and not (text or "").strip():
        raise QueryRejectedError("the query is empty; describe the person, e.g. \"man in red jacket walking\", "
                                 "or pass --image PATH / --like TRACKLET_ID to search by example")
    filters = dict(cameras=list(cameras) or None, since=parse_time(since, "--since"),
                   until=parse_time(until, "--until"))
    if like_key is not None:  # the query vector is in the gallery: no encoder needed, --bundle only checks the model
        gallery_path = gallery_path or demo_paths().gallery
        model_id = load_bundle(bundle_path).manifest.model_id if bundle_path else None
    else:
        if (bundle_path is None and triton is None) or gallery_path is None:
            demo = demo_paths()
            bundle_path = bundle_path or (demo.bundle if triton is None else None)
            gallery_path = gallery_path or demo.gallery
        encoder = open_encoder(bundle_path, backend, triton, triton_prefix, gallery=gallery_path)
        model_id = encoder.model_id
    with Gallery.open(gallery_path, model_id=model_id, readonly=True,
                      matrix_dtype="int8" if compact else "float32") as gallery:
        if like_key is not None:
            hits = gallery.similar(gallery.resolve_key(like_key), k, exact=exact, **filters)  # example left out
        else:
            query = encoder.encode_images([image_path]) if image_path is not None else encoder.encode_text([text])
            hits = gallery.search(query, k, exact=exact, **filters)[0]
        stored = [gallery.get(h.key).record for h in hits]  # k rows: the dataset id and description
        rows = [{"rank": i + 1, "score": round(h.score, 4), "tracklet": h.key, "native_id": rec.native_id,
                 "camera": h.camera, "start": format_time(h.start_time), "end": format_time(h.end_time),
                 "duration_s": None if h.start_time is None or h.end_time is None
                 else round(h.end_time - h.start_time, 2),
                 "person_id": h.person_id, "caption": rec.caption,
                 "provisional": is_provisional(rec.fingerprint),  # a track still on camera (tvreid watch)
                 "search": "approximate" if h.approximate else "exact"}
                for i, (h, rec) in enumerate(zip(hits, stored))]
        if html_path:
            from .contact_sheet import write_contact_sheet

            title = f"like: {like_key}" if like_key is not None else \
                text if image_path is None else f"image: {image_path}"
            write_contact_sheet(html_path, title, rows, gallery)
    if as_json:
        label = {"like": like_key} if like_key is not None else \
            {"query": text} if image_path is None else {"query_image": str(image_path)}
        click.echo(json.dumps({**label, "k": k, "results": rows}, indent=2))
        return
    if not rows:
        click.echo("no tracklets match the filters")
        return
    said = any(r["caption"] for r in rows)  # stored descriptions (datasets, the demo): show them to judge the ranking
    click.echo(f"{'rank':>4}  {'score':>6}  {'tracklet':<24} {'camera':<10} time span" + ("  caption" if said else ""))
    for r in rows:
        mark = "  [provisional: still on camera]" if r["provisional"] else ""
        approx = "~" if r["search"] == "approximate" else " "
        line = f"{r['rank']:>4}  {r['score']:>6.3f}{approx} {r['tracklet']:<24} {r['camera']:<10} {_span(r)}{mark}"
        click.echo(line + (f"  {_short(r['caption'])}" if said else ""))
    if any(r["search"] == "approximate" for r in rows):
        click.echo("~ found through the ANN index (approximate search, exact score); --exact scans every row")
    if html_path:
        click.echo(f"contact sheet: {html_path}")


COMMANDS = [match]
