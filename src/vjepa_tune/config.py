"""Typed configuration: one set of dataclasses is the command line, the YAML schema and the saved `config.yaml`.

Defaults are the guide's `TrainingConfig` (5 epochs, batch 1 x 4 accumulation steps, AdamW lr 2e-4, weight decay
0.01, seed 42, LoRA r=16 / alpha 32 / dropout 0.1). Groups become dotted flags (`--data.root`, `--lora.rank`,
`--cache.enabled`), as CLI.md spells them. Validation lives in `validate()` so that every entry point (command line,
YAML, Python API) refuses the same bad values with the same message.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from vjepa_tune.errors import BadInput

DEFAULT_MODEL = "facebook/vjepa2-vitl-fpc16-256-ssv2"

DataFormat = Literal["auto", "folder", "list", "ntu", "ucf101", "ssv2", "kinetics", "videos"]
SplitMode = Literal["auto", "random", "group", "official"]
Sampling = Literal["uniform", "random_window"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Scheduler = Literal["constant", "cosine"]
ClassBalance = Literal["none", "sampler", "loss"]
StoreDtype = Literal["bf16", "fp16", "fp32"]
StrategyName = Literal["head_only", "pooler_and_head", "lora", "pooler_head_and_lora", "backbone_lora"]
"""The fine-tuning strategies, in the guide's order (`backbone_lora` last); `models.strategies.STRATEGIES` describes
each of them (tests/test_config.py checks that the two name the same strategies)."""
STRATEGY_NAMES: tuple[StrategyName, ...] = get_args(StrategyName)


def check_strategy(name: object, flag: str = "--strategy") -> StrategyName:
    """`name` as a strategy name, or BadInput naming `flag` and the choices: the one place that says what a
    strategy is (the command line checks the same set through the `StrategyName` type)."""
    if name not in STRATEGY_NAMES:
        raise BadInput(f"{flag} {name!r} is not a strategy; choose one of {', '.join(STRATEGY_NAMES)}.")
    return name  # type: ignore[return-value]


@dataclass
class DataConfig:
    """Where the videos are, how they are labelled and split, and how clips are cut from them."""

    root: Path | None = None
    """Data set root folder."""
    format: DataFormat = "auto"
    """Layout of the data set; auto detects it from the files. videos: every video under the root at any depth,
    without labels (for pretrain, which picks it by itself when no labelled layout is found)."""
    list_file: Path | None = None
    """For format=list: a file of `<path> <label>` lines (paths relative to the root or absolute)."""
    group_pattern: str | None = None
    """Group videos by their file name: a regular expression searched (re.search, so it may match part of the name)
    in each video's file name without its folders and extension; its named group `group`, else its first capture
    group, is the video's group, and videos of one group (clips cut from one recording) never go to two splits.
    E.g. '^(.+)_clip\\d+$' groups rec7_clip1.mp4 and rec7_clip2.mp4 as rec7. Every video must match. Works for
    every format (for ntu and ucf101 it replaces their performer or source-video groups); unset = the format's own
    groups (none for folder, list, ssv2 and kinetics)."""
    list_groups: bool = False
    """For format=list: each line is `<path> <label> <group>`, the last whitespace-separated field being the
    video's group (clips of one recording share one) and the one before it the label; paths may hold spaces."""
    task: Literal["action4", "all"] = "action4"
    """For ntu: action4 = the guide's sitting_down (A008), standing_up (A009), waving (A023) and other;
    all = every action."""
    videos_per_class: int | None = None
    """Videos drawn per class before splitting (the guide's --num_videos); all when unset."""
    split: SplitMode = "auto"
    """random (stratified), group (no group on two sides), official (the data set's own);
    auto = group when samples have groups, else random."""
    protocol: Literal["xsub", "xview", "xset"] = "xsub"
    """NTU official protocol."""
    fold: Literal[1, 2, 3] = 1
    """UCF-101 official fold."""
    split_ratios: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    """Train, validation and test fractions for random and group splits."""
    frames_per_clip: int = 16
    """Frames per clip fed to the model (even: the model's tubelet is 2 frames)."""
    sampling: Sampling = "uniform"
    """uniform: frames spread over the whole video; random_window: frames frame_step apart from a random start."""
    frame_step: int = 4
    """Distance in frames between sampled frames with sampling=random_window."""
    crop_size: int | None = None
    """Spatial crop; defaults to the model's, and any other value is refused (the model's positions are fixed by it)."""
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    """Area range of the training RandomResizedCrop (train: torchvision's default, as the guide uses it; pretrain:
    V-JEPA's 0.3-1)."""
    hflip: bool = True
    """Random horizontal flip in training (turn off where left/right matters)."""
    color_jitter: float = 0.0
    """Strength of random colour jitter in training (0 = off; 0.4 is a common choice)."""
    random_erasing: float = 0.0
    """Probability of random erasing in training (0 = off)."""


