"""Windows counted in frames, as detection tools read features: VideoMAE v2's layout, padding, resampling, and the
clip each window takes; and their clips decoded in one pass equal the frames read directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.data.decoding import iter_frames, read_frames
from vjepa_tune.data.transforms import ClipTransform, full_frame_clip
from vjepa_tune.data.video import VideoInfo, probe_video
from vjepa_tune.data.window_clips import ClipBatch, VideoEnd, VideoJob, WindowClips, video_clips
from vjepa_tune.data.windows import clip_positions, frame_grid, plan_windows, window_starts
from vjepa_tune.errors import BadInput


def constant_rate(num_frames: int, fps: float) -> VideoInfo:
    return VideoInfo(Path("v.mp4"), num_frames, fps, num_frames / fps, 64, 64,
                     tuple(i / fps for i in range(num_frames)))


def test_whole_windows_start_as_videomae_v2_lays_them_out() -> None:
    starts = window_starts(795, 16, 4)
    assert len(starts) == 195
    assert starts[:3] == [0, 4, 8] and starts[-1] == 776, "the last whole window ends at frame 792, not 795"
    assert window_starts(16, 16, 4) == [0]
    assert window_starts(15, 16, 4) == []


def test_pad_last_adds_one_window_ending_at_the_last_frame() -> None:
    assert window_starts(795, 16, 4, pad_last=True)[-2:] == [776, 779]
    assert window_starts(796, 16, 4, pad_last=True)[-1] == 780, "nothing added when the last window already ends there"
    assert window_starts(10, 16, 4, pad_last=True) == [0]
    plan = plan_windows(constant_rate(10, 25.0), window=16, stride=4, frames_per_clip=8, pad_last=True)
    (short,) = plan.windows
    assert short.frames == (1, 3, 5, 7, 9, 9, 9, 9), "positions past the end repeat the last frame"
    assert (short.start_s, short.end_s) == (0.0, 0.4)


def test_a_window_takes_segment_centres_and_every_frame_when_sizes_match() -> None:
    assert clip_positions(16, 16) == list(range(16))
    assert clip_positions(32, 16) == list(range(1, 32, 2))
    assert clip_positions(16, 64) == [k // 4 for k in range(64)], "a short window repeats each frame in place"
    plan = plan_windows(constant_rate(795, 30.0), window=16, stride=4, frames_per_clip=16)
    assert len(plan.windows) == 195
    tenth = plan.windows[10]
    assert tenth.frames == tuple(range(40, 56))
    assert tenth.start_s == pytest.approx(40 / 30) and tenth.end_s == pytest.approx(56 / 30)
    assert plan.needed_frames == 792


def test_resampling_counts_windows_in_frames_of_the_new_rate() -> None:
    info = constant_rate(100, 50.0)  # 2 s
    grid = frame_grid(info, 25.0)
    assert grid.num_frames == 50 and grid.resampled
    assert grid.source_frames[:4] == (0, 2, 4, 6), "frame j shows what is on screen at j / 25 s"
    plan = plan_windows(info, window=16, stride=8, frames_per_clip=16, fps=25.0)
    assert [w.start for w in plan.windows] == [0, 8, 16, 24, 32]
    assert plan.windows[1].start_s == pytest.approx(8 / 25) and plan.windows[1].end_s == pytest.approx(24 / 25)
    assert plan.windows[1].frames[:3] == (16, 18, 20)


def test_bad_window_settings_are_refused_naming_the_flag() -> None:
    with pytest.raises(BadInput, match="--window_frames"):
        window_starts(10, 0, 1)
    with pytest.raises(BadInput, match="--stride_frames"):
        window_starts(10, 4, 0)
    with pytest.raises(BadInput, match="--fps"):
        frame_grid(constant_rate(10, 25.0), 0.0)
    with pytest.raises(BadInput, match="--frames_per_clip"):
        clip_positions(16, 0)


def test_frames_decoded_in_one_pass_equal_frames_read_by_position(synth_root: Path) -> None:
    video = sorted((synth_root / "waving").glob("*.mp4"))[0]
    info = probe_video(video)
    streamed = np.stack(list(iter_frames(video, info)))
    assert streamed.shape == (info.num_frames, 64, 64, 3)
    assert np.array_equal(streamed, read_frames(video, range(info.num_frames), info).numpy())
    assert len(list(iter_frames(video, info, stop=5))) == 5


def test_window_clips_equal_their_frames_transformed_together_and_come_per_video_in_batches(
    synth_root: Path,
) -> None:
    videos = sorted((synth_root / "other").glob("*.mp4"))[:3]
    transform = ClipTransform(64, train=False, normalize=False)
    jobs = [VideoJob(i, v, probe_video(v), plan_windows(probe_video(v), window=8, stride=3, frames_per_clip=4))
            for i, v in enumerate(videos)]
    items = list(video_clips(jobs[0], transform, batch_size=4))
    assert isinstance(items[-1], VideoEnd) and items[-1].error is None
    batches = [item for item in items if isinstance(item, ClipBatch)]
    assert [b.first for b in batches] == [0, 4, 8] and [len(b.clips) for b in batches] == [4, 4, 1]
    clips = torch.cat([b.clips for b in batches])
    for window, clip in zip(jobs[0].plan.windows, clips, strict=True):
        expected = transform(read_frames(videos[0], window.frames, jobs[0].info))
        assert torch.equal(clip, expected), "frames transformed one by one equal the clip transformed at once"
    squash = [b.clips for b in video_clips(jobs[0], lambda f: full_frame_clip(f, 32, normalize=False), 16)
              if isinstance(b, ClipBatch)]
    assert squash[0].shape == (9, 4, 3, 32, 32)

    loader = torch.utils.data.DataLoader(WindowClips(jobs, transform, 4), batch_size=None, num_workers=2)
    ends = [item.video for item in loader if isinstance(item, VideoEnd)]
    assert sorted(ends) == [0, 1, 2], "two workers share the videos, each handed out once"


def test_a_video_that_cannot_be_decoded_ends_with_its_reason(tmp_path: Path, synth_root: Path) -> None:
    good = sorted((synth_root / "other").glob("*.mp4"))[0]
    info = probe_video(good)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    job = VideoJob(0, broken, info, plan_windows(info, window=8, stride=8, frames_per_clip=4))
    (end,) = list(video_clips(job, ClipTransform(64, train=False, normalize=False), 4))
    assert isinstance(end, VideoEnd) and end.error and "not a readable video" in end.error
