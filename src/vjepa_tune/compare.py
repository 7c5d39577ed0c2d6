"""`vjepa-tune compare`: a grid of training runs over one split and one feature store, and its report.

The grid is the product of strategies, videos per class, learning rates, LoRA settings (rank, alpha,
dropout) and seeds, so the same command is the guide's strategy comparison, its data-size study and its
hyperparameter search.
LoRA axes only multiply the strategies that have adapters: `head_only` with three ranks is one run, not three.

Why the runs are comparable. The data set is read and split once, at the grid's largest size, with the first
seed; every smaller size keeps the same validation and test videos and draws a nested subset of the training
videos (`data.splits.shrink_train`). Further seeds reuse that split too, so they vary only training randomness
(initialisation of new weights, batch order, augmentation), not which videos are scored.

Why it is cheap. Runs are ordered largest size first, so the first run of each (seed, stored output) fills the
backbone feature store and every later run reads from it (`training/features.py`).

Why it can be run again. The grid's settings are written to `compare.yaml` in its folder
`DIR/compare-<time>/`; the same arguments find that folder again, skip finished runs (metrics.json present),
continue unfinished ones from their checkpoint, and rewrite the report. Run folders are named by their grid
point.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from vjepa_tune.config import TrainConfig, to_plain, validate
from vjepa_tune.data.samples import Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import ConsoleLog, keep_console_log

Log = Callable[[str], None]

GUIDE_STRATEGIES: tuple[str, ...] = ("head_only", "pooler_and_head", "lora", "pooler_head_and_lora")
COMPARE_FILE = "compare.yaml"
COMPARE_LOG_FILE = "compare.log"
"""The console of every invocation on the folder, warnings included (each run's part is also in its train.log)."""
COMPARE_PREFIX = "compare-"
COMPARE_VERSION = 1

OPERATIONAL_KEYS: tuple[str, ...] = ("out", "run_name", "num_workers", "cache.dir", "cache.batch_size")
"""Settings that do not change what a run computes: changing them does not make another comparison."""


@dataclass
class CompareGrid:
    """The list-valued axes of a comparison; an axis left None takes the base configuration's single value."""

    strategies: list[str] = field(default_factory=lambda: list(GUIDE_STRATEGIES))
    videos_per_class: list[int] | None = None
    """None: one size, the base configuration's (all videos when that is unset too)."""
    learning_rate: list[float] | None = None
    lora_rank: list[int] | None = None
    lora_alpha: list[float] | None = None
    lora_dropout: list[float] | None = None
    seeds: list[int] | None = None


@dataclass(frozen=True)
class GridPoint:
    """One run of the grid."""

    strategy: str
    videos_per_class: int | None
    learning_rate: float
    lora_rank: int
    lora_alpha: float
    lora_dropout: float
    seed: int

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
        from vjepa_tune.models.strategies import STRATEGIES

        parts = [self.strategy]
        if len(_axis(grid.videos_per_class)) > 1:
            parts.append(f"n{self.videos_per_class}")
        if len(_axis(grid.learning_rate)) > 1:
            parts.append(f"lr{self.learning_rate:g}")
        if STRATEGIES[self.strategy].uses_lora:
            for prefix, axis, value in (
                ("r", grid.lora_rank, self.lora_rank),
                ("a", grid.lora_alpha, self.lora_alpha),
                ("d", grid.lora_dropout, self.lora_dropout),
            ):
                if len(_axis(axis)) > 1:
                    parts.append(f"{prefix}{value:g}")
        if len(_axis(grid.seeds)) > 1:
            parts.append(f"s{self.seed}")
        return "-".join(parts)


def _axis(values: list | None) -> list:
    return [None] if values is None else list(values)


@dataclass
class RunRecord:
    """What became of one grid point in this invocation."""

    point: GridPoint
    run_dir: Path
    status: str
    """finished (trained now), skipped (finished before), or failed."""
    metrics: dict[str, Any] | None = None
    error: str | None = None

    def as_report_entry(self) -> dict[str, Any]:
        return {
            "name": self.run_dir.name,
            "run_dir": str(self.run_dir),
            "settings": self.point.settings(),
            "metrics": self.metrics,
            "error": self.error,
        }


@dataclass
class CompareResult:
    compare_dir: Path
    report: Path
    runs: list[RunRecord]
    backbone_calls: int
    """Backbone forward passes made by feature extraction in this invocation."""
    backbone_clips: int

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]


