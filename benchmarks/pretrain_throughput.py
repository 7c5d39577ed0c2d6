"""How fast `vjepa-tune pretrain` takes clips when its epochs are short: a small set of videos, many epochs.

Every epoch used to start a new DataLoader, whose workers each built a whole batch before the first step of the
epoch could run; one loader now serves the whole run. This runs the bundled `tiny` on synthetic videos and prints,
per repeat, the run's `train_time_s` (the steps with their waits for clips) and each monitor's clips/s.

    python benchmarks/pretrain_throughput.py --work /tmp/pretrain-throughput      # 64 videos, 10 epochs of 4 steps

BENCHMARKS.md ("Continued pretraining: clips a second with short epochs") records the figures before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

from vjepa_tune.cli import main
from vjepa_tune.synth import synthesize
from vjepa_tune.tracking.records import versions


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--videos_per_class", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--num_epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    data = args.work / "data"
    synthesize(data, videos_per_class=args.videos_per_class, size=(64, 64), frames=32, seed=0, progress=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; "
          + ", ".join(f"{k} {v}" for k, v in versions().items() if v))
    times, rates = [], []
    for repeat in range(args.repeats):
        name = f"run{repeat}"
        assert main(["pretrain", "--model", "tiny", "--data.root", str(data), "--out", str(args.work / "runs"),
                     "--run_name", name, "--num_epochs", str(args.num_epochs), "--batch_size", str(args.batch_size),
                     "--num_workers", str(args.num_workers), "--log_every", "8", "--report_to", "none"]) == 0
        metrics = json.loads((args.work / "runs" / name / "metrics.json").read_text())
        steady = [entry["clips_per_s"] for entry in metrics["history"][1:]]  # past the first monitor's start-up
        times.append(metrics["train_time_s"])
        rates.append(statistics.mean(steady))
        print(f"repeat {repeat}: {metrics['steps']} steps of {metrics['effective_batch']} ({metrics['epochs']:g} "
              f"epochs) in {metrics['train_time_s']:.1f} s; clips/s at each monitor {steady}")
    print(f"train_time_s {min(times):.1f}-{max(times):.1f} s; steady clips/s {min(rates):.1f}-{max(rates):.1f} "
          f"({args.videos_per_class * 4} videos, batch {args.batch_size}, --num_workers {args.num_workers})")


if __name__ == "__main__":
    main_()
