"""`vjepa-tune compare`: a grid of training runs over one split and one feature store, and its report.

The grid (`compare.grid`) is the product of strategies, videos per class, learning rates, LoRA settings and seeds,
so the same recipe is the guide's strategy comparison, its data-size study and its hyperparameter search.

Why the runs are comparable. The data set is read and split once, at the grid's largest size, with the first
seed; every smaller size keeps the same validation and test videos and draws a nested subset of the training
videos (`data.splits.shrink_train`). Further seeds reuse that split too, so they vary only training randomness
(initialisation of new weights, batch order, augmentation), not which videos are scored. `--data_seeds` makes one
such split per data seed instead, each with its own runs: the report pairs runs only within one split.

How far to trust it. Every score in the report carries its 95% interval, repetitions over seeds their mean ±
standard deviation, and each strategy is tested against the best one on the same test videos
(`tracking.report`, `tracking.significance`).

Where it is tracked. `--report_to` reaches every run; a comparison is an MLflow parent run and a W&B group
(`tracking.trackers.open_group_trackers`) that keeps the report and its plots, continued when the comparison is.

Why it is cheap. Runs are ordered largest size first, so the first run of each (seed, stored output) fills the
backbone feature store and every later run reads from it (`training.extraction`); the strategies of one seed start
from one random base model, drawn once (`models.build.reusing_random_builds`).

Why it can be run again. The grid's settings are written to `compare.yaml` in its folder `DIR/compare-<time>/`; the
same arguments find that folder again, skip finished runs (metrics.json present), continue unfinished ones from
their checkpoint, and rewrite the report. Run folders are named by their grid point.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.compare.grid import (
    COMPARE_LOG_FILE,
    CompareGrid,
    GridPoint,
    axis_values,
    check_data_seeds_vary,
    compare_folder,
    grid_identity,
    grid_points,
    grid_splits,
    resolve_grid,
    split_seed,
)
from vjepa_tune.config import TrainConfig, validate
from vjepa_tune.data.samples import DatasetIndex, Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.models.build import reusing_random_builds
from vjepa_tune.runs.folder import (
    has_checkpoint,
    is_finished,
    read_metrics,
    read_test_outcomes,
    read_tracker_ids,
    run_classes,
    write_tracker_ids,
)
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import ConsoleLog, keep_console_log
from vjepa_tune.tracking.records import EXPERIMENTS_FILE
from vjepa_tune.tracking.report import (
    RESULTS_ORDER,
    paired_words,
    report_files,
    results_table,
    sensitivity_words,
    write_report,
)
from vjepa_tune.tracking.tracker_settings import parse_report_to
from vjepa_tune.tracking.trackers import Trackers, open_group_trackers
from vjepa_tune.training import distributed
from vjepa_tune.training.extraction import BackboneCounter
from vjepa_tune.training.precision import make_accelerator
from vjepa_tune.training.recipe import RunResult, train
from vjepa_tune.training.store import store_location

Log = Callable[[str], None]
Train = Callable[..., RunResult]
"""`training.recipe.train`'s signature: what runs each point of the grid."""


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
            "test_outcomes": read_test_outcomes(self.run_dir) if self.metrics is not None else None,
            "classes": run_classes(self.run_dir) if self.metrics is not None else None,
        }


@dataclass
class CompareResult:
    compare_dir: Path
    report: Path
    runs: list[RunRecord]
    backbone_calls: int
    """Backbone forward passes made by feature extraction in this invocation."""
    backbone_clips: int
    models_drawn: int = 0
    """Random base models drawn (the grid's other runs copied one of them)."""

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == "failed"]


