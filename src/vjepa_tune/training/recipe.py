"""`vjepa-tune train`: one recipe that reads top to bottom — set up, train epoch by epoch, test and record.

The parts: `training.setup` builds the run (data, splits, model, inputs) before anything is written, `runs` owns the
run folder, `training.loop` runs the epochs, `training.precision` and `training.distributed` decide how it runs,
`tracking.trackers` reports to TensorBoard, MLflow and W&B (`--report_to`). Records are written at the end, every
score with its 95% interval; metrics.json appears last and marks the run done. A run killed mid-epoch and resumed
from its last epoch's checkpoint ends exactly as one never interrupted: every epoch reseeds the global generator from
(seed, 'epoch', epoch), and the checkpoint keeps every random state.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from vjepa_tune.config import TrainConfig, to_plain, validate
from vjepa_tune.data.samples import Splits
from vjepa_tune.evaluation.metrics import classification_metrics, write_confusion
from vjepa_tune.evaluation.statistics import format_interval, wilson_interval
from vjepa_tune.models.adapters import load_trainable_state_dict
from vjepa_tune.models.specs import small_data_note
from vjepa_tune.randomness import key_seed
from vjepa_tune.runs import checkpoint
from vjepa_tune.runs.folder import (
    METRICS_FILE,
    STATE_FILE,
    TEST_PREDICTIONS_FILE,
    TRAIN_LOG_FILE,
    check_run_name,
    new_run_dir,
    open_kept_trackers,
    resumed_run_config,
    run_folder,
    run_to_resume,
    write_config,
    write_metrics,
    write_splits,
    write_test_predictions,
)
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.records import (
    EXPERIMENTS_FILE,
    append_experiment_row,
    experiment_row,
    has_row_for,
    precision_name,
    versions,
)
from vjepa_tune.tracking.tracker_settings import parse_report_to
from vjepa_tune.tracking.trackers import Trackers
from vjepa_tune.training import distributed
from vjepa_tune.training.loop import (
    StepContext,
    TrainState,
    class_weights,
    lr_lambda,
    make_loss,
    plan_epoch,
    predict_dataset,
    train_epoch,
)
from vjepa_tune.training.precision import make_accelerator
from vjepa_tune.training.setup import Run, build_run

Log = Callable[[str], None]
EpochHook = Callable[[int, torch.nn.Module], None]
"""Called with the epoch's index and the model before each epoch trains (a notebook's seam, and the tests')."""


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]

    def summary(self) -> str:
        m = self.metrics
        return (
            f"{m['approach']}: test acc {format_interval(m['test_acc'], m.get('test_acc_ci'))}, best val acc "
            f"{format_interval(m['best_val_acc'], m.get('best_val_acc_ci'))} (95% intervals), "
            f"trainable {m['trainable_params']:,} of {m['total_params']:,} ({m['trainable_pct']:.3g}%), "
            f"{m['train_time_s']:.1f} s; records in {self.run_dir}"
        )


def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def train(
    cfg: TrainConfig,
    resume: str | None = None,
    *,
    log: Log = print,
    run_dir: Path | None = None,
    splits: Splits | None = None,
    experiments_csv: Path | None = None,
    before_epoch: EpochHook | None = None,
    tracker_group: Trackers | None = None,
) -> RunResult:
    """Run (or continue) one training run and write its records; returns the run folder and metrics.

    `resume` is `auto` (the newest unfinished run in `cfg.out`) or a run folder. `run_dir`, `splits`,
    `experiments_csv` and `tracker_group` let a caller such as `compare` place the run folder, impose splits made
    once for a whole grid, collect rows in one CSV and group the runs in MLflow and W&B
    (`tracking.trackers.open_group_trackers`); by default the run gets a new folder in `cfg.out`, splits of its own,
    and a row in `cfg.out/experiments.csv`. Inside an open `ConsoleLog` (the command line opens one) the console goes
    to the run folder's train.log.
    """
    # Set up: the configuration (a resumed run's own), then everything the run needs, before it has a folder.
    cfg = validate(cfg)
    parse_report_to(cfg.report_to)  # a tracker that is not installed is said now, not after hours of training
    accelerator = make_accelerator(cfg.precision)
    main = accelerator.is_main_process
    log = log if main else _silent
    cfg, resume_dir = distributed.broadcast(_configuration(cfg, resume, run_dir, log) if main else (cfg, None))
    run = build_run(cfg, accelerator.device, log=log, resume_dir=resume_dir, splits=splits)
    if main:
        run_dir = resume_dir or run_dir or new_run_dir(cfg.out, cfg.strategy, cfg.run_name)
    run_dir = distributed.broadcast(run_dir)

    with run_folder(run_dir, create=main and resume_dir is None):
        if main:
            keep_console_log(run_dir / TRAIN_LOG_FILE)
            write_config(run_dir, cfg)
            write_splits(run_dir, run.splits, run.classes, left_out=run.skipped)
        ctx = _step_context(cfg, run, accelerator, run_dir, resuming=resume_dir is not None, log=log)
        with open_kept_trackers(cfg.report_to, run_dir, out=cfg.out, config=to_plain(cfg), group=tracker_group,
                                resumed_at_step=ctx.state.global_step if resume_dir is not None else None,
                                main_process=ctx.accelerator.is_main_process, log=log) as trackers:
            ctx.trackers = trackers
            # Train: epoch by epoch from where the checkpoint left off, keeping the best model and a checkpoint each.
            with checkpoint.StateWriter() as states:  # each epoch's state is written while the next one trains
                _epochs(ctx, run, run_dir, before_epoch, log, states)
            # Record: the best model on the test split, then metrics.json last; the trackers get the same.
            metrics = _test_and_record(ctx, run, run_dir, experiments_csv or cfg.out / EXPERIMENTS_FILE, log)
            if main:
                trackers.log_artifacts(run_dir / name for name in ("confusion.png", METRICS_FILE,
                                                                   TEST_PREDICTIONS_FILE))
            trackers.finish(metrics)
    return RunResult(run_dir, metrics)


