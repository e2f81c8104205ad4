"""Build the demo model and demo gallery that ship with the package (the embedded default).

    python -m cli.demo --out tvreid_sdk/assets [--work DIR] [--run RUN_DIR]
    python -m cli.demo --out tvreid_sdk/assets --reexport

Every step is our own code with a committed recipe and seed: render a synthetic TV-MARS-format set,
train ``synthetic_demo`` on its training identities, export the bundle, and index the held-out
identities' tracklets (with thumbnails, cameras and times) into a gallery. The gallery is stored in
rollback-journal mode so it opens read-only from a non-writable install directory.

``--reexport`` only re-exports the shipped bundle from its own weights with the current exporter (e.g. to give it
a newer graph layout): the weights, and so the model id and the demo gallery, stay; every new graph must give the
old one's embeddings before it replaces the bundle.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

from tvreid_sdk.errors import ConfigError

DEMO_SEED = 1
DEMO_IDS = 600
DEMO_TEST_FRACTION = 0.17
DEMO_IMAGE_SIZE = (64, 32)
DEMO_START = 1_714_557_600.0  # 2024-05-01T10:00:00Z: synthetic clock for the demo gallery's time spans
MAX_ASSET_BYTES = 20 * 1024 * 1024
REEXPORT_COMMAND = "python -m cli.demo --out tvreid_sdk/assets --reexport"
REEXPORT_ATOL = 1e-5  # fp32 graphs from the same weights: the export parity gate's own tolerance


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_demo(out: Path, work: Path, *, recipe: str = "synthetic_demo", log=print) -> dict:
    """Render, train, export and index; writes ``out/demo_bundle`` and ``out/demo_gallery``.

    ``work/synth`` and ``work/run`` are reused when present: a finished run is exported as it is, an
    interrupted one resumes exactly where it stopped.
    """
    from export.build import export_bundle
    from tvreid_sdk import Encoder, Gallery
    from tvreid_sdk.vision.thumbnail import make_thumbnail

    from training.config import load_recipe
    from training.data import DATASETS
    from training.engine import train
    from training.synth import generate

    data_root, run_dir = work / "synth", work / "run"
    if not (data_root / "synth_meta.json").is_file():
        log(f"rendering {DEMO_IDS} synthetic identities into {data_root}")
        generate(data_root, ids=DEMO_IDS, seed=DEMO_SEED, image_size=DEMO_IMAGE_SIZE, frames_per_tracklet=(8, 12),
                 test_fraction=DEMO_TEST_FRACTION, overwrite=True)
    cfg = load_recipe(recipe, [f"run.seed={DEMO_SEED}", "run.progress=false"])
    metrics = train(cfg, str(data_root), str(run_dir), resume=(run_dir / "resume.json").is_file(), log=log)
    bundle_dir, gallery_dir = out / "demo_bundle", out / "demo_gallery"
    staging = Path(tempfile.mkdtemp(prefix=".demo.", dir=out))
    try:
        # CPU demo: plain graphs only (re-export with `tvreid export` for the CUDA provider's fused graphs)
        bundle, _ = export_bundle(run_dir, staging / "demo_bundle", progress=log, fused=False)
        encoder = Encoder.from_bundle(bundle, backend="ort-cpu")
        data = DATASETS.get("tvmars")(str(data_root))
        test = sorted((*data.query, *data.gallery), key=lambda t: t.track_id)
        gallery = Gallery.create(staging / "demo_gallery", model_id=encoder.model_id, embed_dim=encoder.embed_dim)
        with gallery:
            for start_i in range(0, len(test), 64):
                batch = test[start_i:start_i + 64]
                clips = [encoder.prepare_tracklet(list(t.frames)) for t in batch]
                records = [_demo_record(start_i + j, trk, make_thumbnail(clip[0])) for j, (trk, clip)
                           in enumerate(zip(batch, clips))]
                gallery.add(records, encoder.encode_prepared(clips))  # frame paths of the build machine stay out
        _fold_wal(staging / "demo_gallery" / "gallery.sqlite")
        total = _size(staging)
        if total > MAX_ASSET_BYTES:
            raise ConfigError(f"demo assets are {total / 2**20:.1f} MiB, over the 20 MiB budget; shrink the demo arch")
        for target in (bundle_dir, gallery_dir):
            shutil.rmtree(target, ignore_errors=True)
        (staging / "demo_bundle").rename(bundle_dir)
        (staging / "demo_gallery").rename(gallery_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary = {"metrics": metrics, "assets_bytes": _size(bundle_dir) + _size(gallery_dir), "gallery_items": len(test)}
    (out / "demo_provenance.json").write_text(json.dumps({
        "recipe": recipe, "seed": DEMO_SEED, "ids": DEMO_IDS, "test_fraction": DEMO_TEST_FRACTION,
        "image_size": list(DEMO_IMAGE_SIZE), "command": "python -m cli.demo --out tvreid_sdk/assets",
        **summary}, indent=2, sort_keys=True))
    return summary


def reexport_demo(out: Path, *, log=print) -> dict:
    """Re-export ``out/demo_bundle`` from its own ``weights.safetensors`` with the current exporter.

    The weights are the same, so the model id is, and ``out/demo_gallery`` stays valid. Before the new bundle
    replaces the old one, both encode the same random frames and captions through the SDK's backend (so a text graph
    with a newer layout, e.g. the dynamic token axis, is checked as it will run) and must agree within
    ``REEXPORT_ATOL``. The old bundle is moved aside, not deleted, until the new one is in place.

    Returns:
        ``{"model_id", "max_abs_diff": {role: float}}``.

    Raises:
        ModelFormatError: the new export's model id or embeddings differ from the shipped bundle's.
    """
    import numpy as np

    from export.build import export_bundle
    from tvreid_sdk import load_bundle
    from tvreid_sdk.backends import create_backend
    from tvreid_sdk.errors import ModelFormatError
    from tvreid_sdk.text.tokenizer import get_tokenizer

    bundle_dir = out / "demo_bundle"
    old = load_bundle(bundle_dir)
    old_schema = json.loads((bundle_dir / "manifest.json").read_text())["schema_version"]
    staging = Path(tempfile.mkdtemp(prefix=".demo.", dir=out))
    try:
        new, _ = export_bundle(bundle_dir / "weights.safetensors", staging / "demo_bundle", progress=log,
                               fused=False, description=old.manifest.description or None,
                               source={"reexported_from": f"the shipped demo bundle, schema {old_schema}",
                                       "command": REEXPORT_COMMAND})
        if new.manifest.model_id != old.manifest.model_id:
            raise ModelFormatError(f"re-export changed the model id ({old.manifest.model_id[:12]} → "
                                   f"{new.manifest.model_id[:12]}); the demo gallery would no longer match")
        man = old.manifest
        h, w = man.arch.vision.image_size
        frames = np.random.default_rng(0).integers(0, 256, (6, man.num_frames, h, w, 3), dtype=np.uint8)
        tok = get_tokenizer()(["a man in a red jacket walking", "woman with a blue bag", "child"])
        diffs = {}
        with create_backend(old, "ort-cpu") as before, create_backend(new, "ort-cpu") as after:
            for role, run in (("video_encoder", lambda b: b.encode_video(frames)),
                              ("frame_encoder", lambda b: b.encode_frames(frames[:, 0])),
                              ("text_encoder", lambda b: b.encode_text_ids(tok.ids, tok.eot_index))):
                if role in before.roles:
                    diffs[role] = float(np.abs(run(before) - run(after)).max())
        bad = {role: d for role, d in diffs.items() if not d <= REEXPORT_ATOL}
        if bad:
            raise ModelFormatError(f"the re-exported graphs differ from the shipped ones: {bad} > {REEXPORT_ATOL}")
        bundle_dir.rename(staging / "replaced_bundle")
        (staging / "demo_bundle").rename(bundle_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"re-exported {bundle_dir} (model_id {man.model_id[:12]}); max |Δ| vs the old graphs: {diffs}")
    provenance = out / "demo_provenance.json"
    if provenance.is_file():
        facts = json.loads(provenance.read_text())
        facts["assets_bytes"] = _size(bundle_dir) + _size(out / "demo_gallery")
        facts["reexport"] = {"command": REEXPORT_COMMAND, "max_abs_diff": diffs}
        provenance.write_text(json.dumps(facts, indent=2, sort_keys=True))
    return {"model_id": man.model_id, "max_abs_diff": diffs}


def _demo_record(i: int, trk, thumbnail: bytes):
    from tvreid_sdk import TrackletRecord

    start = DEMO_START + 37.0 * i
    return TrackletRecord(key=trk.track_id, camera=f"C{trk.camid + 1}", start_time=start,
                          end_time=start + len(trk.frames) / 25.0, source="tvreid synthetic demo",
                          thumbnail=thumbnail, person_id=trk.raw_pid,
                          caption=trk.captions[0] if trk.captions else None)


def _fold_wal(db: Path) -> None:
    """Fold the WAL into the main file and use rollback-journal mode, so read-only installs can open it."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the demo bundle and gallery shipped with tvreid.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tvreid_sdk" / "assets")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "tvreid-demo-work")
    parser.add_argument("--recipe", default="synthetic_demo")
    parser.add_argument("--data", type=Path, help="Reuse this rendering of the demo set (same seed and options).")
    parser.add_argument("--run", type=Path, help="Reuse (or resume) this run directory of the demo recipe.")
    parser.add_argument("--reexport", action="store_true",
                        help="Only re-export the shipped bundle from its own weights (the gallery stays).")
    args = parser.parse_args()
    if args.reexport:
        print(json.dumps(reexport_demo(args.out), indent=2))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    for name, given in (("synth", args.data), ("run", args.run)):
        link = args.work / name
        if given is not None and not link.exists():
            link.symlink_to(given.resolve(), target_is_directory=True)
    print(json.dumps(build_demo(args.out, args.work, recipe=args.recipe), indent=2))


if __name__ == "__main__":
    main()
