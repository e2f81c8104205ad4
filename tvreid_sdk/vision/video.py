"""Video decoding with PyAV (optional extra ``video``; imported only when a video is opened; no torch).

Frames come out as RGB ``uint8 [H,W,3]`` arrays with a 0-based frame index and a time in seconds from the
start of the stream. The index is derived from each frame's presentation timestamp (``round(t * fps)``), so a
frame lost to a corrupt packet leaves a gap instead of shifting every later frame: tracker output that
numbers frames (MOTChallenge) stays aligned.

Bad input:
    - a file that is missing, not a video, or has no video stream → :class:`CorruptInputError` at open;
    - a packet that fails to decode → skipped and counted (``on_bad_frame="skip"``, the default) or
      :class:`CorruptInputError` naming the file and frame (``"fail"``);
    - a frame whose timestamp does not move forward (timestamps going backwards, duplicates) → skipped and
      counted;
    - a container that breaks off (truncated file) → decoding stops there and the report says where.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import BackendUnavailableError, CorruptInputError

MAX_FRAME_PIXELS = 8192 * 8192  # refuse absurd frame sizes before allocating them
MAX_EXAMPLES = 5
BAD_FRAME_POLICIES = ("skip", "fail")


def import_av():
    """The ``av`` (PyAV) module, or BackendUnavailableError naming the extra that installs it."""
    try:
        import av
    except ImportError as exc:
        raise BackendUnavailableError("decoding videos needs PyAV: `pip install \"tvreid[video]\"` "
                                      "(or `pip install av`)") from exc
    return av


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        fps: average frame rate, or None when the container does not know it.
        frame_count: number of frames when the container records it, else an estimate from the duration, else None.
        duration: seconds, or None.
        creation_time: unix seconds from the container's ``creation_time`` tag, or None.
        codec: decoder name.
    """

    path: str
    width: int
    height: int
    fps: Optional[float]
    frame_count: Optional[int]
    duration: Optional[float]
    creation_time: Optional[float]
    codec: str


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: 0-based ``index``, ``time`` in seconds from the stream start, RGB ``image`` [H,W,3]."""

    index: int
    time: float
    image: np.ndarray


@dataclasses.dataclass
class DecodeReport:
    """What decoding skipped.

    Attributes:
        decoded: frames returned.
        corrupt: packets or frames that failed to decode.
        out_of_order: frames skipped because their timestamp did not move forward.
        ended_early: why the container stopped before its end (truncated or damaged), else None.
        examples: up to :data:`MAX_EXAMPLES` short descriptions of the problems.
    """

    decoded: int = 0
    corrupt: int = 0
    out_of_order: int = 0
    ended_early: Optional[str] = None
    examples: list[str] = dataclasses.field(default_factory=list)

    def note(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)


def _parse_creation_time(text: object) -> Optional[float]:
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def _unreadable(path: str, problem: str) -> CorruptInputError:
    return CorruptInputError(f"{path}: cannot read this video ({problem}); check the file, or re-encode it "
                             "(e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`)", path=path)


class VideoReader:
    """Decodes the first video stream of a file, frame by frame (constant memory).

    Args:
        path: the video file.
        on_bad_frame: ``skip`` (count corrupt packets and go on) or ``fail`` (raise CorruptInputError).
        threads: let FFmpeg decode with several threads.

    Example:
        >>> with VideoReader("cam3.mp4") as video:                    # doctest: +SKIP
        ...     for frame in video.frames():
        ...         boxes = tracks.by_frame.get(frame.index + 1, [])
    """

    def __init__(self, path: str | os.PathLike, *, on_bad_frame: str = "skip", threads: bool = True):
        if on_bad_frame not in BAD_FRAME_POLICIES:
            raise ValueError(f"on_bad_frame must be one of {BAD_FRAME_POLICIES}, got {on_bad_frame!r}")
        av = import_av()
        self.path = str(path)
        self.on_bad_frame = on_bad_frame
        self.report = DecodeReport()
        if not Path(self.path).is_file():
            raise CorruptInputError(f"{self.path}: no such video file; check the path", path=self.path)
        try:
            self._container = av.open(self.path, mode="r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
            raise _unreadable(self.path, str(exc).split(":")[0] or type(exc).__name__) from None
        try:
            if not self._container.streams.video:
                raise _unreadable(self.path, "it has no video stream")
            self._stream = self._container.streams.video[0]
            if threads:
                self._stream.thread_type = "AUTO"
            self.info = self._read_info()
        except BaseException:
            self._container.close()
            raise

    def _read_info(self) -> VideoInfo:
        stream, container = self._stream, self._container
        width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        if width < 1 or height < 1:
            raise _unreadable(self.path, f"its video stream reports a frame size of {width}x{height}")
        if width * height > MAX_FRAME_PIXELS:
            raise _unreadable(self.path, f"{width}x{height} frames exceed the {MAX_FRAME_PIXELS:,}-pixel cap")
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and float(rate) > 0 else None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        count = int(stream.frames) if stream.frames else None
        if count is None and duration is not None and fps is not None:
            count = int(round(duration * fps))
        created = _parse_creation_time(container.metadata.get("creation_time")) \
            or _parse_creation_time(stream.metadata.get("creation_time"))
        return VideoInfo(path=self.path, width=width, height=height, fps=fps, frame_count=count, duration=duration,
                         creation_time=created, codec=stream.codec_context.name)

    def _bad(self, problem: str, frame_index: int) -> None:
        self.report.corrupt += 1
        self.report.note(f"near frame {frame_index}: {problem}")
        if self.on_bad_frame == "fail":
            raise CorruptInputError(f"{self.path}: the frame at index {frame_index} (0-based) cannot be decoded "
                                    f"({problem}); re-encode the "
                                    "video, or use on_bad_frame='skip' (--on-bad-frame skip) to leave bad frames out",
                                    path=self.path, frame_index=frame_index)

    def frames(self, stop: Optional[int] = None) -> Iterator[VideoFrame]:
        """Yield frames in presentation order.

        Args:
            stop: stop before the frame with this 0-based index (e.g. after the last frame a tracker reported).
        """
        av = import_av()
        stream = self._stream
        tb = float(stream.time_base) if stream.time_base is not None else None
        fps = self.info.fps
        start_pts: Optional[int] = stream.start_time
        last_index = -1
        packets = self._container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                self._check_complete(last_index, stop)
                return
            except av.error.FFmpegError as exc:
                self.report.ended_early = f"the container breaks off after frame index {last_index} ({exc})"
                self._bad(f"container error: {exc}", last_index + 1)
                return
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                self._bad(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}", last_index + 1)
                continue
            for frame in decoded:
                if frame.pts is not None and tb is not None:
                    if start_pts is None:
                        start_pts = frame.pts
                    time = (frame.pts - start_pts) * tb
                    index = int(round(time * fps)) if fps else last_index + 1
                else:  # no timestamp: assume the next frame
                    index = last_index + 1
                    time = index / fps if fps else float(index)
                if index <= last_index:
                    self.report.out_of_order += 1
                    self.report.note(f"frame at {time:.3f}s (index {index}) does not come after frame {last_index}")
                    continue
                if stop is not None and index >= stop:
                    return
                image = frame.to_ndarray(format="rgb24")  # [H,W,3] uint8
                last_index = index
                self.report.decoded += 1
                yield VideoFrame(index=index, time=float(time), image=image)

    def _check_complete(self, last_index: int, stop: Optional[int]) -> None:
        """Notes (or, with ``fail``, raises) a stream that ends well before the frame count its container announces."""
        announced = self.info.frame_count
        wanted = announced if stop is None or announced is None else min(stop, announced)
        if wanted is None or last_index + 1 >= wanted - 1:  # one frame of slack: counts may be estimates
            return
        self.report.ended_early = (f"the video stops after frame index {last_index} but its container announces "
                                   f"{announced} frames (truncated file?)")
        if self.on_bad_frame == "fail":
            raise CorruptInputError(f"{self.path}: {self.report.ended_early}; re-encode or re-copy the video, or use "
                                    "on_bad_frame='skip' to keep what could be decoded", path=self.path,
                                    frame_index=last_index + 1)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """The :class:`VideoInfo` of a file without decoding any frame."""
    with VideoReader(path, threads=False) as reader:
        return reader.info
