"""The grid of a comparison: its axes, its points and their run folders' names, one split for all of them, and the
comparison's folder (found again for the same settings).

The grid is the product of strategies, videos per class, learning rates, LoRA settings (rank, alpha, dropout),
training seeds and data seeds. LoRA axes only multiply the strategies that have adapters: `head_only` with three ranks
is one run, not three. Seeds are repetitions: a training seed reruns every point on the same split (initialisation,
batch order, augmentation), a data seed draws another split (and its own runs) where the split is drawn at random.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from vjepa_tune.config import StrategyName, TrainConfig, check_strategy, to_plain
from vjepa_tune.data.samples import DatasetIndex, Splits
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import make_splits, shrink_train
from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_yaml_atomic
from vjepa_tune.models.strategies import STRATEGIES

Log = Callable[[str], None]

GUIDE_STRATEGIES: tuple[StrategyName, ...] = ("head_only", "pooler_and_head", "lora", "pooler_head_and_lora")
COMPARE_FILE = "compare.yaml"
COMPARE_LOG_FILE = "compare.log"
"""The console of every invocation on the folder, warnings included (each run's part is also in its train.log)."""
COMPARE_PREFIX = "compare-"
COMPARE_VERSION = 1

OPERATIONAL_KEYS: tuple[str, ...] = ("out", "run_name", "num_workers", "cache.dir", "cache.batch_size", "report_to")
"""Settings that do not change what a run computes: changing them does not make another comparison."""


@dataclass
class CompareGrid:
    """The list-valued axes of a comparison; an axis left None takes the base configuration's single value."""

    strategies: list[StrategyName] = field(default_factory=lambda: list(GUIDE_STRATEGIES))
    videos_per_class: list[int] | None = None
    """None: one size, the base configuration's (all videos when that is unset too)."""
    learning_rate: list[float] | None = None
    lora_rank: list[int] | None = None
    lora_alpha: list[float] | None = None
    lora_dropout: list[float] | None = None
    seeds: list[int] | None = None
    data_seeds: list[int] | None = None
    """Seeds of the split, one split (and one set of runs) each; None: one split, made with the first seed."""


@dataclass(frozen=True)
class GridPoint:
    """One run of the grid."""

    strategy: StrategyName
    videos_per_class: int | None
    learning_rate: float
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    seed: int
    data_seed: int | None = None
    """The seed of the split this run trains and is scored on (None: the grid's one split)."""

    def config(self, base: TrainConfig) -> TrainConfig:
        cfg = copy.deepcopy(base)
        cfg.strategy = self.strategy
        cfg.data.videos_per_class = self.videos_per_class
        cfg.learning_rate = self.learning_rate
        cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout = self.lora_rank, self.lora_alpha, self.lora_dropout
        cfg.seed = self.seed
        return cfg

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def name(self, grid: CompareGrid) -> str:
        """The run folder's name: the strategy, then every axis on which the grid has several values."""
        parts = [self.strategy]
        if len(axis_values(grid.videos_per_class)) > 1:
            parts.append(f"n{self.videos_per_class}")
        if len(axis_values(grid.learning_rate)) > 1:
            parts.append(f"lr{self.learning_rate:g}")
        if STRATEGIES[self.strategy].uses_lora:
            for prefix, axis, value in (
                ("r", grid.lora_rank, self.lora_rank),
                ("a", grid.lora_alpha, self.lora_alpha),
                ("d", grid.lora_dropout, self.lora_dropout),
            ):
                if len(axis_values(axis)) > 1:
                    parts.append(f"{prefix}{value:g}")
        if len(axis_values(grid.data_seeds)) > 1:
            parts.append(f"d{self.data_seed}")
        if len(axis_values(grid.seeds)) > 1:
            parts.append(f"s{self.seed}")
        return "-".join(parts)


def axis_values(values: list | None) -> list:
    """An axis as a list: None (the base configuration's value) is one point."""
    return [None] if values is None else list(values)


# -------------------------------------------------------------------------------------------- the grid
def resolve_grid(base: TrainConfig, grid: CompareGrid) -> CompareGrid:
    """Every axis as a non-empty list (None -> the base value), refusing empty lists and repeated values."""
    resolved = CompareGrid(
        strategies=list(grid.strategies),
        videos_per_class=list(grid.videos_per_class) if grid.videos_per_class is not None else None,
        learning_rate=list(grid.learning_rate) if grid.learning_rate is not None else [base.learning_rate],
        lora_rank=list(grid.lora_rank) if grid.lora_rank is not None else [base.lora.rank],
        lora_alpha=list(grid.lora_alpha) if grid.lora_alpha is not None else [base.lora.alpha],
        lora_dropout=list(grid.lora_dropout) if grid.lora_dropout is not None else [base.lora.dropout],
        seeds=list(grid.seeds) if grid.seeds is not None else [base.seed],
        data_seeds=list(grid.data_seeds) if grid.data_seeds is not None else None,
    )
    if resolved.videos_per_class is None:
        resolved.videos_per_class = (
            None if base.data.videos_per_class is None else [base.data.videos_per_class]
        )
    for flag, values in (
        ("--strategies", resolved.strategies),
        ("--data.videos_per_class", resolved.videos_per_class),
        ("--learning_rate", resolved.learning_rate),
        ("--lora.rank", resolved.lora_rank),
        ("--lora.alpha", resolved.lora_alpha),
        ("--lora.dropout", resolved.lora_dropout),
        ("--seeds", resolved.seeds),
        ("--data_seeds", resolved.data_seeds),
    ):
        if values is None:
            continue
        if not values:
            raise BadInput(f"{flag} needs at least one value, got an empty list.")
        repeated = sorted({repr(v) for v in values if list(values).count(v) > 1})
        if repeated:
            raise BadInput(f"{flag} lists {', '.join(repeated)} more than once; give each value once.")
    for name in resolved.strategies:
        check_strategy(name, "--strategies:")
    return resolved


def grid_points(grid: CompareGrid) -> list[GridPoint]:
    """Every run of a resolved grid, data seed by data seed, then seed by seed, largest size first within each seed
    so the feature store is filled once.

    Strategies without LoRA take only the first value of each LoRA axis: their result cannot depend on it.
    """
    sizes = sorted(axis_values(grid.videos_per_class), key=lambda n: -(n or 0))  # None (all) comes alone
    points: list[GridPoint] = []
    for data_seed, seed in ((d, s) for d in axis_values(grid.data_seeds) for s in axis_values(grid.seeds)):
        for n in sizes:
            for strategy in grid.strategies:
                lora = STRATEGIES[strategy].uses_lora
                ranks = axis_values(grid.lora_rank) if lora else axis_values(grid.lora_rank)[:1]
                alphas = axis_values(grid.lora_alpha) if lora else axis_values(grid.lora_alpha)[:1]
                dropouts = axis_values(grid.lora_dropout) if lora else axis_values(grid.lora_dropout)[:1]
                for lr in axis_values(grid.learning_rate):
                    for rank in ranks:
                        for alpha in alphas:
                            for dropout in dropouts:
                                points.append(GridPoint(strategy, n, lr, rank, alpha, dropout, seed, data_seed))
    return points


def split_seed(grid: CompareGrid, point: GridPoint | None = None) -> int:
    """The seed a split is made with: the point's data seed, else the grid's first (training) seed."""
    if point is not None and point.data_seed is not None:
        return point.data_seed
    return axis_values(grid.seeds)[0]


def grid_splits(
    base: TrainConfig, sizes: Sequence[int | None], seed: int
) -> tuple[dict[int | None, Splits], DatasetIndex]:
    """One split at the largest size; smaller sizes shrink its training side only.

    Returns the splits of each size and the data set index they were drawn from.
    """
    index = read_dataset(base.data, seed=seed)
    largest = None if None in sizes else max(sizes)  # type: ignore[type-var]
    data = dataclasses.replace(base.data, videos_per_class=largest)
    full = make_splits(index, data, seed)
    by_size: dict[int | None, Splits] = {}
    for n in sizes:
        by_size[n] = full if n == largest else shrink_train(full, n, seed, base.data.split_ratios)
    return by_size, index


def check_data_seeds_vary(splits_by_seed: Mapping[int, Splits]) -> None:
    """Refuse data seeds that give the same test videos: nothing would vary but the name (an official split)."""
    tests: dict[frozenset[str], int] = {}
    for seed, splits in splits_by_seed.items():
        key = frozenset(s.id for s in splits.test)
        if key in tests:
            raise BadInput(
                f"--data_seeds: data seeds {tests[key]} and {seed} give the same test videos (the split is "
                f"{splits.method}, not drawn by the seed), so they would only repeat each other; give one data seed, "
                "and --seeds to repeat training."
            )
        tests[key] = seed


# ------------------------------------------------------------------------------------------ the folder
def grid_identity(base: TrainConfig, grid: CompareGrid) -> dict[str, Any]:
    """What decides the grid's results, as plain data: what compare.yaml records and a rerun must match."""
    train = to_plain(base)
    for key in ("strategy", "learning_rate", "seed", "lora"):
        train.pop(key, None)
    train["data"].pop("videos_per_class", None)
    for key in OPERATIONAL_KEYS:
        group, _, name = key.rpartition(".")
        (train[group] if group else train).pop(name, None)
    for key in ("root", "list_file"):
        if train["data"].get(key):
            train["data"][key] = str(Path(train["data"][key]).expanduser().resolve())
    axes = to_plain(grid)
    if axes.get("data_seeds") is None:  # a grid of one split, as before data seeds existed: its folder is found again
        axes.pop("data_seeds", None)
    identity = {"version": COMPARE_VERSION, "train": train, "grid": axes}
    return yaml.safe_load(yaml.safe_dump(identity))


def compare_folder(out: Path, identity: dict[str, Any], log: Log = print) -> Path:
    """The newest `out/compare-*` folder made with the same settings, or a new one."""
    out = Path(out)
    if out.is_dir():
        for folder in sorted(out.glob(f"{COMPARE_PREFIX}*"), key=lambda p: p.name, reverse=True):
            saved = folder / COMPARE_FILE
            if not saved.is_file():
                continue
            try:
                found = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                continue
            if found.get("arguments") == identity:
                log(f"compare: continuing {folder} (same settings; finished runs are skipped)")
                return folder
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = out / f"{COMPARE_PREFIX}{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = out / f"{COMPARE_PREFIX}{stamp}-{suffix}"
    folder.mkdir(parents=True)
    write_yaml_atomic(
        folder / COMPARE_FILE,
        {"created": datetime.now().astimezone().isoformat(timespec="seconds"), "arguments": identity},
        header="The settings of this comparison: `vjepa-tune compare` with the same ones continues it.",
    )
    log(f"compare: new comparison in {folder}")
    return folder