def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def run_compare(base: TrainConfig, grid: CompareGrid, *, log: Log = print, train: Train = train) -> CompareResult:
    """Train every grid point not finished yet, then write report.md and its plots; returns what happened.

    A run that fails (NaN loss, out of memory, ...) is recorded as failed and the others go on. Bad input
    found before the first run (a bad value in any list, a missing data root, a split that cannot be made)
    raises BadInput at once; so does bad input met by a run, since it would stop the others too. `train` runs each
    point (`training.recipe.train` unless a caller wraps it).
    """
    make_accelerator(base.precision)  # starts the process group under torchrun / accelerate launch
    main = distributed.is_main()
    if not main:
        log = _silent
    parse_report_to(base.report_to)  # a tracker that is not installed is said now, not after the first run
    grid = resolve_grid(base, grid)
    points = grid_points(grid)
    configs = [validate(point.config(base)) for point in points]
    sizes = axis_values(grid.videos_per_class)
    seeds = list(dict.fromkeys(split_seed(grid, point) for point in points))  # one split each, in grid order
    made = {seed: grid_splits(base, sizes, seed) for seed in seeds}
    splits = {seed: by_size for seed, (by_size, _) in made.items()}
    if grid.data_seeds is not None:
        check_data_seeds_vary({seed: by_size[_largest(sizes)] for seed, by_size in splits.items()})
    identity = grid_identity(base, grid)
    compare_dir = distributed.broadcast(compare_folder(base.out, identity, log) if main else None)
    if main:
        keep_console_log(compare_dir / COMPARE_LOG_FILE)
    experiments_csv = Path(base.out) / EXPERIMENTS_FILE
    calls_before, clips_before = BackboneCounter.calls, BackboneCounter.clips

    records: list[RunRecord] = []
    with _open_group(base, compare_dir, identity, main, log) as group:
        with reusing_random_builds() as builds:  # the strategies of a grid start from the same random model
            for k, (point, cfg) in enumerate(zip(points, configs, strict=True), start=1):
                cfg.run_name = point.name(grid)
                run_dir = compare_dir / cfg.run_name
                header = f"[{k}/{len(points)}] {cfg.run_name}"
                with ConsoleLog():  # the run's own part of the console, kept in its train.log
                    record = _run_point(point, cfg, run_dir, splits[split_seed(grid, point)][point.videos_per_class],
                                        experiments_csv, header, log, train, group)
                    log(f"{header}: {_outcome(record)}")
                records.append(record)

        calls = BackboneCounter.calls - calls_before
        clips = BackboneCounter.clips - clips_before
        notes = _notes(base, grid, splits, made[seeds[0]][1], seeds, calls, clips)
        entries = [r.as_report_entry() for r in records]
        report = write_report(compare_dir, entries, notes=notes) if main else compare_dir / "report.md"
        if main:
            group.log_artifacts(report_files(compare_dir))
        finished = sum(r.status != "failed" for r in records)
        group.finish({"runs": len(records), "finished": finished, "failed": len(records) - finished})
    distributed.barrier()
    log(f"\n{RESULTS_ORDER}\n{results_table(entries)}")
    for line in [*paired_words(entries), sensitivity_words(entries)]:
        if line:
            log(line)
    log(f"\nreport: {report}")
    return CompareResult(compare_dir, report, records, calls, clips, builds.built)


def _largest(sizes: list[int | None]) -> int | None:
    return None if None in sizes else max(sizes)  # type: ignore[type-var]


def _open_group(base: TrainConfig, compare_dir: Path, identity: dict[str, Any], main: bool, log: Log) -> Trackers:
    """The comparison's MLflow parent run and W&B group (`--report_to`), continued when the comparison is: their ids
    are kept in the comparison's folder (trackers.json)."""
    group = open_group_trackers(base.report_to, compare_dir, out=base.out, name=compare_dir.name, config=identity,
                                resume=read_tracker_ids(compare_dir) if main else None, log=log, main_process=main)
    if main and group.ids:
        write_tracker_ids(compare_dir, group.ids)
    return group


