"""`vjepa-tune pretrain`: continued V-JEPA self-supervised pretraining on unlabelled videos, in one recipe that reads
top to bottom — set up, pretrain step by step, record.

The parts: `pretraining.setup` builds the run (videos, model, objective, clips) before anything is written, `runs`
owns the run folder, `pretraining.engine` runs the optimizer steps and measures the collapse signals,
`pretraining.monitors` turns them into `collapse:` findings, `pretraining.probe` runs the `train` recipe on the target
encoder, `tracking` keeps the trackers, the plots and report.md. On their schedules: monitors at the first step, every
`--log_every` steps and the last; probes at the start, every `--probe.every` steps and the end; a checkpoint every
`--checkpoint_every` steps and after every probe. A run killed at any point and resumed from its checkpoint ends
exactly as one never interrupted (every step reseeds the global generator; masks and clips are keyed draws).
Records are written at the end: model/ (the target encoder, as V-JEPA evaluates it), report.md and its plots, then
metrics.json last, which marks the run done.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from vjepa_tune.config import PretrainConfig, has_probe, to_plain, validate_pretrain
from vjepa_tune.data.samples import Splits
from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.files import replace_folder
from vjepa_tune.pretraining.engine import (
    MonitorBatch,
    PretrainState,
    StepContext,
    StepOutcome,
    check_finite,
    check_predictor_warmup,
    make_optimizer,
    monitor_batch,
    monitor_signals,
    optimizer_step,
    plan_steps,
    step_batches,
)
from vjepa_tune.pretraining.monitors import CollapseMonitor, CollapseRules
from vjepa_tune.pretraining.probe import probe_overlap_warning, run_probe
from vjepa_tune.pretraining.setup import PretrainingRun, build_pretraining
from vjepa_tune.runs import checkpoint
from vjepa_tune.runs.folder import (
    BEST_MODEL_DIR,
    MODEL_DIR,
    PLOTS_DIR,
    PRETRAIN_LOG_FILE,
    PROBES_DIR,
    REPORT_FILE,
    STATE_FILE,
    check_run_name,
    new_run_dir,
    open_kept_trackers,
    probe_dir,
    resumed_run_config,
    run_folder,
    run_to_resume,
    write_pretrain_config,
    write_pretrain_metrics,
    write_splits,
)
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.pretraining_report import probe_verdict, write_plots, write_pretraining_report
from vjepa_tune.tracking.records import precision_name, versions
from vjepa_tune.tracking.tracker_settings import parse_report_to
from vjepa_tune.tracking.trackers import Trackers
from vjepa_tune.training import distributed
from vjepa_tune.training.loop import lr_lambda
from vjepa_tune.training.precision import make_accelerator

Log = Callable[[str], None]
PROBE_ENCODER_DIR = "encoder"
"""Under probes/: the target encoder a probe trains on, written for it; kept as best_model/ when it is the best."""


@dataclass
class PretrainResult:
    run_dir: Path
    metrics: dict[str, Any]

    def summary(self) -> str:
        m = self.metrics
        best = f", best probe: {self.run_dir / BEST_MODEL_DIR}" if m["best_probe_step"] is not None else ""
        return (f"pretrained {m['steps']} steps in {m['train_time_s']:.0f} s (waits for clips included, probes and "
                f"checkpoints aside); target encoder: "
                f"{self.run_dir / MODEL_DIR}{best}; report: {self.run_dir / REPORT_FILE}")


def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def pretrain(cfg: PretrainConfig, resume: str | None = None, *, log: Log = print) -> PretrainResult:
    """Run (or continue) one pretraining run and write its records; returns the run folder and metrics.

    `resume` is `auto` (the newest unfinished pretraining run in `cfg.out`) or a run folder. Inside an open
    `ConsoleLog` (the command line opens one) the console goes to the run folder's pretrain.log.
    """
    # Set up: the configuration (a resumed run's own), then everything the run needs, before it has a folder.
    cfg = validate_pretrain(cfg)
    parse_report_to(cfg.report_to)  # a tracker package that is missing fails now, not after hours
    accelerator = make_accelerator(cfg.precision)
    main = accelerator.is_main_process
    log = log if main else _silent
    cfg, resume_dir = distributed.broadcast(_configuration(cfg, resume, log) if main else (cfg, None))
    run = build_pretraining(cfg, accelerator.device, log=log, resume_dir=resume_dir)
    run_dir = (resume_dir or new_run_dir(cfg.out, "pretrain", cfg.run_name)) if main else None
    run_dir = distributed.broadcast(run_dir)

    with run_folder(run_dir, create=main and resume_dir is None):
        if main:
            keep_console_log(run_dir / PRETRAIN_LOG_FILE)
            if resume_dir is None:
                write_pretrain_config(run_dir, run.cfg)
                write_splits(run_dir, Splits(run.videos, [], [], "pretraining: every readable video"), run.classes,
                             left_out=run.skipped)
            if run.probe_videos and (warning := probe_overlap_warning(run.probe_videos, run_dir)):
                log(warning)
                run.notes.append(warning)  # report.md and metrics.json say it beside the verdict it weakens
        ctx, monitor = _step_context(run, accelerator, run_dir, resuming=resume_dir is not None, log=log)
        trackers = open_kept_trackers(  # runs recorded before trackers.json kept the ids in the checkpoint only
            cfg.report_to, run_dir, out=cfg.out, config=to_plain(run.cfg), job_type="pretrain",
            resumed_at_step=ctx.state.step if resume_dir is not None else None, main_process=main, log=log,
            earlier_ids=ctx.state.trackers,
        )
        with trackers:
            # Pretrain: step by step from where the checkpoint left off; monitors, probes and checkpoints on time.
            _pretrain_steps(ctx, run, run_dir, monitor, trackers, log)
            # Record: the target encoder as the model, the report and its plots, then metrics.json last.
            metrics = _record(ctx, run, run_dir, monitor, trackers, log)
    return PretrainResult(run_dir, metrics)


def _configuration(cfg: PretrainConfig, resume: str | None, log: Log) -> tuple[PretrainConfig, Path | None]:
    """The configuration to pretrain with and the folder of the run being resumed, if any (decided on the main
    process): a resumed run goes on with its saved configuration."""
    has_data = cfg.data.root is not None or cfg.data.list_file is not None
    resume_dir = (run_to_resume(resume, cfg.out, has_data=has_data, log=log, pretraining=True)
                  if resume is not None else None)
    if resume_dir is None:
        check_run_name(cfg.out, cfg.run_name)  # before any work: a finished run of that name is not replaced
        return cfg, None
    return validate_pretrain(resumed_run_config(cfg, resume_dir, log)), resume_dir


def _step_context(run: PretrainingRun, accelerator: Accelerator, run_dir: Path, *, resuming: bool, log: Log
                  ) -> tuple[StepContext, CollapseMonitor]:
    """The optimizer, schedule, plan, state and collapse monitor of the run, restored from its checkpoint when
    resuming."""
    cfg = run.cfg
    processes = accelerator.num_processes
    plan = plan_steps(cfg, len(run.videos), processes)
    log(f"{counted(plan.total_steps, 'optimizer step')} of {cfg.batch_size} x {cfg.accumulation_steps}"
        + (f" x {processes} processes" if processes > 1 else "") + f" = {plan.step_size} clips "
        f"({plan.steps_per_epoch} per epoch)"
        + (f"; --num_epochs {cfg.num_epochs} ends the run before --max_steps {cfg.max_steps}"
           if cfg.max_steps is not None and plan.total_steps < cfg.max_steps else ""))
    check_predictor_warmup(cfg, plan)
    run.objective.to(accelerator.device)
    optimizer = make_optimizer(run.objective, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, plan.total_steps))
    optimizer = accelerator.prepare(optimizer)
    state = PretrainState()
    # pred_std's reference is taken once the learning rate and the predictor have warmed up.
    monitor = CollapseMonitor(settle_steps=max(round(cfg.warmup_ratio * plan.total_steps), cfg.predictor.warmup_steps))
    saved = checkpoint.load_state(run_dir) if resuming else None
    if saved is not None:
        run.objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        checkpoint.set_rng_states(saved["rng"])
        state = PretrainState(**saved["state"])
        monitor.load_state_dict(saved["monitor"])
        log(f"resumed after step {state.step}")
    ctx = StepContext(cfg=cfg, objective=run.objective, optimizer=optimizer, scheduler=scheduler,
                      accelerator=accelerator, grid=run.grid, videos=run.videos, plan=plan, state=state,
                      checkpoint=str(run_dir / STATE_FILE))
    return ctx, monitor


def _pretrain_steps(ctx: StepContext, run: PretrainingRun, run_dir: Path, monitor: CollapseMonitor,
                    trackers: Trackers, log: Log) -> None:
    """Optimizer steps until the plan's last (or `--stop_on_collapse`), with monitors, probes and checkpoints."""
    cfg, state, plan = ctx.cfg, ctx.state, ctx.plan
    main = distributed.is_main()
    batch = monitor_batch(cfg, run.grid, run.videos, run.clips) if main else None
    if has_probe(cfg) and not state.probes:  # the start: the encoder as it came
        _probe(ctx, run, run_dir, trackers, log)
        _checkpoint(ctx, monitor, batch, run_dir)
    since = (time.perf_counter(), state.clips_seen)
    bar = tqdm(total=plan.total_steps, initial=state.step, desc="pretraining", unit="step",
               disable=None if main else True)
    started = time.perf_counter()  # a step's time includes its wait for clips, as `train`'s epochs do
    try:
        steps = plan.steps_from(state.step)
        for (_, step, indices), local in zip(steps, step_batches(run.clips, steps, cfg.batch_size, cfg.num_workers),
                                             strict=True):
            outcome = optimizer_step(ctx, step, indices, local)
            state.step, state.loss_sum, state.loss_steps = step + 1, state.loss_sum + outcome.loss, \
                state.loss_steps + 1
            state.clips_seen += outcome.clips
            findings = monitor.check(state.step, {"loss": outcome.loss})
            if state.step in (1, plan.total_steps) or state.step % cfg.log_every == 0 or (
                    findings and cfg.stop_on_collapse):
                findings += _monitor(ctx, monitor, batch, outcome, since, trackers, log)
                since = (time.perf_counter(), state.clips_seen)
            _say_findings(ctx, findings, log)
            state.train_time_s += time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.loss:.4f}")
            if findings and cfg.stop_on_collapse:
                state.stopped = f"--stop_on_collapse at step {state.step}: {findings[0]}"
                log(f"stopping: {state.stopped}")
                break
            probed = False
            aside = time.perf_counter()
            if has_probe(cfg) and cfg.probe.every and state.step % cfg.probe.every == 0 \
                    and state.step < plan.total_steps:
                with tqdm.external_write_mode():
                    _probe(ctx, run, run_dir, trackers, log)
                probed = True
            if probed or state.step % cfg.checkpoint_every == 0:
                _checkpoint(ctx, monitor, batch, run_dir)
            started = time.perf_counter()
            since = (since[0] + started - aside, since[1])  # the next monitor's clips/s: the steps' own rate
    finally:
        bar.close()
    if has_probe(cfg) and state.probes[-1]["step"] != state.step:  # the end
        _probe(ctx, run, run_dir, trackers, log)


