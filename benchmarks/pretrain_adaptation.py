"""Does continued V-JEPA pretraining help a downstream probe? Issue 17's measured goals, on this machine's CPUs.

Two conditions, one pretraining each on unlabelled full-variety videos (`synth --variety 1`), disjoint from the
probe's (another synth seed):

- adaptation: the bundled `tiny` (pretrained on easy, centred clips) continued on full-variety footage;
- from scratch: `random:tiny` pretrained the same way, against `random:tiny` untouched.

Each side is scored with one protocol: the demo's `pooler_and_head` probe (40 labelled videos per class at 64 px and
32 frames, `--data.crop_scale 1,1`, 5 epochs, the guide's other settings) trained on full-variety labelled videos and
scored on 400 fresh ones (synth seed 12) with `evaluate`, for several probe seeds (a probe trained on 112 videos moves
by a few points with its seed alone). Per seed: accuracy with its 95% Wilson interval, macro-F1, and the exact McNemar
test of before against after on the same 400 videos. The pretraining run also probes itself (`--probe.*`, on the
labelled set's own 24 test videos) as a user would see it.

    python benchmarks/pretrain_adaptation.py --work /tmp/pretrain-bench            # both conditions, as recorded
    python benchmarks/pretrain_adaptation.py --work DIR --conditions adaptation --max_steps 200   # a quick look
    python benchmarks/pretrain_adaptation.py --work DIR --conditions adaptation --max_steps 800 \
        --variant tk05 --flags "--masks.short_range.max_temporal_keep 0.5"   # other settings, the same before-probes

Writes DIR/results.json and DIR/results.md (DIR/results-VARIANT.*; the tables BENCHMARKS.md quotes) and prints
them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from vjepa_tune.cli import main
from vjepa_tune.evaluation.statistics import format_interval, mcnemar, wilson_interval
from vjepa_tune.synth import synthesize
from vjepa_tune.tracking.records import versions

SIZE, FRAMES, FPS = (64, 64), 32, 25
PROBE = ["--strategy", "pooler_and_head", "--data.crop_scale", "1,1", "--num_epochs", "5"]
"""The demo's pooler_and_head probe (demo.py: DEMO_CROP_SCALE, the guide's 5 epochs, batch 1 x 4, lr 2e-4)."""


@dataclass
class Condition:
    name: str
    model: str
    pretrain: list[str]
    """Flags of `vjepa-tune pretrain` beyond the data, the output and the probe."""
    goal_points: float
    steps: int
    """Optimizer steps that fill most of the 20-minute budget on 2 idle cores, the run's own two probes included."""


CONDITIONS = {
    "adaptation": Condition(
        "adaptation", "tiny",
        ["--learning_rate", "1e-4", "--ema.start", "0.99925", "--ema.end", "0.99925", "--batch_size", "8"],
        goal_points=5.0, steps=3200,
    ),
    "scratch": Condition(
        "scratch", "random:tiny",
        ["--learning_rate", "3e-4", "--ema.start", "0.998", "--ema.end", "0.9995", "--batch_size", "8",
         "--predictor.reinit", "--predictor.width", "64", "--predictor.depth", "2", "--predictor.heads", "4"],
        goal_points=10.0, steps=2400,
    ),
}


@dataclass
class Scores:
    accuracy: float
    correct: int
    videos: int
    macro_f1: float
    per_video: dict[str, bool] = field(repr=False)

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.videos)


def make_data(work: Path, unlabelled_per_class: int) -> dict[str, Path]:
    """The three disjoint synthetic sets, all at full variety (drawn once; a rerun reuses them)."""
    sets = {"labelled": (40, 0), "fresh": (100, 12), "unlabelled": (unlabelled_per_class, 100)}
    roots = {}
    for name, (per_class, seed) in sets.items():
        roots[name] = work / "data" / name
        synthesize(roots[name], videos_per_class=per_class, size=SIZE, frames=FRAMES, fps=FPS, seed=seed,
                   variety=1.0)
    return roots


