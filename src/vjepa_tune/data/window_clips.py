"""The clips of a video's windows (`data.windows`), decoded in one sequential pass and handed out in batches.

A long video has thousands of overlapping windows (stride 4, window 16: every frame is in four of them), so its
frames are decoded once, in order (`decoding.iter_frames`), each frame the windows take is transformed once
(resize and crop, kept as uint8), and a window's clip is assembled as soon as its last frame is decoded; frames no
later window takes are dropped. Memory stays at about one window of cropped frames per video, however long it is.

`WindowClips` is an IterableDataset over many videos: each DataLoader worker takes every n-th video, and yields
for each of them its windows' clips in order, `batch_size` at a time (`ClipBatch`), then a `VideoEnd` saying
whether the video was read to its last window. A batch never mixes two videos, so what a video's clips are
batched with does not depend on the other videos, on the workers or on how the videos are split among processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from vjepa_tune.data.decoding import iter_frames
from vjepa_tune.data.video import UnreadableVideo, VideoInfo
from vjepa_tune.data.windows import WindowPlan

FrameTransform = Callable[[torch.Tensor], torch.Tensor]
"""Frames (T, H, W, 3) uint8 -> model frames (T, 3, crop, crop), uint8 before normalisation."""


@dataclass(frozen=True)
class VideoJob:
    """One video to cut into windows: its position in the job list, its probe and its windows."""

    index: int
    path: Path
    info: VideoInfo
    plan: WindowPlan


@dataclass(frozen=True)
class ClipBatch:
    """Consecutive windows of one video: clips (B, frames_per_clip, 3, crop, crop) uint8, from window `first` on."""

    video: int
    first: int
    clips: torch.Tensor


@dataclass(frozen=True)
class VideoEnd:
    """The last item of a video: None when every window was handed out, else why it stopped."""

    video: int
    error: str | None


def video_clips(job: VideoJob, transform: FrameTransform, batch_size: int) -> Iterator[ClipBatch | VideoEnd]:
    """Every window clip of one video, in order and `batch_size` at a time, then its `VideoEnd` (see the module
    docstring); a video that fails to decode part-way ends with its reason, after the batches already given."""
    windows = job.plan.windows
    needed = {frame for window in windows for frame in window.frames}
    kept: dict[int, torch.Tensor] = {}
    pending: list[torch.Tensor] = []
    first = done = 0
    try:
        for position, rgb in enumerate(iter_frames(job.path, job.info, stop=job.plan.needed_frames)):
            if position in needed:
                kept[position] = transform(torch.from_numpy(rgb)[None])[0]
            while done < len(windows) and windows[done].frames[-1] <= position:
                pending.append(torch.stack([kept[frame] for frame in windows[done].frames]))
                done += 1
                if len(pending) == batch_size:
                    yield ClipBatch(job.index, first, torch.stack(pending))
                    first, pending = done, []
            if done < len(windows):  # the windows' frames only move forward: what the next one skips, all skip
                for frame in [f for f in kept if f < windows[done].frames[0]]:
                    del kept[frame]
    except UnreadableVideo as exc:
        yield VideoEnd(job.index, exc.reason)
        return
    if pending:
        yield ClipBatch(job.index, first, torch.stack(pending))
    missing = len(windows) - done
    yield VideoEnd(job.index, None if not missing else f"the video ended before its last {missing} window(s)")


class WindowClips(IterableDataset):
    """The window clips of many videos for a DataLoader (`batch_size=None`): worker w of n takes videos w, w + n,
    ...; items of different videos interleave, each video's in order."""

    def __init__(self, jobs: Sequence[VideoJob], transform: FrameTransform, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.jobs, self.transform, self.batch_size = list(jobs), transform, batch_size

    def __iter__(self) -> Iterator[ClipBatch | VideoEnd]:
        worker = get_worker_info()
        mine = self.jobs if worker is None else self.jobs[worker.id :: worker.num_workers]
        for job in mine:
            yield from video_clips(job, self.transform, self.batch_size)