DATA_READING: tuple[str, ...] = ("root", "format", "list_file", "group_pattern", "list_groups", "task", "protocol",
                                  "fold")
"""The data settings that say which videos a data set has, their labels and groups."""
DATA_SPLITTING: tuple[str, ...] = ("videos_per_class", "split", "split_ratios")
DATA_CLIPS: tuple[str, ...] = ("frames_per_clip", "sampling", "frame_step")
"""Which frames make a clip (the crop size is the model's)."""
DATA_TRAINING: tuple[str, ...] = ("crop_size", "crop_scale", "hflip", "color_jitter", "random_erasing")
"""What only training uses: the crop and the augmentation."""
PRETRAIN_DATA: tuple[str, ...] = DATA_READING + DATA_CLIPS + DATA_TRAINING
"""The data settings pretraining uses: which videos, how clips are cut and augmented (no labels, no splits)."""


def data_fields_except(*used: tuple[str, ...]) -> set[str]:
    """The `DataConfig` fields outside the `used` groups: what a command that uses only those leaves off its
    flags."""
    kept = {name for group in used for name in group}
    return {f.name for f in dataclasses.fields(DataConfig)} - kept


@dataclass
class LoraConfig:
    """LoRA adapters (the lora, pooler_head_and_lora and backbone_lora strategies)."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.1


@dataclass
class CacheConfig:
    """The backbone feature store, shared by every frozen-backbone run over the same videos and model."""

    enabled: bool | None = None
    """Use the store; unset = wherever the strategy allows it (every strategy but backbone_lora)."""
    dir: Path | None = None
    """Where the store lives; default $VJEPA_TUNE_CACHE or ~/.cache/vjepa-tune/features."""
    views: int | None = None
    """Augmented training views stored per video; epoch e uses view e mod views. Default: num_epochs."""
    dtype: StoreDtype = "bf16"
    """Storage precision of features."""
    batch_size: int = 8
    """Clips per backbone forward pass during extraction."""
    train_batch_size: int = 8
    """Stored features per forward pass in training (never fewer than --batch_size): an optimizer step's
    batch_size x accumulation_steps samples run in micro-batches of this size. A feature takes a fraction of a
    clip's memory, so the guide's 1 x 4 steps run as one batch of 4: the same samples and mean gradient per step
    (docs/design.md), four times fewer passes; float rounding and dropout draws differ. 1 keeps --batch_size."""


@dataclass
class TrainConfig:
    """One training run: a strategy applied to a model on a data set."""

    strategy: StrategyName = "lora"
    """Which weights train: the classifier only (head_only), the attentive pooler too (pooler_and_head), LoRA on the
    pooler (lora), both (pooler_head_and_lora), or LoRA on the backbone too (backbone_lora)."""
    model: str = DEFAULT_MODEL
    """Hub id, local Hugging Face directory, tiny (bundled) or random:vitl|vith|vitg|tiny."""
    out: Path = Path("runs")
    """Folder that holds experiments.csv and one folder per run."""
    run_name: str | None = None
    """Name of the run folder; default <strategy>-<timestamp>."""
    report_to: str = "tensorboard"
    """Experiment trackers, comma-separated: tensorboard (RUN/tensorboard), mlflow (OUT/mlflow.db unless
    MLFLOW_TRACKING_URI is set; pip install 'vjepa-tune[mlflow]'), wandb (offline unless logged in; pip install
    'vjepa-tune[wandb]'), or none. Each gets the configuration, every logged scalar, the final metrics and the
    plots; a resumed run continues the same MLflow and W&B run."""
    num_epochs: int = 5
    batch_size: int = 1
    accumulation_steps: int = 4
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    num_workers: int = 0
    """DataLoader processes decoding videos (training on clips, feature extraction); training on stored features
    reads them in the main process."""
    seed: int = 42
    precision: Precision = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 on CPU."""
    scheduler: Scheduler = "constant"
    warmup_ratio: float = 0.0
    """Fraction of optimizer steps spent warming the learning rate up linearly from 0."""
    max_grad_norm: float | None = None
    """Clip the gradient norm to this value (off when unset)."""
    label_smoothing: float = 0.0
    early_stopping: int | None = None
    """Stop after this many epochs without a better validation accuracy (off when unset)."""
    class_balance: ClassBalance = "none"
    """For skewed data: sampler = draw classes evenly, loss = weight the loss by inverse class frequency."""
    gradient_checkpointing: bool = False
    """Recompute backbone activations in the backward pass (backbone_lora): less memory, more time."""
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)


