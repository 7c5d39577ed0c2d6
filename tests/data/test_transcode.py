"""One video's transcode, unit by unit: its size, the frame times it writes, and the read-back comparison that
decides whether a copy is kept (`data prepare` end to end is tests/data/test_prepare.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from vjepa_tune.data.transcode import compare_frame_times, frame_stamps, output_size
from vjepa_tune.data.video import VideoInfo

UNEVEN_SLOTS = [0, 12, 21, 28, 32, 37, 38, 40, 41, 44, 56, 65, 77, 84, 93, 106, 116, 125, 133, 141]
"""Frame times of a nominal 15 fps camera that skips frames, in 1/15 s: 20 frames over 9.5 s (1.3 s at 15 fps)."""


def probe_like(times: tuple[float, ...], fps: float) -> VideoInfo:
    interval = 1 / fps
    return VideoInfo(
        path=Path("x.mp4"),
        num_frames=len(times),
        fps=fps,
        duration_s=times[-1] + interval,
        width=64,
        height=64,
        frame_times=times,
    )


def test_compare_frame_times_allows_up_to_half_a_nominal_frame_interval(tmp_path):
    times = tuple(float(t) / 15 for t in UNEVEN_SLOTS)
    source = probe_like(times, fps=15.0)
    assert compare_frame_times(source, source) is None
    nudged = probe_like(times[:-1] + (times[-1] + 0.4 / 15,), fps=30.0)  # the copy's own rate does not matter
    assert compare_frame_times(source, nudged) is None
    late = probe_like(times[:-1] + (times[-1] + 0.6 / 15,), fps=15.0)
    assert "the last frame of 20 is at 9.440 s in the copy but at 9.400 s" in compare_frame_times(source, late)
    moved = probe_like(times[:5] + (times[5] + 0.1,) + times[6:], fps=15.0)
    assert "frame 5 of 20 is at 2.567 s in the copy but at 2.467 s" in compare_frame_times(source, moved)
    evened = probe_like(tuple(i / 15 for i in range(20)), fps=15.0)
    assert compare_frame_times(source, evened) == (
        "the last frame of 20 is at 1.267 s in the copy but at 9.400 s in the source (more than half a frame "
        "interval, 33.3 ms, apart): the copy lasts 1.33 s against 9.47 s"
    )
    shorter = probe_like(times[:-1], fps=15.0)
    assert compare_frame_times(source, shorter) == "the copy holds 19 frames where the source lists 20"


def test_frame_stamps_are_the_source_times_in_its_time_base_and_always_increase():
    source = probe_like((0.0, 0.774, 0.774, 1.5), fps=15.0)  # a repeated timestamp, as some broken files have
    assert frame_stamps(source, 4, Fraction(1, 1000)) == [0, 774, 775, 1500]
    assert frame_stamps(source, 6, Fraction(1, 1000)) == [0, 774, 775, 1500, 1567, 1634]
    slots = probe_like(tuple(float(t) / 15 for t in UNEVEN_SLOTS), fps=15.0)
    assert frame_stamps(slots, 20, Fraction(1, 15)) == UNEVEN_SLOTS


def test_output_size_keeps_aspect_never_upscales_and_stays_even():
    assert output_size(1920, 1080, 320) == (568, 320)
    assert output_size(1080, 1920, 320) == (320, 568)
    assert output_size(320, 240, 320) == (320, 240)
    assert output_size(96, 96, 320) == (96, 96)
    assert output_size(65, 49, 320) == (64, 48)
    assert output_size(1920, 1080, 256) == (456, 256)
