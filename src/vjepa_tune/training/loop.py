"""The training engine: which samples each optimizer step covers, one epoch of steps, and predictions on a split.

The guide's semantics are kept: AdamW with the same weight decay for every strategy, an optimizer step every
`batch_size x accumulation_steps` clips, validation every epoch. What it adds, and why:

- Exact accumulation. Every optimizer step's loss is the mean over the samples of that step, the last uneven step
  included (each micro-batch contributes `sum of losses / samples in the step`), so the result does not depend on
  how a step is cut into micro-batches or processes.
- Keyed randomness. The order of an epoch is drawn from (seed, 'order', epoch) (`plan_epoch`), so a resumed epoch
  sees exactly the samples an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vjepa_tune.config import PretrainConfig, TrainConfig
from vjepa_tune.data.dataset import Example, SkippedClip
from vjepa_tune.data.samples import Sample
from vjepa_tune.errors import NonFiniteLoss
from vjepa_tune.randomness import keyed_generator
from vjepa_tune.training import distributed
from vjepa_tune.training.inputs import Batch, Pipeline, collate

if TYPE_CHECKING:  # only a type here; the recipe opens the trackers
    from vjepa_tune.tracking.trackers import Trackers

Collate = Callable[[list[Example | SkippedClip]], Batch]


@dataclass
class TrainState:
    """Where a run stands after its last finished epoch; kept in checkpoint/state.pt (`train_state`) under these
    names, which runs saved by every earlier version share."""

    epoch: int = 0
    """Epochs finished."""
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = -1
    epochs_since_best: int = 0
    train_time_s: float = 0.0
    runtime_skipped: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ the plan
def plan_epoch(num_train: int, epoch: int, cfg: TrainConfig, labels: Sequence[int], processes: int = 1
               ) -> list[list[int]]:
    """The optimizer steps of one epoch, each the list of sample indices it covers (all processes together).

    A pure function of (seed, epoch, data), so a resumed epoch sees exactly the samples an uninterrupted one would,
    and N processes see exactly what one process with the same effective batch would.
    `class_balance=sampler` draws each class equally often (with replacement) instead of a permutation.
    """
    if cfg.class_balance == "sampler":
        gen = keyed_generator(cfg.seed, "order", epoch)
        counts = torch.bincount(torch.tensor(list(labels)), minlength=max(labels) + 1).double()
        weights = torch.tensor([1.0 / counts[y] for y in labels], dtype=torch.double)
        order = torch.multinomial(weights, num_train, replacement=True, generator=gen).tolist()
    else:
        order = epoch_order(num_train, epoch, cfg.seed)
    return cut_steps(order, cfg.batch_size * cfg.accumulation_steps * processes)


def epoch_order(num_samples: int, epoch: int, seed: int) -> list[int]:
    """A permutation of the sample indices keyed by (seed, 'order', epoch): the order of one epoch."""
    return torch.randperm(num_samples, generator=keyed_generator(seed, "order", epoch)).tolist()


def cut_steps(order: Sequence[int], step_size: int) -> list[list[int]]:
    """`order` cut into optimizer steps of `step_size` samples (all processes together), the last one shorter."""
    return [list(order[start : start + step_size]) for start in range(0, len(order), step_size)]


def micro_batches(samples: Sequence[int], batch_size: int) -> list[list[int]]:
    return [list(samples[i : i + batch_size]) for i in range(0, len(samples), batch_size)]


class _PlannedBatches(torch.utils.data.Sampler[list[int]]):
    def __init__(self, micro_batches: list[list[int]]):
        self.micro_batches = micro_batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.micro_batches)

    def __len__(self) -> int:
        return len(self.micro_batches)


def batches(dataset: Dataset, planned: list[list[int]], num_workers: int, read_ahead: bool = False,
            collate_fn: Collate = collate) -> Iterable[Batch]:
    """The planned micro-batches of `dataset`, in order: from a DataLoader, or, with `read_ahead` and no workers,
    each read on a background thread while the caller works on the one before."""
    if read_ahead and num_workers == 0:
        # A DataLoader draws its workers' base seed from the global generator when iterated; draw it too, so that
        # what follows (dropout masks) is the same whichever way the batches come.
        torch.empty((), dtype=torch.int64).random_()
        return read_ahead_batches(dataset, planned, collate_fn)
    return DataLoader(dataset, batch_sampler=_PlannedBatches(planned), num_workers=num_workers,
                      collate_fn=collate_fn, persistent_workers=False)


def read_ahead_batches(dataset: Dataset, planned: list[list[int]], collate_fn: Collate = collate) -> Iterator[Batch]:
    """The batches in order, each read on one background thread while the caller works on the one before; a failed
    read is raised where its batch is used."""

    def read(batch: list[int]) -> Batch:
        return collate_fn([dataset[i] for i in batch])

    if not planned:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(read, planned[0])
        for following in planned[1:]:
            current = pending.result()
            pending = pool.submit(read, following)
            yield current
        yield pending.result()


# ------------------------------------------------------------------------------------------------ schedules, loss
def lr_lambda(cfg: TrainConfig | PretrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning rate's factor at each optimizer step: linear warm-up over `warmup_ratio` of the steps, then
    constant or a cosine decay to 0 (`train` and `pretrain` share it)."""
    warmup = int(round(cfg.warmup_ratio * total_steps))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.scheduler == "cosine":
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def class_weights(cfg: TrainConfig, labels: Sequence[int], num_classes: int) -> torch.Tensor | None:
    """`class_balance=loss`: each class weighted by total / (classes x its count) (0 for a class with no sample)."""
    if cfg.class_balance != "loss":
        return None
    counts = torch.bincount(torch.tensor(list(labels)), minlength=num_classes).float()
    return torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))


