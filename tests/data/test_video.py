"""Probing and frame choice on small real videos whose frames show their own number: probing decodes nothing,
uniform sampling follows time, random windows are keyed, broken files are named with a reason."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.video import UnreadableVideo, probe_video, sample_frame_indices
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_generator

KINDS = ["mp4-h264", "avi-h264", "avi-mpeg4", "mkv-h264"]
VFR_TIMES_MS = [0, 40, 80, 500, 540, 580, 1500, 1520, 1540, 2000]


def numbers(frames: torch.Tensor, pattern_number) -> list[int]:
    return [pattern_number(f.numpy()) for f in frames]


@pytest.mark.parametrize("kind", KINDS)
def test_probe_counts_frames_and_times_without_decoding(make_video, count_decoded, kind):
    path = make_video("v", 40, kind, size=(48, 64))
    info = probe_video(path)
    assert count_decoded["frames"] == 0
    assert (info.num_frames, info.width, info.height) == (40, 64, 48)
    assert info.fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(1.6)
    assert info.frame_times == pytest.approx([i / 25 for i in range(40)])
    # Only containers with trustworthy presentation timestamps are ever sought in.
    assert (info.frame_pts is not None) == kind.startswith(("mp4", "mkv"))


@pytest.mark.parametrize("kind", ["avi-h264", "avi-mpeg4"])
def test_an_avi_on_a_millisecond_clock_has_its_frames_rate_not_the_clocks(make_video, kind):
    """The AVI muxer writes frames at uneven times on a 1000-ticks-a-second clock (a tick without a frame is an
    empty chunk) and PyAV reports 1000 fps; the video's rate is its frames' mean rate instead, as MP4 states it."""
    info = probe_video(make_video("vfr", len(VFR_TIMES_MS), kind, times_ms=VFR_TIMES_MS))
    assert info.num_frames == len(VFR_TIMES_MS)
    assert info.fps == pytest.approx(info.num_frames / info.duration_s)
    assert 4 < info.fps < 7  # 10 frames in about 2 s, not 1000 a second


def test_uniform_sampling_takes_segment_centres_for_constant_rate(make_video):
    info = probe_video(make_video("v", 40))
    assert sample_frame_indices(info, 8) == [2, 7, 12, 17, 22, 27, 32, 37]
    for num_frames in (1, 3, 7, 16, 40, 41, 97):
        for n in (1, 4, 8, 16):
            expected = [int((k + 0.5) * num_frames / n) for k in range(n)]
            assert sample_frame_indices(num_frames, n, "uniform") == expected
    # Timestamps give the same answer as the bare count for a constant frame rate.
    assert sample_frame_indices(info, 16) == sample_frame_indices(40, 16)


def test_uniform_sampling_repeats_frames_of_a_short_video(make_video, pattern_number):
    path = make_video("short", 3)
    indices = sample_frame_indices(probe_video(path), 6)
    assert indices == [0, 0, 1, 1, 2, 2]
    assert numbers(read_frames(path, indices), pattern_number) == indices


@pytest.mark.parametrize("kind", ["mp4-h264", "mkv-h264"])
def test_uniform_sampling_follows_time_in_a_variable_rate_video(make_video, pattern_number, kind):
    path = make_video("vfr", len(VFR_TIMES_MS), kind, times_ms=VFR_TIMES_MS)
    info = probe_video(path)
    assert info.frame_times == pytest.approx([t / 1000 for t in VFR_TIMES_MS])
    assert info.duration_s == pytest.approx(2.04)  # last frame shown for the median interval, 40 ms
    # Segment centres at 0.1275, 0.3825, ... 1.9125 s fall on frames shown at 0.08, 0.58 and 1.54 s.
    indices = sample_frame_indices(info, 8)
    assert indices == [2, 2, 5, 5, 5, 5, 8, 8]
    assert indices != sample_frame_indices(info.num_frames, 8)
    assert numbers(read_frames(path, indices, info), pattern_number) == indices


def test_random_window_is_keyed_in_range_and_spaced_by_the_step():
    windows = set()
    for view in range(20):
        indices = sample_frame_indices(
            100, 8, "random_window", 4, keyed_generator(1, "a.mp4", view, "frames")
        )
        again = sample_frame_indices(100, 8, "random_window", 4, keyed_generator(1, "a.mp4", view, "frames"))
        assert indices == again
        assert all(b - a == 4 for a, b in zip(indices, indices[1:], strict=False))
        assert 0 <= indices[0] and indices[-1] <= 99
        windows.add(indices[0])
    assert len(windows) > 5  # the start really is drawn


def test_random_window_without_generator_is_centred_and_short_videos_hold_the_last_frame():
    # 29 frames wide: 35 frames before the window, 36 after.
    assert sample_frame_indices(100, 8, "random_window", 4) == [35 + 4 * k for k in range(8)]
    assert sample_frame_indices(5, 4, "random_window", 2, keyed_generator(0)) == [0, 2, 4, 4]
    assert sample_frame_indices(1, 3, "random_window", 3) == [0, 0, 0]


def test_sampling_refuses_unknown_names_and_counts():
    with pytest.raises(BadInput, match="'middle'"):
        sample_frame_indices(10, 4, "middle")
    with pytest.raises(BadInput, match="frame_step"):
        sample_frame_indices(10, 4, "random_window", 0)


def _write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _broken_files(tmp_path, make_video):
    good = make_video("good", 30).read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "half.mp4").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.mp4").write_text("these are not the frames you are looking for\n" * 20)
    return {
        "empty.mp4": "empty file",
        "half.mp4": "not a readable video container",
        "notes.mp4": "not a readable video container",
        "missing.mp4": "no such file",
        "sound.wav": "no video stream",
    }


def test_broken_files_raise_unreadable_video_with_a_reason(tmp_path, make_video):
    reasons = _broken_files(tmp_path, make_video)
    _write_audio_only(tmp_path / "sound.wav")
    for name, reason in reasons.items():
        path = tmp_path / name
        with pytest.raises(UnreadableVideo, match=reason) as probed:
            probe_video(path)
        assert probed.value.path == path and reason in probed.value.reason
        with pytest.raises(UnreadableVideo, match=reason):
            read_frames(path, [0])


def test_a_clip_spans_the_whole_video_with_uniform_sampling_and_its_frames_with_random_window() -> None:
    from vjepa_tune.data.video import VideoInfo, clip_span_s, typical_clip_s

    def info(seconds: float, fps: float = 25.0) -> VideoInfo:
        frames = round(seconds * fps)
        return VideoInfo(Path("v.mp4"), frames, fps, seconds, 64, 64, tuple(i / fps for i in range(frames)))

    assert clip_span_s(info(10.0), 16, "uniform") == 10.0
    assert clip_span_s(info(10.0), 16, "random_window", 4) == pytest.approx(61 / 25)
    assert clip_span_s(info(1.0), 16, "random_window", 4) == 1.0, "a video shorter than the window: all of it"
    assert typical_clip_s([info(1.0), info(3.0), info(8.0)], 16) == 3.0, "the median"
    assert typical_clip_s([], 16) is None