# -------------------------------------------------------------------------------------------- the grid
def resolve_grid(base: TrainConfig, grid: CompareGrid) -> CompareGrid:
    """Every axis as a non-empty list (None -> the base value), refusing empty lists and repeated values."""
    from vjepa_tune.models.strategies import STRATEGIES

    resolved = CompareGrid(
        strategies=list(grid.strategies),
        videos_per_class=list(grid.videos_per_class) if grid.videos_per_class is not None else None,
        learning_rate=list(grid.learning_rate) if grid.learning_rate is not None else [base.learning_rate],
        lora_rank=list(grid.lora_rank) if grid.lora_rank is not None else [base.lora.rank],
        lora_alpha=list(grid.lora_alpha) if grid.lora_alpha is not None else [base.lora.alpha],
        lora_dropout=list(grid.lora_dropout) if grid.lora_dropout is not None else [base.lora.dropout],
        seeds=list(grid.seeds) if grid.seeds is not None else [base.seed],
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
    ):
        if values is None:
            continue
        if not values:
            raise BadInput(f"{flag} needs at least one value, got an empty list.")
        repeated = sorted({repr(v) for v in values if list(values).count(v) > 1})
        if repeated:
            raise BadInput(f"{flag} lists {', '.join(repeated)} more than once; give each value once.")
    unknown = [s for s in resolved.strategies if s not in STRATEGIES]
    if unknown:
        raise BadInput(
            f"--strategies: {unknown[0]!r} is not a strategy; choose from {', '.join(STRATEGIES)}."
        )
    return resolved


def grid_points(grid: CompareGrid) -> list[GridPoint]:
    """Every run of a resolved grid, largest size first within each seed so the feature store is filled once.

    Strategies without LoRA take only the first value of each LoRA axis: their result cannot depend on it.
    """
    from vjepa_tune.models.strategies import STRATEGIES

    sizes = sorted(_axis(grid.videos_per_class), key=lambda n: -(n or 0))  # None (all) comes alone
    points: list[GridPoint] = []
    for seed in _axis(grid.seeds):
        for n in sizes:
            for strategy in grid.strategies:
                lora = STRATEGIES[strategy].uses_lora
                ranks = _axis(grid.lora_rank) if lora else _axis(grid.lora_rank)[:1]
                alphas = _axis(grid.lora_alpha) if lora else _axis(grid.lora_alpha)[:1]
                dropouts = _axis(grid.lora_dropout) if lora else _axis(grid.lora_dropout)[:1]
                for lr in _axis(grid.learning_rate):
                    for rank in ranks:
                        for alpha in alphas:
                            for dropout in dropouts:
                                points.append(GridPoint(strategy, n, lr, rank, alpha, dropout, seed))
    return points


def grid_splits(
    base: TrainConfig, sizes: Sequence[int | None], seed: int
) -> tuple[dict[int | None, Splits], Any]:
    """One split at the largest size; smaller sizes shrink its training side only.

    Returns the splits of each size and the data set index they were drawn from.
    """
    from vjepa_tune.data.sources import read_dataset
    from vjepa_tune.data.splits import make_splits, shrink_train

    index = read_dataset(base.data, seed=seed)
    largest = None if None in sizes else max(sizes)  # type: ignore[type-var]
    data = dataclasses.replace(base.data, videos_per_class=largest)
    full = make_splits(index, data, seed)
    by_size: dict[int | None, Splits] = {}
    for n in sizes:
        by_size[n] = full if n == largest else shrink_train(full, n, seed, base.data.split_ratios)
    return by_size, index


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
    identity = {"version": COMPARE_VERSION, "train": train, "grid": to_plain(grid)}
    return yaml.safe_load(yaml.safe_dump(identity))


def compare_folder(out: Path, identity: dict[str, Any], log: Log = print) -> Path:
    """The newest `out/compare-*` folder made with the same settings, or a new one."""
    from vjepa_tune.tracking.records import write_yaml_atomic

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


