"""`vjepa-tune train`: one recipe that reads top to bottom — set up, train, evaluate, record.

The guide's semantics are kept: AdamW with the same weight decay for every strategy, an optimizer step every
`batch_size x accumulation_steps` clips, validation every epoch, and the best-validation model used for the final
test. What it adds, and why:

- Exact accumulation. Every optimizer step's loss is the mean over the samples of that step, the last uneven step
  included (each micro-batch contributes `sum of losses / samples in the step`), so the result does not depend on
  how a step is cut into micro-batches.
- Keyed randomness. The order of an epoch, every augmentation draw and dropout are seeded from (seed, epoch, ...),
  so a run resumed from its epoch checkpoint after a kill ends exactly as one never interrupted.
- Records are written by one function at the end (`_finish`); `metrics.json` appears last and marks the run done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from vjepa_tune.config import TrainConfig, from_plain, to_plain, validate
from vjepa_tune.data.samples import Splits
from vjepa_tune.errors import BadInput, NonFiniteLoss
from vjepa_tune.randomness import key_seed, keyed_generator
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.records import TRAIN_LOG_FILE
from vjepa_tune.training import checkpoint as ckpt
from vjepa_tune.training import distributed

Log = Callable[[str], None]


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, Any]

    def summary(self) -> str:
        m = self.metrics
        return (
            f"{m['approach']}: test acc {m['test_acc']:.4f}, best val acc {m['best_val_acc']:.4f}, "
            f"trainable {m['trainable_params']:,} of {m['total_params']:,} ({m['trainable_pct']:.3g}%), "
            f"{m['train_time_s']:.1f} s; records in {self.run_dir}"
        )


@dataclass
class Pipeline:
    """Where the model's inputs come from: decoded clips, or (issue 5) stored backbone features.

    `train_dataset(epoch)` returns the training data of one epoch (its augmentation view); `eval_dataset(split)` the
    deterministic eval view; `forward(model, inputs)` returns logits. Datasets yield dicts with `inputs`, `labels`,
    `index`; `collate` stacks them and drops unreadable samples, listing their indices under `skipped`.
    """

    train_dataset: Callable[[int], Dataset]
    eval_dataset: Callable[[str], Dataset]
    forward: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    collate: Callable[[list[Any]], dict[str, Any]]
    describe: str = "clips"
    num_workers: int | None = None
    """DataLoader workers for its datasets; None: `--num_workers`."""
    train_batch: int | None = None
    """Samples per training forward pass, at least `--batch_size`; None: `--batch_size`."""
    read_ahead: bool = False
    """With no workers, read the next batch on a background thread while the model runs on this one (stored
    features: file reads release the GIL)."""

    def workers(self, cfg: TrainConfig) -> int:
        return cfg.num_workers if self.num_workers is None else self.num_workers

    def micro_batch(self, cfg: TrainConfig) -> int:
        return cfg.batch_size if self.train_batch is None else max(cfg.batch_size, self.train_batch)


@dataclass
class TrainState:
    epoch: int = 0
    """Epochs finished."""
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = -1
    epochs_since_best: int = 0
    train_time_s: float = 0.0
    runtime_skipped: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ set-up
def _silent(_: str) -> None:
    """The log of processes other than the main one."""


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on a GPU that supports it and fp32 elsewhere; returns accelerate's name."""
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "no"
    if precision in {"bf16", "fp16"} and device.type == "cpu" and precision == "fp16":
        raise BadInput("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU.")
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def make_accelerator(precision: str) -> Any:
    from accelerate import Accelerator

    probe_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # cpu=True is what makes accelerate start a gloo process group under torchrun on a machine without a GPU.
    return Accelerator(mixed_precision=resolve_precision(precision, probe_device), cpu=probe_device.type == "cpu")


def _check_run_name(cfg: TrainConfig) -> None:
    if cfg.run_name is not None and (cfg.out / cfg.run_name / "metrics.json").exists():
        raise BadInput(f"run folder {cfg.out / cfg.run_name} already holds a finished run; choose another --run_name.")


