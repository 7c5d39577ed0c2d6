"""The pretraining engine: which clips each optimizer step covers, one optimizer step of the objective, the monitors'
signals, and the state a checkpoint keeps.

It runs on `train`'s parts: epochs are planned as `train` plans them (`training.loop.epoch_order`, `cut_steps`), each
process takes a contiguous shard of a step (`training.distributed`), micro-batches come from the same loader
(`training.loop.batches`), and the learning rate follows `training.loop.lr_lambda`. What it adds:

- Masks are drawn once per optimizer step for the whole step's clips (`pretraining.masks.draw_masks`) and sliced per
  micro-batch, so a step's masks do not depend on how it is cut into micro-batches or processes.
- Exact accumulation as in `train`: each micro-batch back-propagates `sum of its clips' losses / clips in the step`,
  gradients are summed across processes once per step, so N processes give the result of one with the same
  effective batch.
- The global generator is reseeded from (seed, 'step', step) at every step, so a run resumed from any step's
  checkpoint goes on exactly as one never interrupted.
- A step whose loss or gradient norm is not finite stops the run before the weights change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import Dataset

from vjepa_tune.config import PretrainConfig
from vjepa_tune.data.dataset import ClipDataset, Example, SkippedClip
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.transforms import ClipTransform, normalize_clips
from vjepa_tune.errors import BadInput, NonFiniteLoss
from vjepa_tune.pretraining.masks import MaskDraw, TokenGrid, draw_masks
from vjepa_tune.pretraining.monitors import collapse_signals
from vjepa_tune.pretraining.objective import JepaObjective, ema_momentum
from vjepa_tune.randomness import key_seed
from vjepa_tune.training import distributed
from vjepa_tune.training.inputs import Batch
from vjepa_tune.training.loop import batches, cut_steps, epoch_order, micro_batches

MONITOR_CLIPS = 8
"""Clips of the fixed monitor batch (fewer when the run has fewer videos)."""
MONITOR_STEP = -1
"""The mask draw key of the monitor batch: the same masks at every monitor, so the signals compare across steps."""


# ------------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class StepPlan:
    """Which videos every optimizer step covers: epoch after epoch of keyed permutations (as `train` orders an
    epoch), cut into steps of `step_size` clips (all processes together), until `total_steps`."""

    num_videos: int
    step_size: int
    seed: int
    total_steps: int

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_videos / self.step_size)

    def epoch_steps(self, epoch: int, from_step: int = 0) -> list[tuple[int, list[int]]]:
        """(global step, video indices) of the epoch's steps from `from_step` on, the run's last step included."""
        first = epoch * self.steps_per_epoch
        steps = cut_steps(epoch_order(self.num_videos, epoch, self.seed), self.step_size)
        return [(first + k, indices) for k, indices in enumerate(steps)
                if from_step <= first + k < self.total_steps]

    def epochs_from(self, step: int) -> range:
        """The epochs that still hold steps after `step` steps are done."""
        return range(step // self.steps_per_epoch, math.ceil(self.total_steps / self.steps_per_epoch))

    def steps_from(self, step: int) -> list[tuple[int, int, list[int]]]:
        """(epoch, global step, video indices) of every step after the first `step`, to the run's last."""
        return [(epoch, s, indices) for epoch in self.epochs_from(step) for s, indices in self.epoch_steps(epoch, step)]


def plan_steps(cfg: PretrainConfig, num_videos: int, processes: int) -> StepPlan:
    """The run's plan: `--num_epochs` passes, ended sooner by `--max_steps`."""
    step_size = cfg.batch_size * cfg.accumulation_steps * processes
    total = math.ceil(num_videos / step_size) * cfg.num_epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return StepPlan(num_videos=num_videos, step_size=step_size, seed=cfg.seed, total_steps=total)


def check_predictor_warmup(cfg: PretrainConfig, plan: StepPlan) -> None:
    """Refuse a predictor warm-up that leaves the encoder no step to learn in (the run would train only the
    predictor and save the encoder it started from)."""
    if cfg.predictor.warmup_steps >= plan.total_steps:
        raise BadInput(f"--predictor.warmup_steps {cfg.predictor.warmup_steps} is not below the run's "
                       f"{plan.total_steps} optimizer steps, so the encoder would never learn: lower it, or raise "
                       "--num_epochs / --max_steps.")