# --------------------------------------------------------------------------------------------- running
def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def run_compare(base: TrainConfig, grid: CompareGrid, *, log: Log = print) -> CompareResult:
    """Train every grid point not finished yet, then write report.md and its plots; returns what happened.

    A run that fails (NaN loss, out of memory, ...) is recorded as failed and the others go on. Bad input
    found before the first run (a bad value in any list, a missing data root, a split that cannot be made)
    raises BadInput at once; so does bad input met by a run, since it would stop the others too.
    """
    from vjepa_tune.tracking.report import write_report
    from vjepa_tune.training import distributed
    from vjepa_tune.training.features import BackboneCounter
    from vjepa_tune.training.loop import make_accelerator
    from vjepa_tune.training.setup import reusing_random_builds

    make_accelerator(base.precision)  # starts the process group under torchrun / accelerate launch
    if not distributed.is_main():
        log = _silent
    grid = resolve_grid(base, grid)
    points = grid_points(grid)
    configs = [validate(point.config(base)) for point in points]
    split_seed = _axis(grid.seeds)[0]
    sizes = _axis(grid.videos_per_class)
    splits_by_size, index = grid_splits(base, sizes, split_seed)
    compare_dir = compare_folder(base.out, grid_identity(base, grid), log) if distributed.is_main() else None
    compare_dir = distributed.broadcast(compare_dir)
    if distributed.is_main():
        keep_console_log(compare_dir / COMPARE_LOG_FILE)
    experiments_csv = Path(base.out) / "experiments.csv"
    calls_before, clips_before = BackboneCounter.calls, BackboneCounter.clips

    records: list[RunRecord] = []
    with reusing_random_builds():  # the strategies of a grid start from the same random model
        for k, (point, cfg) in enumerate(zip(points, configs, strict=True), start=1):
            cfg.run_name = point.name(grid)
            run_dir = compare_dir / cfg.run_name
            header = f"[{k}/{len(points)}] {cfg.run_name}"
            with ConsoleLog():  # the run's own part of the console, kept in its train.log
                record = _run_point(
                    point, cfg, run_dir, splits_by_size[point.videos_per_class], experiments_csv, header, log
                )
                log(f"{header}: {_outcome(record)}")
            records.append(record)

    calls = BackboneCounter.calls - calls_before
    clips = BackboneCounter.clips - clips_before
    notes = _notes(base, grid, splits_by_size, index, split_seed, calls, clips)
    entries = [r.as_report_entry() for r in records]
    report = write_report(compare_dir, entries, notes=notes) if distributed.is_main() else compare_dir / "report.md"
    distributed.barrier()
    from vjepa_tune.tracking.report import RESULTS_ORDER, results_table

    log(f"\n{RESULTS_ORDER}\n{results_table(entries)}")
    log(f"\nreport: {report}")
    return CompareResult(compare_dir, report, records, calls, clips)


def _run_point(
    point: GridPoint,
    cfg: TrainConfig,
    run_dir: Path,
    splits: Splits,
    experiments_csv: Path,
    header: str,
    log: Log,
) -> RunRecord:
    from vjepa_tune.tracking.records import METRICS_FILE, read_metrics_json
    from vjepa_tune.training import checkpoint as ckpt
    from vjepa_tune.training import distributed
    from vjepa_tune.training.loop import train

    distributed.barrier()  # every process sees the same finished / unfinished state

    if (run_dir / METRICS_FILE).is_file():
        return RunRecord(point, run_dir, "skipped", metrics=read_metrics_json(run_dir))
    try:
        if (run_dir / ckpt.STATE_FILE).is_file():
            log(f"{header}: continuing from its checkpoint")
            result = train(cfg, resume=str(run_dir), log=log, experiments_csv=experiments_csv)
        else:
            if run_dir.exists() and distributed.is_main():  # killed before its first epoch ended: nothing to keep
                shutil.rmtree(run_dir)
            distributed.barrier()
            log(f"{header}: training")
            result = train(cfg, log=log, run_dir=run_dir, splits=splits, experiments_csv=experiments_csv)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop the grid; it is reported
        return RunRecord(point, run_dir, "failed", error=f"{type(exc).__name__}: {exc}")
    return RunRecord(point, run_dir, "finished", metrics=result.metrics)


def _outcome(record: RunRecord) -> str:
    if record.status == "failed":
        return f"FAILED: {record.error}"
    m = record.metrics or {}
    done = (
        "already finished" if record.status == "skipped" else f"trained in {m.get('train_time_s', 0):.1f} s"
    )
    return f"test acc {m.get('test_acc', 0):.4f}, best val acc {m.get('best_val_acc', 0):.4f} ({done})"