def _new_run_dir(cfg: TrainConfig) -> Path:
    """The folder of a new run (not made yet): `--run_name`, or <strategy>-<timestamp> with a suffix if taken."""
    _check_run_name(cfg)
    if cfg.run_name is not None:
        return cfg.out / cfg.run_name
    name = f"{cfg.strategy}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir, suffix = cfg.out / name, 1
    while run_dir.exists() and any(run_dir.iterdir()):
        suffix += 1
        run_dir = cfg.out / f"{name}-{suffix}"
    return run_dir


@contextmanager
def _run_folder(cfg: TrainConfig, resume_dir: Path | None, run_dir: Path | None, accelerator: Any
                ) -> Iterator[Path]:
    """The run's folder for the block: the resumed run's, the caller's `run_dir`, or a new one in `cfg.out`.

    A folder this call creates (with any of its parents, `--out` included) is removed again if the block fails
    before the run has a checkpoint: a failed command adds nothing to `--out`. A resumed run's folder, or one that
    existed before, is never removed.
    """
    created: list[Path] = []
    if accelerator.is_main_process:
        if resume_dir is None:
            run_dir = run_dir or _new_run_dir(cfg)
            created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]
            run_dir.mkdir(parents=True, exist_ok=True)
        else:
            run_dir = resume_dir
    run_dir = distributed.broadcast(run_dir)
    try:
        yield run_dir
    except BaseException:
        if created and not (run_dir / ckpt.STATE_FILE).exists() and not (run_dir / "metrics.json").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
            for parent in created[1:]:
                with contextlib.suppress(OSError):  # only while empty
                    parent.rmdir()
        raise


def find_resumable(out: Path) -> Path | None:
    """The newest run folder in `out` that has a checkpoint but no metrics.json."""
    if not out.is_dir():
        return None
    candidates = [
        d for d in out.iterdir()
        if d.is_dir() and (d / ckpt.STATE_FILE).exists() and not (d / "metrics.json").exists()
    ]
    return max(candidates, key=lambda d: (d / ckpt.STATE_FILE).stat().st_mtime) if candidates else None


def _resolve_resume(cfg: TrainConfig, resume: str | None, log: Log) -> tuple[TrainConfig, Path | None]:
    if resume is None:
        return cfg, None
    if resume == "auto":
        run_dir = find_resumable(cfg.out)
        if run_dir is None:
            if cfg.data.root is None and cfg.data.list_file is None:
                raise BadInput(
                    f"--resume auto: nothing to resume in {cfg.out} (no run folder there has a checkpoint without "
                    "metrics.json). To start a new run, give its data: --data.root DIR (and its other settings)."
                )
            log(f"--resume auto: nothing to resume in {cfg.out}; starting a new run")
            return cfg, None
    else:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").exists():
            raise BadInput(f"--resume {resume}: not a vjepa-tune run folder (no config.yaml in it).")
        if (run_dir / "metrics.json").exists():
            raise BadInput(f"--resume {resume}: that run already finished (metrics.json exists).")
    from vjepa_tune.tracking.records import read_config_yaml

    saved = read_config_yaml(run_dir / "config.yaml")
    log(f"resuming {run_dir} with its saved configuration")
    return validate(saved), run_dir


# ------------------------------------------------------------------------------------------------ batches
def plan_epoch(num_train: int, epoch: int, cfg: TrainConfig, labels: Sequence[int], processes: int = 1
               ) -> list[list[int]]:
    """The optimizer steps of one epoch, each the list of sample indices it covers (all processes together).

    A pure function of (seed, epoch, data), so a resumed epoch sees exactly the samples an uninterrupted one would,
    and N processes see exactly what one process with the same effective batch would.
    `class_balance=sampler` draws each class equally often (with replacement) instead of a permutation.
    """
    gen = keyed_generator(cfg.seed, "order", epoch)
    if cfg.class_balance == "sampler":
        counts = torch.bincount(torch.tensor(list(labels)), minlength=max(labels) + 1).double()
        weights = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.double)
        order = torch.multinomial(weights, num_train, replacement=True, generator=gen).tolist()
    else:
        order = torch.randperm(num_train, generator=gen).tolist()
    step = cfg.batch_size * cfg.accumulation_steps * processes
    return [order[start : start + step] for start in range(0, len(order), step)]