FeaturePooling = Literal["mean", "pooler", "time", "tokens"]
FeatureResize = Literal["crop", "full"]
FeatureDtype = Literal["fp16", "fp32"]


@dataclass
class FeaturesConfig:
    """How `vjepa-tune features` cuts videos into windows and what it keeps of each (docs/features.md)."""

    window_frames: int = 16
    """Frames per window (of the source, or of the --fps grid); VideoMAE v2 uses 16 on THUMOS14."""
    stride_frames: int = 4
    """Frames between window starts: ActionFormer's feat_stride (4 on THUMOS14, 16 on FineAction)."""
    fps: float | None = None
    """Count frames at this rate (each video resampled to it) instead of the source's own frames."""
    pad_last: bool = False
    """Add one window ending at the last frame when the whole windows stop short of it (and give a video shorter
    than one window one window)."""
    frames_per_clip: int | None = None
    """Frames each window is sampled to (even); default: a trained run's, else the model's config."""
    resize: FeatureResize = "crop"
    """crop: the model's evaluation transform (short side resized, centre crop); full: the whole frame squashed
    to the crop, as VideoMAE v2's extractor does."""
    pool: FeaturePooling = "mean"
    """mean: over all tokens (one row per window); pooler: a trained run's attentive pooler; time: over space, one
    row per temporal token; tokens: every token (windows x tokens x channels, for small jobs)."""
    layers: list[int] = field(default_factory=lambda: [-1])
    """Encoder layers to keep (0 the first, -1 the last), concatenated, e.g. 5,11,17,23; each normalised with the
    encoder's final layer norm."""
    dtype: FeatureDtype = "fp32"
    """Storage precision of the .npy files."""
    batch_size: int = 16
    """Windows per forward pass (a batch never mixes two videos)."""
    num_workers: int = 0
    """DataLoader processes decoding videos."""
    device: str | None = None
    """cpu, cuda, cuda:1 (default: a GPU if any)."""
    precision: Precision = "auto"
    """auto = bf16 autocast on a GPU that supports it, fp32 elsewhere."""
    seed: int = 42
    """Seed of weights a model spec leaves random (random:*), as `train --seed` draws them."""