def _notes(
    base: TrainConfig,
    grid: CompareGrid,
    splits_by_size: dict[int | None, Splits],
    index: Any,
    split_seed: int,
    calls: int,
    clips: int,
) -> list[str]:
    sizes = _axis(grid.videos_per_class)
    largest = None if None in sizes else max(sizes)  # type: ignore[type-var]
    full = splits_by_size[largest]
    size_text = "all videos" if largest is None else f"{counted(largest, 'video')} per class"
    notes = [
        f"Data: {counted(len(index.samples), 'video')} in {counted(len(index.classes), 'class')} ({index.format}) at "
        f"`{Path(base.data.root).expanduser().resolve() if base.data.root else base.data.list_file}`; "
        f"model `{base.model}`, {counted(base.num_epochs, 'epoch')}, {base.data.frames_per_clip} frames per clip.",
        f"Split: {full.method}, made once at {size_text} with seed {split_seed}: {len(full.train)} train / "
        f"{len(full.val)} val / {counted(len(full.test), 'test video')}.",
    ]
    if len(sizes) > 1:
        counts = ", ".join(f"{len(splits_by_size[n].train)} at {n} per class" for n in sorted(sizes)[::-1])
        notes.append(
            "Smaller sizes shrink only the training part (a nested subset of it), so every point is scored "
            f"on the same validation and test videos. Training videos: {counts}."
        )
    if len(_axis(grid.seeds)) > 1:
        notes.append(
            f"Seeds {', '.join(map(str, _axis(grid.seeds)))} share the split of seed {split_seed}: they vary "
            "only training randomness (new weights' initialisation, batch order, augmentation)."
        )
    if base.cache.enabled is False:
        notes.append(
            "Feature store: off (--cache.enabled false); every run ran the backbone on every clip it used."
        )
    else:
        from vjepa_tune.training.store import store_location

        where = store_location(Path(base.cache.dir) if base.cache.dir else None)
        notes.append(
            f"Feature store (`{where.path}`, {where.reason()}): shared by every frozen-backbone run of the grid; "
            f"this invocation ran the backbone {counted(calls, 'time')} on {counted(clips, 'clip')} to fill it, "
            "and every other such input was read from it."
        )
    return notes


# ---------------------------------------------------------------------------------------- command line
def _build(p: Any) -> None:
    from vjepa_tune.config import DataConfig, LoraConfig

    p.add_argument(
        "--strategies",
        "--strategy",
        type=list[str],
        default=list(GUIDE_STRATEGIES),
        help="Strategies to compare (comma-separated); default the guide's four.",
    )
    p.add_argument(
        "--seeds",
        "--seed",
        type=list[int],
        default=[TrainConfig.seed],
        help="Seeds; each is a full repetition of the grid. The split is made with the first.",
    )
    p.add_class_arguments(
        TrainConfig, sub_configs=True, skip={"strategy", "run_name", "learning_rate", "seed", "data", "lora"}
    )
    p.add_argument(
        "--learning_rate",
        type=list[float],
        default=[TrainConfig.learning_rate],
        help="Learning rates to try (comma-separated).",
    )
    p.add_class_arguments(DataConfig, "data", sub_configs=True, skip={"videos_per_class"})
    p.groups["data"].add_argument(
        "--data.videos_per_class",
        type=list[int] | None,
        default=None,
        help="Sizes to try, videos per class (comma-separated); the split is made at the largest, smaller "
        "sizes shrink only its training part. Default: all videos.",
    )
    lora = p.add_argument_group("LoRA adapters (lora and pooler_head_and_lora); lists to try", name="lora")
    for name, kind in (("rank", int), ("alpha", float), ("dropout", float)):
        lora.add_argument(f"--lora.{name}", type=list[kind], default=[getattr(LoraConfig, name)],
                          help=f"LoRA {name} values to try (comma-separated).")


def compare_from_namespace(values: dict[str, Any]) -> tuple[TrainConfig, CompareGrid]:
    """The base configuration and the grid from parsed `compare` flags (a plain nested dict)."""
    from vjepa_tune.config import from_plain

    values = copy.deepcopy({k: v for k, v in values.items() if k not in {"config", "__path__"}})
    data, lora = dict(values.pop("data", {}) or {}), dict(values.pop("lora", {}) or {})
    grid = CompareGrid(
        strategies=list(values.pop("strategies")),
        videos_per_class=data.pop("videos_per_class", None),
        learning_rate=values.pop("learning_rate"),
        lora_rank=lora.get("rank"),
        lora_alpha=lora.get("alpha"),
        lora_dropout=lora.get("dropout"),
        seeds=values.pop("seeds"),
    )
    base = from_plain(TrainConfig, {**values, "data": data})
    return base, grid


def _run(a: Any) -> int:
    base, grid = compare_from_namespace(a.as_dict() if hasattr(a, "as_dict") else dict(vars(a)))
    result = run_compare(base, grid)
    if result.failed:
        print(f"{len(result.failed)} of {counted(len(result.runs), 'run')} failed; see {result.report}")
        return 1
    return 0


def _register() -> None:
    from vjepa_tune.cli import Command, register

    register(
        Command(
            "compare", "Train a grid of strategies, sizes and hyperparameters; write a report.", _build, _run
        )
    )


_register()