def probe(model: str, name: str, seed: int, roots: dict[str, Path], work: Path) -> Scores:
    """Train the probe on `model`'s frozen features, then score it on the fresh videos."""
    out = work / "probes"
    run = out / f"{name}-seed{seed}"
    if not (run / "metrics.json").exists():
        assert main(["train", "--model", model, "--data.root", str(roots["labelled"]), "--data.format", "folder",
                     *PROBE, "--seed", str(seed), "--out", str(out), "--run_name", run.name,
                     "--cache.dir", str(work / "store")]) == 0
    evaluation = run / "evaluation"
    found = sorted(evaluation.glob("*/metrics.json")) if evaluation.exists() else []
    if not found:
        assert main(["evaluate", str(run), "--data.root", str(roots["fresh"]), "--data.format", "folder"]) == 0
        found = sorted(evaluation.glob("*/metrics.json"))
    metrics = json.loads(found[0].read_text())
    with (found[0].parent / "predictions.csv").open() as f:
        per_video = {row["id"]: row["correct"] == "1" for row in csv.DictReader(f)}
    correct = sum(per_video.values())
    return Scores(accuracy=metrics["top1"], correct=correct, videos=len(per_video), macro_f1=metrics["macro_f1"],
                  per_video=per_video)


def pretrain(condition: Condition, roots: dict[str, Path], work: Path, max_steps: int,
             name: str) -> tuple[Path, float]:
    """One pretraining run (its own probe included); returns its folder and its wall time in seconds."""
    out = work / "pretrain"
    run = out / name
    started = time.perf_counter()
    if not (run / "metrics.json").exists():
        assert main(["pretrain", "--model", condition.model, "--data.root", str(roots["unlabelled"]),
                     "--out", str(out), "--run_name", name, "--max_steps", str(max_steps),
                     "--num_epochs", "1000",  # --max_steps bounds the run
                     "--num_workers", "1",  # decoding on the second core, beside the step
                     "--log_every", "100", "--checkpoint_every", "250", *condition.pretrain,
                     "--probe.data.root", str(roots["labelled"]), "--probe.data.format", "folder",
                     "--probe.data.crop_scale", "1,1", "--probe.num_epochs", "5"]) == 0
    return run, time.perf_counter() - started


def _row(label: str, s: Scores) -> str:
    return f"| {label} | {format_interval(s.accuracy, s.interval)} | {100 * s.macro_f1:.1f}% | {s.videos} |"


def _with_variant(name: str, variant: str) -> str:
    """The name of a run or results file of a variant (the condition's own without one)."""
    return f"{name}-{variant}" if variant else name


def run_condition(condition: Condition, roots: dict[str, Path], work: Path, seeds: list[int],
                  max_steps: int, variant: str) -> dict[str, Any]:
    """Probe before, pretrain, probe after; a variant (other flags) has its own run and after-probes, the same
    before-probes."""
    name = _with_variant(condition.name, variant)
    before = {seed: probe(condition.model, f"{condition.name}-before", seed, roots, work) for seed in seeds}
    run, wall_s = pretrain(condition, roots, work, max_steps, name)
    metrics = json.loads((run / "metrics.json").read_text())
    after = {seed: probe(str(run / "model"), f"{name}-after", seed, roots, work) for seed in seeds}
    per_seed = []
    for seed in seeds:
        ids = sorted(before[seed].per_video)
        test = mcnemar([before[seed].per_video[i] for i in ids], [after[seed].per_video[i] for i in ids])
        per_seed.append({"seed": seed, "before": before[seed].accuracy, "before_ci": before[seed].interval,
                         "before_macro_f1": before[seed].macro_f1, "after": after[seed].accuracy,
                         "after_ci": after[seed].interval, "after_macro_f1": after[seed].macro_f1,
                         "mcnemar_p": test.p_value, "videos": before[seed].videos})
    mean_before = sum(s.accuracy for s in before.values()) / len(seeds)
    mean_after = sum(s.accuracy for s in after.values()) / len(seeds)
    return {
        "condition": condition.name, "model": condition.model, "pretrain_flags": condition.pretrain,
        "steps": metrics["steps"], "effective_batch": metrics["effective_batch"],
        "pretrain_s": metrics["train_time_s"], "wall_s": round(wall_s, 1), "history": metrics["history"],
        "collapse": metrics["collapse"], "own_probes": metrics["probes"], "verdict": metrics["verdict"],
        "per_seed": per_seed, "mean_before": mean_before, "mean_after": mean_after,
        "difference_points": 100 * (mean_after - mean_before), "goal_points": condition.goal_points,
    }


