"""Reading frames from video files with PyAV: probing, choosing frames, decoding exactly those frames.

A frame's identity is its position in presentation order. The decoder emits frames in presentation order
whatever the container says, so sequential decoding names frames by counting them; timestamps are not trusted
for that, since H.264 in AVI (the NTU format) decodes to frames whose `pts` are out of order. The probe counts
the same frames the decoder is given: the video stream's packets that are not empty, discarded or corrupt.

Seeking is used only where it was checked to return exact frames (MP4/MOV and Matroska/WebM, whose packets
carry unique presentation timestamps) and only to skip at least `seek_after_s` of video; every seek is
verified, and any surprise falls back to decoding from the start. AVI is always decoded from the start
(FACTS.md: seeking in AVI with B-frames is off by 1-2 frames in other decoders).
"""

from __future__ import annotations

import bisect
import math
import os
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from vjepa_tune.errors import BadInput

if TYPE_CHECKING:
    import torch

SAMPLINGS = ("uniform", "random_window")

# Container formats (FFmpeg demuxer names) where seeking by presentation timestamp was checked to be exact.
_SEEKABLE_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})

# How many listed frames may fail to come out of the decoder before the file counts as damaged (see
# read_frames).
_TAIL_SLACK_FRACTION = 0.05
_TAIL_SLACK_MIN = 2

# Boundary tolerance when mapping a time to the frame on screen: a target exactly on a frame's start picks
# that frame even after float rounding.
_TIME_EPS = 1e-6


class UnreadableVideo(Exception):
    """A video that cannot be opened or decoded; the caller leaves it out and reports `reason`."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class VideoInfo:
    """What the demuxer says about a video, without decoding it."""

    path: Path
    num_frames: int
    fps: float
    """The stream's average frame rate (num_frames / duration_s when the container gives none)."""
    duration_s: float
    """From the first frame's start to the last frame's end."""
    width: int
    height: int
    frame_times: tuple[float, ...]
    """Presentation time of each frame in seconds, sorted, the first frame at 0.0."""
    frame_pts: tuple[int, ...] | None = None
    """Raw presentation timestamps (stream time base), sorted; None where seeking is not trusted."""
    keyframes: tuple[int, ...] = ()
    """Positions of keyframes in presentation order."""


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise UnreadableVideo(path, "no such file")
    if path.stat().st_size == 0:
        raise UnreadableVideo(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"not a readable video container ({_reason(exc)})") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise UnreadableVideo(path, "no video stream")


