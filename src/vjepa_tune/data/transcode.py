"""Transcoding one video for `data prepare`: a small H.264 MP4 that keeps every frame at its source's presentation
time, read back and compared with its source before it is kept.

Times come from the probe (the container's packet timestamps sorted, the i-th for the i-th frame in presentation
order), never from decoded frames, whose `pts` are out of order in AVI with B-frames. A copy whose frame count or
any frame time differs from its source's by more than half a frame interval is not kept.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from vjepa_tune.data.copies import aside_path
from vjepa_tune.data.video import MAX_FPS, UnreadableVideo, VideoInfo, probe_video, tolerated_missing_frames

CRF = 20
"""x264 constant rate factor: visually lossless at these sizes (BENCHMARKS.md, "Data pipeline", has the sizes)."""
PRESET = "veryfast"
KEYFRAME_INTERVAL_S = 2.0
"""A keyframe every 2 s bounds how far a seek must decode to reach any frame."""
FINE_TIME_BASE = Fraction(1, 90000)
"""The copy's time base where the source's is missing or too fine for the encoder and the MP4 muxer."""
MAX_TIME_BASE_DENOMINATOR = 2**31 - 1


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at most `short_side` (never upscaled), aspect kept, both even.

    yuv420p needs even dimensions; an odd source smaller than the target loses at most one pixel per side.
    """
    scale = min(1.0, short_side / min(width, height))
    even = [max(2, 2 * round(side * scale / 2)) for side in (width, height)]
    return even[0], even[1]


@dataclass(frozen=True)
class TranscodeJob:
    """One video to transcode: from where, to where, the short side, and the codec threads to use."""

    source: Path
    target: Path
    short_side: int
    threads: int


@dataclass(frozen=True)
class TranscodeOutcome:
    """How one transcode went."""

    target: Path
    reason: str | None = None
    """Why the source could not be read or its copy was not kept; None when the transcode succeeded."""
    unreadable: bool = True
    """With a reason: True when the source cannot be read, False when its copy lost frames or frame times."""
    source_frames: int = 0
    decoded_frames: int = 0


class _CopyDiffers(Exception):
    """The transcoded copy does not show the source's frames at the source's times."""