def report(results: list[dict[str, Any]], environment: dict[str, Any]) -> str:
    lines = [f"Machine: {environment['machine']}; load average at the start {environment['load_start']}, at the end "
             f"{environment['load_end']}; " + ", ".join(f"{k} {v}" for k, v in environment["versions"].items() if v),
             ""]
    for r in results:
        first, last = r["history"][0], r["history"][-1]
        lines += [
            f"### {r['condition']}: `{r['model']}`, {r['steps']} steps of {r['effective_batch']} clips in "
            f"{r['pretrain_s'] / 60:.1f} min ({' '.join(r['pretrain_flags'])})",
            "",
            "| probe seed | before (400 fresh videos, 95% CI) | after | macro-F1 before / after | McNemar p |",
            "|---|---|---|---|---|",
            *(f"| {s['seed']} | {format_interval(s['before'], s['before_ci'])} | "
              f"{format_interval(s['after'], s['after_ci'])} | {100 * s['before_macro_f1']:.1f}% / "
              f"{100 * s['after_macro_f1']:.1f}% | {s['mcnemar_p']:.3g} |" for s in r["per_seed"]),
            "",
            f"Mean over probe seeds: {100 * r['mean_before']:.1f}% before, {100 * r['mean_after']:.1f}% after: "
            f"{r['difference_points']:+.1f} points (goal: +{r['goal_points']:g}).",
            f"Monitors: loss {first['loss']:.3f} -> {last['loss']:.3f}, target_rank {first['target_rank']:.1f} -> "
            f"{last['target_rank']:.1f}, target_std {first['target_std']:.3f} -> {last['target_std']:.3f}, pred_std "
            f"{first['pred_std']:.3f} -> {last['pred_std']:.3f}; collapse findings: {len(r['collapse'])}.",
            f"The run's own probe: {r['verdict']}",
            "",
        ]
    return "\n".join(lines)


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--conditions", default="adaptation,scratch")
    parser.add_argument("--probe_seeds", default="0,1,2")
    parser.add_argument("--max_steps", type=int, default=None,
                        help="Optimizer steps of each pretraining (default: each condition's own, about 19 minutes "
                             "on 2 idle cores).")
    parser.add_argument("--unlabelled_per_class", type=int, default=500)
    parser.add_argument("--flags", default="",
                        help="More `vjepa-tune pretrain` flags for every condition, e.g. "
                             "'--masks.long_range.max_temporal_keep 0.5' (a later flag wins over the condition's).")
    parser.add_argument("--variant", default="",
                        help="Name of the run with --flags: its runs and after-probes are kept apart, the "
                             "before-probes shared.")
    args = parser.parse_args(argv)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    environment = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
                   "load_start": os.getloadavg()[0], "versions": versions()}
    roots = make_data(work, args.unlabelled_per_class)
    seeds = [int(s) for s in args.probe_seeds.split(",")]
    extra = args.flags.split()
    conditions = [replace(CONDITIONS[name], pretrain=[*CONDITIONS[name].pretrain, *extra])
                  for name in args.conditions.split(",")]
    results = [run_condition(c, roots, work, seeds, args.max_steps or c.steps, args.variant) for c in conditions]
    environment["load_end"] = os.getloadavg()[0]
    stem = _with_variant("results", args.variant)
    (work / f"{stem}.json").write_text(json.dumps({"environment": environment, "results": results}, indent=2,
                                                  default=str))
    text = report(results, environment)
    (work / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main_()