def micro_batches(samples: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(samples[i : i + batch_size]) for i in range(0, len(samples), batch_size)]


class _PlannedBatches(torch.utils.data.Sampler[list[int]]):
    def __init__(self, micro_batches: list[list[int]]):
        self.micro_batches = micro_batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.micro_batches)

    def __len__(self) -> int:
        return len(self.micro_batches)


def _loader(dataset: Dataset, batches: list[list[int]], pipeline: Pipeline, num_workers: int
            ) -> Iterable[dict[str, Any]]:
    if pipeline.read_ahead and num_workers == 0:
        # A DataLoader draws its workers' base seed from the global generator when iterated; draw it too, so that
        # what follows (dropout masks) is the same whichever way the batches come.
        torch.empty((), dtype=torch.int64).random_()
        return _read_ahead(dataset, batches, pipeline.collate)
    return DataLoader(dataset, batch_sampler=_PlannedBatches(batches), num_workers=num_workers,
                      collate_fn=pipeline.collate, persistent_workers=False)


def _read_ahead(dataset: Dataset, batches: list[list[int]], collate: Callable[[list[Any]], dict[str, Any]]
                ) -> Iterator[dict[str, Any]]:
    """The batches in order, each read on one background thread while the caller works on the one before."""
    from concurrent.futures import ThreadPoolExecutor

    def read(batch: list[int]) -> dict[str, Any]:
        return collate([dataset[i] for i in batch])

    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(read, batches[0])
        for following in batches[1:]:
            current = pending.result()
            pending = pool.submit(read, following)
            yield current
        yield pending.result()


def lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warmup = int(round(cfg.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


# ------------------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def predict_dataset(
    model: torch.nn.Module, dataset: Dataset, pipeline: Pipeline, accelerator: Any, batch_size: int,
    num_workers: int, desc: str,
) -> tuple[list[int], torch.Tensor, list[int], list[int]]:
    """Probabilities for every sample of `dataset`: (labels, probs (N, C), indices, skipped indices).

    With several processes each takes a contiguous shard and the results are gathered, so every sample counts
    exactly once; all processes return the same full, index-ordered result.
    """
    from tqdm.auto import tqdm

    model.eval()
    mine = distributed.shard(range(len(dataset)))
    loader = _loader(dataset, micro_batches(mine, batch_size), pipeline, num_workers)
    labels: list[int] = []
    probs: list[torch.Tensor] = []
    indices: list[int] = []
    skipped: list[int] = []
    with tqdm(total=len(mine), desc=desc, unit="clip", leave=False, disable=None if distributed.is_main() else True
              ) as bar:
        for batch in loader:
            skipped += batch["skipped"]
            if len(batch["labels"]):
                with accelerator.autocast():
                    logits = pipeline.forward(model, batch["inputs"].to(accelerator.device))
                probs.append(torch.softmax(logits.float(), dim=-1).cpu())
                labels += batch["labels"].tolist()
                indices += batch["index"].tolist()
            bar.update(len(batch["labels"]) + len(batch["skipped"]))
    local_probs = torch.cat(probs) if probs else torch.empty(0)
    if distributed.is_distributed():
        parts = distributed.gather((labels, local_probs, indices, skipped))
        labels = [y for part in parts for y in part[0]]
        local_probs = torch.cat([part[1] for part in parts if len(part[1])]) if labels else torch.empty(0)
        indices = [i for part in parts for i in part[2]]
        skipped = sorted(i for part in parts for i in part[3])
        order = sorted(range(len(indices)), key=indices.__getitem__)
        labels, indices = [labels[k] for k in order], [indices[k] for k in order]
        local_probs = local_probs[order] if len(order) else local_probs
    return labels, local_probs, indices, skipped


def accuracy(labels: Sequence[int], probs: torch.Tensor) -> float:
    if not len(labels):
        return 0.0
    return float((probs.argmax(dim=-1) == torch.tensor(list(labels))).float().mean())


# ------------------------------------------------------------------------------------------------ training
def _train_epoch(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, accelerator: Any, dataset: Dataset,
    steps: list[list[int]], cfg: TrainConfig, pipeline: Pipeline, state: TrainState, class_weights: Any,
    writer: Any, epoch: int, train_samples: Sequence[Any], run_dir: Path,
) -> float:
    """One epoch; returns the mean per-sample training loss over all processes."""
    from tqdm.auto import tqdm

    model.train()
    local_steps = [micro_batches(distributed.shard(step), pipeline.micro_batch(cfg)) for step in steps]
    loader = iter(_loader(dataset, [mb for ls in local_steps for mb in ls], pipeline, pipeline.workers(cfg)))
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights, reduction="sum", label_smoothing=cfg.label_smoothing)
    trainable = [p for p in model.parameters() if p.requires_grad]
    total_loss, total_seen = 0.0, 0
    started = time.perf_counter()
    bar = tqdm(total=sum(len(s) for s in steps), desc=f"epoch {epoch + 1}/{cfg.num_epochs}", unit="clip",
               disable=None if distributed.is_main() else True, leave=False)
    optimizer.zero_grad(set_to_none=True)
    for step, local in zip(steps, local_steps, strict=True):
        step_loss, step_seen = 0.0, 0
        for _ in local:
            batch = next(loader)
            for idx in batch["skipped"]:
                state.runtime_skipped.setdefault(train_samples[idx].id, "could not be decoded during training")
            n = len(batch["labels"])
            if not n:
                continue
            with accelerator.autocast():
                logits = pipeline.forward(model, batch["inputs"].to(accelerator.device))
            loss_sum = loss_fn(logits.float(), batch["labels"].to(accelerator.device))
            if not torch.isfinite(loss_sum):
                bar.close()
                kept = (
                    f"the last good checkpoint (after epoch {state.epoch}) is kept in {run_dir / ckpt.STATE_FILE}"
                    if state.epoch else "no epoch finished, so there is no checkpoint to resume from"
                )
                raise NonFiniteLoss(
                    f"the training loss became {loss_sum.item()} at epoch {epoch + 1}, optimizer step "
                    f"{state.global_step + 1}; {kept}. Try a lower --learning_rate, --max_grad_norm 1.0 or "
                    "--precision fp32."
                )
            accelerator.backward(loss_sum / len(step))
            step_loss += float(loss_sum.detach())
            step_seen += n
        distributed.sum_gradients(trainable)
        if cfg.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        step_loss, step_seen = distributed.sum_values([step_loss, step_seen], accelerator.device)
        total_loss, total_seen = total_loss + step_loss, total_seen + int(step_seen)
        if writer is not None and step_seen:
            writer.add_scalar("train/loss", step_loss / step_seen, state.global_step)
            writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.global_step)
        bar.update(len(step))
        bar.set_postfix(loss=f"{total_loss / max(1, total_seen):.4f}")
    bar.close()
    elapsed = time.perf_counter() - started
    if writer is not None:
        writer.add_scalar("train/clips_per_s", total_seen / max(elapsed, 1e-9), state.global_step)
    return total_loss / max(1, total_seen)


