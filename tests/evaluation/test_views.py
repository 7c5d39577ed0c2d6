"""Multi-view clip sampling: which frames each clip takes, which crops, and how probabilities are averaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.data.dataset import ClipDataset
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.transforms import ClipTransform, spatial_crops
from vjepa_tune.data.video import VideoInfo, probe_video, window_frame_indices
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.views import (
    ClipRequest,
    ViewDataset,
    ViewSpec,
    clip_indices,
    predict_views,
    read_views,
    window_indices,
)
from vjepa_tune.synth import render_clip, write_video

CROP = 32


def _info(num_frames: int, fps: float = 25.0, size: tuple[int, int] = (64, 48)) -> VideoInfo:
    times = tuple(i / fps for i in range(num_frames))
    return VideoInfo(Path("x.mp4"), num_frames, fps, num_frames / fps, size[0], size[1], times)


@pytest.fixture(scope="module")
def landscape_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96x64 synthetic clip of 40 frames: wider than tall, so the three crops differ."""
    path = tmp_path_factory.mktemp("views") / "wave.mp4"
    write_video(path, render_clip("wave", 0, 40, size=(96, 64)), fps=25)
    return path


@pytest.mark.parametrize("sampling", ["uniform", "random_window"])
def test_one_clip_one_crop_is_exactly_the_clip_training_evaluated_on(landscape_video: Path, sampling: str) -> None:
    spec = ViewSpec(frames_per_clip=8, sampling=sampling, frame_step=3, crop_size=CROP)
    sample = Sample(path=landscape_video, label=0, id="wave.mp4")
    dataset = ClipDataset(
        [sample],
        frames_per_clip=8,
        sampling=sampling,
        frame_step=3,
        transform=ClipTransform(CROP, train=False),
        seed=42,
    )
    dataset.set_view(None)
    views = read_views(ClipRequest(landscape_video), spec)
    assert views.shape == (1, 8, 3, CROP, CROP)
    assert torch.equal(views[0], dataset[0].inputs)


def test_uniform_clips_interleave_and_each_covers_the_whole_video() -> None:
    info = _info(64)
    clips = clip_indices(
        info, ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP, num_clips=4)
    )
    assert len(clips) == 4
    every = [i for clip in clips for i in clip]
    assert len(set(every)) == 32, "the four clips take different frames"
    for clip in clips:
        assert clip == sorted(clip) and clip[0] < 8 and clip[-1] >= 56, "each clip spans the whole video"
    # Frame k of clip j sits at (k + (j + 0.5) / 4) segments of 8 frames.
    assert clips[0] == [1, 9, 17, 25, 33, 41, 49, 57] and clips[3] == [7, 15, 23, 31, 39, 47, 55, 63]


def test_random_window_clips_start_at_the_centres_of_equal_parts_of_the_room() -> None:
    spec = ViewSpec(frames_per_clip=8, sampling="random_window", frame_step=2, crop_size=CROP, num_clips=3)
    clips = clip_indices(_info(100), spec)  # span 15 frames, room 85
    assert [clip[0] for clip in clips] == [14, 42, 70]
    assert all(b - a == 2 for clip in clips for a, b in zip(clip, clip[1:], strict=False))
    short = clip_indices(_info(10), spec)
    assert all(clip == [0, 2, 4, 6, 8, 9, 9, 9] for clip in short), "a short video starts at 0 and repeats"


def test_window_clips_are_cut_inside_the_window_like_training_clips() -> None:
    info = _info(250)  # 10 s at 25 fps
    uniform = ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP)
    assert window_indices(info, 2.0, 4.0, uniform) == window_frame_indices(info, 2.0, 4.0, 8)
    stepped = ViewSpec(frames_per_clip=8, sampling="random_window", frame_step=4, crop_size=CROP)
    clip = window_indices(info, 2.0, 4.0, stepped)  # frames 50..99 shown; a 29-frame span centred in them
    assert clip == [60 + 4 * k for k in range(8)]
    assert 50 <= clip[0] and clip[-1] < 100


def test_three_crops_per_clip_are_the_ends_and_middle_of_the_long_side(landscape_video: Path) -> None:
    spec = ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP, num_clips=2, num_crops=3)
    views = read_views(ClipRequest(landscape_video), spec)
    assert views.shape == (6, 8, 3, CROP, CROP)
    info = probe_video(landscape_video)
    for c, clip in enumerate(clip_indices(info, spec)):
        expected = spatial_crops(read_frames(landscape_video, clip, info), CROP, 3)
        for k in range(3):
            assert torch.equal(views[3 * c + k], expected[k])
    assert not torch.equal(views[0], views[2]), "left and right crops of a landscape video differ"


