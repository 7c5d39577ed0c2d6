"""Clips for training and evaluation: which frames, which augmentation, and what to do with a broken video.

Every draw is keyed by (seed, sample key = id without extension, view): the frame window by (..., 'frames'), the
augmentation by (...,
'transform'). A clip is therefore the same in any DataLoader worker, process or batch order, and the same
whether it is computed now or was stored earlier. A video that cannot be decoded becomes a `SkippedClip` that
the collate function sets aside and reports (`training.inputs.collate`); it is never replaced by another sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.data.video import SAMPLINGS, UnreadableVideo, VideoInfo, probe_video, sample_frame_indices
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_generator


@dataclass(frozen=True)
class Example:
    """One sample as a dataset yields it: the model's input (a clip, or a stored feature), its label, and its index
    in the dataset (so that a batch can name its videos)."""

    inputs: torch.Tensor
    label: int
    index: int


@dataclass(frozen=True)
class SkippedClip:
    """What a dataset returns for a video that turned out unreadable at decode time."""

    index: int
    sample_id: str
    reason: str


class ClipDataset(Dataset):
    """One clip per sample: frames chosen by `sampling`, then `transform`, for the current view.

    `set_view(v)` picks the view: an epoch (or stored-view) number in training, whose frame window and
    augmentation are drawn from keys that include v; `None` for evaluation, where frames are chosen
    deterministically (uniform, or the centred window for random_window). DataLoader workers copy the dataset
    when an iterator starts, so set the view before iterating (and do not use persistent_workers across
    views).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        frames_per_clip: int,
        sampling: str,
        frame_step: int,
        transform: ClipTransform,
        seed: int,
        infos: dict[str, VideoInfo] | None = None,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise BadInput(
                f"--data.sampling {sampling!r} is not a sampling; choose one of {', '.join(SAMPLINGS)}."
            )
        if frames_per_clip < 1:
            raise BadInput(f"--data.frames_per_clip must be >= 1, got {frames_per_clip!r}.")
        if frame_step < 1:
            raise BadInput(f"--data.frame_step must be >= 1, got {frame_step!r}.")
        self.samples = list(samples)
        self.frames_per_clip = frames_per_clip
        self.sampling = sampling
        self.frame_step = frame_step
        self.transform = transform
        self.seed = seed
        self.infos: dict[str, VideoInfo] = dict(infos or {})
        self.view: int | None = None

    def set_view(self, view: int | None) -> None:
        self.view = view

    def __len__(self) -> int:
        return len(self.samples)

    def _info(self, sample: Sample) -> VideoInfo:
        info = self.infos.get(sample.id)
        if info is None:
            info = self.infos[sample.id] = probe_video(sample.path)
        return info

    def frame_indices(self, index: int) -> list[int]:
        """Positions of the frames of sample `index`'s clip for the current view; raises UnreadableVideo."""
        sample = self.samples[index]
        generator = None if self.view is None else keyed_generator(self.seed, sample.key, self.view, "frames")
        return sample_frame_indices(
            self._info(sample), self.frames_per_clip, self.sampling, self.frame_step, generator
        )

    def views(self, index: int, views: Sequence[int | None]) -> list[torch.Tensor] | None:
        """Several views of one sample, decoding the video once (the feature store's extraction).

        Each view equals what `set_view(v)` + `__getitem__` gives; None when the video cannot be decoded.
        """
        sample = self.samples[index]
        try:
            info = self._info(sample)
            per_view = []
            for view in views:
                generator = None if view is None else keyed_generator(self.seed, sample.key, view, "frames")
                per_view.append(sample_frame_indices(info, self.frames_per_clip, self.sampling, self.frame_step,
                                                     generator))
            needed = sorted({i for indices in per_view for i in indices})
            frames = read_frames(sample.path, needed, info)
        except UnreadableVideo:
            return None
        position = {frame: row for row, frame in enumerate(needed)}
        return [
            self.transform(frames[[position[i] for i in indices]], (self.seed, sample.key, view, "transform"))
            for view, indices in zip(views, per_view, strict=True)
        ]

    def __getitem__(self, index: int) -> Example | SkippedClip:
        sample = self.samples[index]
        try:
            frames = read_frames(sample.path, self.frame_indices(index), self._info(sample))
        except UnreadableVideo as exc:
            return SkippedClip(index=index, sample_id=sample.id, reason=exc.reason)
        pixels = self.transform(frames, (self.seed, sample.key, self.view, "transform"))
        return Example(inputs=pixels, label=sample.label, index=index)