def _class_weights(cfg: TrainConfig, labels: Sequence[int], num_classes: int) -> torch.Tensor | None:
    if cfg.class_balance != "loss":
        return None
    counts = torch.bincount(torch.tensor(list(labels)), minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights


def train(
    cfg: TrainConfig,
    resume: str | None = None,
    *,
    log: Log = print,
    run_dir: Path | None = None,
    splits: Splits | None = None,
    experiments_csv: Path | None = None,
) -> RunResult:
    """Run (or continue) one training run and write its records; returns the run folder and metrics.

    `run_dir`, `splits` and `experiments_csv` let a caller such as `compare` place the run folder, impose splits
    made once for a whole grid, and collect rows in one CSV; by default the run gets a new folder in `cfg.out`,
    splits of its own, and a row in `cfg.out/experiments.csv`. Inside an open `ConsoleLog` (the command line opens
    one) the console goes to the run folder's train.log.
    """
    from vjepa_tune.training.setup import build_run

    cfg = validate(cfg)
    accelerator = make_accelerator(cfg.precision)
    if not accelerator.is_main_process:
        log = _silent
    resume_dir = None
    if accelerator.is_main_process:
        cfg, resume_dir = _resolve_resume(cfg, resume, log)
        if resume_dir is None and run_dir is None:
            _check_run_name(cfg)
    cfg, resume_dir = distributed.broadcast((cfg, resume_dir))
    # Everything is checked and built before the run gets a folder: bad input leaves nothing behind.
    run = build_run(cfg, accelerator, log=log, resume_dir=resume_dir, splits=splits)
    with _run_folder(cfg, resume_dir, run_dir, accelerator) as run_dir:
        if accelerator.is_main_process:
            keep_console_log(run_dir / TRAIN_LOG_FILE)
        run.start(run_dir)
        run.experiments_csv = experiments_csv or cfg.out / "experiments.csv"
        metrics = _train_and_test(cfg, run, accelerator, resume_dir is not None, log)
    return RunResult(run_dir, metrics)


def _train_and_test(cfg: TrainConfig, run: Any, accelerator: Any, resuming: bool, log: Log) -> dict[str, Any]:
    """The epochs (from the checkpoint when resuming), then the test of the best model and the records."""
    run_dir = run.run_dir
    model, pipeline = run.model, run.pipeline
    processes = accelerator.num_processes
    if processes > 1:
        log(f"{processes} processes: effective batch {cfg.batch_size} x {cfg.accumulation_steps} x {processes} = "
            f"{cfg.batch_size * cfg.accumulation_steps * processes} clips per optimizer step")

    trainable = [p for p in model.parameters() if p.requires_grad]
    model.to(accelerator.device)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(run.splits.train) / (cfg.batch_size * cfg.accumulation_steps * processes))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch * cfg.num_epochs))
    optimizer = accelerator.prepare(optimizer)

    state = TrainState()
    saved = ckpt.load_state(run_dir) if resuming else None
    if saved is not None:
        from vjepa_tune.models.strategies import load_trainable_state_dict

        load_trainable_state_dict(model, saved["weights"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        ckpt.set_rng_states(saved["rng"])
        state = TrainState(**saved["train_state"])
        log(f"resumed after epoch {state.epoch} (optimizer step {state.global_step})")

    writer = None
    if accelerator.is_main_process:
        from torch.utils.tensorboard import SummaryWriter

        purge = state.global_step + 1 if saved else None  # drop what a killed epoch wrote after the checkpoint
        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
    train_labels = [s.label for s in run.splits.train]
    class_weights = _class_weights(cfg, train_labels, len(run.classes))
    if class_weights is not None:
        class_weights = class_weights.to(accelerator.device)
    val_dataset = pipeline.eval_dataset("val")
    eval_bs = max(cfg.batch_size, 8)
    try:
        for epoch in range(state.epoch, cfg.num_epochs):
            torch.manual_seed(key_seed(cfg.seed, "epoch", epoch))
            started = time.perf_counter()
            steps = plan_epoch(len(run.splits.train), epoch, cfg, train_labels, processes)
            train_loss = _train_epoch(
                model, optimizer, scheduler, accelerator, pipeline.train_dataset(epoch), steps, cfg, pipeline,
                state, class_weights, writer, epoch, run.splits.train, run_dir,
            )
            state.train_time_s += time.perf_counter() - started
            labels, probs, _, skipped = predict_dataset(
                model, val_dataset, pipeline, accelerator, eval_bs, pipeline.workers(cfg), "validation"
            )
            for idx in skipped:
                state.runtime_skipped.setdefault(run.splits.val[idx].id, "could not be decoded during validation")
            val_acc = accuracy(labels, probs)
            entry = {"epoch": epoch + 1, "train_loss": train_loss, "val_acc": val_acc,
                     "lr": scheduler.get_last_lr()[0], "time_s": round(time.perf_counter() - started, 3)}
            state.history.append(entry)
            if writer is not None:
                writer.add_scalar("val/acc", val_acc, state.global_step)
                writer.add_scalar("train/epoch_loss", train_loss, state.global_step)
            improved = val_acc > state.best_val_acc
            if improved:
                state.best_val_acc, state.best_epoch, state.epochs_since_best = val_acc, epoch + 1, 0
                run.save_best(model)
            else:
                state.epochs_since_best += 1
            state.epoch = epoch + 1
            log(f"epoch {epoch + 1}/{cfg.num_epochs}: train loss {train_loss:.4f}, val acc {val_acc:.4f}"
                + (" (best)" if improved else ""))
            if accelerator.is_main_process:
                ckpt.save_state(run_dir, {
                    "weights": run.trainable_weights(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": ckpt.rng_states(),
                    "train_state": dataclasses.asdict(state),
                })
                writer.flush()
            distributed.barrier()
            if cfg.early_stopping is not None and state.epochs_since_best >= cfg.early_stopping:
                log(f"early stopping: no better validation accuracy for {counted(cfg.early_stopping, 'epoch')}")
                break
    finally:
        if writer is not None:
            writer.close()
    return _finish(cfg, run, state, accelerator, log)


def _finish(cfg: TrainConfig, run: Any, state: TrainState, accelerator: Any, log: Log) -> dict[str, Any]:
    """Test the best model and write metrics.json, the confusion matrix and the experiments.csv row."""
    from vjepa_tune.evaluation.metrics import classification_metrics, write_confusion
    from vjepa_tune.models.loading import small_data_note
    from vjepa_tune.tracking.records import (
        append_experiment_row,
        experiment_row,
        has_row_for,
        precision_name,
        versions,
        write_metrics_json,
    )

    distributed.barrier()  # the main process has written the best model
    model = run.load_best().to(accelerator.device)
    for part in distributed.gather(state.runtime_skipped):
        state.runtime_skipped.update(part)
    labels, probs, _, skipped = predict_dataset(
        model, run.pipeline.eval_dataset("test"), run.pipeline, accelerator, max(cfg.batch_size, 8),
        run.pipeline.workers(cfg), "test",
    )
    for idx in skipped:
        state.runtime_skipped.setdefault(run.splits.test[idx].id, "could not be decoded during testing")
    test = classification_metrics(labels, probs, run.classes) if len(labels) else {}
    skipped_list = [{"id": k, "reason": v} for k, v in {**run.skipped, **state.runtime_skipped}.items()]
    counts = run.counts
    metrics = {
        "approach": cfg.strategy,
        "model": cfg.model,
        "dataset": str(cfg.data.root),
        "test_acc": test.get("top1", 0.0),
        "best_val_acc": max(state.best_val_acc, 0.0),
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
        "skipped_videos": len(skipped_list),
        "skipped": skipped_list,
        "history": state.history,
        "test": test,
        "mean_class_acc": test.get("mean_class_acc"),
        "macro_f1": test.get("macro_f1"),
        "effective_batch": cfg.batch_size * cfg.accumulation_steps * accelerator.num_processes,
        "precision": precision_name(accelerator.mixed_precision),
        "input": run.pipeline.describe,
        "versions": versions(),
    }
    if accelerator.is_main_process:
        write_confusion(run.run_dir, test.get("confusion", [[0] * len(run.classes)] * len(run.classes)),
                        run.classes)
        csv_path = run.experiments_csv  # the row first: a kill before metrics.json resumes without a second row
        if not has_row_for(csv_path, run.run_dir.resolve()):
            append_experiment_row(csv_path, experiment_row(cfg, metrics, run.run_dir.resolve(), str(cfg.data.root)))
        write_metrics_json(run.run_dir, metrics)
        state_dir = run.run_dir / ckpt.STATE_FILE.parent
        if state_dir.exists():
            shutil.rmtree(state_dir)
    log(f"test acc {metrics['test_acc']:.4f} (best epoch {state.best_epoch}); records in {run.run_dir}")
    if note := small_data_note(cfg.model, metrics["best_val_acc"], metrics["test_acc"], len(run.classes)):
        log(note)
    return metrics


def config_from_run(run_dir: Path) -> TrainConfig:
    from vjepa_tune.tracking.records import read_config_yaml

    return read_config_yaml(run_dir / "config.yaml")


__all__ = ["RunResult", "Pipeline", "train", "plan_epoch", "predict_dataset", "config_from_run", "to_plain",
           "from_plain"]
