"""Videos as the demuxer sees them, with PyAV: probing (frame count, frame times, keyframes) without decoding, and
choosing which frames a clip takes; decoding them is `data.decoding`.

A frame's identity is its position in presentation order. The decoder emits frames in presentation order
whatever the container says, so sequential decoding names frames by counting them; timestamps are not trusted
for that, since H.264 in AVI (the NTU format) decodes to frames whose `pts` are out of order. The probe counts
the same frames the decoder is given: the video stream's packets that are not empty, discarded or corrupt.
"""

from __future__ import annotations

import bisect
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

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


MAX_FPS = 240
"""Above this a stream's stated frame rate is a clock's ticks, not frames: an AVI written with a millisecond time
base states 1000 whatever it holds (a tick without a frame is an empty chunk), some streams state their time base's
90000. Such a video's rate is its frames' mean rate instead (frames over duration), as MP4 states it; that is only
as good as the timestamps (a single frame lasting one tick, or frames without timestamps, spaced a tick apart,
still come out at the clock's rate)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the demuxer says about a video, without decoding it."""

    path: Path
    num_frames: int
    fps: float
    """The stream's stated frame rate; num_frames / duration_s where it states none or over MAX_FPS (a clock's
    ticks)."""
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


def error_text(exc: BaseException) -> str:
    """An exception as a reason for `UnreadableVideo`: its type and its message."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def open_video(path: Path) -> av.container.InputContainer:
    """The container, or UnreadableVideo saying why not (missing, empty, not a video)."""
    if not path.is_file():
        raise UnreadableVideo(path, "no such file")
    if path.stat().st_size == 0:
        raise UnreadableVideo(path, "empty file (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"not a readable video container ({error_text(exc)})") from exc


def video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    """The video stream (not an attached cover picture), or UnreadableVideo."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise UnreadableVideo(path, "no video stream")


def probe_video(path: str | Path) -> VideoInfo:
    """Count frames and read their timestamps from packets, without decoding (milliseconds per video)."""
    path = Path(path)
    container = open_video(path)
    try:
        stream = video_stream(container, path)
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
        raise UnreadableVideo(path, f"cannot read packets ({error_text(exc)})") from exc
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
    if rate and rate <= MAX_FPS:
        fps = float(rate)
    else:  # none stated, or a clock's ticks rather than frames: the frames' own mean rate
        fps = num_frames / duration if duration > 0 else 0.0
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


def frames_needed(n: int, sampling: str = "uniform", frame_step: int = 1) -> int:
    """Frames a video needs for a clip of `n` frames that repeats none: `n` with uniform sampling, the whole window
    `(n - 1) x frame_step + 1` with random_window (a shorter video repeats frames, `sample_frame_indices`)."""
    _check_counts(n, frame_step)
    return n if sampling == "uniform" else (n - 1) * frame_step + 1


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


def usable_cpus() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def decoder_threads(workers: int) -> int:
    """Codec threads for each of `workers` processes decoding (or encoding) side by side: the usable CPUs shared
    out, at least one each."""
    return max(1, usable_cpus() // max(1, workers))


def tolerated_missing_frames(num_frames: int) -> int:
    """How many of the `num_frames` frames a container lists may fail to come out of the decoder (at the end)
    before the video counts as damaged; `read_frames` shows the last decoded frame in their place."""
    return max(_TAIL_SLACK_MIN, math.floor(_TAIL_SLACK_FRACTION * num_frames))