def test_flip_adds_the_mirror_image_of_every_view_and_averages_it_in(landscape_video: Path) -> None:
    plain = ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP, num_clips=2, num_crops=3)
    mirrored = ViewSpec(**{**plain.__dict__, "flip": True})
    views, both = read_views(ClipRequest(landscape_video), plain), read_views(ClipRequest(landscape_video), mirrored)
    assert both.shape == (12, 8, 3, CROP, CROP) and mirrored.views_per_clip == 6
    assert torch.equal(both[0::2], views) and torch.equal(both[1::2], views.flip(-1))

    def left_right(clips: torch.Tensor) -> torch.Tensor:  # a stand-in model that tells left from right
        half = clips.shape[-1] // 2
        return torch.stack([clips[..., :half].mean(dim=(1, 2, 3, 4)), clips[..., half:].mean(dim=(1, 2, 3, 4))], 1)

    result = predict_views(left_right, ViewDataset([ClipRequest(landscape_video)], mirrored), progress=False)
    expected = torch.softmax(left_right(both), dim=-1).mean(dim=0)
    assert torch.allclose(result.probs[0], expected, atol=1e-6)


def _mean_forward(clips: torch.Tensor) -> torch.Tensor:
    """A stand-in model: logits from each clip's mean colour, so every view gets its own probabilities."""
    means = clips.mean(dim=(1, 3, 4))  # (B, 3)
    return torch.stack([means[:, 0] * 3, means[:, 1] * -2, means[:, 2]], dim=1)


def test_probabilities_are_averaged_per_video_and_do_not_depend_on_the_batch_size(
    landscape_video: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    spec = ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP, num_clips=2, num_crops=3)
    requests = [ClipRequest(landscape_video), ClipRequest(broken), ClipRequest(landscape_video, (0.2, 1.0))]
    results = [
        predict_views(_mean_forward, ViewDataset(requests, spec), batch_size=b, progress=False) for b in (1, 4, 64)
    ]
    first = results[0]
    assert sorted(first.probs) == [0, 2] and list(first.errors) == [1]
    assert "not a readable video" in first.errors[1]
    expected = torch.softmax(_mean_forward(read_views(requests[0], spec)), dim=-1).mean(dim=0)
    assert torch.allclose(first.probs[0], expected, atol=1e-6)
    assert abs(float(first.probs[2].sum()) - 1) < 1e-6
    for other in results[1:]:
        for i in (0, 2):
            assert torch.allclose(other.probs[i], first.probs[i], atol=1e-6)


def test_windows_of_one_video_are_decoded_together_within_a_memory_budget() -> None:
    spec = ViewSpec(frames_per_clip=16, sampling="uniform", frame_step=1, crop_size=CROP)
    small, big = Path("small.mp4"), Path("big.mp4")
    infos = {small: _info(500, size=(64, 64)), big: _info(500, size=(1920, 1080))}
    windows = [(k * 0.5, k * 0.5 + 1.0) for k in range(20)]
    requests = [ClipRequest(small, w) for w in windows] + [ClipRequest(big, w) for w in windows]
    dataset = ViewDataset(requests, spec, infos, chunk_size=16)
    sizes = [len(chunk.requests) for chunk in dataset.chunks]
    assert sizes == [16, 4] + [2] * 10, "a 1080p clip of 16 frames is ~100 MB: two per 256 MB chunk"
    whole = ViewDataset([ClipRequest(small), ClipRequest(small)], spec, infos)
    assert len(whole) == 2, "whole-video requests are never merged"


@pytest.mark.parametrize("kwargs", [{"num_crops": 2}, {"num_clips": 0}, {"sampling": "random"}])
def test_impossible_view_settings_are_refused_by_name(kwargs: dict) -> None:
    settings = {"frames_per_clip": 8, "sampling": "uniform", "frame_step": 1, "crop_size": CROP, **kwargs}
    with pytest.raises(BadInput, match=next(iter(kwargs))):
        ViewSpec(**settings)


def test_tiny_videos_are_scaled_up_to_the_crop(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp4"
    write_video(path, np.stack(render_clip("wave", 1, 12, size=(32, 32))), fps=25)
    views = read_views(ClipRequest(path), ViewSpec(8, "uniform", 1, crop_size=64, num_crops=3))
    assert views.shape == (3, 8, 3, 64, 64) and torch.isfinite(views).all()


@pytest.mark.parametrize("num_crops", [1, 3])
def test_uint8_views_normalised_later_are_the_normalised_views(landscape_video: Path, num_crops: int) -> None:
    """predict and evaluate move uint8 views out of their workers and normalise them on the device."""
    from vjepa_tune.data.transforms import normalize_clips

    spec = ViewSpec(frames_per_clip=8, sampling="uniform", frame_step=1, crop_size=CROP, num_clips=2,
                    num_crops=num_crops)
    requests = [ClipRequest(landscape_video), ClipRequest(landscape_video, (0.2, 1.0))]
    floats = ViewDataset(requests, spec)[0]["views"]
    raw = ViewDataset(requests, spec, normalize=False)[0]["views"]
    assert raw.dtype == torch.uint8 and floats.dtype == torch.float32
    assert torch.equal(normalize_clips(raw), floats)
