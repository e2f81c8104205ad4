"""Live streams for :mod:`~tvreid_sdk.ingest.watch`: open, read frames with the camera's clock, reconnect.

:func:`stream_frames` yields ``(camera time, frame)`` across drops: a drop or a stall (no packet for
``read_timeout`` seconds) reconnects with exponential backoff, and ``give_up_after`` seconds without a frame end it.
Frame times follow the stream's timestamps from the wall-clock time of each connection, kept monotonic across
reconnects; streams without a frame rate (MJPEG over HTTP stamps 25 fps whatever it sends) use the arrival time.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Iterator

import numpy as np

from ..errors import CorruptInputError
from ..timeutil import iso_utc
from ..vision.video import MAX_FRAME_PIXELS, import_av

if TYPE_CHECKING:
    from .watch import WatchCfg, WatchReport


def _open_stream(url: str, cfg: "WatchCfg"):
    av = import_av()
    return av.open(url, mode="r", timeout=(cfg.open_timeout, cfg.read_timeout))


def probe_stream(url: str, cfg: "WatchCfg") -> None:
    """Open ``url`` once and close it (a check before a gallery is created).

    Raises:
        CorruptInputError: unreachable, not a stream FFmpeg can read, or without video.
    """
    av = import_av()
    try:
        container = _open_stream(url, cfg)
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptInputError(f"{url}: cannot open this stream ({_describe(exc)}); check the URL and that the "
                                "camera is reachable", path=url) from None
    try:
        if not container.streams.video:
            raise CorruptInputError(f"{url}: the stream has no video; check the URL", path=url)
    finally:
        container.close()


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def stream_frames(url: str, cfg: "WatchCfg", report: "WatchReport",
                  stop: threading.Event) -> Iterator[tuple[float, np.ndarray]]:
    """``(camera time, RGB frame [H,W,3])`` of a stream, across reconnects (see the module docstring).

    Raises:
        CorruptInputError: the first connection fails (unreachable URL, not a video stream).
    """
    av = import_av()
    backoff, first, down_since, last_ts = cfg.reconnect_initial, True, None, -float("inf")
    while not stop.is_set():
        try:
            container = _open_stream(url, cfg)
            if not container.streams.video:
                container.close()
                raise CorruptInputError(f"{url}: the stream has no video; check the URL", path=url)
        except (av.error.FFmpegError, OSError) as exc:
            if first:
                raise CorruptInputError(f"{url}: cannot open this stream ({_describe(exc)}); check the URL and that "
                                        "the camera is reachable", path=url) from None
            report.drops.append(f"reconnect failed: {_describe(exc)}") if len(report.drops) < 20 else None
        else:
            first = False
            try:
                stream = container.streams.video[0]
                # timestamps without a known frame rate (MJPEG over HTTP stamps 25 fps whatever it sends): wall clock
                tb = float(stream.time_base) if stream.time_base and stream.average_rate else None
                anchor, pts0 = time.time(), None
                for packet in container.demux(stream):
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError as exc:
                        report.corrupt.append(f"stream at {iso_utc(time.time())}: {_describe(exc)}") \
                            if len(report.corrupt) < 100 else None
                        continue
                    for frame in frames:
                        if frame.width * frame.height > MAX_FRAME_PIXELS:  # bounded memory whatever the stream sends
                            raise av.error.InvalidDataError(0, f"{frame.width}x{frame.height} frame over the cap")
                        if frame.pts is not None and tb is not None:
                            pts0 = frame.pts if pts0 is None else pts0
                            ts = anchor + (frame.pts - pts0) * tb
                        else:
                            ts = time.time()
                        ts = max(ts, last_ts + 1e-3)  # the camera clock never runs backwards across reconnects
                        last_ts, down_since, backoff = ts, None, cfg.reconnect_initial
                        yield ts, frame.to_ndarray(format="rgb24")
                        if stop.is_set():
                            return
                why = "the stream ended"
            except av.error.ExitError:  # the read timeout's interrupt
                why = f"stalled: no data for {cfg.read_timeout:g}s"
            except (av.error.FFmpegError, OSError) as exc:
                why = _describe(exc)
            finally:
                container.close()
            report.drops.append(why) if len(report.drops) < 20 else None
        if stop.is_set():
            return
        down_since = down_since or time.monotonic()
        if cfg.give_up_after is not None and time.monotonic() - down_since >= cfg.give_up_after:
            report.stopped = f"no frame for {cfg.give_up_after:g}s (last: {report.drops[-1] if report.drops else '?'})"
            return
        report.reconnects += 1
        stop.wait(backoff)
        backoff = min(cfg.reconnect_max, backoff * 2)
