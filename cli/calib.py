"""``tvreid export --int8 --calib SOURCE``: real frames and captions for INT8 calibration.

The dataset reading stays here (cli may import training's dataset detection; export may not): export receives a
reader, :func:`calibration_reader`, that it calls with the checkpoint's architecture once it is loaded.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from export.int8 import Calibration
from export.parity import make_probe
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg


def calibration_reader(source: str, items: int) -> Callable[[ArchCfg, int], Calibration]:
    """A reader ``(arch, num_frames) → Calibration`` over ``items`` tracklets of ``source`` (any source
    ``tvreid index`` accepts), spread evenly over it.

    Video/frame roles get T evenly spaced frames per tracklet, resized to the model input; the text role gets the
    tracklets' captions. A source without captions gets the synthetic captions of the parity-probe generator for
    the text encoder, and the recorded source says so.
    """

    def read(arch: ArchCfg, num_frames: int) -> Calibration:
        from tvreid_sdk.text.tokenizer import get_tokenizer
        from tvreid_sdk.vision.decode import load_tracklet
        from tvreid_sdk.vision.preprocess import resize_frame

        from .data_cmds import _records_from_source

        kind, records = _records_from_source(source, None)
        if not records:
            raise ConfigError(f"--calib {source}: no tracklets found; give a dataset root or a folder of "
                              "tracklet folders (what `tvreid index` accepts)")
        pick = np.unique(np.linspace(0, len(records) - 1, min(items, len(records))).round().astype(int))
        chosen = [records[int(i)] for i in pick]
        videos = []
        for rec in chosen:
            frames, _ = load_tracklet(list(rec.frame_paths), on_bad_frame="skip")
            if not frames:
                continue
            idx = np.linspace(0, len(frames) - 1, num_frames).round().astype(int)  # [T]
            videos.append(np.stack([resize_frame(frames[int(i)], arch.preprocess) for i in idx]))  # [T,H,W,3]
        if not videos:
            raise ConfigError(f"--calib {source}: no decodable frames in the chosen tracklets")
        video = np.stack(videos)  # [N,T,H,W,3]
        h, w = arch.vision.image_size
        feeds = {"video_encoder": {"frames": video},
                 "frame_encoder": {"frames": video[:, num_frames // 2].reshape(-1, h, w, 3)}}  # middle frames
        captions = [r.caption for r in records if r.caption][:items]
        if captions:
            batch = get_tokenizer()(captions, truncate=True)
            feeds["text_encoder"] = {"input_ids": batch.ids, "eot_index": batch.eot_index}
            text_from = f"{len(captions)} captions"
        else:
            feeds["text_encoder"] = make_probe(arch, num_frames, ("text_encoder",), seed=1).feeds["text_encoder"]
            text_from = "captions synthetic (the source has none)"
        return Calibration(feeds, f"{source} ({kind}): {len(videos)} tracklets, {text_from}")

    return read
