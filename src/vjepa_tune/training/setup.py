"""Everything a run needs before its first step: data, splits, the model under its strategy, and its inputs.

Order matters for honesty: the data set is subsampled and split first (a pure function of the seed and the list of
videos), and only then are the chosen videos probed. An unreadable video is therefore left out of its split and
reported, never replaced by another draw. A resumed run reads its splits back from `splits.json` instead of
recomputing them, so a changed data folder cannot shift a half-finished run.

Nothing here writes to a run folder: `build_run` checks everything a run needs (the data, the model's configuration
and crop size before any video is probed, then the model itself and the input pipeline, feature extraction included),
so input that cannot train fails before a run folder exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import make_splits
from vjepa_tune.data.video import VideoInfo, typical_clip_s
from vjepa_tune.errors import BadInput
from vjepa_tune.models.build import build_model
from vjepa_tune.models.info import ParamCounts, count_parameters
from vjepa_tune.models.loading import check_crop_size, model_config
from vjepa_tune.models.strategies import STRATEGIES
from vjepa_tune.runs.checkpoint import frozen_fingerprint
from vjepa_tune.runs.folder import SPLITS_FILE, read_resumed_splits
from vjepa_tune.text import counted
from vjepa_tune.training.extraction import feature_pipeline
from vjepa_tune.training.inputs import Pipeline, clip_pipeline

Log = Callable[[str], None]


@dataclass
class Run:
    """A run ready for its first step: its configuration, data, model and inputs."""

    cfg: TrainConfig
    model: torch.nn.Module
    classes: list[str]
    splits: Splits
    pipeline: Pipeline
    counts: ParamCounts
    skipped: dict[str, str] = field(default_factory=dict)
    """Videos left out before training (id -> why)."""
    frozen_fingerprint: float = 0.0
    """Of the weights the strategy keeps frozen, taken when the model was built (`runs.checkpoint.model_meta`)."""
    train_clip_s: float | None = None
    """The median time one training clip spans (`data.video.typical_clip_s`): the time scale the run learnt at."""


def make_pipeline(cfg: TrainConfig, model: torch.nn.Module, splits: Splits, infos: dict[str, VideoInfo],
                  device: torch.device, log: Log) -> Pipeline:
    """Stored features wherever the strategy freezes the backbone and `--cache.enabled` is not false, else clips."""
    strategy = STRATEGIES[cfg.strategy]
    use_store = cfg.cache.enabled if cfg.cache.enabled is not None else strategy.frozen_backbone
    if use_store and not strategy.frozen_backbone:
        raise BadInput(f"--cache.enabled true cannot be used with --strategy {cfg.strategy}: it trains the backbone, "
                       "so its features change every step.")
    if use_store:
        return feature_pipeline(cfg, model, splits, infos, device, log)
    return clip_pipeline(cfg, splits, infos)


def _without(splits: Splits, unreadable: list[tuple[Sample, str]]) -> Splits:
    bad = {s.id for s, _ in unreadable}
    return Splits(
        train=[s for s in splits.train if s.id not in bad],
        val=[s for s in splits.val if s.id not in bad],
        test=[s for s in splits.test if s.id not in bad],
        method=splits.method,
    )


def build_run(cfg: TrainConfig, device: torch.device, *, log: Log = print, resume_dir: Path | None = None,
              splits: Splits | None = None) -> Run:
    """Everything a run needs before its first step, each checked before anything is written (see the module
    docstring). `resume_dir` is the folder of a run being resumed, whose splits are read back; `splits` imposes the
    splits of a new run (a comparison makes them once for its grid)."""
    index = read_dataset(cfg.data, seed=cfg.seed)
    # The model's configuration is read (and its crop size checked) before the videos are probed, which can take
    # minutes: a model that cannot be loaded, or a crop it cannot take, fails at once.
    check_crop_size(model_config(cfg.model), cfg.data.crop_size)
    classes = index.classes
    left_out: dict[str, str] = {}  # a resumed run's videos left out when it started (not in its splits)
    if resume_dir is not None and (resume_dir / SPLITS_FILE).exists():
        splits, left_out = read_resumed_splits(resume_dir, index.root)
    elif splits is None or resume_dir is not None:
        splits = make_splits(index, cfg.data, cfg.seed)
    log(f"data: {counted(len(index.samples), 'video')} in {counted(len(classes), 'class')} ({index.format}); "
        f"split {splits.method}: "
        f"{len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test")
    chosen = splits.train + splits.val + splits.test
    infos, unreadable = probe_samples(chosen, workers=max(1, cfg.num_workers or 2))
    for sample, reason in unreadable:
        log(f"skipping unreadable video {sample.path}: {reason}")
    splits = _without(splits, unreadable)
    if not splits.train or not splits.val or not splits.test:
        raise BadInput(
            f"after leaving out {counted(len(unreadable), 'unreadable video')} a split is empty "
            f"({len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test); check the data with "
            "`vjepa-tune data check`."
        )

    model = build_model(cfg.model, cfg.strategy, cfg.lora, classes, cfg.seed, log, cfg.gradient_checkpointing)
    cfg.data.crop_size = check_crop_size(model, cfg.data.crop_size)
    counts = count_parameters(model)
    log(f"model {cfg.model} with strategy {cfg.strategy}: {counts.trainable:,} of {counts.total:,} parameters "
        f"train ({counts.pct:.3g}%)")
    pipeline = make_pipeline(cfg, model, splits, infos, device, log)
    d = cfg.data
    train_clip_s = typical_clip_s((infos[s.id] for s in splits.train), d.frames_per_clip, d.sampling, d.frame_step)
    return Run(cfg=cfg, model=model, classes=classes, splits=splits, pipeline=pipeline, counts=counts,
               skipped={**left_out, **{s.id: r for s, r in unreadable}}, frozen_fingerprint=frozen_fingerprint(model),
               train_clip_s=train_clip_s)