def decoded_frames(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> Iterator[av.VideoFrame]:
    """Frames in presentation order; reading errors become UnreadableVideo, so writing errors stay distinct.

    Packets flagged corrupt (a truncated file's cut-off tail) are skipped, as `decoding.read_frames` skips them.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = [] if packet.is_corrupt else packet.decode()
        except StopIteration:
            return
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UnreadableVideo(path, f"decoding failed ({type(exc).__name__}: {exc})") from exc
        yield from frames


def nominal_rate(info: VideoInfo) -> Fraction:
    """The source's nominal frame rate: the container's average rate, or frames over duration where that is missing
    or absurd (some give the time base's 90000)."""
    if 0 < info.fps <= MAX_FPS:
        return Fraction(info.fps).limit_denominator(1001)
    measured = info.num_frames / info.duration_s if info.duration_s > 0 else 25.0
    return Fraction(min(measured, MAX_FPS)).limit_denominator(1001)


def _time_base(stream: av.VideoStream) -> Fraction:
    """A time base in which every frame time of the source is a whole number: the source stream's, written 1/den
    (1001/30000 becomes 1/30000) as encoders and the MP4 muxer prefer."""
    base = stream.time_base
    if base and 0 < base.denominator <= MAX_TIME_BASE_DENOMINATOR:
        return Fraction(1, base.denominator)
    return FINE_TIME_BASE


def frame_stamps(info: VideoInfo, count: int, time_base: Fraction) -> list[int]:
    """Timestamps in `time_base` for `count` frames: frame i at the source's i-th frame time (presentation order,
    from the first frame), strictly increasing as MP4 requires (a source's repeated timestamp moves one tick on).
    Frames the container does not list (a decoder giving more than the probe counted) follow the last at the
    typical interval; the read-back check then refuses the copy."""
    tick = float(time_base)
    stamps: list[int] = []
    for seconds in info.frame_times[:count]:
        stamp = round(seconds / tick)
        stamps.append(stamp if not stamps or stamp > stamps[-1] else stamps[-1] + 1)
    step = max(1, round((info.duration_s - info.frame_times[-1]) / tick))
    while len(stamps) < count:
        stamps.append(stamps[-1] + step)
    return stamps


def _encode(job: TranscodeJob, part: Path) -> tuple[VideoInfo, int]:
    """Write the transcoded video to `part`; returns the source's probe and the number of frames it decoded to.

    Each frame keeps its source's presentation time. Times come from the probe (the container's packet timestamps
    sorted, the i-th for the i-th frame in presentation order), never from decoded frames, whose `pts` are out of
    order in AVI with B-frames. A source that decodes to a few frames fewer than it lists (at most what
    `read_frames` tolerates) gets its last decoded frame repeated at the remaining times, as `read_frames` shows
    the source; more missing frames make it unreadable, as for training.
    """
    info = probe_video(job.source)
    width, height = output_size(info.width, info.height, job.short_side)
    try:
        source = av.open(str(job.source), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnreadableVideo(job.source, f"not a readable video container ({exc})") from exc
    try:
        stream = next(
            s for s in source.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        )
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = job.threads
        rate = nominal_rate(info)
        time_base = _time_base(stream)
        with av.open(str(part), mode="w", format="mp4", options={"movflags": "+faststart"}) as target:
            out = target.add_stream("libx264", rate=rate)
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            out.codec_context.time_base = time_base
            out.time_base = time_base  # the muxer picks its own time scale; it keeps these timestamps exactly
            out.codec_context.gop_size = max(1, round(KEYFRAME_INTERVAL_S * float(rate)))
            out.codec_context.thread_count = job.threads
            out.options = {"crf": str(CRF), "preset": PRESET}
            stamps = frame_stamps(info, info.num_frames, time_base)
            decoded = 0
            picture: av.VideoFrame | None = None
            for frame in decoded_frames(source, stream, job.source):
                picture = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
                if decoded >= len(stamps):
                    stamps = frame_stamps(info, decoded + 1, time_base)
                picture.pts, picture.time_base = stamps[decoded], time_base
                # x264 places the keyframes: a frame keeps its source picture type unless told otherwise.
                picture.pict_type = av.video.frame.PictureType.NONE
                target.mux(out.encode(picture))
                decoded += 1
            if picture is None:
                raise UnreadableVideo(job.source, "no frame could be decoded")
            if info.num_frames - decoded > tolerated_missing_frames(info.num_frames):
                raise UnreadableVideo(
                    job.source,
                    f"the decoder produced only {decoded} of the {info.num_frames} frames the container lists",
                )
            for stamp in stamps[decoded:]:
                picture.pts = stamp
                target.mux(out.encode(picture))
            target.mux(out.encode())
    finally:
        source.close()
    return info, decoded


def compare_frame_times(source: VideoInfo, copy: VideoInfo) -> str | None:
    """Why `copy` does not show `source`'s frames at `source`'s times, or None when it does: the same number of
    frames, each at most half a nominal frame interval (1 / the source's nominal rate) from its source's time.
    Times count from each video's first frame, as sampling reads them."""
    if copy.num_frames != source.num_frames:
        return f"the copy holds {copy.num_frames} frames where the source lists {source.num_frames}"
    tolerance = 0.5 / float(nominal_rate(source))
    gaps = [abs(a - b) for a, b in zip(copy.frame_times, source.frame_times, strict=True)]
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    if gaps[worst] <= tolerance:
        return None
    which = (
        "the first frame" if worst == 0 else "the last frame" if worst == len(gaps) - 1 else f"frame {worst}"
    )
    return (
        f"{which} of {len(gaps)} is at {copy.frame_times[worst]:.3f} s in the copy but at "
        f"{source.frame_times[worst]:.3f} s in the source (more than half a frame interval, "
        f"{1000 * tolerance:.1f} ms, apart): the copy lasts {copy.duration_s:.2f} s against "
        f"{source.duration_s:.2f} s"
    )


def transcode(job: TranscodeJob) -> TranscodeOutcome:
    """Transcode one video aside and rename it into place; an unreadable source is reported, not raised."""
    part = aside_path(job.target)
    job.target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source, decoded = _encode(job, part)
        try:
            copy = probe_video(part)
        except UnreadableVideo as exc:
            raise _CopyDiffers(f"the copy cannot be read back ({exc.reason})") from exc
        difference = compare_frame_times(source, copy)
        if difference is not None:
            raise _CopyDiffers(difference)
        os.replace(part, job.target)
        return TranscodeOutcome(job.target, None, source_frames=source.num_frames, decoded_frames=decoded)
    except UnreadableVideo as exc:
        return TranscodeOutcome(job.target, exc.reason)
    except _CopyDiffers as exc:
        return TranscodeOutcome(job.target, str(exc), unreadable=False)
    finally:
        part.unlink(missing_ok=True)
