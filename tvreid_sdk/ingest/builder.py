"""Streaming tracklet building: ``(track_id, timestamp, crop)`` in, committed gallery tracklets out.

A :class:`TrackletBuilder` sits behind your detector + tracker. Each crop is validated and resized to the
model's input size in the caller's thread and appended to its track's open *segment*. A segment closes when
its track has been idle for ``idle_timeout`` seconds of stream time, when it reaches ``max_duration`` seconds
or ``max_frames`` crops (the track goes on in a new segment), when too many tracks are open (the least recently
seen one closes), when the tracker says the track ended (:meth:`TrackletBuilder.end_track`), or on
:meth:`~TrackletBuilder.flush` / :meth:`~TrackletBuilder.close`. Closed segments go through a bounded queue to
one worker thread that encodes them in micro-batches with the bundle's sampler and commits each batch to the
gallery in one transaction.

Memory is bounded: an open segment keeps at most ``max_kept_frames`` resized crops (when full, every other one
is dropped and only every 2nd, 4th, ... later crop is kept, so the kept frames stay evenly spread over the whole
segment), at most ``max_open_tracks`` segments are open, and at most ``queue_size`` closed segments wait for the
encoder. When the encoder falls behind, :meth:`~TrackletBuilder.push` blocks (back-pressure) and raises
:class:`BackPressureError` after ``push_timeout`` seconds instead of growing a queue; the crop is then not
accepted and the open segment stays intact, so the call can be retried.

Nothing accepted is lost: ``close()`` (also run by the context manager and at interpreter exit) closes every
open segment and waits until all of them are committed. Segments whose key is already in the gallery are
skipped, which makes re-running an interrupted ingest resume where it stopped.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import math
import queue
import threading
import time as _time
import weakref
from typing import Callable, Hashable, Optional, Union

import numpy as np

from ..errors import ConfigError, CorruptInputError, GalleryModelMismatchError, TvreidError
from ..gallery import Gallery, TrackletRecord
from ..timeutil import TimeLike, to_unix_seconds
from ..vision.decode import validate_array
from ..vision.thumbnail import THUMB_HEIGHT
from .config import BackPressureError, StreamCfg, StreamStats, default_key
from .segment import PROVISIONAL, Segment, is_provisional

__all__ = ["TrackletBuilder", "StreamCfg", "StreamStats", "BackPressureError", "default_key", "PROVISIONAL",
           "is_provisional"]

_STOP = object()  # queue item that ends the worker
_PUSH_TIMEOUT = object()  # "use cfg.push_timeout"


class TrackletBuilder:
    """Turns a stream of tracked person crops into gallery tracklets (see the module docstring).

    Args:
        encoder: a :class:`~tvreid_sdk.Encoder` (its sampler and input size are used).
        gallery: an open, writable :class:`~tvreid_sdk.Gallery` of the same model.
        camera: camera name stored with every tracklet.
        cfg: limits; see :class:`StreamCfg`.
        source: stored as each tracklet's ``source`` (e.g. the stream URL or video file).
        time_origin: when given, ``source`` gets a media fragment ``#t=START,END`` in seconds since this time.
        key_fn: ``(camera, track_id, start_seconds) -> key``; default :func:`default_key`.
        identity: gives keys, native ids and fingerprints instead of ``key_fn`` (e.g.
            :class:`~tvreid_sdk.ingest.sources.VideoIdentity`, which puts the source's name in the key), and decides
            what a re-run skips: only segments stored with the same fingerprint.
        on_conflict: a segment's key already stored for another tracklet: ``error`` (the commit fails, nothing is
            overwritten), ``skip`` or ``replace`` (see :meth:`~tvreid_sdk.Gallery.add`).
        on_bad_input: ``skip`` counts too-small crops and timestamps going backwards; ``fail`` raises
            CorruptInputError for them.
        on_commit: called from the worker thread with the records of each committed batch.

    Example:
        >>> with TrackletBuilder(encoder, gallery, camera="gate-2") as builder:     # doctest: +SKIP
        ...     for ts, frame, tracks in my_tracker(stream):
        ...         for tid, (x, y, w, h) in tracks:
        ...             builder.push(tid, ts, frame[y:y + h, x:x + w])
        ...         builder.advance(ts)
    """

    def __init__(self, encoder, gallery: Gallery, camera: str, cfg: StreamCfg = StreamCfg(), *, source: str = "",
                 time_origin: Optional[TimeLike] = None, key_fn: Callable[[str, Hashable, float], str] = default_key,
                 on_bad_input: str = "skip", on_commit: Optional[Callable[[list[TrackletRecord]], None]] = None,
                 identity=None, on_conflict: str = "error"):
        if not isinstance(camera, str) or not camera:
            raise ConfigError(f"camera must be a non-empty name, got {camera!r}")
        if on_bad_input not in ("skip", "fail"):
            raise ConfigError(f"on_bad_input must be 'skip' or 'fail', got {on_bad_input!r}")
        if gallery.readonly:
            raise ConfigError(f"gallery {gallery.path} is open read-only; open it writable to build tracklets")
        if gallery.model_id != encoder.model_id:
            raise GalleryModelMismatchError(f"gallery {gallery.path} holds model {gallery.model_id!r} but the encoder "
                                            f"is {encoder.model_id!r}; use a gallery made with this bundle")
        t = encoder.sampler.num_frames
        if cfg.max_kept_frames < t:
            raise ConfigError(f"max_kept_frames ({cfg.max_kept_frames}) is below the bundle's {t} frames per "
                              f"tracklet; raise it to at least {t + t % 2}")
        self.encoder, self.gallery, self.camera, self.cfg = encoder, gallery, camera, cfg
        self.source, self.key_fn, self.on_bad_input, self.on_commit = source, key_fn, on_bad_input, on_commit
        self.identity, self.on_conflict = identity, on_conflict
        self.time_origin = None if time_origin is None else to_unix_seconds(time_origin, "time_origin",
                                                                              CorruptInputError)
        self._preprocess = encoder.manifest.preprocess
        self._open: "collections.OrderedDict[Hashable, Segment]" = collections.OrderedDict()  # LRU first
        self._now = -math.inf
        self._lock = threading.RLock()  # tracking state (caller side)
        self._stats = StreamStats()
        self._stats_lock = threading.Lock()
        self._queue: "queue.Queue" = queue.Queue(maxsize=cfg.queue_size)
        self._error: Optional[BaseException] = None
        self._closed = False
        self._worker = threading.Thread(target=self._work, name=f"tvreid-stream-{camera}", daemon=True)
        self._worker.start()
        self._atexit = _register_atexit(self)

    # ------------------------------------------------------------------ caller side
    @property
    def stats(self) -> StreamStats:
        with self._stats_lock:
            return dataclasses.replace(self._stats, closed=dict(self._stats.closed))

    @property
    def open_tracks(self) -> int:
        return len(self._open)

    @property
    def memory_bound_bytes(self) -> int:
        """Upper bound of the crop memory held (open segments + queue + one batch), thumbnails included."""
        h, w = self._preprocess.image_size
        per_segment = self.cfg.max_kept_frames * h * w * 3 + THUMB_HEIGHT * 4 * THUMB_HEIGHT * 3
        return (self.cfg.max_open_tracks + self.cfg.queue_size + self.cfg.batch_size) * per_segment

    def _count(self, field: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self._stats, field, getattr(self._stats, field) + n)

    def _check_alive(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise TvreidError("this TrackletBuilder is closed; create a new one to add more tracklets")

    def _bad(self, field: str, message: str) -> bool:
        if self.on_bad_input == "fail":
            raise CorruptInputError(message + "; fix the input or use on_bad_input='skip' to count and skip it",
                                    path=f"<stream {self.camera}>")
        self._count(field)
        return False

    def push(self, track_id: Hashable, timestamp: TimeLike, crop: np.ndarray) -> bool:
        """Add one crop of ``track_id`` seen at ``timestamp`` (Unix seconds, a datetime (naive = UTC) or ISO 8601
        text: :func:`~tvreid_sdk.timeutil.to_unix_seconds`).

        Returns:
            True when the crop was accepted, False when it was skipped (too small, or its timestamp does not
            come after the track's previous one) and counted in :attr:`stats`.

        Raises:
            CorruptInputError: ``crop`` is not a uint8 [H,W,3] array, the timestamp is not a usable time (not
                finite, before 1973), or (``on_bad_input="fail"``) a crop that would be skipped.
            BackPressureError: the encoder queue stayed full for ``push_timeout`` seconds; nothing changed.
            The worker's error (e.g. GalleryError) when committing failed.
        """
        validate_array(crop)
        ts = to_unix_seconds(timestamp, "timestamp", CorruptInputError)
        with self._lock:
            self._check_alive()
            h, w = crop.shape[:2]
            if h < self.cfg.min_crop_height or w < self.cfg.min_crop_width:
                return self._bad("too_small", f"crop {h}x{w} of track {track_id!r} is under the minimum "
                                              f"{self.cfg.min_crop_height}x{self.cfg.min_crop_width}")
            seg = self._open.get(track_id)
            if seg is not None and ts <= seg.last:
                return self._bad("backwards", f"timestamp {ts:.3f} of track {track_id!r} does not come after its "
                                              f"previous one ({seg.last:.3f})")
            self._advance_locked(ts)
            seg = self._open.get(track_id)
            if seg is not None and self._full(seg, ts):
                self._close_locked(seg, "max_length")
                seg = None
            if seg is None:
                seg = self._start(track_id, ts)
            self._add(seg, ts, crop)
            self._count("accepted")
            return True

    def _full(self, seg: Segment, ts: float) -> bool:
        return seg.full(ts, self.cfg.max_duration, self.cfg.max_frames)

    def _start(self, track_id: Hashable, ts: float) -> Segment:
        while len(self._open) >= self.cfg.max_open_tracks:
            self._close_locked(next(iter(self._open.values())), "evicted")
        if self.identity is not None:
            key = self.identity.key(self.camera, track_id, ts)
            done = self.cfg.skip_existing and self.identity.already_stored(self.gallery, self.camera, track_id, ts)
        else:
            key = self.key_fn(self.camera, track_id, ts)
            done = self.cfg.skip_existing and self.gallery.has(key)
        seg = Segment(track_id=track_id, key=key, start=ts, last=ts, done=done)
        self._open[track_id] = seg
        return seg

    def _add(self, seg: Segment, ts: float, crop: np.ndarray) -> None:
        self._open.move_to_end(seg.track_id)
        seg.add(ts, crop, max_kept=self.cfg.max_kept_frames, preprocess=self._preprocess,
                thumbnails=self.cfg.thumbnails)

    def advance(self, timestamp: TimeLike) -> None:
        """Tell the builder that stream time reached ``timestamp`` (call once per frame, with or without
        detections): segments idle for longer than ``idle_timeout`` close."""
        ts = to_unix_seconds(timestamp, "timestamp", CorruptInputError)
        with self._lock:
            self._check_alive()
            self._advance_locked(ts)

    def _advance_locked(self, ts: float) -> None:
        if ts <= self._now:
            return
        for seg in [s for s in self._open.values() if ts - s.last > self.cfg.idle_timeout]:
            self._close_locked(seg, "idle")  # may raise BackPressureError: time then stays put for a retry
        self._now = ts

    def end_track(self, track_id: Hashable) -> bool:
        """Close ``track_id``'s open segment now (the tracker lost it); False when it has none."""
        with self._lock:
            self._check_alive()
            seg = self._open.get(track_id)
            if seg is not None:
                self._close_locked(seg, "ended")
            return seg is not None

    def _close_locked(self, seg: Segment, reason: str, wait: Union[float, None, object] = _PUSH_TIMEOUT) -> None:
        """Hand ``seg`` to the worker; on a full queue wait up to ``wait`` seconds (default: push_timeout; None:
        forever), leaving ``seg`` open when that fails."""
        wait = self.cfg.push_timeout if wait is _PUSH_TIMEOUT else wait
        if seg.done:
            self._count("already_present")
        elif seg.count < self.cfg.min_frames:
            self._count("too_short")
        else:
            try:
                self._queue.put(seg, timeout=wait)
            except queue.Full:
                raise BackPressureError(
                    f"the encoder queue has been full for {self.cfg.push_timeout}s ({self.cfg.queue_size} tracklets "
                    "waiting); the crop was not accepted. Slow the producer down, use a faster backend or a larger "
                    "batch_size, or raise push_timeout") from None
        del self._open[seg.track_id]
        with self._stats_lock:
            self._stats.closed[reason] += 1

    def write_provisional(self, after: float, every: float) -> int:
        """Make still-open tracks searchable: queue a snapshot of each open segment that spans at least ``after``
        seconds and grew by ``every`` seconds since its last snapshot. A snapshot is committed under the segment's
        final key with a fingerprint marked :data:`PROVISIONAL` and replaced in place by the next snapshot, then by
        the final tracklet when the segment closes. Best effort: a full encoder queue skips it (never blocks).

        Returns:
            the number of snapshots queued.
        """
        queued = 0
        with self._lock:
            self._check_alive()
            for seg in self._open.values():
                if seg.done or seg.count < self.cfg.min_frames or seg.last - seg.start < after:
                    continue
                if seg.shown_at is not None and seg.last - seg.shown_at < every:
                    continue
                snap = dataclasses.replace(seg, frames=list(seg.frames), provisional=True)
                try:
                    self._queue.put_nowait(snap)
                except queue.Full:
                    break
                seg.shown_at = seg.last
                queued += 1
        return queued

    def flush(self, timeout: Optional[float] = None) -> None:
        """Close every open segment and wait until everything accepted so far is committed.

        Raises:
            TimeoutError: not done within ``timeout`` seconds (the work continues in the background).
            The worker's error when committing failed.
        """
        with self._lock:
            self._check_alive()
            for seg in list(self._open.values()):
                self._close_locked(seg, "flush", wait=None)
            done = threading.Event()
            self._queue.put(done)  # blocks while the queue is full: the worker is draining it
        if not done.wait(timeout):
            raise TimeoutError(f"flush did not finish within {timeout}s; the encoder is still working")
        if self._error is not None:
            raise self._error

    def close(self) -> StreamStats:
        """Flush, stop the worker and return the final :attr:`stats`. Idempotent."""
        if self._closed:
            return self.stats
        try:
            if self._error is None:
                self.flush()
        finally:
            with self._lock:
                self._count("lost", sum(1 for s in self._open.values() if not s.done))  # only after an error
                self._open.clear()
            self._stop()
        if self._error is not None:
            raise self._error
        return self.stats

    def abort(self) -> StreamStats:
        """Stop without committing the open segments (e.g. on Ctrl-C); batches already queued still commit.

        A re-run with ``skip_existing`` rebuilds what was dropped.
        """
        if not self._closed:
            with self._lock:
                self._open.clear()
            self._stop()
        return self.stats

    def _stop(self) -> None:
        self._closed = True
        self._queue.put(_STOP)  # the worker exits once it reaches this
        self._worker.join()
        atexit.unregister(self._atexit)

    def __enter__(self) -> "TrackletBuilder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.close()
        else:
            self.abort()

    # ------------------------------------------------------------------ worker side
    def _work(self) -> None:
        while True:
            batch: list[Segment] = []
            marker = item = self._queue.get()
            deadline = _time.monotonic() + self.cfg.max_batch_wait
            while isinstance(item, Segment):  # gather a micro-batch: until full, a marker, or max_batch_wait
                batch.append(item)
                marker = None
                if len(batch) == self.cfg.batch_size:
                    break
                try:
                    marker = item = self._queue.get(timeout=max(0.0, deadline - _time.monotonic()))
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)
            if isinstance(marker, threading.Event):  # a flush: everything queued before it is done
                marker.set()
            elif marker is _STOP:
                return

    def _commit(self, batch: list[Segment]) -> None:
        if self._error is not None:
            self._count("lost", sum(not seg.provisional for seg in batch))
            return
        latest = {seg.key: seg for seg in batch}  # a later snapshot or the final segment supersedes a snapshot
        batch = [seg for seg in batch if latest[seg.key] is seg]
        final = [seg for seg in batch if not seg.provisional]
        try:
            records = [self._record(seg) for seg in batch]
            clips = [self.encoder.prepare_tracklet(seg.frames) for seg in batch]  # each [T,H,W,3]
            emb = self.encoder.encode_prepared(clips)  # [N,D]
            shown = {k for k, hit in self.gallery.stored_identity([r.key for r in records]).items()
                     if is_provisional(hit.fingerprint)}  # provisional rows are replaced in place
            records = [dataclasses.replace(r, fingerprint="final:" + r.key)  # else it would "match" the snapshot
                       if r.key in shown and r.fingerprint is None else r for r in records]
            skipped: list[str] = []
            for replace in (False, True):
                rows = [i for i, r in enumerate(records) if (r.key in shown or batch[i].provisional) == replace]
                if rows:
                    skipped += self.gallery.add([records[i] for i in rows], emb[rows], skip_existing=True,
                                                on_conflict="replace" if replace else self.on_conflict)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller on its next call
            self._error = exc
            self._count("lost", len(final))
            return
        done = [r for r, seg in zip(records, batch) if not seg.provisional]
        with self._stats_lock:
            self._stats.committed += len(done) - len([k for k in skipped if k in {r.key for r in done}])
            self._stats.already_present += len([k for k in skipped if k in {r.key for r in done}])
            self._stats.provisional += len(records) - len(done)
            self._stats.batches += 1
        if self.on_commit is not None and done:
            try:
                self.on_commit(done)
            except BaseException as exc:  # noqa: BLE001
                self._error = exc

    def _record(self, seg: Segment) -> TrackletRecord:
        return seg.record(self.camera, self.source, self.time_origin, self.identity)


def _register_atexit(builder: TrackletBuilder):
    ref = weakref.ref(builder)

    def close_at_exit() -> None:
        live = ref()
        if live is not None and not live._closed:
            live.close()

    atexit.register(close_at_exit)
    return close_at_exit
