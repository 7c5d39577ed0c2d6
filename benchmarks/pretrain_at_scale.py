"""Issue 17 with more compute: is continued pretraining on this synthetic footage only short of clips?

`pretrain_adaptation.py` gives each pretraining at most 20 minutes on 2 CPU cores (19,200-25,600 clips); the probe
did not improve. This script runs the same two conditions on the same unlabelled videos (synth seed 100, full
variety, 64 px, 32 frames) with a GPU's throughput, each for the seconds it is given, at a larger batch, and keeps
each run folder as a tarball. The probes are then trained and scored back on the CPU machine with the very protocol
of `pretrain_adaptation.py` (the same before-probes), after unpacking a run as WORK/pretrain/CONDITION-VARIANT:

    python benchmarks/pretrain_at_scale.py --work /tmp/ptscale --out OUT --deadline_s 400     # on the GPU machine
    tar -xzf OUT/scratch.tar.gz -C /tmp/ptb/pretrain                                         # back here
    python benchmarks/pretrain_adaptation.py --work /tmp/ptb --conditions scratch --variant gpu \
        --flags "$(cat /tmp/ptb/pretrain/scratch-gpu/scale_flags.txt)"

Each condition first runs a few steps to measure its rate (clips per second, and the run's fixed cost), then as many
steps as its share of the deadline allows. Writes OUT/pretrain_scale.md (and .json) after each condition, so what
finished is kept when the deadline cuts the rest. The data in WORK are kept between calls; the runs this script
names (CONDITION-calibration, CONDITION-VARIANT) are made afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # pretrain_adaptation beside this file
from pretrain_adaptation import CONDITIONS, FPS, FRAMES, SIZE  # noqa: E402

from vjepa_tune.cli import main  # noqa: E402
from vjepa_tune.synth import synthesize  # noqa: E402
from vjepa_tune.tracking.records import versions  # noqa: E402

NEW_PREDICTOR = ["--predictor.reinit", "--predictor.width", "64", "--predictor.depth", "2", "--predictor.heads", "4"]


@dataclass(frozen=True)
class ScaleSettings:
    """What changes from the CPU condition when the clips are many: the batch, and for adaptation the best CPU
    setting (a new 64 x 2 predictor warmed up for a quarter of the run)."""

    batch_size: int
    extra: tuple[str, ...] = ()
    warmup_fraction: float = 0.0

    @property
    def flags(self) -> list[str]:
        return ["--batch_size", str(self.batch_size), *self.extra]


SCALE = {
    "scratch": ScaleSettings(64),
    "adaptation": ScaleSettings(64, tuple(NEW_PREDICTOR), warmup_fraction=0.25),
}


def pretrain(model: str, data: Path, out: Path, name: str, steps: int, flags: list[str], workers: int,
             log_every: int) -> dict:
    """One `vjepa-tune pretrain` run without a probe; returns its metrics.json with its wall time added."""
    started = time.perf_counter()
    code = main(["pretrain", "--model", model, "--data.root", str(data), "--out", str(out), "--run_name", name,
                 "--max_steps", str(steps), "--num_epochs", "100000", "--num_workers", str(workers),
                 "--log_every", str(log_every), "--checkpoint_every", str(10 * steps), *flags])
    if code != 0:
        raise SystemExit(f"pretrain {name} exited with {code}")
    metrics = json.loads((out / name / "metrics.json").read_text())
    metrics["wall_s"] = time.perf_counter() - started
    return metrics


def planned_steps(calibration: dict, seconds: float, batch: int) -> tuple[int, float, float]:
    """Steps that fit `seconds` at the calibration's steady rate, after its fixed cost (set-up and writing out).

    The rate is the last monitor's (the steps since the one before, past the start-up, waits for clips included);
    the fixed cost is the wall time that rate leaves unexplained (set-up, the first clips, writing out)."""
    rate = calibration["history"][-1]["clips_per_s"]
    fixed = calibration["wall_s"] - calibration["steps"] * batch / rate
    return max(0, int(0.9 * (seconds - fixed) * rate / batch)), rate, fixed


def clips_seen(metrics: dict) -> int:
    """The clips a run's steps took: metrics.json's `clips_seen`, or for runs older than it, counted from the plan
    (an epoch's last step takes the videos that are left)."""
    if "clips_seen" in metrics:
        return int(metrics["clips_seen"])
    videos, batch = metrics["num_videos"], metrics["effective_batch"]
    epochs, steps = divmod(metrics["steps"], math.ceil(videos / batch))
    return epochs * videos + min(steps * batch, videos)


def summary_row(name: str, model: str, metrics: dict, flags: list[str], rate: float) -> dict:
    first, last = metrics["history"][0], metrics["history"][-1]
    return {
        "condition": name, "model": model, "flags": flags, "steps": metrics["steps"],
        "batch": metrics["effective_batch"], "clips": clips_seen(metrics),
        "step_s": metrics["train_time_s"], "wall_s": round(metrics["wall_s"], 1), "calibrated_clips_per_s": rate,
        "precision": metrics["precision"], "loss": [first["loss"], last["loss"]],
        "target_rank": [first["target_rank"], last["target_rank"]],
        "target_std": [first["target_std"], last["target_std"]], "pred_std": [first["pred_std"], last["pred_std"]],
        "collapse": len(metrics["collapse"]), "stopped": metrics["stopped"],
    }


def markdown(rows: list[dict], environment: dict) -> str:
    versions_text = ", ".join(f"{k} {v}" for k, v in environment["versions"].items() if v)
    lines = [f"Machine: {environment['machine']}; {versions_text}", "",
             "| condition | steps of batch: clips | run's wall time | clips/s (in metrics.json's train_time_s) | loss "
             "| target_rank | target_std | pred_std | collapse findings | flags |",
             "|---|---|---:|---:|---|---|---|---|---:|---|"]
    for r in rows:
        signals = " | ".join(f"{r[key][0]:.3f} -> {r[key][1]:.3f}" for key in ("loss", "target_rank", "target_std",
                                                                               "pred_std"))
        lines.append(
            f"| {r['condition']} (`{r['model']}`) | {r['steps']} of {r['batch']}: {r['clips']} | {r['wall_s']:.0f} s "
            f"| {r['clips'] / r['wall_s']:.0f} ({r['clips'] / r['step_s']:.0f}) | {signals} | {r['collapse']} "
            f"| `{' '.join(r['flags'])}` |")
    return "\n".join(lines) + "\n"


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="Where the table and the run tarballs go.")
    parser.add_argument("--deadline_s", type=float, required=True, help="Seconds from the start for everything.")
    parser.add_argument("--conditions", default="scratch,adaptation")
    parser.add_argument("--shares", default="0.55,0.45", help="Each condition's share of the time after the data.")
    parser.add_argument("--variant", default="gpu", help="Run folder name: CONDITION-VARIANT.")
    parser.add_argument("--num_workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--calibration_steps", type=int, default=40)
    parser.add_argument("--log_every", type=int, default=100)
    parser.add_argument("--unlabelled_per_class", type=int, default=500)
    parser.add_argument("--batch_size", type=int, default=None, help="Instead of each condition's (64).")
    parser.add_argument("--max_steps", type=int, default=None, help="At most this many steps in a run (a smoke run).")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    environment = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                              f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
                   "versions": versions()}
    data = args.work / "data" / "unlabelled"  # pretrain_adaptation.make_data's unlabelled set, drawn alike
    synthesize(data, videos_per_class=args.unlabelled_per_class, size=SIZE, frames=FRAMES, fps=FPS, seed=100,
               variety=1.0, progress=False)
    print(f"data: {time.perf_counter() - started:.0f} s", flush=True)
    names = args.conditions.split(",")
    shares = [float(s) for s in args.shares.split(",")]
    runs = args.work / "pretrain"
    rows: list[dict] = []
    for index, name in enumerate(names):
        condition, scale = CONDITIONS[name], SCALE[name]
        run = f"{name}-{args.variant}"
        for earlier in (f"{name}-calibration", run):  # an earlier call's (a warm machine): pretrain keeps them
            shutil.rmtree(runs / earlier, ignore_errors=True)
        if args.batch_size:
            scale = replace(scale, batch_size=args.batch_size)
        left = args.deadline_s - (time.perf_counter() - started)
        seconds = left * shares[index] / sum(shares[index:])
        calibration = pretrain(condition.model, data, runs, f"{name}-calibration", args.calibration_steps,
                               [*condition.pretrain, *scale.flags], args.num_workers, args.calibration_steps // 2)
        seconds -= calibration["wall_s"]
        steps, rate, fixed = planned_steps(calibration, seconds, scale.batch_size)
        steps = min(steps, args.max_steps or steps)
        print(f"{name}: {rate:.0f} clips/s, {fixed:.0f} s fixed cost: {steps} steps in {seconds:.0f} s", flush=True)
        if steps < 4 * args.log_every:
            print(f"{name}: skipped, too few steps", flush=True)
            continue
        flags = [*scale.flags]
        if scale.warmup_fraction:
            flags += ["--predictor.warmup_steps", str(int(steps * scale.warmup_fraction))]
        metrics = pretrain(condition.model, data, runs, run, steps, [*condition.pretrain, *flags], args.num_workers,
                           args.log_every)
        (runs / run / "scale_flags.txt").write_text(" ".join(flags) + "\n")
        shutil.rmtree(runs / run / "checkpoint", ignore_errors=True)
        with tarfile.open(args.out / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(runs / run, arcname=run)
        rows.append(summary_row(name, condition.model, metrics, flags, rate))
        (args.out / "pretrain_scale.json").write_text(json.dumps({"environment": environment, "runs": rows},
                                                                 indent=2))
        (args.out / "pretrain_scale.md").write_text(markdown(rows, environment))
        print(markdown(rows, environment), flush=True)


if __name__ == "__main__":
    main_()
