"""One cycle of pretraining the bundled `tiny` checkpoint: the `random:tiny` V-JEPA 2 on the synthetic pretext task.

    bash scripts/make_tiny_checkpoint.sh      # the bundled checkpoint: four cycles of this script, about 45 min

One cycle trains every weight (backbone, pooler, classifier), from scratch or from `--init`, on clips that
DataLoader workers render for each step while the model trains on the previous batch (vjepa_tune.synth.pretext:
figure and shape motions, forwards and reversed, never the demo's actions), with AdamW, a linear warm-up, a
cosine schedule and a curriculum from easy to varied visuals (by default easy throughout: large, centred, thick
figures on flat backgrounds, where the motion target is learnt; docs/tiny_model.md). Four losses:

- class: the clip's pretext class, from the pooler through the classifier (saved, with the pretext labels);
- parts: from every backbone token, which token holds each body part (or the shape) at that token's time step;
- motion: from the token that holds it, how the part moves between the two frames that token sees;
- pose (with `--pose_weight`, an experiment the bundled checkpoint does not use; docs/tiny_model.md): from that
  token, where the part is relative to the hip.

The linear head of the last three is scaffolding and is not saved.

It prints its progress and saves its training curve (losses and accuracies on a fixed held-out set of pretext
clips) as CSV and PNG. The weights are stored in bfloat16 (half the size; the config says float32, so
`from_pretrained` loads them back as float32). Same seed, thread count and machine type: the same checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.models.loading import build_config
from vjepa_tune.synth.pretext import (
    IGNORE,
    PARTS,
    PRETEXT_CLASSES,
    PRETEXT_ID2LABEL,
    PretextBatches,
    heldout_example,
)

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "src/vjepa_tune/assets/tiny", help="Checkpoint folder.")
    p.add_argument("--curve_dir", type=Path, default=REPO / "docs/tiny_model", help="Training curve folder.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", type=Path, default=None, help="Continue from this checkpoint instead of from scratch.")
    p.add_argument("--steps", type=int, default=800, help="Optimizer steps, one fresh batch each.")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--frames", type=int, default=16, help="Frames per clip (the demo's frames_per_clip).")
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--weight_decay", type=float, default=0.05)
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--easy_steps", type=int, default=800, help="Curriculum: steps on easy clips only.")
    p.add_argument("--ramp_steps", type=int, default=350, help="Curriculum: steps from easy to full variety.")
    p.add_argument("--part_weight", type=float, default=1.0, help="Weight of the part-location loss.")
    p.add_argument("--motion_weight", type=float, default=8.0, help="Weight of the part-motion loss.")
    p.add_argument(
        "--pose_weight",
        type=float,
        default=0.0,
        help="Weight of the part-pose loss; 0 (the bundled checkpoint's cycles) leaves the target out.",
    )
    p.add_argument("--eval_every", type=int, default=50, help="Steps between held-out evaluations.")
    p.add_argument("--heldout_per_class", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="Processes rendering clips ahead of training.")
    p.add_argument("--threads", type=int, default=1, help="Torch threads of the training process.")
    return p.parse_args(argv)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: linear from 0 over `warmup` steps, then a cosine down to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Heldout(Dataset):
    """The fixed held-out pretext clips (full variety, evaluation crop), rendered by the same workers."""

    def __init__(self, seed: int, count: int, patch: int) -> None:
        self.seed, self.count, self.patch = seed, count, patch

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, torch.Tensor, torch.Tensor]:
        example = heldout_example(self.seed, index, patch=self.patch)
        return example.clip, example.label, example.parts, example.motion, example.pose


MOTION_SCALE = 0.5
"""Pixels per frame at which the motion target is half way to its bound: the target is m / (|m| + scale) per
axis, so the direction of a slow limb counts as much as a fast shape's, and a still part is 0."""


class Scaffolding(torch.nn.Module):
    """The training-only head: from each token, which token holds each part, how each part moves there and,
    with `pose`, where it is relative to the hip (without, the head of the bundled checkpoint's cycles)."""

    def __init__(self, hidden: int, cells: int, pose: bool = False) -> None:
        super().__init__()
        self.cells = cells
        self.outputs = (5 if pose else 3) * len(PARTS)
        self.head = torch.nn.Linear(hidden, self.outputs)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Part cell logits (B, cells, time steps, parts) (tokens are time-major, then row-major), part
        motion and part pose (or None) per token (each B, time steps, parts, cells, 2)."""
        batch, parts = len(tokens), len(PARTS)
        out = self.head(tokens).view(batch, -1, self.cells, self.outputs)
        cells = out[..., :parts].transpose(1, 2)
        motion = out[..., parts : 3 * parts].reshape(batch, -1, self.cells, parts, 2).transpose(2, 3)
        if self.outputs == 3 * parts:
            return cells, motion, None
        pose = out[..., 3 * parts :].reshape(batch, -1, self.cells, parts, 2).transpose(2, 3)
        return cells, motion, pose


def forward(
    model: VJEPA2ForVideoClassification, heads: Scaffolding, clips: torch.Tensor
) -> tuple[torch.Tensor | None, ...]:
    """Class logits, as VJEPA2ForVideoClassification computes them, then the scaffolding's outputs."""
    tokens = model.vjepa2(pixel_values_videos=clips, skip_predictor=True).last_hidden_state
    return (model.classifier(model.pooler(tokens)), *heads(tokens))