def validate_features(cfg: FeaturesConfig) -> FeaturesConfig:
    """Refuse feature settings no extraction could use, naming the flag and the value."""
    for name in ("window_frames", "stride_frames", "batch_size"):
        value = getattr(cfg, name)
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                 f"--{name} must be a whole number >= 1, got {value!r}.")
    _require(cfg.fps is None or (math.isfinite(cfg.fps) and cfg.fps > 0),
             f"--fps must be a positive number of frames per second, got {cfg.fps!r}.")
    _require(cfg.frames_per_clip is None or (cfg.frames_per_clip >= 2 and cfg.frames_per_clip % 2 == 0),
             "--frames_per_clip must be an even number >= 2 (the model's tubelet is 2 frames), "
             f"got {cfg.frames_per_clip!r}.")
    _require(cfg.num_workers >= 0, f"--num_workers must be >= 0, got {cfg.num_workers!r}.")
    _require(bool(cfg.layers), "--layers needs at least one layer index (-1 is the last layer).")
    for name, allowed in (("pool", FeaturePooling), ("resize", FeatureResize), ("dtype", FeatureDtype),
                          ("precision", Precision)):
        value = getattr(cfg, name)
        _require(value in get_args(allowed),
                 f"--{name} {value!r} is not one of {', '.join(get_args(allowed))}.")
    return cfg


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise BadInput(message)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Refuse values no run could use, naming the flag and the value."""
    check_strategy(cfg.strategy)
    _require(cfg.data.format != "videos", "--data.format videos reads videos without labels (for `vjepa-tune "
             "pretrain`); train needs labelled videos: one folder per class, or a list file with labels.")
    for name in ("num_epochs", "batch_size", "accumulation_steps"):
        value = getattr(cfg, name)
        _require(isinstance(value, int) and value >= 1, f"--{name} must be a whole number >= 1, got {value!r}.")
    _require(cfg.num_workers >= 0, f"--num_workers must be >= 0, got {cfg.num_workers!r}.")
    _require(
        math.isfinite(cfg.learning_rate) and cfg.learning_rate > 0,
        f"--learning_rate must be a positive number, got {cfg.learning_rate!r}.",
    )
    _require(
        math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0,
        f"--weight_decay must be >= 0, got {cfg.weight_decay!r}.",
    )
    _require(0 <= cfg.warmup_ratio < 1, f"--warmup_ratio must be in [0, 1), got {cfg.warmup_ratio!r}.")
    _require(0 <= cfg.label_smoothing < 1, f"--label_smoothing must be in [0, 1), got {cfg.label_smoothing!r}.")
    _require(
        cfg.max_grad_norm is None or cfg.max_grad_norm > 0,
        f"--max_grad_norm must be > 0, got {cfg.max_grad_norm!r}.",
    )
    _require(
        cfg.early_stopping is None or cfg.early_stopping >= 1,
        f"--early_stopping must be >= 1 epoch, got {cfg.early_stopping!r}.",
    )
    _require(cfg.lora.rank >= 1, f"--lora.rank must be >= 1, got {cfg.lora.rank!r}.")
    _require(cfg.lora.alpha > 0, f"--lora.alpha must be > 0, got {cfg.lora.alpha!r}.")
    _require(0 <= cfg.lora.dropout < 1, f"--lora.dropout must be in [0, 1), got {cfg.lora.dropout!r}.")
    _require(
        cfg.cache.views is None or cfg.cache.views >= 1, f"--cache.views must be >= 1, got {cfg.cache.views!r}."
    )
    _require(cfg.cache.batch_size >= 1, f"--cache.batch_size must be >= 1, got {cfg.cache.batch_size!r}.")
    _require(cfg.cache.train_batch_size >= 1,
             f"--cache.train_batch_size must be >= 1, got {cfg.cache.train_batch_size!r}.")
    validate_data(cfg.data)
    return cfg


def validate_data(data: DataConfig) -> DataConfig:
    """Refuse data settings no reader could use."""
    ratios = list(data.split_ratios)
    _require(
        len(ratios) == 3 and all(r >= 0 for r in ratios) and abs(sum(ratios) - 1.0) < 1e-6 and ratios[0] > 0,
        f"--data.split_ratios must be three non-negative fractions (train,val,test) summing to 1, got {ratios!r}.",
    )
    _require(
        data.frames_per_clip >= 2 and data.frames_per_clip % 2 == 0,
        "--data.frames_per_clip must be an even number >= 2 (the model's tubelet is 2 frames), "
        f"got {data.frames_per_clip!r}.",
    )
    _require(data.frame_step >= 1, f"--data.frame_step must be >= 1, got {data.frame_step!r}.")
    _require(
        data.videos_per_class is None or data.videos_per_class >= 1,
        f"--data.videos_per_class must be >= 1, got {data.videos_per_class!r}.",
    )
    _require(
        data.crop_size is None or data.crop_size >= 16,
        f"--data.crop_size must be >= 16 pixels, got {data.crop_size!r}.",
    )
    scale = list(data.crop_scale)
    _require(
        len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1,
        f"--data.crop_scale must be two fractions 0 < min <= max <= 1, got {scale!r}.",
    )
    _require(0 <= data.color_jitter <= 1, f"--data.color_jitter must be in [0, 1], got {data.color_jitter!r}.")
    _require(
        0 <= data.random_erasing <= 1, f"--data.random_erasing must be in [0, 1], got {data.random_erasing!r}."
    )
    group_regex(data)
    return data


def group_regex(data: DataConfig) -> re.Pattern[str] | None:
    """`--data.group_pattern` compiled (None when unset); a pattern that cannot name a group is refused by name."""
    pattern = data.group_pattern
    _require(
        not (pattern is not None and data.list_groups),
        "--data.group_pattern and --data.list_groups both declare groups; give one of them.",
    )
    _require(
        data.list_groups in (True, False), f"--data.list_groups must be true or false, got {data.list_groups!r}."
    )
    _require(
        data.format in ("auto", "list") or not data.list_groups,
        f"--data.list_groups reads a group column from a list file, but --data.format is {data.format}; use "
        "--data.group_pattern to take groups from file names instead.",
    )
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except (re.error, TypeError) as err:
        raise BadInput(f"--data.group_pattern '{pattern}' is not a regular expression: {err}.") from None
    _require(
        compiled.groups >= 1,
        f"--data.group_pattern '{pattern}' has no capture group: put the part of the file name that names the "
        "group in parentheses, e.g. '^(.+)_clip\\d+$', or name it (?P<group>...).",
    )
    return compiled


# ------------------------------------------------------------------------------------------------ pretrain
# Continued V-JEPA pretraining (`vjepa-tune pretrain`, pretraining/). Mask, predictor and EMA defaults are the
# official V-JEPA 2 pretraining configs (FACTS.md, "Continued pretraining"): a short-range set of 8 blocks at spatial
# scale 0.15 and a long-range set of 2 blocks at 0.7, aspect ratio 0.75-1.5, every block spanning all time steps; EMA
# momentum 0.99925 throughout. Whether a mask set fits the model's token grid is `pretraining.masks.check_masks`'s
# question, since only the grid can answer it; `validate_pretrain` refuses values no grid could use.
@dataclass
class MaskSetSettings:
    """One mask set: several blocks, each spanning every time step; their union is the target, the rest context."""

    num_blocks: int = 8
    """Blocks per clip (0 turns the set off); their union is what the predictor must predict."""
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    """Range of one block's area as a fraction of the frame's token grid; one value is drawn per step."""
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    """Range of a block's height / width ratio; one value is drawn per step."""


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
    if not masks.active():
        raise BadInput(f"{prefix}masks.short_range.num_blocks and {prefix}masks.long_range.num_blocks are both 0: "
                       "at least one mask set must be on.")
    for name in ("width", "depth", "heads"):
        value = getattr(predictor, name)
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise BadInput(f"{prefix}predictor.{name} must be a whole number >= 1, got {value!r}.")
    for name in ("start", "end"):
        value = getattr(ema, name)
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise BadInput(f"{prefix}ema.{name} must be a momentum in [0, 1], got {value!r}.")


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
    validate_data(cfg.data)
    probe = cfg.probe
    _require(probe.every is None or (isinstance(probe.every, int) and probe.every >= 1),
             f"--probe.every must be a whole number >= 1 of optimizer steps, got {probe.every!r}.")
    check_strategy(probe.strategy, "--probe.strategy")
    _require(probe.strategy in get_args(ProbeStrategy),
             f"--probe.strategy {probe.strategy!r} trains the encoder; the probe keeps it frozen: choose "
             f"{' or '.join(get_args(ProbeStrategy))}.")
    if probe.data.root is not None or probe.data.list_file is not None:
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