class EpochViews(Dataset):
    """The clips of any epoch from one loader: item (epoch, index) is clip `index` in epoch `epoch`'s view. One
    loader serves the whole run, so the decoding workers start once, not at every epoch, where each start left the
    step waiting while every worker built a whole batch anew."""

    def __init__(self, clips: ClipDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> Example | SkippedClip:
        epoch, index = key
        self.clips.set_view(epoch)
        return self.clips[index]


def step_batches(clips: ClipDataset, steps: Sequence[tuple[int, int, list[int]]], batch_size: int,
                 num_workers: int) -> Iterator[list[Batch]]:
    """For each (epoch, step, indices), this process's micro-batches of its shard of the step's clips in that
    epoch's view, all from one loader."""
    local = [[[(epoch, i) for i in mb] for mb in micro_batches(distributed.shard(indices), batch_size)]
             for epoch, _, indices in steps]
    loader = iter(batches(EpochViews(clips), [mb for mbs in local for mb in mbs], num_workers))
    for mbs in local:
        yield [next(loader) for _ in mbs]


# ------------------------------------------------------------------------------------------------ the state
@dataclass
class PretrainState:
    """Where a pretraining run stands after its last finished step; kept in checkpoint/state.pt (`state`)."""

    step: int = 0
    """Optimizer steps done."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per monitor step (metrics.json's `history`)."""
    probes: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    """Every `collapse:` finding: {"step", "message"}."""
    best_probe_step: int | None = None
    best_probe_val: float = -1.0
    loss_sum: float = 0.0
    """Sum of the per-step losses since the last monitor (its entry reports their mean)."""
    loss_steps: int = 0
    clips_seen: int = 0
    train_time_s: float = 0.0
    runtime_skipped: dict[str, str] = field(default_factory=dict)
    stopped: str | None = None
    """Why the run ended before its last planned step (`--stop_on_collapse`), or None."""
    checkpoint_step: int | None = None
    """The step of the last checkpoint written."""
    trackers: dict[str, str] = field(default_factory=dict)
    """The experiment trackers' run ids as runs recorded before trackers.json (`runs.folder.open_kept_trackers`)
    kept them, to continue them when resuming; empty in newer runs."""


# ------------------------------------------------------------------------------------------------ one step
@dataclass
class StepContext:
    """What every optimizer step of a pretraining run works with; the recipe builds it once."""

    cfg: PretrainConfig
    objective: JepaObjective
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: Accelerator
    grid: TokenGrid
    videos: Sequence[Sample]
    plan: StepPlan
    state: PretrainState
    checkpoint: str
    """Where the last good state is kept, for the message when the loss stops being finite."""


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step did (the same on every process)."""

    loss: float
    """Mean per-clip loss of the step, over all processes."""
    clips: int
    grad_norm: float
    """Before clipping."""
    lr: float
    ema_momentum: float


def make_optimizer(objective: JepaObjective, cfg: PretrainConfig) -> torch.optim.AdamW:
    """AdamW over the context encoder and predictor; as in V-JEPA, biases and norm weights (1-D) get no weight
    decay."""
    params = objective.trainable_parameters()
    decayed = [p for p in params if p.ndim > 1]
    plain = [p for p in params if p.ndim <= 1]
    return torch.optim.AdamW([{"params": decayed, "weight_decay": cfg.weight_decay},
                              {"params": plain, "weight_decay": 0.0}], lr=cfg.learning_rate)


def _not_finite(ctx: StepContext, what: str) -> NonFiniteLoss:
    kept = (f"the last good checkpoint (after step {ctx.state.checkpoint_step}) is kept in {ctx.checkpoint}"
            if ctx.state.checkpoint_step is not None else "no checkpoint was written yet, so there is none to keep")
    return NonFiniteLoss(
        f"{what}; {kept}. Start again with a lower --learning_rate, --max_grad_norm (e.g. 1.0), a higher "
        "--ema.start, or --precision fp32."
    )


def check_finite(ctx: StepContext, signals: dict[str, float]) -> None:
    """Stop the run when the monitor batch's features are no longer finite: the weights after the last step are
    broken even though that step's loss was finite (so they are never checkpointed)."""
    broken = {name: value for name, value in signals.items() if not math.isfinite(value)}
    if broken:
        raise _not_finite(ctx, f"after optimizer step {ctx.state.step} the model's outputs on the monitor clips are "
                               f"no longer finite ({', '.join(f'{k} {v}' for k, v in broken.items())})")


def optimizer_step(ctx: StepContext, step: int, indices: Sequence[int], local: Sequence[Batch]) -> StepOutcome:
    """One optimizer step over the step's clips `indices` (all processes together), of which this process holds
    `local`: masks drawn for the whole step, per-clip losses summed over the step's clip count, gradients summed
    across processes, clipped, AdamW, the schedule, then the target encoder's EMA update."""
    cfg, objective, accelerator = ctx.cfg, ctx.objective, ctx.accelerator
    torch.manual_seed(key_seed(cfg.seed, "step", step))
    objective.train()
    draws = draw_masks(cfg.masks, ctx.grid, seed=cfg.seed, step=step, clip_ids=[ctx.videos[i].key for i in indices])
    position = {index: row for row, index in enumerate(indices)}
    encoder_learns = step >= cfg.predictor.warmup_steps  # else the predictor's warm-up: only the predictor learns
    loss_sum, seen = 0.0, 0
    for batch in local:
        for index in batch.skipped:
            ctx.state.runtime_skipped.setdefault(ctx.videos[index].id, "could not be decoded during pretraining")
        if not len(batch):
            continue
        rows = torch.tensor([position[int(i)] for i in batch.index])
        with accelerator.autocast():
            output = objective(normalize_clips(batch.inputs.to(accelerator.device)), [d.rows(rows) for d in draws],
                               encoder_learns=encoder_learns)
        accelerator.backward(output.sample_losses.sum() / len(indices))
        loss_sum += float(output.sample_losses.detach().sum())
        seen += len(batch)
    # In the predictor's warm-up the encoder's gradients stay None on every process (nothing is summed or filled
    # in for them), so AdamW leaves the encoder and its state untouched.
    learning = objective.learning_parameters(encoder_learns)
    distributed.sum_gradients(learning)
    loss_sum, seen = distributed.sum_values([loss_sum, seen], accelerator.device)
    loss = loss_sum / max(seen, 1)
    if not math.isfinite(loss):
        raise _not_finite(ctx, f"the pretraining loss became {loss} at optimizer step {step + 1} (the weights were "
                               "not updated with it)")
    grad_norm = float(accelerator.clip_grad_norm_(learning, cfg.max_grad_norm or math.inf))
    if not math.isfinite(grad_norm):
        raise _not_finite(ctx, f"the gradient norm became {grad_norm} at optimizer step {step + 1} (the weights "
                               "were not updated with it)")
    lr = ctx.scheduler.get_last_lr()[0]
    ctx.optimizer.step()
    ctx.scheduler.step()
    ctx.optimizer.zero_grad(set_to_none=True)
    momentum = ema_momentum(step, ctx.plan.total_steps, cfg.ema.start, cfg.ema.end)
    if encoder_learns:  # the moving average of an unchanged encoder would stay where it is but for rounding
        objective.update_target(momentum)
    return StepOutcome(loss=loss, clips=int(seen), grad_norm=grad_norm, lr=lr, ema_momentum=momentum)


# ------------------------------------------------------------------------------------------------ the monitors
@dataclass(frozen=True)
class MonitorBatch:
    """The fixed clips the collapse signals are measured on at every monitor: the same clips (each video's
    evaluation clip: uniform frames, centre crop) under the same masks, so that a change is the model's."""

    clips: torch.Tensor
    """(clips, frames, 3, H, W) uint8."""
    draws: list[MaskDraw]


def monitor_batch(cfg: PretrainConfig, grid: TokenGrid, videos: Sequence[Sample], clips: ClipDataset
                  ) -> MonitorBatch:
    """Up to `MONITOR_CLIPS` readable videos, evenly spread over the (keyed) order of the first epoch."""
    eval_clips = ClipDataset(videos, frames_per_clip=cfg.data.frames_per_clip, sampling=cfg.data.sampling,
                             frame_step=cfg.data.frame_step, seed=cfg.seed, infos=clips.infos,
                             transform=ClipTransform(cfg.data.crop_size, train=False, normalize=False))
    eval_clips.set_view(None)
    order = epoch_order(len(videos), 0, cfg.seed)
    chosen: list[tuple[str, torch.Tensor]] = []
    for index in order:
        item: Example | SkippedClip = eval_clips[index]
        if isinstance(item, Example):
            chosen.append((videos[index].key, item.inputs))
        if len(chosen) == MONITOR_CLIPS:
            break
    if not chosen:
        return MonitorBatch(torch.empty(0), [])
    draws = draw_masks(cfg.masks, grid, seed=cfg.seed, step=MONITOR_STEP, clip_ids=[key for key, _ in chosen])
    return MonitorBatch(torch.stack([clip for _, clip in chosen]), draws)


@torch.no_grad()
def monitor_signals(objective: JepaObjective, batch: MonitorBatch, accelerator: Accelerator) -> dict[str, float]:
    """target_std, target_rank and pred_std (`pretraining.monitors.collapse_signals`) on the monitor batch."""
    if not len(batch.clips):
        return {}
    was_training = objective.training
    objective.eval()
    try:
        with accelerator.autocast():
            output = objective(normalize_clips(batch.clips.to(accelerator.device)), batch.draws)
    finally:
        objective.train(was_training)
    return collapse_signals(output.targets, list(output.predictions.values()))