def make_loss(cfg: TrainConfig, weights: torch.Tensor | None) -> torch.nn.CrossEntropyLoss:
    """The per-step loss: summed over a micro-batch (the step divides by its sample count), label smoothing and
    class weights as configured."""
    return torch.nn.CrossEntropyLoss(weight=weights, reduction="sum", label_smoothing=cfg.label_smoothing)


# ------------------------------------------------------------------------------------------------ one epoch
@dataclass
class StepContext:
    """What every optimizer step of a run works with; the recipe builds it once."""

    cfg: TrainConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: Accelerator
    pipeline: Pipeline
    loss: torch.nn.Module
    """Summed over a micro-batch (`make_loss`)."""
    state: TrainState
    train_samples: Sequence[Sample]
    """The training split, to name the videos that could not be read."""
    checkpoint: Path
    """Where the last good state is kept, for the message when the loss stops being finite."""
    trackers: Trackers | None = None
    """Where the scalars of each step go (TensorBoard, MLflow, W&B: `--report_to`)."""


def _non_finite(ctx: StepContext, loss: float, epoch: int) -> NonFiniteLoss:
    kept = (f"the last good checkpoint (after epoch {ctx.state.epoch}) is kept in {ctx.checkpoint}"
            if ctx.state.epoch else "no epoch finished, so there is no checkpoint to resume from")
    return NonFiniteLoss(
        f"the training loss became {loss} at epoch {epoch + 1}, optimizer step {ctx.state.global_step + 1}; {kept}. "
        "Try a lower --learning_rate, --max_grad_norm 1.0 or --precision fp32."
    )


