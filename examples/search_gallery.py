"""Index a folder of tracklet folders and search it by text, using only the public SDK API.

    python examples/search_gallery.py FRAMES_ROOT "man in red jacket walking" [--bundle B] [--gallery G]

FRAMES_ROOT holds one sub-folder per tracklet with its frames (``.jpg``/``.png``, sorted by name).
Without ``--bundle`` the demo model shipped with tvreid is used.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tvreid_sdk import Encoder, Gallery, TrackletRecord, demo_paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames_root", type=Path)
    parser.add_argument("query")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--gallery", type=Path, default=None)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()

    encoder = Encoder.from_bundle(args.bundle or demo_paths().bundle)
    gallery_dir = args.gallery or Path(tempfile.mkdtemp()) / "gallery"
    gallery = Gallery.create(gallery_dir, model_id=encoder.model_id, embed_dim=encoder.embed_dim)

    folders = sorted(p for p in args.frames_root.iterdir() if p.is_dir())
    records, tracklets = [], []
    for folder in folders:
        frames = sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if frames:
            records.append(TrackletRecord(key=folder.name, camera="cam0", frame_paths=tuple(frames)))
            tracklets.append(frames)
    gallery.add(records, encoder.encode_tracklets(tracklets))

    query = encoder.encode_text([args.query])
    for rank, hit in enumerate(gallery.search(query, k=args.k)[0], start=1):
        print(f"{rank}\t{hit.score:.3f}\t{hit.key}")
    gallery.close()


if __name__ == "__main__":
    main()
