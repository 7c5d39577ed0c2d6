"""Continued pretraining's settings (`vjepa-tune pretrain`): masks, predictor, EMA, the probe, and the run's own
configuration beside train's."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from vjepa_tune.config.training import (
    DEFAULT_MODEL,
    PRETRAIN_DATA,
    CacheConfig,
    DataConfig,
    Precision,
    Scheduler,
    TrainConfig,
    _require,
    check_strategy,
    validate,
    validate_data,
)
from vjepa_tune.errors import BadInput


# ------------------------------------------------------------------------------------------------ pretrain
# Continued V-JEPA pretraining (`vjepa-tune pretrain`, pretraining/). Mask, predictor and EMA defaults are the
# official V-JEPA 2 pretraining configs (FACTS.md, "Continued pretraining"): a short-range set of 8 blocks at spatial
# scale 0.15 and a long-range set of 2 blocks at 0.7, aspect ratio 0.75-1.5, every block spanning all time steps; EMA
# momentum 0.99925 throughout. Whether a mask set fits the model's token grid is `pretraining.masks.check_masks`'s
# question, since only the grid can answer it; `validate_pretrain` refuses values no grid could use.
@dataclass
class MaskSetSettings:
    """One mask set: several blocks, each spanning every time step; their union (and, with `max_temporal_keep` below
    1, every token after the context's last time step) is the target, the rest context."""

    num_blocks: int = 8
    """Blocks per clip (0 turns the set off); their union is what the predictor must predict."""
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    """Range of one block's area as a fraction of the frame's token grid; one value is drawn per step."""
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    """Range of a block's height / width ratio; one value is drawn per step."""
    max_temporal_keep: float = 1.0
    """Fraction of the clip's time steps the context may come from (V-JEPA's `max_temporal_keep`): below 1 the
    context is the first `max(1, int(T' x this))` time steps outside the blocks and every token after them is a
    target, so the set asks the predictor for the rest of the clip from its beginning; 1 (the official value) keeps
    context at every time step."""


def _long_range() -> MaskSetSettings:
    return MaskSetSettings(num_blocks=2, spatial_scale=[0.7, 0.7], aspect_ratio=[0.75, 1.5])


@dataclass
class MaskSettings:
    """V-JEPA's two mask sets: many small blocks (short-range) and a few large ones (long-range)."""

    short_range: MaskSetSettings = field(default_factory=MaskSetSettings)
    """8 blocks of 15% of the frame each (the official values)."""
    long_range: MaskSetSettings = field(default_factory=_long_range)
    """2 blocks of 70% of the frame each (the official values)."""

    def active(self) -> list[tuple[str, MaskSetSettings]]:
        """The sets in use, by name, in a fixed order (short_range, long_range)."""
        return [(name, s) for name, s in (("short_range", self.short_range), ("long_range", self.long_range))
                if s.num_blocks > 0]


@dataclass
class PredictorSettings:
    """The predictor that maps context features to the target tokens' features."""

    reinit: bool = False
    """Replace the checkpoint's predictor by a new one of the width, depth and heads below."""
    width: int | None = None
    """Hidden size of a new predictor; default the checkpoint's."""
    depth: int | None = None
    """Layers of a new predictor; default the checkpoint's."""
    heads: int | None = None
    """Attention heads of a new predictor; default the checkpoint's (it must divide the width)."""
    warmup_steps: int = 0
    """Optimizer steps at the start in which only the predictor learns: the encoder (and so its target) stays as
    loaded while a new or untrained predictor learns to predict its features, instead of sending that predictor's
    first, random errors back into them."""


@dataclass
class EmaSettings:
    """The target encoder: an exponential moving average of the context encoder."""

    start: float = 0.99925
    """Momentum at the first step (closer to 1 = a slower, steadier target)."""
    end: float = 0.99925
    """Momentum at the last step; it moves linearly from start to end over the run."""


ProbeStrategy = Literal["head_only", "pooler_and_head"]


@dataclass
class ProbeConfig:
    """The downstream probe: a short `train` run on the target encoder's frozen features (through the feature store)
    at the start, every `every` steps and at the end, scored on its own validation and test split."""

    data: DataConfig = field(default_factory=DataConfig)
    """Labelled videos the probe trains and is scored on (`--probe.data.root`; no probe when unset); every
    `--data` flag of `train` works under `--probe.`. Keep them apart from the pretraining videos."""
    every: int | None = None
    """Probe every this many optimizer steps, besides at the start and at the end (unset: only those two)."""
    strategy: ProbeStrategy = "pooler_and_head"
    """What the probe trains on the frozen encoder: the attentive pooler and classifier, or the classifier only."""
    num_epochs: int = 5
    batch_size: int = 1
    accumulation_steps: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.01


def _pretraining_data() -> DataConfig:
    return DataConfig(crop_scale=[0.3, 1.0])


@dataclass
class PretrainConfig:
    """Continued V-JEPA self-supervised pretraining of a model on unlabelled videos."""

    model: str = DEFAULT_MODEL
    """Hub id, local Hugging Face directory, tiny (bundled) or random:vitl|vith|vitg|tiny."""
    out: Path = Path("runs")
    """Folder that holds one folder per run."""
    run_name: str | None = None
    """Name of the run folder; default pretrain-<timestamp>."""
    num_epochs: int = 10
    """Passes over the videos (--max_steps may end the run sooner)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (unset: num_epochs decide); the schedules span the steps the run makes."""
    batch_size: int = 8
    """Clips per forward pass."""
    accumulation_steps: int = 1
    """Forward passes per optimizer step: a step covers batch_size x accumulation_steps clips (x processes)."""
    learning_rate: float = 1e-4
    """Peak learning rate of AdamW (after the warm-up)."""
    weight_decay: float = 0.04
    scheduler: Scheduler = "cosine"
    """The learning rate after the warm-up: constant, or a cosine decay to 0 at the last step."""
    warmup_ratio: float = 0.1
    """Fraction of optimizer steps spent warming the learning rate up linearly from 0."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient norm to this value (unset: no clipping)."""
    num_workers: int = 0
    """DataLoader processes decoding videos."""
    seed: int = 42
    precision: Precision = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU."""
    gradient_checkpointing: bool = False
    """Recompute the encoder's activations in the backward pass: less memory, more time."""
    log_every: int = 50
    """Monitors (loss, lr, EMA momentum, gradient norm, collapse signals) every this many optimizer steps, besides
    the first and the last."""
    checkpoint_every: int = 500
    """Save the resumable state every this many optimizer steps (and after every probe)."""
    stop_on_collapse: bool = False
    """End the run at the first `collapse:` finding (the model and records are written as for a finished run)."""
    report_to: str = "tensorboard"
    """Experiment trackers, comma-separated: tensorboard, mlflow, wandb, or none."""
    data: DataConfig = field(default_factory=_pretraining_data)
    """The videos to pretrain on: any folder of videos (labels, if the layout has them, are ignored)."""
    masks: MaskSettings = field(default_factory=MaskSettings)
    predictor: PredictorSettings = field(default_factory=PredictorSettings)
    ema: EmaSettings = field(default_factory=EmaSettings)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    """The probe's feature store: its dtype and batch sizes (the features live in the run's probes/ folder while a
    probe runs and are cleared after it, since the encoder changes between probes)."""


PRETRAIN_LEFT_OFF: dict[str, frozenset[str]] = {
    "data": frozenset(f.name for f in dataclasses.fields(DataConfig)) - frozenset(PRETRAIN_DATA),
    "cache": frozenset({"enabled", "dir"}),
}
"""The settings of `PretrainConfig`'s groups that `pretrain` has no flag for, and its config.yaml does not record:
labels and splits of the videos it pretrains on, and where the probes' store is (always on, in the run folder)."""


def _range_ok(values: list[float], low: float, high: float) -> bool:
    return (len(values) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
            and low < values[0] <= values[1] <= high)


def check_pretraining_settings(masks: MaskSettings, predictor: PredictorSettings, ema: EmaSettings,
                               prefix: str = "--") -> None:
    """Refuse mask, predictor and EMA values no token grid could use, naming the flag (`prefix` + dotted name) and
    the value."""
    for name, s in (("short_range", masks.short_range), ("long_range", masks.long_range)):
        flag = f"{prefix}masks.{name}"
        if not (isinstance(s.num_blocks, int) and s.num_blocks >= 0):
            raise BadInput(
                f"{flag}.num_blocks must be a whole number >= 0 (0 turns the set off), got {s.num_blocks!r}."
            )
        if not _range_ok(list(s.spatial_scale), 0.0, 1.0):
            raise BadInput(
                f"{flag}.spatial_scale must be two fractions 0 < min <= max <= 1, got {s.spatial_scale!r}."
            )
        if not _range_ok(list(s.aspect_ratio), 0.0, math.inf):
            raise BadInput(f"{flag}.aspect_ratio must be two ratios 0 < min <= max, got {s.aspect_ratio!r}.")
        keep = s.max_temporal_keep
        if isinstance(keep, bool) or not _range_ok([keep, keep], 0.0, 1.0):
            raise BadInput(f"{flag}.max_temporal_keep must be a fraction 0 < value <= 1 (1 keeps context at every "
                           f"time step), got {s.max_temporal_keep!r}.")
    if not masks.active():
        raise BadInput(f"{prefix}masks.short_range.num_blocks and {prefix}masks.long_range.num_blocks are both 0: "
                       "at least one mask set must be on.")
    for name in ("width", "depth", "heads"):
        value = getattr(predictor, name)
        if value is not None and (isinstance(value, bool) or not (isinstance(value, int) and value >= 1)):
            raise BadInput(f"{prefix}predictor.{name} must be a whole number >= 1, got {value!r}.")
    warmup = predictor.warmup_steps
    if isinstance(warmup, bool) or not (isinstance(warmup, int) and warmup >= 0):
        raise BadInput(f"{prefix}predictor.warmup_steps must be a whole number >= 0 of optimizer steps (0: the "
                       f"encoder learns from the first step), got {warmup!r}.")
    for name in ("start", "end"):
        value = getattr(ema, name)
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise BadInput(f"{prefix}ema.{name} must be a momentum in [0, 1], got {value!r}.")


@contextmanager
def probe_data_flags() -> Iterator[None]:
    """A BadInput about the probe's data, raised by parts that know its flags as `train` spells them (`--data.*`),
    names them as the user typed them (`--probe.data.*`)."""
    try:
        yield
    except BadInput as error:
        raise BadInput(str(error).replace("--data.", "--probe.data.")) from None


def validate_pretrain(cfg: PretrainConfig) -> PretrainConfig:
    """Refuse values no pretraining run could use, naming the flag and the value."""
    for name in ("num_epochs", "batch_size", "accumulation_steps", "log_every", "checkpoint_every"):
        value = getattr(cfg, name)
        _require(isinstance(value, int) and value >= 1, f"--{name} must be a whole number >= 1, got {value!r}.")
    _require(cfg.max_steps is None or (isinstance(cfg.max_steps, int) and cfg.max_steps >= 1),
             f"--max_steps must be a whole number >= 1, got {cfg.max_steps!r}.")
    _require(cfg.num_workers >= 0, f"--num_workers must be >= 0, got {cfg.num_workers!r}.")
    _require(math.isfinite(cfg.learning_rate) and cfg.learning_rate > 0,
             f"--learning_rate must be a positive number, got {cfg.learning_rate!r}.")
    _require(math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0,
             f"--weight_decay must be >= 0, got {cfg.weight_decay!r}.")
    _require(0 <= cfg.warmup_ratio < 1, f"--warmup_ratio must be in [0, 1), got {cfg.warmup_ratio!r}.")
    _require(cfg.max_grad_norm is None or cfg.max_grad_norm > 0,
             f"--max_grad_norm must be > 0, got {cfg.max_grad_norm!r}.")
    check_pretraining_settings(cfg.masks, cfg.predictor, cfg.ema)
    _require(cfg.max_steps is None or cfg.predictor.warmup_steps < cfg.max_steps,
             f"--predictor.warmup_steps {cfg.predictor.warmup_steps} is not below --max_steps {cfg.max_steps}, so the "
             "encoder would never learn: lower it, or raise --max_steps.")
    validate_data(cfg.data)
    probe = cfg.probe
    _require(probe.every is None or (isinstance(probe.every, int) and probe.every >= 1),
             f"--probe.every must be a whole number >= 1 of optimizer steps, got {probe.every!r}.")
    check_strategy(probe.strategy, "--probe.strategy")
    _require(probe.strategy in get_args(ProbeStrategy),
             f"--probe.strategy {probe.strategy!r} trains the encoder; the probe keeps it frozen: choose "
             f"{' or '.join(get_args(ProbeStrategy))}.")
    if probe.data.root is not None or probe.data.list_file is not None:
        with probe_data_flags():
            validate(probe_train_config(cfg, Path(cfg.out)))
    elif probe.every is not None:
        raise BadInput("--probe.every needs the probe's labelled videos: give --probe.data.root.")
    return cfg


def has_probe(cfg: PretrainConfig) -> bool:
    """Whether the run probes its encoder (labelled probe data was given)."""
    return cfg.probe.data.root is not None or cfg.probe.data.list_file is not None


def probe_train_config(cfg: PretrainConfig, out: Path, model: str | None = None, store_dir: Path | None = None
                       ) -> TrainConfig:
    """The `train` configuration of one probe of `model` (default the pretraining's own): the probe's strategy, data
    and hyperparameters, the run's seed, precision and workers, the store on, in `store_dir` (default --cache.dir)."""
    p = cfg.probe
    return TrainConfig(
        strategy=p.strategy, model=model or cfg.model, out=out, num_epochs=p.num_epochs, batch_size=p.batch_size,
        accumulation_steps=p.accumulation_steps, learning_rate=p.learning_rate, weight_decay=p.weight_decay,
        num_workers=cfg.num_workers, seed=cfg.seed, precision=cfg.precision,
        data=dataclasses.replace(p.data),
        cache=dataclasses.replace(cfg.cache, enabled=True, dir=store_dir or cfg.cache.dir),
    )
