"""Export reads checkpoints through the one shared reader, :mod:`tvreid_sdk.modeling.checkpoint`."""
from tvreid_sdk.modeling.checkpoint import (  # noqa: F401
    BUNDLE_WEIGHTS, DEFAULT_NUM_FRAMES, META_ARCH, META_FRAMES, META_SAMPLER, RUN_DIR_CANDIDATES, TOWER_PREFIXES,
    LoadedCheckpoint, checkpoint_metadata, load_checkpoint, parse_checkpoint_meta, read_metadata, resolve_checkpoint,
    save_checkpoint, weights_digest)

_parse_meta = parse_checkpoint_meta  # the name export.tfclip_graphs imports