def _configuration(cfg: TrainConfig, resume: str | None, run_dir: Path | None, log: Log
                   ) -> tuple[TrainConfig, Path | None]:
    """The configuration to train with and the folder of the run being resumed, if any (decided on the main
    process): a resumed run goes on with its saved configuration."""
    has_data = cfg.data.root is not None or cfg.data.list_file is not None
    resume_dir = run_to_resume(resume, cfg.out, has_data=has_data, log=log) if resume is not None else None
    if resume_dir is None:
        if run_dir is None:
            check_run_name(cfg.out, cfg.run_name)  # before any work: a finished run of that name is not replaced
        return cfg, None
    return validate(resumed_run_config(cfg, resume_dir, log)), resume_dir


def _step_context(cfg: TrainConfig, run: Run, accelerator: Accelerator, run_dir: Path, *, resuming: bool,
                  log: Log) -> StepContext:
    """The optimizer, schedule and loss of the run, restored from its checkpoint when resuming."""
    processes = accelerator.num_processes
    if processes > 1:
        log(f"{processes} processes: effective batch {cfg.batch_size} x {cfg.accumulation_steps} x {processes} = "
            f"{cfg.batch_size * cfg.accumulation_steps * processes} clips per optimizer step")
    model = run.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    model.to(accelerator.device)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(run.splits.train) / (cfg.batch_size * cfg.accumulation_steps * processes))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch * cfg.num_epochs))
    optimizer = accelerator.prepare(optimizer)

    state = TrainState()
    saved = checkpoint.load_state(run_dir) if resuming else None
    if saved is not None:
        load_trainable_state_dict(model, saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_states(saved["rng"])
        state = TrainState(**saved["train_state"])
        log(f"resumed after epoch {state.epoch} (optimizer step {state.global_step})")
    weights = class_weights(cfg, [s.label for s in run.splits.train], len(run.classes))
    loss = make_loss(cfg, weights.to(accelerator.device) if weights is not None else None)
    return StepContext(cfg=cfg, model=model, optimizer=optimizer, scheduler=scheduler, accelerator=accelerator,
                       pipeline=run.pipeline, loss=loss, state=state, train_samples=run.splits.train,
                       checkpoint=run_dir / STATE_FILE)


def _epochs(ctx: StepContext, run: Run, run_dir: Path, before_epoch: EpochHook | None, log: Log,
            states: checkpoint.StateWriter) -> None:
    """Train, validate, keep the best model and checkpoint, epoch after epoch, until the last or early stopping."""
    cfg, state, pipeline, accelerator = ctx.cfg, ctx.state, ctx.pipeline, ctx.accelerator
    main = accelerator.is_main_process
    labels = [s.label for s in run.splits.train]
    val_dataset = pipeline.eval_dataset("val")
    for epoch in range(state.epoch, cfg.num_epochs):
        if before_epoch is not None:
            before_epoch(epoch, ctx.model)
        torch.manual_seed(key_seed(cfg.seed, "epoch", epoch))
        started = time.perf_counter()
        steps = plan_epoch(len(run.splits.train), epoch, cfg, labels, accelerator.num_processes)
        train_loss = train_epoch(ctx, epoch, steps)
        state.train_time_s += time.perf_counter() - started
        val = predict_dataset(ctx.model, val_dataset, pipeline, accelerator, max(cfg.batch_size, 8),
                              pipeline.workers(cfg), "validation")
        for idx in val.skipped:
            state.runtime_skipped.setdefault(run.splits.val[idx].id, "could not be decoded during validation")
        val_acc = val.accuracy()
        state.history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_acc": val_acc,
                              "val_acc_ci": list(wilson_interval(val.num_correct(), len(val.labels))),
                              "lr": ctx.scheduler.get_last_lr()[0], "time_s": round(time.perf_counter() - started, 3)})
        if ctx.trackers is not None:
            ctx.trackers.log_scalars(state.global_step, {"val/acc": val_acc, "train/epoch_loss": train_loss})
        improved = val_acc > state.best_val_acc
        if improved:
            state.best_val_acc, state.best_epoch, state.epochs_since_best = val_acc, epoch + 1, 0
            if main:
                meta = checkpoint.model_meta(cfg, run.classes, run.frozen_fingerprint, run.train_clip_s)
                checkpoint.save_model(run_dir, checkpoint.trainable_weights(ctx.model), meta)
        else:
            state.epochs_since_best += 1
        state.epoch = epoch + 1
        log(f"epoch {epoch + 1}/{cfg.num_epochs}: train loss {train_loss:.4f}, val acc {val_acc:.4f}"
            + (" (best)" if improved else ""))
        if main:
            if ctx.trackers is not None:
                ctx.trackers.flush()  # before the checkpoint: what it covers is in the trackers if the run is killed
            states.save(run_dir, {
                "weights": checkpoint.trainable_weights(ctx.model),
                "optimizer": ctx.optimizer.state_dict(),
                "scheduler": ctx.scheduler.state_dict(),
                "rng": checkpoint.rng_states(),
                "train_state": dataclasses.asdict(state),
            })
        distributed.barrier()
        if cfg.early_stopping is not None and state.epochs_since_best >= cfg.early_stopping:
            log(f"early stopping: no better validation accuracy for {counted(cfg.early_stopping, 'epoch')}")
            break


