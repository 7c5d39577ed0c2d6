"""What the model of a run is fed: a `Pipeline` of datasets that yield `Example`s, collated into one `Batch` type.

A run feeds its model either decoded clips through the whole model (`clip_pipeline`) or stored backbone features
through the parts after the backbone (`training.extraction.feature_pipeline`); both give the same `Pipeline`, so the
training loop does not know which it runs on. An unreadable sample is a `SkippedClip` that `collate` sets aside and
lists in `Batch.skipped`, never replaced by another one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch.utils.data import Dataset

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.data.dataset import ClipDataset, Example, SkippedClip
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.data.transforms import ClipTransform, normalize_clips
from vjepa_tune.data.video import VideoInfo

SplitName = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Batch:
    """The readable samples of one micro-batch, stacked, and the dataset indices of the unreadable ones."""

    inputs: torch.Tensor
    """Clips (B, T, C, H, W), uint8 before normalisation or float32, or stored features (B, ...); (0,) when B is 0."""
    labels: torch.Tensor
    """(B,) long."""
    index: torch.Tensor
    """(B,) long: each sample's index in its dataset."""
    skipped: list[int]
    """Dataset indices of the samples that could not be read, left out of the batch."""

    def __len__(self) -> int:
        return int(self.labels.numel())


def collate(items: Sequence[Example | SkippedClip]) -> Batch:
    """Stack the readable examples of a micro-batch and list the skipped ones (clips and stored features alike)."""
    kept = [item for item in items if not isinstance(item, SkippedClip)]
    return Batch(
        inputs=torch.stack([item.inputs for item in kept]) if kept else torch.empty(0),
        labels=torch.tensor([item.label for item in kept], dtype=torch.long),
        index=torch.tensor([item.index for item in kept], dtype=torch.long),
        skipped=[item.index for item in items if isinstance(item, SkippedClip)],
    )


Forward = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
"""(model, Batch.inputs on the device) -> logits."""


@dataclass
class Pipeline:
    """Where the model's inputs come from: decoded clips, or stored backbone features.

    `train_dataset(epoch)` is the training data of one epoch (its augmentation view), `eval_dataset(split)` the
    deterministic view of a split; both yield `Example`s (or `SkippedClip`s). `forward` gives logits.
    """

    train_dataset: Callable[[int], Dataset]
    eval_dataset: Callable[[SplitName], Dataset]
    forward: Forward
    describe: str = "clips"
    """What metrics.json says the run trained on (`input`)."""
    num_workers: int | None = None
    """DataLoader workers for its datasets; None: `--num_workers`."""
    train_batch: int | None = None
    """Samples per training forward pass, at least `--batch_size`; None: `--batch_size`."""
    read_ahead: bool = False
    """With no workers, read the next batch on a background thread while the model runs on this one (stored
    features: file reads release the GIL)."""

    def workers(self, cfg: TrainConfig) -> int:
        return cfg.num_workers if self.num_workers is None else self.num_workers

    def micro_batch(self, cfg: TrainConfig) -> int:
        return cfg.batch_size if self.train_batch is None else max(cfg.batch_size, self.train_batch)


@dataclass(frozen=True)
class ClipDatasets:
    """The decoded-clip datasets of a run: the training one (its view set per epoch) and each split's eval one."""

    train: ClipDataset
    eval: dict[SplitName, ClipDataset]

    def train_dataset(self, epoch: int) -> ClipDataset:
        self.train.set_view(epoch)
        return self.train

    def eval_dataset(self, split: SplitName) -> ClipDataset:
        return self.eval[split]


def clip_datasets(cfg: TrainConfig, splits: Splits, infos: dict[str, VideoInfo]) -> ClipDatasets:
    """The training dataset and the eval dataset of each split, on decoded clips."""
    d = cfg.data
    eval_tf = ClipTransform(d.crop_size, train=False, normalize=False)

    def make(samples: list[Sample], transform: ClipTransform) -> ClipDataset:
        return ClipDataset(samples, frames_per_clip=d.frames_per_clip, sampling=d.sampling,
                           frame_step=d.frame_step, transform=transform, seed=cfg.seed, infos=infos)

    eval_sets = {name: make(samples, eval_tf) for name, samples in splits.items()}
    for dataset in eval_sets.values():
        dataset.set_view(None)
    return ClipDatasets(train=training_clips(d, cfg.seed, splits.train, infos), eval=eval_sets)


def training_clips(data: DataConfig, seed: int, samples: Sequence[Sample], infos: dict[str, VideoInfo]
                   ) -> ClipDataset:
    """The training clips of `samples` as `train` cuts and augments them (`--data.*`; set the view per epoch);
    `pretrain` uses the same. Clips stay uint8 for `normalize_clips` on the device, unless random erasing is on."""
    train_tf = ClipTransform(data.crop_size, train=True, hflip=data.hflip, color_jitter=data.color_jitter,
                             random_erasing=data.random_erasing, crop_scale=tuple(data.crop_scale))
    # Workers hand over uint8 clips, normalised on the device by `forward_clips` (a quarter of the bytes; see
    # ClipTransform); random erasing works on normalised values, so its clips stay float32.
    return ClipDataset(samples, frames_per_clip=data.frames_per_clip, sampling=data.sampling,
                       frame_step=data.frame_step, transform=train_tf.unnormalized() or train_tf, seed=seed,
                       infos=infos)


def forward_clips(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of a batch of clips, uint8 ones normalised first (where they are: on the device)."""
    return model(pixel_values_videos=normalize_clips(inputs)).logits


def clip_pipeline(cfg: TrainConfig, splits: Splits, infos: dict[str, VideoInfo]) -> Pipeline:
    """The model sees decoded clips (the backbone trains, or the store is off)."""
    datasets = clip_datasets(cfg, splits, infos)
    return Pipeline(train_dataset=datasets.train_dataset, eval_dataset=datasets.eval_dataset, forward=forward_clips,
                    describe="clips")
