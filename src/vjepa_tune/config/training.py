"""Train's settings and the data's (also `features`' settings): the dataclasses, their validation and the
literal choices (`StrategyName`, precisions, data formats).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

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
each of them (tests/models/test_strategies.py checks that the two name the same strategies)."""
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