def to_plain(obj: Any) -> Any:
    """A dataclass tree as plain YAML/JSON-ready values (paths as strings)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(cls: type, values: dict[str, Any]) -> Any:
    """Rebuild a dataclass tree from `to_plain` output, refusing unknown keys by name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise BadInput(f"unknown configuration key {key!r} for {cls.__name__}; known: {', '.join(known)}.")
        sub = _NESTED.get((cls, key))
        if sub is not None and isinstance(value, dict):
            kwargs[key] = from_plain(sub, value)
        elif key in _PATH_FIELDS.get(cls, ()) and value is not None:
            kwargs[key] = Path(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


_NESTED = {
    (TrainConfig, "data"): DataConfig, (TrainConfig, "lora"): LoraConfig, (TrainConfig, "cache"): CacheConfig,
    (PretrainConfig, "data"): DataConfig, (PretrainConfig, "masks"): MaskSettings,
    (PretrainConfig, "predictor"): PredictorSettings, (PretrainConfig, "ema"): EmaSettings,
    (PretrainConfig, "probe"): ProbeConfig, (PretrainConfig, "cache"): CacheConfig, (ProbeConfig, "data"): DataConfig,
    (MaskSettings, "short_range"): MaskSetSettings, (MaskSettings, "long_range"): MaskSetSettings,
}
_PATH_FIELDS = {TrainConfig: ("out",), PretrainConfig: ("out",), DataConfig: ("root", "list_file"),
                CacheConfig: ("dir",)}
