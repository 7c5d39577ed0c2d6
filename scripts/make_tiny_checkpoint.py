"""Make the bundled `tiny` checkpoint: pretrain the `random:tiny` V-JEPA 2 on the synthetic pretext task.

    .venv/bin/python scripts/make_tiny_checkpoint.py            # writes src/vjepa_tune/assets/tiny/

Every weight (backbone, pooler, classifier) trains from scratch on fresh clips rendered for each step by
DataLoader workers while the model trains on the previous batch (vjepa_tune.data.pretext: figure and shape
motions, forwards and reversed, never the demo's actions), with AdamW, a linear warm-up, a cosine schedule and
a curriculum from easy to varied visuals. It prints its progress and saves its training curve (loss and
accuracy on a fixed held-out set of pretext clips) as CSV and PNG. The weights are stored in bfloat16 (half
the size; the config says float32, so `from_pretrained` loads them back as float32). Same seed, same thread
count, same machine type: the same checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.data.pretext import PRETEXT_CLASSES, PRETEXT_ID2LABEL, PretextBatches, heldout_example
from vjepa_tune.models.loading import build_config

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "src/vjepa_tune/assets/tiny", help="Checkpoint folder.")
    p.add_argument("--curve_dir", type=Path, default=REPO / "docs/tiny_model", help="Training curve folder.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=700, help="Optimizer steps, one fresh batch each.")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--weight_decay", type=float, default=0.05)
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--ramp_steps", type=int, default=350, help="Steps of the easy-to-varied curriculum.")
    p.add_argument("--eval_every", type=int, default=50, help="Steps between held-out evaluations.")
    p.add_argument("--heldout_per_class", type=int, default=8)
    p.add_argument("--workers", type=int, default=2, help="Processes rendering clips ahead of training.")
    p.add_argument("--threads", type=int, default=1, help="Torch threads of the training process.")
    return p.parse_args(argv)


def warmup_cosine(warmup: int, total: int):
    """Learning-rate factor: linear from 0 over `warmup` steps, then a cosine down to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Heldout(Dataset):
    """The fixed held-out pretext clips, rendered by the same workers."""

    def __init__(self, seed: int, count: int) -> None:
        self.seed, self.count = seed, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return heldout_example(self.seed, index)


@torch.no_grad()
def evaluate(
    model: VJEPA2ForVideoClassification, clips: torch.Tensor, labels: torch.Tensor
) -> tuple[float, float]:
    """(mean loss, accuracy) on the held-out clips."""
    model.eval()
    logits = torch.cat([model(pixel_values_videos=batch).logits for batch in clips.split(32)])
    model.train()
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(-1) == labels).float().mean().item()


def save_curve(rows: list[dict], curve_dir: Path) -> None:
    """The curve as CSV and as a two-panel PNG (loss; accuracy)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve_dir.mkdir(parents=True, exist_ok=True)
    with open(curve_dir / "training_curve.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    steps = [r["step"] for r in rows]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(steps, [r["train_loss"] for r in rows], label="training batches")
    ax_loss.plot(steps, [r["heldout_loss"] for r in rows], label="held-out clips")
    ax_loss.set(xlabel="step", ylabel="cross-entropy", title="loss")
    ax_acc.plot(steps, [r["train_acc"] for r in rows], label="training batches")
    ax_acc.plot(steps, [r["heldout_acc"] for r in rows], label="held-out clips (full variety)")
    ax_acc.plot(steps, [r["difficulty"] for r in rows], ":", color="gray", label="curriculum difficulty")
    ax_acc.set(xlabel="step", ylabel="accuracy", title=f"pretext accuracy ({len(PRETEXT_CLASSES)} classes)")
    ax_acc.set_ylim(0, 1)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(curve_dir / "training_curve.png", dpi=110)
    plt.close(fig)


def save_checkpoint(model: VJEPA2ForVideoClassification, out: Path) -> int:
    """config.json + model.safetensors with bfloat16 weights; returns the weights' size in bytes."""
    out.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().to(torch.bfloat16).contiguous() for name, tensor in model.state_dict().items()
    }
    model.save_pretrained(out, state_dict=state)  # pops from the dict it is given; ours is a copy
    return (out / "model.safetensors").stat().st_size


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = build_config("tiny", num_labels=len(PRETEXT_CLASSES), id2label=PRETEXT_ID2LABEL)
    model = VJEPA2ForVideoClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(args.warmup_steps, args.steps))
    loader_kwargs = {"num_workers": args.workers, "prefetch_factor": 3} if args.workers else {}

    heldout = list(
        DataLoader(
            Heldout(args.seed, args.heldout_per_class * len(PRETEXT_CLASSES)), batch_size=32, **loader_kwargs
        )
    )
    held_clips = torch.cat([clips for clips, _ in heldout])
    held_labels = torch.cat([labels for _, labels in heldout])
    print(
        f"{len(PRETEXT_CLASSES)} pretext classes, {len(held_labels)} held-out clips, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters; rendering took "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )

    batches = PretextBatches(args.seed, args.steps, args.batch_size, args.ramp_steps)
    loader = DataLoader(batches, batch_size=None, shuffle=False, **loader_kwargs)
    rows: list[dict] = []
    window_loss, window_correct, window_count = 0.0, 0, 0
    bar = tqdm(loader, total=args.steps, desc="pretrain tiny", unit="step", disable=None)
    for step, (clips, labels) in enumerate(bar, start=1):
        logits = model(pixel_values_videos=clips).logits
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        window_loss += loss.item() * len(labels)
        window_correct += int((logits.argmax(-1) == labels).sum())
        window_count += len(labels)
        elapsed = time.perf_counter() - started
        bar.set_postfix(loss=f"{loss.item():.3f}", clips_s=f"{step * args.batch_size / elapsed:.1f}")
        if step % args.eval_every == 0 or step == args.steps:
            held_loss, held_acc = evaluate(model, held_clips, held_labels)
            rows.append(
                {
                    "step": step,
                    "clips_seen": step * args.batch_size,
                    "learning_rate": round(schedule.get_last_lr()[0], 8),
                    "difficulty": round(batches.difficulty(step - 1), 4),
                    "train_loss": round(window_loss / window_count, 4),
                    "train_acc": round(window_correct / window_count, 4),
                    "heldout_loss": round(held_loss, 4),
                    "heldout_acc": round(held_acc, 4),
                    "elapsed_s": round(elapsed, 1),
                }
            )
            window_loss, window_correct, window_count = 0.0, 0, 0
            row = rows[-1]
            tqdm.write(
                f"step {step:4d}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}  "
                f"held-out loss {held_loss:.3f} acc {held_acc:.3f}  difficulty {row['difficulty']:.2f}  "
                f"{elapsed:.0f} s"
            )
    bar.close()
    model.eval()
    size = save_checkpoint(model, args.out)
    save_curve(rows, args.curve_dir)
    total = time.perf_counter() - started
    summary = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "clips_seen": args.steps * args.batch_size,
        "learning_rate": args.learning_rate,
        "weight_decay": args.weight_decay,
        "warmup_steps": args.warmup_steps,
        "ramp_steps": args.ramp_steps,
        "workers": args.workers,
        "threads": args.threads,
        "final_heldout_acc": rows[-1]["heldout_acc"],
        "weights_bytes": size,
        "wall_time_s": round(total, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    (args.curve_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"saved {args.out} ({size / 1e6:.1f} MB of weights); held-out pretext accuracy "
        f"{rows[-1]['heldout_acc']:.3f}; {total / 60:.1f} min in all"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