def _run_point(
    point: GridPoint,
    cfg: TrainConfig,
    run_dir: Path,
    splits: Splits,
    experiments_csv: Path,
    header: str,
    log: Log,
    train: Train = train,
    group: Trackers | None = None,
) -> RunRecord:
    distributed.barrier()  # every process sees the same finished / unfinished state

    if is_finished(run_dir):
        return RunRecord(point, run_dir, "skipped", metrics=read_metrics(run_dir))
    try:
        if has_checkpoint(run_dir):
            log(f"{header}: continuing from its checkpoint")
            result = train(cfg, resume=str(run_dir), log=log, experiments_csv=experiments_csv, tracker_group=group)
        else:
            if run_dir.exists() and distributed.is_main():  # killed before its first epoch ended: nothing to keep
                shutil.rmtree(run_dir)
            distributed.barrier()
            log(f"{header}: training")
            result = train(cfg, log=log, run_dir=run_dir, splits=splits, experiments_csv=experiments_csv,
                           tracker_group=group)
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
    return (f"test acc {format_interval(m.get('test_acc', 0), m.get('test_acc_ci'))}, best val acc "
            f"{format_interval(m.get('best_val_acc', 0), m.get('best_val_acc_ci'))} ({done})")


def _notes(
    base: TrainConfig,
    grid: CompareGrid,
    splits: dict[int, dict[int | None, Splits]],
    index: DatasetIndex,
    split_seeds: list[int],
    calls: int,
    clips: int,
) -> list[str]:
    sizes = axis_values(grid.videos_per_class)
    largest = _largest(sizes)
    full = splits[split_seeds[0]][largest]
    size_text = "all videos" if largest is None else f"{counted(largest, 'video')} per class"
    made = (f"once at {size_text} with seed {split_seeds[0]}" if len(split_seeds) == 1 else
            f"once per data seed ({', '.join(map(str, split_seeds))}) at {size_text}")
    notes = [
        f"Data: {counted(len(index.samples), 'video')} in {counted(len(index.classes), 'class')} ({index.format}) at "
        f"`{Path(base.data.root).expanduser().resolve() if base.data.root else base.data.list_file}`; "
        f"model `{base.model}`, {counted(base.num_epochs, 'epoch')}, {base.data.frames_per_clip} frames per clip.",
        f"Split: {full.method}, made {made}: {len(full.train)} train / "
        f"{len(full.val)} val / {counted(len(full.test), 'test video')}.",
    ]
    if len(sizes) > 1:
        counts = ", ".join(f"{len(splits[split_seeds[0]][n].train)} at {n} per class" for n in sorted(sizes)[::-1])
        notes.append(
            "Smaller sizes shrink only the training part (a nested subset of it), so every point is scored "
            f"on the same validation and test videos. Training videos: {counts}."
        )
    if len(split_seeds) > 1:
        notes.append(
            f"Data seeds {', '.join(map(str, split_seeds))}: each draws its own split (other training, validation and "
            "test videos) and trains its own runs, so they vary which videos a strategy learns from and is scored "
            "on; runs are compared with each other only within one data seed's test set."
        )
    if len(axis_values(grid.seeds)) > 1:
        on = "the split of their data seed" if len(split_seeds) > 1 else f"the split of seed {split_seeds[0]}"
        notes.append(
            f"Seeds {', '.join(map(str, axis_values(grid.seeds)))} share {on}: they vary "
            "only training randomness (new weights' initialisation, batch order, augmentation)."
        )
    if base.cache.enabled is False:
        notes.append(
            "Feature store: off (--cache.enabled false); every run ran the backbone on every clip it used."
        )
    else:
        where = store_location(Path(base.cache.dir) if base.cache.dir else None)
        notes.append(
            f"Feature store (`{where.path}`, {where.reason()}): shared by every frozen-backbone run of the grid; "
            f"this invocation ran the backbone {counted(calls, 'time')} on {counted(clips, 'clip')} to fill it, "
            "and every other such input was read from it."
        )
    return notes
