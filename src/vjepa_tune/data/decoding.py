"""Decoding exactly the frames a clip needs, with PyAV, as uint8 RGB.

Seeking is used only where it was checked to return exact frames (MP4/MOV and Matroska/WebM, whose packets
carry unique presentation timestamps: `VideoInfo.frame_pts`) and only to skip at least `seek_after_s` of video;
every seek is verified, and any surprise falls back to decoding from the start. AVI is always decoded from the
start (FACTS.md: seeking in AVI with B-frames is off by 1-2 frames in other decoders).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import get_worker_info

from vjepa_tune.data.video import (
    UnreadableVideo,
    VideoInfo,
    decoder_threads,
    error_text,
    open_video,
    probe_video,
    tolerated_missing_frames,
    video_stream,
    window_frame_indices,
)


def decode_packets(packets: Iterable[av.Packet]) -> Iterator[av.VideoFrame]:
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


def choose_threads(stream: av.video.stream.VideoStream) -> None:
    """Inside a DataLoader worker, the worker's share of the cores; elsewhere FFmpeg's choice (one per core).

    14 workers on a 16-core GPU machine would otherwise start 16 frame threads each, and a threaded decoder spends
    more CPU time per video than a single thread (BENCHMARKS.md, "GPU", has the figures). A few workers
    on many cores still get several threads each. Frames are bit-identical either way.
    """
    worker = get_worker_info()
    if worker is None:
        stream.thread_type = "AUTO"
        return
    threads = decoder_threads(worker.num_workers)
    stream.thread_type = "AUTO" if threads > 1 else "SLICE"
    stream.thread_count = threads


def _read_after_seek(path: Path, needed: list[int], info: VideoInfo, key: int) -> dict[int, np.ndarray]:
    """Seek to keyframe `key` and decode the needed frames, naming frames by their timestamps."""
    assert info.frame_pts is not None
    pts_to_position = {pts: i for i, pts in enumerate(info.frame_pts)}
    wanted, last = set(needed), needed[-1]
    got: dict[int, np.ndarray] = {}
    container = open_video(path)
    try:
        stream = video_stream(container, path)
        choose_threads(stream)
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
        for frame in decode_packets(checked(container.demux(stream))):
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


def _read_sequential(path: Path, needed: list[int], info: VideoInfo) -> dict[int, np.ndarray]:
    """Decode from the start, naming frames by count, and stop after the last needed one."""
    wanted, last = set(needed), needed[-1]
    got: dict[int, np.ndarray] = {}
    container = open_video(path)
    decoded = 0
    last_frame: av.VideoFrame | None = None
    try:
        stream = video_stream(container, path)
        choose_threads(stream)
        for position, frame in enumerate(decode_packets(container.demux(stream))):
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
        raise UnreadableVideo(path, f"decoding failed ({error_text(exc)})") from exc
    return torch.from_numpy(np.stack([got[i] for i in positions]))


def iter_thumbnails(path: str | Path, size: int) -> Iterator[np.ndarray]:
    """Every frame in presentation order, shrunk to `size` x `size` uint8 RGB: one sequential decoding pass
    for whole-video statistics (finding cuts) that would not fit in memory at full size."""
    path = Path(path)
    container = open_video(path)
    try:
        stream = video_stream(container, path)
        choose_threads(stream)
        for frame in decode_packets(container.demux(stream)):
            yield frame.to_ndarray(format="rgb24", width=size, height=size)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"decoding failed ({error_text(exc)})") from exc
    finally:
        container.close()


def iter_frames(path: str | Path, info: VideoInfo, stop: int | None = None) -> Iterator[np.ndarray]:
    """Frames 0 .. `stop` - 1 (default: all the probe counted) in presentation order, as uint8 RGB (H, W, 3) at the
    probed size: one sequential decoding pass, for work that visits every frame of a long video (sliding windows)
    and could not hold them all.

    They are the frames `read_frames` gives for the same positions: when the decoder yields a few frames fewer than
    the probe counted (`tolerated_missing_frames`), the last decoded frame stands in for the missing ones; more
    missing frames, or a decoding error, raise UnreadableVideo (after the frames already yielded).
    """
    path = Path(path)
    stop = info.num_frames if stop is None else min(stop, info.num_frames)
    if stop <= 0:
        return
    last: np.ndarray | None = None
    decoded = 0
    container = open_video(path)
    try:
        stream = video_stream(container, path)
        choose_threads(stream)
        for frame in decode_packets(container.demux(stream)):
            last = _to_rgb(frame, info.width, info.height)
            decoded += 1
            yield last
            if decoded >= stop:
                return
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(path, f"decoding failed ({error_text(exc)})") from exc
    finally:
        container.close()
    if last is None:
        raise UnreadableVideo(path, "no frame could be decoded")
    if info.num_frames - decoded > tolerated_missing_frames(info.num_frames):
        raise UnreadableVideo(
            path, f"the decoder produced only {decoded} of the {info.num_frames} frames the container lists"
        )
    for _ in range(stop - decoded):
        yield last


def read_window(
    path: str | Path, start_s: float, end_s: float, n: int, info: VideoInfo | None = None
) -> torch.Tensor:
    """`n` frames spread uniformly over [start_s, end_s) of a (long) video, for sliding-window prediction."""
    info = info if info is not None else probe_video(path)
    return read_frames(path, window_frame_indices(info, start_s, end_s, n), info)
