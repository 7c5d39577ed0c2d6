"""The two ways a run feeds its model: decoded clips through the whole model, or stored backbone features.

Both give the same `Pipeline` interface (training/loop.py), so the training step does not know which it runs on.
The feature path is chosen wherever the strategy freezes the backbone and `--cache.enabled` is not false.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.samples import Splits
from vjepa_tune.training.loop import Pipeline


def collate_inputs(batch: list[Any]) -> dict[str, Any]:
    """Stack clip samples under the loop's names; unreadable ones (None) are dropped and listed as skipped."""
    from vjepa_tune.data.dataset import collate_clips

    out = collate_clips(batch)
    if out["pixel_values_videos"] is None:
        out["pixel_values_videos"] = torch.empty(0)
    return {
        "inputs": out["pixel_values_videos"],
        "labels": out["labels"],
        "index": out["index"],
        "skipped": list(out.get("skipped", [])),
    }


def clip_datasets(cfg: TrainConfig, splits: Splits, infos: dict[str, Any]) -> tuple[Callable, Callable]:
    """Factories for the training dataset of an epoch and the eval dataset of a split, on decoded clips."""
    from vjepa_tune.data.dataset import ClipDataset
    from vjepa_tune.data.transforms import ClipTransform

    d = cfg.data
    train_tf = ClipTransform(d.crop_size, train=True, hflip=d.hflip, color_jitter=d.color_jitter,
                             random_erasing=d.random_erasing, crop_scale=tuple(d.crop_scale))
    # Workers hand over uint8 clips, normalised on the device by `forward_clips` (a quarter of the bytes; see
    # ClipTransform); random erasing works on normalised values, so its clips stay float32.
    train_tf = train_tf.unnormalized() or train_tf
    eval_tf = ClipTransform(d.crop_size, train=False, normalize=False)

    def make(samples: list, transform: Any) -> ClipDataset:
        return ClipDataset(samples, frames_per_clip=d.frames_per_clip, sampling=d.sampling,
                           frame_step=d.frame_step, transform=transform, seed=cfg.seed, infos=infos)

    train_ds = make(splits.train, train_tf)
    eval_ds = {"train": make(splits.train, eval_tf), "val": make(splits.val, eval_tf),
               "test": make(splits.test, eval_tf)}
    for ds in eval_ds.values():
        ds.set_view(None)

    def train_dataset(epoch: int) -> ClipDataset:
        train_ds.set_view(epoch)
        return train_ds

    return train_dataset, eval_ds.__getitem__


def forward_clips(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Logits of a batch of clips, uint8 ones normalised first (where they are: on the device)."""
    from vjepa_tune.data.transforms import normalize_clips

    return model(pixel_values_videos=normalize_clips(inputs)).logits


def make_pipeline(cfg: TrainConfig, model: torch.nn.Module, splits: Splits, infos: dict[str, Any], accelerator: Any,
                  log: Callable[[str], None]) -> Pipeline:
    from vjepa_tune.models.strategies import STRATEGIES

    strategy = STRATEGIES[cfg.strategy]
    use_store = cfg.cache.enabled if cfg.cache.enabled is not None else strategy.frozen_backbone
    if use_store and not strategy.frozen_backbone:
        from vjepa_tune.errors import BadInput

        raise BadInput(f"--cache.enabled true cannot be used with --strategy {cfg.strategy}: it trains the backbone, "
                       "so its features change every step.")
    if use_store:
        from vjepa_tune.training.features import feature_pipeline

        return feature_pipeline(cfg, model, splits, infos, accelerator, log)
    train_dataset, eval_dataset = clip_datasets(cfg, splits, infos)
    return Pipeline(train_dataset=train_dataset, eval_dataset=eval_dataset, forward=forward_clips,
                    collate=collate_inputs, describe="clips")