def _monitor(ctx: StepContext, monitor: CollapseMonitor, batch: MonitorBatch | None, outcome: StepOutcome,
             since: tuple[float, int], trackers: Trackers, log: Log) -> list[str]:
    """One monitor entry: the loss since the last monitor, the schedules, the gradient norm and the collapse signals
    (measured on the main process's monitor batch and shared, so every process finds the same); returns the
    signals' findings."""
    state = ctx.state
    signals = distributed.broadcast(monitor_signals(ctx.objective, batch, ctx.accelerator) if batch is not None
                                    else None)
    check_finite(ctx, signals)
    elapsed = max(time.perf_counter() - since[0], 1e-9)
    entry = {
        "step": state.step,
        "epoch": round(state.step / ctx.plan.steps_per_epoch, 4),
        "loss": state.loss_sum / max(state.loss_steps, 1),
        "lr": outcome.lr,
        "ema_momentum": outcome.ema_momentum,
        "grad_norm": outcome.grad_norm,
        **signals,
        "clips_per_s": round((state.clips_seen - since[1]) / elapsed, 3),
    }
    state.history.append(entry)
    state.loss_sum, state.loss_steps = 0.0, 0
    trackers.log_scalars(state.step, {
        "pretrain/loss": entry["loss"], "pretrain/lr": entry["lr"], "pretrain/ema_momentum": entry["ema_momentum"],
        "pretrain/grad_norm": entry["grad_norm"], "pretrain/clips_per_s": entry["clips_per_s"],
        **{f"collapse/{name}": value for name, value in signals.items()},
    })
    with tqdm.external_write_mode():
        log(f"step {state.step}/{ctx.plan.total_steps}: loss {entry['loss']:.4f}, lr {entry['lr']:.3g}, "
            f"ema {entry['ema_momentum']:.5g}, grad_norm {entry['grad_norm']:.3g}, "
            + ", ".join(f"{name} {value:.4g}" for name, value in signals.items())
            + f", {entry['clips_per_s']:.1f} clips/s")
    return monitor.check(state.step, signals)