def losses(outputs: tuple[torch.Tensor | None, ...], batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    logits, cells, motion, pose = outputs
    _, labels, targets, moves, places = batch
    # A part's motion and pose are read at the token that holds it.
    index = targets.clamp(min=0)[..., None, None].expand(*targets.shape, 1, 2)
    at_part = torch.gather(motion, 3, index).squeeze(3)
    present = torch.isfinite(moves)
    values = {
        "class": F.cross_entropy(logits, labels),
        "parts": F.cross_entropy(cells, targets, ignore_index=IGNORE),
        "motion": F.mse_loss(at_part[present], moves[present] / (moves[present].abs() + MOTION_SCALE)),
    }
    if pose is not None:  # a batch of shapes alone has no pose to learn: a zero loss, not NaN
        placed = torch.isfinite(places)
        at = torch.gather(pose, 3, index).squeeze(3)
        values["pose"] = F.mse_loss(at[placed], places[placed]) if placed.any() else at.sum() * 0.0
    return values


def part_accuracy(cells: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of present parts placed in the right token cell."""
    present = targets != IGNORE
    return int(((cells.argmax(1) == targets) & present).sum()) / max(1, int(present.sum()))


@torch.no_grad()
def evaluate(model, heads, held: list[torch.Tensor]) -> dict[str, float]:
    """Losses and accuracies on the held-out clips."""
    model.eval()
    chunks = [forward(model, heads, clips) for clips in held[0].split(32)]
    model.train()
    outputs = tuple(
        None if chunks[0][i] is None else torch.cat([chunk[i] for chunk in chunks]) for i in range(len(chunks[0]))
    )
    values = losses(outputs, tuple(held))
    return {
        "heldout_loss": values["class"].item(),
        "heldout_acc": (outputs[0].argmax(-1) == held[1]).float().mean().item(),
        "heldout_part_loss": values["parts"].item(),
        "heldout_part_acc": part_accuracy(outputs[1], held[2]),
        "heldout_motion_loss": values["motion"].item(),
        "heldout_pose_loss": values["pose"].item() if "pose" in values else float("nan"),
    }


def save_curve(rows: list[dict], curve_dir: Path) -> None:
    """The curve as CSV and as a two-panel PNG (losses; accuracies)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve_dir.mkdir(parents=True, exist_ok=True)
    with open(curve_dir / "training_curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in [
        ("train_loss", "class, training batches"),
        ("heldout_loss", "class, held-out clips"),
        ("train_part_loss", "parts, training batches"),
        ("heldout_part_loss", "parts, held-out clips"),
        ("train_motion_loss", "motion, training batches"),
        ("heldout_motion_loss", "motion, held-out clips"),
        ("train_pose_loss", "pose, training batches"),
        ("heldout_pose_loss", "pose, held-out clips"),
    ]:
        values = [r[key] for r in rows]
        if all(math.isnan(v) for v in values):  # the pose target is off
            continue
        ax_loss.plot(steps, values, "--" if "part" in key else "-", label=label)
    ax_loss.set(xlabel="step", ylabel="loss", title="losses")
    for key, label in [
        ("train_acc", "class, training batches"),
        ("heldout_acc", "class, held-out clips (full variety)"),
        ("heldout_part_acc", "part in the right token, held-out"),
    ]:
        ax_acc.plot(steps, [r[key] for r in rows], "--" if "part" in key else "-", label=label)
    ax_acc.plot(steps, [r["difficulty"] for r in rows], ":", color="gray", label="curriculum difficulty")
    ax_acc.set(xlabel="step", ylabel="accuracy", title=f"pretext accuracy ({len(PRETEXT_CLASSES)} classes)")
    ax_acc.set_ylim(0, 1)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(curve_dir / "training_curve.png", dpi=110)
    plt.close(fig)


def save_checkpoint(model: VJEPA2ForVideoClassification, out: Path) -> int:
    """config.json + model.safetensors with bfloat16 weights; returns the weights' size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    state = {name: t.detach().to(torch.bfloat16).contiguous() for name, t in model.state_dict().items()}
    model.save_pretrained(out, state_dict=state)  # it pops entries from the dict it is given: ours is a copy
    return (out / "model.safetensors").stat().st_size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = build_config("tiny", num_labels=len(PRETEXT_CLASSES), id2label=PRETEXT_ID2LABEL)
    if args.init is not None:
        model = VJEPA2ForVideoClassification.from_pretrained(args.init, torch_dtype=torch.float32).train()
    else:
        model = VJEPA2ForVideoClassification(config).train()
    heads = Scaffolding(config.hidden_size, (config.crop_size // config.patch_size) ** 2, pose=args.pose_weight > 0)
    params = [*model.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup_steps, args.steps))
    loader_kwargs = {"num_workers": args.workers, "prefetch_factor": 3} if args.workers else {}
    weights = {"class": 1.0, "parts": args.part_weight, "motion": args.motion_weight, "pose": args.pose_weight}

    count = args.heldout_per_class * len(PRETEXT_CLASSES)
    heldout = list(DataLoader(Heldout(args.seed, count, config.patch_size), batch_size=32, **loader_kwargs))
    held = [torch.cat([batch[i] for batch in heldout]) for i in range(5)]
    print(
        f"{len(PRETEXT_CLASSES)} pretext classes, {count} held-out clips, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{time.perf_counter() - started:.0f} s to set up",
        flush=True,
    )

    batches = PretextBatches(
        args.seed,
        args.steps,
        args.batch_size,
        easy_steps=args.easy_steps,
        ramp_steps=args.ramp_steps,
        num_frames=args.frames,
        size=config.crop_size,
        patch=config.patch_size,
    )
    loader = DataLoader(batches, batch_size=None, shuffle=False, **loader_kwargs)
    rows: list[dict] = []
    sums: dict[str, float] = {}
    bar = tqdm(loader, total=args.steps, desc="pretrain tiny", unit="step", disable=None)
    for step, batch in enumerate(bar, start=1):
        outputs = forward(model, heads, batch[0])
        values = losses(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        sum(weights[name] * value for name, value in values.items()).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        for name, value in values.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        sums["acc"] = sums.get("acc", 0.0) + (outputs[0].argmax(-1) == batch[1]).float().mean().item()
        sums["batches"] = sums.get("batches", 0) + 1
        elapsed = time.perf_counter() - started
        bar.set_postfix(
            loss=f"{values['class'].item():.3f}", clips_s=f"{step * args.batch_size / elapsed:.1f}"
        )
        if step % args.eval_every == 0 or step == args.steps:
            n = sums.pop("batches")
            row = {
                "step": step,
                "clips_seen": step * args.batch_size,
                "learning_rate": round(schedule.get_last_lr()[0], 8),
                "difficulty": round(batches.difficulty(step - 1), 4),
                "train_loss": round(sums["class"] / n, 4),
                "train_acc": round(sums["acc"] / n, 4),
                "train_part_loss": round(sums["parts"] / n, 4),
                "train_motion_loss": round(sums["motion"] / n, 4),
                "train_pose_loss": round(sums["pose"] / n, 4) if "pose" in sums else float("nan"),
            }
            row.update({k: round(v, 4) for k, v in evaluate(model, heads, held).items()})
            row["elapsed_s"] = round(elapsed, 1)
            rows.append(row)
            sums = {}
            tqdm.write(
                f"step {step:4d}  class loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}  held-out acc "
                f"{row['heldout_acc']:.3f} part acc {row['heldout_part_acc']:.3f} motion loss "
                f"{row['heldout_motion_loss']:.3f} pose loss {row['heldout_pose_loss']:.4f}  "
                f"difficulty {row['difficulty']:.2f}  {elapsed:.0f} s",
                file=sys.stdout,
            )
            sys.stdout.flush()
    bar.close()
    model.eval()
    size = save_checkpoint(model, args.out)
    save_curve(rows, args.curve_dir)
    total = time.perf_counter() - started
    summary = {
        **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "curve_dir")},
        "clips_seen": args.steps * args.batch_size,
        "final": rows[-1],
        "weights_bytes": size,
        "wall_time_s": round(total, 1),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    (args.curve_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"saved {args.out} ({size / 1e6:.1f} MB of weights); held-out pretext accuracy "
        f"{rows[-1]['heldout_acc']:.3f}, parts {rows[-1]['heldout_part_acc']:.3f}; {total / 60:.1f} min in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