def _best_val_interval(history: list[dict[str, Any]], best_epoch: int) -> list[float] | None:
    """The Wilson interval of the best epoch's validation accuracy (None for an epoch recorded without one)."""
    entry = next((h for h in history if h["epoch"] == best_epoch), None)
    return entry.get("val_acc_ci") if entry is not None else None


def _test_and_record(ctx: StepContext, run: Run, run_dir: Path, experiments_csv: Path, log: Log) -> dict[str, Any]:
    """Test the best model and write the confusion matrix, the experiments.csv row and metrics.json (last)."""
    cfg, state, accelerator = ctx.cfg, ctx.state, ctx.accelerator
    distributed.barrier()  # the main process has written the best model
    model = checkpoint.load_best_weights(run_dir, run.model).to(accelerator.device)
    for part in distributed.gather(state.runtime_skipped):
        state.runtime_skipped.update(part)
    found = predict_dataset(model, run.pipeline.eval_dataset("test"), run.pipeline, accelerator,
                            max(cfg.batch_size, 8), run.pipeline.workers(cfg), "test")
    for idx in found.skipped:
        state.runtime_skipped.setdefault(run.splits.test[idx].id, "could not be decoded during testing")
    test = classification_metrics(found.labels, found.probs, run.classes) if found.labels else {}
    skipped = [{"id": k, "reason": v} for k, v in {**run.skipped, **state.runtime_skipped}.items()]
    counts = run.counts
    metrics = {
        "approach": cfg.strategy,
        "model": cfg.model,
        "dataset": str(cfg.data.root),
        "test_acc": test.get("top1", 0.0),
        "test_acc_ci": test.get("top1_ci"),
        "best_val_acc": max(state.best_val_acc, 0.0),
        "best_val_acc_ci": _best_val_interval(state.history, state.best_epoch),
        "best_epoch": state.best_epoch,
        "trainable_params": counts.trainable,
        "total_params": counts.total,
        "trainable_pct": counts.pct,
        "params_by_part": counts.by_part,
        "train_time_s": round(state.train_time_s, 3),
        "num_train": len(run.splits.train),
        "num_val": len(run.splits.val),
        "num_test": len(run.splits.test),
        "videos_per_class": cfg.data.videos_per_class,
        "split_method": run.splits.method,
        "skipped_videos": len(skipped),
        "skipped": skipped,
        "history": state.history,
        "test": test,
        "mean_class_acc": test.get("mean_class_acc"),
        "mean_class_acc_ci": test.get("mean_class_acc_ci"),
        "macro_f1": test.get("macro_f1"),
        "macro_f1_ci": test.get("macro_f1_ci"),
        "effective_batch": cfg.batch_size * cfg.accumulation_steps * accelerator.num_processes,
        "precision": precision_name(accelerator.mixed_precision),
        "input": run.pipeline.describe,
        "versions": versions(),
    }
    if accelerator.is_main_process:
        write_confusion(run_dir, test.get("confusion", [[0] * len(run.classes)] * len(run.classes)), run.classes)
        scored = [(run.splits.test[i], p.tolist()) for i, p in zip(found.indices, found.probs, strict=True)]
        unread = {run.splits.test[i].id: state.runtime_skipped.get(run.splits.test[i].id, "could not be decoded")
                  for i in found.skipped}
        write_test_predictions(run_dir, run.classes, scored, unread)
        # The row first: a kill before metrics.json resumes without adding a second row.
        if not has_row_for(experiments_csv, run_dir.resolve()):
            append_experiment_row(experiments_csv, experiment_row(cfg, metrics, run_dir.resolve(), str(cfg.data.root)))
        write_metrics(run_dir, metrics)
        checkpoint.remove_state(run_dir)
    log(f"test acc {format_interval(metrics['test_acc'], metrics['test_acc_ci'])} (95% interval; best epoch "
        f"{state.best_epoch}); records in {run_dir}")
    if note := small_data_note(cfg.model, metrics["best_val_acc"], metrics["test_acc"], len(run.classes)):
        log(note)
    return metrics