def _say_findings(ctx: StepContext, findings: list[str], log: Log) -> None:
    """Print each `collapse:` finding and keep it for the records."""
    with tqdm.external_write_mode():
        for finding in findings:
            ctx.state.findings.append({"step": ctx.state.step, "message": finding})
            log(finding)


def _probe(ctx: StepContext, run: PretrainingRun, run_dir: Path, trackers: Trackers, log: Log) -> None:
    """Probe the target encoder as it is now; keep it as best_model/ when its validation accuracy is the best."""
    state, main = ctx.state, distributed.is_main()
    encoder_dir = run_dir / PROBES_DIR / PROBE_ENCODER_DIR
    if main:
        checkpoint.save_encoder_model(encoder_dir, run.model, ctx.objective.target_encoder, with_head=run.with_head)
    distributed.barrier()
    result = run_probe(ctx.cfg, encoder_dir, run_dir, probe_dir(run_dir, state.step), state.step, log)
    record = result.record()
    state.probes.append(record)
    best = result.val_acc > state.best_probe_val
    if best:
        state.best_probe_val, state.best_probe_step = result.val_acc, result.step
    if main:
        if best:
            replace_folder(encoder_dir, run_dir / BEST_MODEL_DIR)
        else:
            shutil.rmtree(encoder_dir)
    distributed.barrier()
    trackers.log_scalars(state.step, {"probe/val_acc": result.val_acc, "probe/test_acc": result.test_acc})
    log(f"probe after {counted(state.step, 'step')}: validation accuracy {_acc(record, 'val')} on "
        f"{result.num_val}, test accuracy {_acc(record, 'test')} on {result.num_test} videos ({result.split} split)"
        + (f"; the best so far, kept in {BEST_MODEL_DIR}/" if best else ""))