def train_epoch(ctx: StepContext, epoch: int, steps: list[list[int]]) -> float:
    """One epoch of planned optimizer steps (`plan_epoch`); returns the mean per-sample training loss over all
    processes."""
    cfg, model, pipeline, accelerator, state = ctx.cfg, ctx.model, ctx.pipeline, ctx.accelerator, ctx.state
    model.train()
    local_steps = [micro_batches(distributed.shard(step), pipeline.micro_batch(cfg)) for step in steps]
    loader = iter(batches(pipeline.train_dataset(epoch), [mb for ls in local_steps for mb in ls],
                          pipeline.workers(cfg), pipeline.read_ahead))
    trainable = [p for p in model.parameters() if p.requires_grad]
    total_loss, total_seen = 0.0, 0
    started = time.perf_counter()
    bar = tqdm(total=sum(len(s) for s in steps), desc=f"epoch {epoch + 1}/{cfg.num_epochs}", unit="clip",
               disable=None if distributed.is_main() else True, leave=False)
    ctx.optimizer.zero_grad(set_to_none=True)
    for step, local in zip(steps, local_steps, strict=True):
        step_loss, step_seen = 0.0, 0
        for _ in local:
            batch = next(loader)
            for idx in batch.skipped:
                state.runtime_skipped.setdefault(ctx.train_samples[idx].id, "could not be decoded during training")
            if not len(batch):
                continue
            with accelerator.autocast():
                logits = pipeline.forward(model, batch.inputs.to(accelerator.device))
            loss_sum = ctx.loss(logits.float(), batch.labels.to(accelerator.device))
            if not torch.isfinite(loss_sum):
                bar.close()
                raise _non_finite(ctx, loss_sum.item(), epoch)
            accelerator.backward(loss_sum / len(step))
            step_loss += float(loss_sum.detach())
            step_seen += len(batch)
        distributed.sum_gradients(trainable)
        if cfg.max_grad_norm is not None:
            accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
        ctx.optimizer.step()
        ctx.scheduler.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        step_loss, step_seen = distributed.sum_values([step_loss, step_seen], accelerator.device)
        total_loss, total_seen = total_loss + step_loss, total_seen + int(step_seen)
        if ctx.trackers is not None and step_seen:
            ctx.trackers.log_scalars(state.global_step, {"train/loss": step_loss / step_seen,
                                                         "train/lr": ctx.scheduler.get_last_lr()[0]})
        bar.update(len(step))
        bar.set_postfix(loss=f"{total_loss / max(1, total_seen):.4f}")
    bar.close()
    elapsed = time.perf_counter() - started
    if ctx.trackers is not None:
        ctx.trackers.log_scalars(state.global_step, {"train/clips_per_s": total_seen / max(elapsed, 1e-9)})
    return total_loss / max(1, total_seen)


# ------------------------------------------------------------------------------------------------ predictions
@dataclass(frozen=True)
class DatasetPredictions:
    """Every readable sample's label and probabilities, in index order, and the indices of the unreadable ones."""

    labels: list[int]
    probs: torch.Tensor
    """(N, classes)."""
    indices: list[int]
    skipped: list[int]

    def accuracy(self) -> float:
        if not self.labels:
            return 0.0
        return float((self.probs.argmax(dim=-1) == torch.tensor(self.labels)).float().mean())

    def num_correct(self) -> int:
        """How many samples the top-1 prediction gets right (what the accuracy's interval is made from)."""
        if not self.labels:
            return 0
        return int((self.probs.argmax(dim=-1) == torch.tensor(self.labels)).sum())


@torch.no_grad()
def predict_dataset(model: torch.nn.Module, dataset: Dataset, pipeline: Pipeline, accelerator: Accelerator,
                    batch_size: int, num_workers: int, desc: str) -> DatasetPredictions:
    """Probabilities for every sample of `dataset`.

    With several processes each takes a contiguous shard and the results are gathered, so every sample counts
    exactly once; all processes return the same full, index-ordered result.
    """
    model.eval()
    mine = distributed.shard(range(len(dataset)))
    loader = batches(dataset, micro_batches(mine, batch_size), num_workers, pipeline.read_ahead)
    labels: list[int] = []
    probs: list[torch.Tensor] = []
    indices: list[int] = []
    skipped: list[int] = []
    with tqdm(total=len(mine), desc=desc, unit="clip", leave=False, disable=None if distributed.is_main() else True
              ) as bar:
        for batch in loader:
            skipped += batch.skipped
            if len(batch):
                with accelerator.autocast():
                    logits = pipeline.forward(model, batch.inputs.to(accelerator.device))
                probs.append(torch.softmax(logits.float(), dim=-1).cpu())
                labels += batch.labels.tolist()
                indices += batch.index.tolist()
            bar.update(len(batch) + len(batch.skipped))
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
    return DatasetPredictions(labels, local_probs, indices, skipped)