def probe_video(path: str | Path) -> VideoInfo:
    """Count frames and read their timestamps from packets, without decoding (milliseconds per video)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        width, height = stream.codec_context.width, stream.codec_context.height
        time_base = stream.time_base
        entries: list[tuple[int | None, int | None, bool, int]] = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard or packet.is_corrupt:
                continue
            entries.append((packet.pts, packet.dts, packet.is_keyframe, packet.duration or 0))
        seekable = bool(_SEEKABLE_FORMATS & set(container.format.name.split(",")))
        rate = stream.average_rate or stream.guessed_rate
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"cannot read packets ({_reason(exc)})") from exc
    finally:
        container.close()
    if not entries:
        raise UnreadableVideo(path, "the video stream holds no frames")
    if width <= 0 or height <= 0:
        raise UnreadableVideo(path, "the video stream has no picture size")
    return _info_from_packets(path, entries, time_base, rate, seekable, width, height)


def _info_from_packets(
    path: Path,
    entries: list[tuple[int | None, int | None, bool, int]],
    time_base: Fraction | None,
    rate: Fraction | None,
    seekable: bool,
    width: int,
    height: int,
) -> VideoInfo:
    num_frames = len(entries)
    stamps = [pts if pts is not None else dts for pts, dts, _, _ in entries]
    if time_base and None not in stamps:
        order = sorted(range(num_frames), key=lambda i: stamps[i])
        tb = float(time_base)
        times = tuple((stamps[i] - stamps[order[0]]) * tb for i in order)
        keyframes = tuple(pos for pos, i in enumerate(order) if entries[i][2])
        single_duration = entries[0][3] * tb
        all_pts = [entries[i][0] for i in order]
        trusted = seekable and None not in all_pts and len(set(all_pts)) == num_frames
        frame_pts = tuple(all_pts) if trusted else None
    elif rate:
        # No timestamps (rare, some AVI): frames are evenly spaced at the stream's frame rate.
        times = tuple(i / float(rate) for i in range(num_frames))
        keyframes = tuple(i for i, e in enumerate(entries) if e[2])
        single_duration = 0.0
        frame_pts = None
    else:
        raise UnreadableVideo(path, "packets carry no timestamps and the stream has no frame rate")
    # The last frame is shown for the typical frame interval: packet durations follow decode order in MP4 and
    # are often nominal in Matroska, so they cannot be trusted for it.
    if num_frames > 1:
        last_duration = statistics.median(b - a for a, b in zip(times, times[1:], strict=False))
    else:
        last_duration = single_duration or (1.0 / float(rate) if rate else 0.0)
    duration = times[-1] + last_duration
    fps = float(rate) if rate else (num_frames / duration if duration > 0 else 0.0)
    return VideoInfo(
        path=path,
        num_frames=num_frames,
        fps=fps,
        duration_s=duration,
        width=width,
        height=height,
        frame_times=times,
        frame_pts=frame_pts,
        keyframes=keyframes,
    )


def frames_at_times(info: VideoInfo, times: Iterable[float]) -> list[int]:
    """The frame on screen at each time (seconds from the first frame), clamped to the video."""
    last = info.num_frames - 1
    return [min(max(bisect.bisect_right(info.frame_times, t + _TIME_EPS) - 1, 0), last) for t in times]


def _check_counts(n: int, frame_step: int) -> None:
    if n < 1:
        raise BadInput(f"frames per clip must be >= 1, got {n!r}.")
    if frame_step < 1:
        raise BadInput(f"--data.frame_step must be >= 1, got {frame_step!r}.")


def sample_frame_indices(
    info_or_num_frames: VideoInfo | int,
    n: int,
    sampling: str = "uniform",
    frame_step: int = 1,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Positions (presentation order) of the `n` frames of one clip; never fails on a short video.

    uniform: the video's time span [0, duration) is cut into n equal segments and the frame on screen at each
    segment's centre is taken, so variable frame rates are sampled evenly in time. For a constant frame rate
    (or a bare frame count) this is frame floor((k + 0.5) * num_frames / n) for k = 0..n-1; a video with fewer
    than n frames repeats frames, each in place (0, 0, 1, 1, 2, 2 for 3 frames and n = 6).

    random_window: n frames `frame_step` apart starting at a position drawn uniformly from `generator`;
    without a generator (evaluation) the window is centred. A video shorter than the window starts at 0 and
    repeats its last frame for the positions past its end, keeping the frame step (the clip's time scale).
    """
    _check_counts(n, frame_step)
    if isinstance(info_or_num_frames, VideoInfo):
        info: VideoInfo | None = info_or_num_frames
        num_frames = info_or_num_frames.num_frames
    else:
        info, num_frames = None, int(info_or_num_frames)
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame to sample from, got num_frames={num_frames}")
    if sampling == "uniform":
        if info is None:
            return [((2 * k + 1) * num_frames) // (2 * n) for k in range(n)]
        return frames_at_times(info, ((k + 0.5) * info.duration_s / n for k in range(n)))
    if sampling == "random_window":
        span = (n - 1) * frame_step + 1
        room = num_frames - span
        if room <= 0:
            start = 0
        elif generator is None:
            start = room // 2
        else:
            import torch  # here, not at the top: probing (`data check`) starts without torch

            start = int(torch.randint(0, room + 1, (1,), generator=generator).item())
        return [min(start + k * frame_step, num_frames - 1) for k in range(n)]
    raise BadInput(f"--data.sampling {sampling!r} is not a sampling; choose one of {', '.join(SAMPLINGS)}.")


def clip_span_s(info: VideoInfo, n: int, sampling: str = "uniform", frame_step: int = 1) -> float:
    """Seconds of the video that one clip of `n` frames spans: all of it with uniform sampling; with random_window
    `(n - 1) x frame_step + 1` frames at the video's frame rate, or all of a video shorter than that."""
    if sampling == "uniform" or info.fps <= 0:
        return info.duration_s
    return min(info.duration_s, ((n - 1) * frame_step + 1) / info.fps)


def typical_clip_s(infos: Iterable[VideoInfo], n: int, sampling: str = "uniform", frame_step: int = 1
                   ) -> float | None:
    """The median `clip_span_s` over some videos (a run's training videos): the time scale the run learnt its
    actions at; None for no videos."""
    spans = [clip_span_s(info, n, sampling, frame_step) for info in infos]
    return float(statistics.median(spans)) if spans else None


def window_frame_indices(info: VideoInfo, start_s: float, end_s: float, n: int) -> list[int]:
    """`n` frames spread over [start_s, end_s) as `uniform` spreads them over a video (segment centres)."""
    if not end_s > start_s:
        raise ValueError(f"a window needs end_s > start_s, got {start_s}..{end_s}")
    _check_counts(n, 1)
    length = end_s - start_s
    return frames_at_times(info, (start_s + (k + 0.5) * length / n for k in range(n)))


def _decode_packets(packets: Iterable[av.Packet]) -> Iterator[av.VideoFrame]:
    """Decoded frames in presentation order (the final empty packet from demux flushes the decoder).

    Packets the demuxer marks corrupt (the cut-off last packet of a truncated file) are left out here as in
    the probe: decoding them gives concealment garbage.
    """
    for packet in packets:
        if not packet.is_corrupt:
            yield from packet.decode()


def _to_rgb(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    # Any pixel format (grayscale, yuv, 10-bit) becomes 8-bit RGB at the probed size.
    return frame.to_ndarray(format="rgb24", width=width, height=height)


class _SeekMiss(Exception):
    """The seek landed somewhere unexpected; decode from the start instead."""


def _keyframe_before(info: VideoInfo, position: int) -> int | None:
    i = bisect.bisect_right(info.keyframes, position) - 1
    return info.keyframes[i] if i >= 0 else None


def _choose_threads(stream: av.video.stream.VideoStream) -> None:
    """Inside a DataLoader worker, the worker's share of the cores; elsewhere FFmpeg's choice (one per core).

    14 workers on a 16-core GPU machine would otherwise start 16 frame threads each, and a threaded decoder spends
    about 50% more CPU time per video than a single thread (568x320 H.264: 89 against 59 ms on the development
    machine). A few workers on many cores still get several threads each. Frames are bit-identical either way.
    """
    from torch.utils.data import get_worker_info  # here, not at the top: probing starts without torch

    worker = get_worker_info()
    if worker is None:
        stream.thread_type = "AUTO"
        return
    threads = decoder_threads(worker.num_workers)
    stream.thread_type = "AUTO" if threads > 1 else "SLICE"
    stream.thread_count = threads


def usable_cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def decoder_threads(workers: int) -> int:
    """Codec threads for each of `workers` processes decoding (or encoding) side by side: the usable CPUs shared
    out, at least one each."""
    return max(1, usable_cpus() // max(1, workers))


def _read_after_seek(path: Path, needed: list[int], info: VideoInfo, key: int) -> dict[int, np.ndarray]:
    """Seek to keyframe `key` and decode the needed frames, naming frames by their timestamps."""
    assert info.frame_pts is not None
    pts_to_position = {pts: i for i, pts in enumerate(info.frame_pts)}
    wanted, last = set(needed), needed[-1]
    got: dict[int, np.ndarray] = {}
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        _choose_threads(stream)
        container.seek(info.frame_pts[key], stream=stream, backward=True, any_frame=False)

        def checked(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
            first = True
            for packet in packets:
                if first and packet.size:
                    if not packet.is_keyframe or packet.pts != info.frame_pts[key]:
                        raise _SeekMiss
                    first = False
                yield packet

        previous = -1
        for frame in _decode_packets(checked(container.demux(stream))):
            position = pts_to_position.get(frame.pts)
            if position is None or (key <= position <= previous):
                raise _SeekMiss
            if position < key:
                continue  # leading frames of an open GOP: their references precede the keyframe
            previous = position
            if position in wanted:
                got[position] = _to_rgb(frame, info.width, info.height)
            if position >= last:
                return got
        raise _SeekMiss  # the stream ended before the last needed frame
    finally:
        container.close()


def tolerated_missing_frames(num_frames: int) -> int:
    """How many of the `num_frames` frames a container lists may fail to come out of the decoder (at the end)
    before the video counts as damaged; `read_frames` shows the last decoded frame in their place."""
    return max(_TAIL_SLACK_MIN, math.floor(_TAIL_SLACK_FRACTION * num_frames))


def _read_sequential(path: Path, needed: list[int], info: VideoInfo) -> dict[int, np.ndarray]:
    """Decode from the start, naming frames by count, and stop after the last needed one."""
    wanted, last = set(needed), needed[-1]
    got: dict[int, np.ndarray] = {}
    container = _open(path)
    decoded = 0
    last_frame: av.VideoFrame | None = None
    try:
        stream = _video_stream(container, path)
        _choose_threads(stream)
        for position, frame in enumerate(_decode_packets(container.demux(stream))):
            decoded, last_frame = position + 1, frame
            if position in wanted:
                got[position] = _to_rgb(frame, info.width, info.height)
            if position >= last:
                return got
    finally:
        container.close()
    # The decoder gave fewer frames than the container lists (XviD "not coded" placeholders, a damaged tail).
    missing = info.num_frames - decoded
    if last_frame is None:
        raise UnreadableVideo(path, "no frame could be decoded")
    if missing > tolerated_missing_frames(info.num_frames):
        raise UnreadableVideo(
            path, f"the decoder produced only {decoded} of the {info.num_frames} frames the container lists"
        )
    tail = _to_rgb(last_frame, info.width, info.height)
    for position in needed:
        got.setdefault(position, tail)
    return got


def read_frames(
    path: str | Path,
    indices: Sequence[int],
    info: VideoInfo | None = None,
    *,
    seek_after_s: float | None = 1.0,
) -> torch.Tensor:
    """The frames at `indices` (any order, repeats allowed) as uint8 RGB of shape (T, H, W, 3).

    Decoding stops after the last needed frame. Where the container supports exact seeking (see the module
    docstring) and the first needed frame's keyframe lies at least `seek_after_s` into the video, decoding
    starts at that keyframe; `seek_after_s=None` always decodes from the start. When the decoder yields a few
    frames fewer than the probe counted (at most 5% of them, at least 2), positions past the last decoded
    frame get that frame; more missing frames make the file unreadable. Every frame returned is one the
    decoder produced for that position, or that last frame; anything else raises UnreadableVideo.
    """
    import torch  # here, not at the top: probing (`data check`) starts without torch

    path = Path(path)
    info = info if info is not None else probe_video(path)
    positions = [int(i) for i in indices]
    bad = [i for i in positions if not 0 <= i < info.num_frames]
    if bad:
        raise IndexError(f"{path}: frame positions {bad[:5]} outside 0..{info.num_frames - 1}")
    if not positions:
        return torch.empty((0, info.height, info.width, 3), dtype=torch.uint8)
    needed = sorted(set(positions))
    got: dict[int, np.ndarray] | None = None
    try:
        key = _keyframe_before(info, needed[0]) if info.frame_pts is not None else None
        if seek_after_s is not None and key is not None and key > 0 and info.frame_times[key] >= seek_after_s:
            try:
                got = _read_after_seek(path, needed, info, key)
            except (_SeekMiss, av.FFmpegError):
                got = None  # decoding from the start settles whether the file itself is broken
        if got is None:
            got = _read_sequential(path, needed, info)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"decoding failed ({_reason(exc)})") from exc
    return torch.from_numpy(np.stack([got[i] for i in positions]))


def iter_thumbnails(path: str | Path, size: int) -> Iterator[np.ndarray]:
    """Every frame in presentation order, shrunk to `size` x `size` uint8 RGB: one sequential decoding pass
    for whole-video statistics (finding cuts) that would not fit in memory at full size."""
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        _choose_threads(stream)
        for frame in _decode_packets(container.demux(stream)):
            yield frame.to_ndarray(format="rgb24", width=size, height=size)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"decoding failed ({_reason(exc)})") from exc
    finally:
        container.close()


def read_window(
    path: str | Path, start_s: float, end_s: float, n: int, info: VideoInfo | None = None
) -> torch.Tensor:
    """`n` frames spread uniformly over [start_s, end_s) of a (long) video, for sliding-window prediction."""
    info = info if info is not None else probe_video(path)
    return read_frames(path, window_frame_indices(info, start_s, end_s, n), info)