def _acc(record: dict[str, Any], split: str) -> str:
    return format_interval(record[f"{split}_acc"], record[f"{split}_ci"])


def _checkpoint(ctx: StepContext, monitor: CollapseMonitor, batch: MonitorBatch | None, run_dir: Path) -> None:
    """Save everything a resumed run needs to go on exactly as this one would, once the weights are known to give
    finite outputs on the monitor clips (a checkpoint is only ever a good one)."""
    check_finite(ctx, distributed.broadcast(monitor_signals(ctx.objective, batch, ctx.accelerator)
                                            if batch is not None else None))
    ctx.state.checkpoint_step = ctx.state.step
    if distributed.is_main():
        checkpoint.save_state(run_dir, {
            "objective": ctx.objective.state_dict(),
            "optimizer": ctx.optimizer.state_dict(),
            "scheduler": ctx.scheduler.state_dict(),
            "rng": checkpoint.rng_states(),
            "state": dataclasses.asdict(ctx.state),
            "monitor": monitor.state_dict(),
        })
    distributed.barrier()


def _record(ctx: StepContext, run: PretrainingRun, run_dir: Path, monitor: CollapseMonitor, trackers: Trackers,
            log: Log) -> dict[str, Any]:
    """Write model/ (the target encoder), the plots and report.md, then metrics.json last."""
    cfg, state, accelerator = ctx.cfg, ctx.state, ctx.accelerator
    for part in distributed.gather(state.runtime_skipped):
        state.runtime_skipped.update(part)
    skipped = [{"id": k, "reason": v} for k, v in {**run.skipped, **state.runtime_skipped}.items()]
    verdict = probe_verdict(state.probes)
    metrics: dict[str, Any] = {
        "approach": "pretrain",
        "model": cfg.model,
        "dataset": str(cfg.data.root),
        "format": run.data_format,
        "num_videos": len(run.videos),
        "skipped_videos": len(skipped),
        "skipped": skipped,
        "steps": state.step,
        "total_steps": ctx.plan.total_steps,
        "epochs": round(state.step / ctx.plan.steps_per_epoch, 4),
        "effective_batch": ctx.plan.step_size,
        "clips_seen": state.clips_seen,  # an epoch's last step takes the videos that are left, fewer than a batch
        "train_time_s": round(state.train_time_s, 3),
        "stopped": state.stopped,
        "history": state.history,
        "collapse": state.findings,
        "probes": state.probes,
        "best_probe_step": state.best_probe_step,
        "verdict": verdict,
        "model_dir": MODEL_DIR.as_posix(),
        "best_model_dir": BEST_MODEL_DIR.as_posix() if state.best_probe_step is not None else None,
        "with_head": run.with_head,
        "notes": run.notes,
        "precision": precision_name(accelerator.mixed_precision),
        "versions": versions(),
    }
    if distributed.is_main():
        checkpoint.save_encoder_model(run_dir / MODEL_DIR, run.model, ctx.objective.target_encoder,
                                      with_head=run.with_head)
        plots = write_plots(run_dir / PLOTS_DIR, metrics, CollapseRules().fall_fraction, monitor.references())
        report = write_pretraining_report(run_dir / REPORT_FILE, plots, metrics)
        trackers.log_artifacts([*plots.values(), report])
        write_pretrain_metrics(run_dir, metrics)
        checkpoint.remove_state(run_dir)
    distributed.barrier()
    trackers.finish(metrics)
    log(verdict)
    return metrics

