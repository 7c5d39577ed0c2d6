"""What the uncertainty figures and the trackers cost: the bootstrap per test-set size, and each tracker's start and
per-step logging (issue 19).

The bootstrap runs once per evaluated split, the trackers' `log_scalars` once per optimizer step, so these are the
figures that say whether either could slow a run down.

    python benchmarks/statistics_and_trackers.py [--resamples 2000] [--steps 200] [--trackers tensorboard,mlflow,wandb]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from vjepa_tune.evaluation.statistics import bootstrap_intervals

# (videos, classes): the demo's test split, UCF-101's test list (split 1), a Something-Something-sized test set
SIZES = [(24, 4), (3783, 101), (10_000, 174)]


def bootstrap_seconds(videos: int, classes: int, resamples: int) -> float:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, videos)
    predictions = np.where(rng.random(videos) < 0.8, labels, rng.integers(0, classes, videos))
    started = time.perf_counter()
    bootstrap_intervals(labels, predictions, classes, resamples=resamples)
    return time.perf_counter() - started


def tracker_costs(name: str, steps: int, folder: Path) -> tuple[float, float, float]:
    """Seconds to open (a fresh OUT: MLflow creates its database), ms per logged step, seconds to finish."""
    from vjepa_tune.tracking.trackers import open_run_trackers

    started = time.perf_counter()
    trackers = open_run_trackers(name, folder / "run", out=folder, name="bench", config={"seed": 0},
                                 log=lambda _: None)
    opened = time.perf_counter()
    for step in range(1, steps + 1):
        trackers.log_scalars(step, {"train/loss": 1.0 / step, "train/lr": 1e-4})
    logged = time.perf_counter()
    trackers.finish({"test_acc": 0.5})
    return opened - started, 1000 * (logged - opened) / steps, time.perf_counter() - logged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--trackers", default="tensorboard,mlflow,wandb")
    args = parser.parse_args()

    print(f"bootstrap, {args.resamples} resamples")
    print("| test videos | classes | seconds |\n|---:|---:|---:|")
    for videos, classes in SIZES:
        print(f"| {videos} | {classes} | {bootstrap_seconds(videos, classes, args.resamples):.3f} |")

    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    print(f"\ntrackers, {args.steps} steps of two scalars")
    print("| tracker | open (s) | per step (ms) | finish (s) |\n|---|---:|---:|---:|")
    for name in args.trackers.split(","):
        with tempfile.TemporaryDirectory() as folder:
            opened, per_step, finished = tracker_costs(name, args.steps, Path(folder))
        print(f"| {name} | {opened:.2f} | {per_step:.2f} | {finished:.2f} |")


if __name__ == "__main__":
    main()
