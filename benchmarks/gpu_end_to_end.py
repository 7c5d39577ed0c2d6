"""`vjepa-tune compare` end to end: the guide's four strategies at 200 videos per class and 5 epochs, with the wall
time of every stage, and what the same grid costs without the feature store.

    python benchmarks/gpu_end_to_end.py [--model random:vitl] [--videos_per_class 200] [--size 568x320]
        [--video_frames 64] [--fps 30] [--epochs 5] [--num_workers 0] [--device auto|cuda|cpu]
        [--no_store extrapolate|full|skip] [--no_store_videos_per_class 20] [--no_store_epochs 1]
        [--cache_batch_size B] [--extraction_sweep W:B,W:B,...] [--deadline_s S]
        [--work DIR] [--out end_to_end.json] [--markdown end_to_end.md]

1. Synthesis (timed, excluded from the goal): 4 classes x `--videos_per_class` stick-figure videos at the
   resolution `data prepare --short_side 320` gives 1080p footage (568x320), so no run pays for resizing.
2. `compare` with the feature store (a fresh store folder, so extraction is paid here), as a user types it.
   Goals (issue 20): 90 s or less of wall time (issue 8 asked for 3 minutes), extraction inside the grid at 150
   clips/s or more, fixed costs (everything but extraction, training and evaluation) under 15 s.
   `--extraction_sweep W:B,...` then times head_only's extraction again in a fresh store for each pair of
   `--num_workers` W and `--cache.batch_size` B (after the grid, so the grid finds nothing built or probed); with
   `--deadline_s`, a pair (or the no-store run) starts only if it is expected to end within that many seconds of the
   script's start, judged from head_only's run in the grid.
3. The same without the store (`--cache.enabled false`): `full` runs the whole grid; `extrapolate` (default) runs
   every strategy on a smaller split (`--no_store_videos_per_class`, `--no_store_epochs`) and scales its measured
   seconds per training and per evaluation clip to the full grid's clip counts, keeping the full run's other costs
   (model builds, probing, checkpoints) as measured with the store.

Stages are timed by wrapping package functions in this process (the package is not changed): extraction
(`extraction.extract`) with, inside it, the host's time in `Encoding.encode` (stacking, copying and queueing the
forward; on a CPU the forward itself) and `Encoding.pool`, its waits for the GPU's results (`HostCopy.wait`) and for
the store's writers, the rest being the wait for decoded clips; the GPU's own time in the forward, from CUDA events
around each `encode` (no synchronisation, so the timed run overlaps as an untimed one does); training epochs;
evaluation; model builds; video probing; checkpoints (the best model, and the resume state's snapshot and waits on
the main thread; its writes run on a background thread, counted apart); the report. With `--num_workers` > 0
decoding runs in worker processes, so "decode" is the time extraction waited for clips, not the workers' CPU time.

Results go to `--out` (JSON) and `--markdown` after each step, so a run stopped by a time limit keeps what it did.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GOAL_S = 90.0
"""Issue 20: the four-strategy grid in 90 s or less of wall time, synthesis excluded."""
FIRST_GOAL_S = 180.0
"""Issue 8: under 3 minutes."""
EXTRACTION_GOAL_CLIPS_S = 150.0
"""Issue 20: extraction inside the grid at 150 clips/s or more."""
FIXED_GOAL_S = 15.0
"""Issue 20: fixed costs (model builds, probing, checkpoints, report, set-up and records) under 15 s."""
TOP_STAGES = ("probe", "model_build", "extraction", "training", "evaluation", "checkpoints", "report")
"""Disjoint stages: none is called inside another, so their sum never exceeds the wall time."""
FIXED_STAGES = ("probe", "model_build", "checkpoints", "report", "other")
EXTRACTION_PARTS = ("encode_host", "copies_out", "pooling", "gpu_wait", "store_wait")
"""Stages of extraction's own thread; what extraction spends outside them is the wait for decoded clips. The store's
writes run on background threads ("store_writes", thread-seconds that overlap the rest); "store_wait" is the time
extraction waited for them (a full queue, or the last writes at the end). "backbone_gpu" is GPU time, which
overlaps the host's."""
ENCODE_PARTS = ("stage_in", "forward_host")
"""Parts of `encode_host` (inside it, so not counted again)."""
BACKGROUND_STAGES = ("store_writes", "state_writes", "backbone_gpu")
"""Seconds that overlap the stages above: other threads' (writes) or the GPU's."""


# ------------------------------------------------------------------------------------------------ stage clock
@dataclass
class StageClock:
    """Wall seconds per stage, over the whole grid and per grid run, from wrapped package functions."""

    synchronize: Callable[[], None] = lambda: None
    gpu_event: Callable[[], Any] | None = None
    """Makes a CUDA event that records time (`torch.cuda.Event(enable_timing=True)`); None on a CPU."""
    totals: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_run: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    current: str = "(grid)"
    after_run: Callable[[], None] = lambda: None
    """Called after each grid run, so a run stopped by a time limit keeps the runs that finished."""
    _restore: list[tuple[Any, str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _gpu_pending: list[tuple[str, str, Any, Any]] = field(default_factory=list)

    def wrap(self, owner: Any, attr: str, stage: str, *, sync: bool = False, gpu_stage: str | None = None) -> None:
        """Replace owner.attr by a timed call; callers that look it up on the module at call time see it. With
        `gpu_stage`, CUDA events around the call also time the GPU's work it queued (resolved by `resolve_gpu`)."""
        original = getattr(owner, attr)
        clock = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            events = None
            if gpu_stage is not None and clock.gpu_event is not None:
                events = (clock.gpu_event(), clock.gpu_event())
                events[0].record()
            started = time.perf_counter()
            try:
                result = original(*args, **kwargs)
                if sync:
                    clock.synchronize()
                return result
            finally:
                if events is not None:
                    events[1].record()
                    with clock._lock:
                        clock._gpu_pending.append((gpu_stage, clock.current, *events))
                clock.add(stage, time.perf_counter() - started)

        self._restore.append((owner, attr, original))
        setattr(owner, attr, timed)

    def wrap_made(self, owner: Any, attr: str, stage: str) -> None:
        """Replace owner.attr, a function that makes a callable, by one whose callables are timed under `stage`."""
        original = getattr(owner, attr)
        clock = self

        @functools.wraps(original)
        def making(*args: Any, **kwargs: Any) -> Any:
            made = original(*args, **kwargs)

            def timed(*inner: Any, **inner_kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return made(*inner, **inner_kwargs)
                finally:
                    clock.add(stage, time.perf_counter() - started)

            return timed

        self._restore.append((owner, attr, original))
        setattr(owner, attr, making)

    def resolve_gpu(self) -> None:
        """Add the GPU time between each pair of recorded events to its stage (waits for the GPU once)."""
        with self._lock:
            pending, self._gpu_pending = self._gpu_pending, []
        if not pending:
            return
        self.synchronize()
        with self._lock:
            for stage, run, start, end in pending:
                seconds = start.elapsed_time(end) / 1e3
                self.totals[stage] += seconds
                self.calls[stage] += 1
                self.by_run[run][stage] += seconds

    def label_runs(self, owner: Any, attr: str, name_of: Callable[..., str]) -> None:
        """Attribute stages to the grid run in progress, and time each run whole."""
        original = getattr(owner, attr)
        clock = self

        @functools.wraps(original)
        def labelled(*args: Any, **kwargs: Any) -> Any:
            clock.current = name_of(*args, **kwargs)
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.by_run[clock.current]["wall"] += time.perf_counter() - started
                clock.resolve_gpu()
                clock.current = "(grid)"
                clock.after_run()

        self._restore.append((owner, attr, original))
        setattr(owner, attr, labelled)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:  # the store's writer threads add too
            self.totals[stage] += seconds
            self.calls[stage] += 1
            self.by_run[self.current][stage] += seconds

    def restore(self) -> None:
        for owner, attr, original in reversed(self._restore):
            setattr(owner, attr, original)
        self._restore.clear()


def instrument(clock: StageClock) -> None:
    from vjepa_tune.compare import recipe as compare_recipe
    from vjepa_tune.runs import checkpoint
    from vjepa_tune.training import extraction, feature_store, recipe, setup

    # Each function is wrapped where its caller looks it up (the module that imported it, or its class).
    clock.wrap(extraction, "extract", "extraction")
    clock.wrap(extraction.Encoding, "encode", "encode_host", gpu_stage="backbone_gpu")
    clock.wrap(extraction.Staging, "to_device", "stage_in")
    clock.wrap_made(extraction, "encoder_forward", "forward_host")
    clock.wrap(extraction.Staging, "to_host", "copies_out")
    clock.wrap(extraction.HostCopy, "wait", "gpu_wait")
    clock.wrap(feature_store, "save_entry", "store_writes")
    clock.wrap(feature_store.EntryWriter, "put", "store_wait")
    clock.wrap(feature_store.EntryWriter, "close", "store_wait")
    clock.wrap(extraction.Encoding, "pool", "pooling")
    clock.wrap(recipe, "train_epoch", "training")
    clock.wrap(recipe, "predict_dataset", "evaluation")
    clock.wrap(setup, "build_model", "model_build")
    clock.wrap(setup, "probe_samples", "probe")
    clock.wrap(checkpoint.StateWriter, "save", "checkpoints")  # the snapshot, and the wait for the last write
    clock.wrap(checkpoint.StateWriter, "close", "checkpoints")  # the wait for the last epoch's write
    clock.wrap(checkpoint, "save_state", "state_writes")  # on the writer's thread
    clock.wrap(checkpoint, "save_model", "checkpoints")
    clock.wrap(compare_recipe, "write_report", "report")
    clock.label_runs(compare_recipe, "_run_point", lambda point, cfg, *rest, **kw: cfg.run_name)


def stage_table(stages: dict[str, float], wall: float) -> dict[str, float]:
    """Every stage, the decode wait and the remainder ('other'), in seconds to the millisecond (a stage of a few
    milliseconds, such as a small run's state writes, is not rounded away to nothing)."""
    out = {name: round(stages.get(name, 0.0), 3)
           for name in (*TOP_STAGES, *EXTRACTION_PARTS, *ENCODE_PARTS, *BACKGROUND_STAGES)}
    out["decode_wait"] = round(max(0.0, stages.get("extraction", 0.0) - sum(stages.get(p, 0.0)
                                                                            for p in EXTRACTION_PARTS)), 3)
    out["other"] = round(max(0.0, wall - sum(stages.get(name, 0.0) for name in TOP_STAGES)), 3)
    return out


def late_start(deadline_s: float | None, elapsed_s: float, expected_s: float) -> str | None:
    """Why a part expected to take `expected_s` must not start `elapsed_s` into a run with this deadline, or None."""
    if deadline_s is None:
        return None
    left = deadline_s - elapsed_s
    return None if expected_s <= left else f"skipped: about {expected_s:.0f} s expected, {left:.0f} s left"


# ------------------------------------------------------------------------------------------------ one grid
def run_grid(label: str, argv: list[str], clock: StageClock,
             progress: Callable[[dict[str, Any]], None] = lambda _: None) -> dict[str, Any]:
    """`vjepa-tune compare ARGV` in this process, timed by stage; its runs' metrics read from its folder.

    `progress` gets the stage seconds of this grid's finished runs after each one.
    """
    from vjepa_tune import cli
    from vjepa_tune.training.extraction import BackboneCounter

    out = Path(argv[argv.index("--out") + 1])
    calls, clips = BackboneCounter.calls, BackboneCounter.clips
    before = dict(clock.totals)
    runs_before = {name: dict(stages) for name, stages in clock.by_run.items()}

    def spent_by_run() -> dict[str, dict[str, float]]:
        return {name: {k: round(v - runs_before.get(name, {}).get(k, 0.0), 2) for k, v in stages.items()}
                for name, stages in clock.by_run.items() if name != "(grid)"}

    clock.after_run = lambda: progress({"grid": label, "runs": spent_by_run()})
    print(f"\n=== {label}: vjepa-tune {' '.join(argv)}", flush=True)
    started = time.perf_counter()
    code = cli.main(argv)
    wall = time.perf_counter() - started
    clock.resolve_gpu()
    if code != 0:  # a failed run (out of memory, say) is in the report; the finished ones still count
        print(f"warning: compare ({label}) exited with code {code}", flush=True)
    clock.after_run = lambda: None
    stages = {k: v - before.get(k, 0.0) for k, v in clock.totals.items()}
    spent_all = spent_by_run()
    runs: dict[str, dict[str, Any]] = {}
    for metrics_file in sorted(out.glob("compare-*/*/metrics.json")):
        name = metrics_file.parent.name
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
        spent = spent_all.get(name, {})
        runs[name] = {
            "strategy": metrics["approach"],
            "wall_s": round(spent.get("wall", 0.0), 2),
            "stages_s": stage_table(spent, spent.get("wall", 0.0)),
            "epochs": len(metrics["history"]),
            "num_train": metrics["num_train"],
            "num_val": metrics["num_val"],
            "num_test": metrics["num_test"],
            "test_acc": metrics["test_acc"],
            "input": metrics.get("input"),
            "precision": {"no": "fp32"}.get(metrics.get("precision"), metrics.get("precision")),
        }
    return {
        "command": "vjepa-tune " + " ".join(argv),
        "exit_code": code,
        "wall_s": round(wall, 2),
        "stages_s": stage_table(stages, wall),
        "backbone_calls": BackboneCounter.calls - calls,
        "backbone_clips": BackboneCounter.clips - clips,
        "runs": runs,
    }


def extrapolate(full: dict[str, Any], sample: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The no-store grid's wall time at the full grid's size, from a smaller no-store grid.

    Training and evaluation scale with the clips they see (the backbone runs on every one without the store);
    everything else a run does (model builds, probing, checkpoints) is taken from the same run with the store, and
    the grid's own overhead (splits, report) from the store grid.
    """
    per_run: dict[str, Any] = {}
    for name, run in full["runs"].items():
        seen = sample["runs"].get(name)
        if seen is None:
            continue
        train_clips = seen["epochs"] * seen["num_train"]
        eval_clips = seen["epochs"] * seen["num_val"] + seen["num_test"]
        per_train = seen["stages_s"]["training"] / max(train_clips, 1)
        per_eval = seen["stages_s"]["evaluation"] / max(eval_clips, 1)
        stages = run["stages_s"]
        fixed = run["wall_s"] - stages["extraction"] - stages["training"] - stages["evaluation"]
        training = epochs * run["num_train"] * per_train
        evaluation = (epochs * run["num_val"] + run["num_test"]) * per_eval
        per_run[name] = {"s_per_training_clip": round(per_train, 4), "s_per_eval_clip": round(per_eval, 4),
                         "training_s": round(training, 1), "evaluation_s": round(evaluation, 1),
                         "other_s": round(fixed, 1), "wall_s": round(fixed + training + evaluation, 1)}
    grid_overhead = full["wall_s"] - sum(r["wall_s"] for r in full["runs"].values())
    estimate = grid_overhead + sum(r["wall_s"] for r in per_run.values())
    return {"runs": per_run, "grid_overhead_s": round(grid_overhead, 1), "wall_s": round(estimate, 1),
            "complete": len(per_run) == len(full["runs"])}


# ------------------------------------------------------------------------------------------------ report
STAGE_LABELS = {
    "decode_wait": "decode + transform (extraction waiting for clips, and the loop's own work)",
    "encode_host": "stacking, copying and queueing the backbone forward (host; on a CPU the forward itself)",
    "stage_in": "- of which stacking the clips into (pinned) host memory and queueing their copy",
    "forward_host": "- of which the forward's call (queueing its kernels; on a CPU the forward itself)",
    "copies_out": "queueing the features' copies to the host",
    "gpu_wait": "waiting for the GPU's features (host)",
    "store_wait": "waiting for the store's writes",
    "pooling": "queueing the pooler (head_only)",
    "extraction": "= extraction, total",
    "backbone_gpu": "backbone forward on the GPU (CUDA events; overlaps the host's stages above)",
    "store_writes": "feature store writes (background thread-seconds, overlapping the rest)",
    "training": "training epochs",
    "evaluation": "evaluation (validation + test)",
    "model_build": "model builds",
    "probe": "probing videos",
    "checkpoints": "checkpoints (best models; resume state snapshots and waits)",
    "state_writes": "resume state writes (background thread-seconds, overlapping the rest)",
    "report": "report and plots",
    "other": "other (splits, set-up, records)",
}


def goal_lines(store: dict[str, Any]) -> list[str]:
    """Issue 20's three goals (and issue 8's) against the store grid's figures."""
    st, wall = store["stages_s"], store["wall_s"]
    fixed = sum(st.get(name, 0.0) for name in FIXED_STAGES)
    rate = store["backbone_clips"] / st["extraction"] if st.get("extraction") else 0.0

    def verdict(ok: bool) -> str:
        return "met" if ok else "not met"

    return [f"Goals (issue 20): wall time {wall:.1f} s, goal {GOAL_S:.0f} s or less: {verdict(wall <= GOAL_S)} "
            f"(issue 8's {FIRST_GOAL_S:.0f} s: {verdict(wall < FIRST_GOAL_S)}); extraction inside the grid "
            f"{rate:.1f} clips/s ({store['backbone_clips']} clips in {st.get('extraction', 0.0):.1f} s), goal "
            f"{EXTRACTION_GOAL_CLIPS_S:.0f}: {verdict(rate >= EXTRACTION_GOAL_CLIPS_S)}; fixed costs {fixed:.1f} s "
            f"({', '.join(FIXED_STAGES)}), goal under {FIXED_GOAL_S:.0f} s: {verdict(fixed < FIXED_GOAL_S)}."]


def markdown(report: dict[str, Any]) -> str:
    from gpu_throughput import describe_environment

    s, synth = report["settings"], report.get("synthesis", {})
    lines = [
        f"# `compare` end to end: {len(s['strategies'])} strategies x {s['videos_per_class']} videos per class x "
        f"{s['epochs']} epochs on `{s['model']}`",
        "",
        f"Machine: {describe_environment(report['environment'])}.",
    ]
    if synth:
        lines.append(f"Data: {synth['videos']} synthetic videos ({s['size']}, {s['video_frames']} frames at "
                     f"{s['fps']} fps), synthesized in {synth['seconds']:.1f} s (not counted).")
    store = report.get("store")
    if store:
        first = next(iter(store["runs"].values()), None)
        if first:
            lines.append(f"Split {first['num_train']} train / {first['num_val']} val / {first['num_test']} test; "
                         f"precision {first['precision']}; `--num_workers {s['num_workers']}`; the backbone ran on "
                         f"{store['backbone_clips']} clips in {store['backbone_calls']} batches.")
        lines += ["", f"Command: `{store['command']}`", "", "| stage | seconds, store on |", "|---|---:|"]
        for key, label in STAGE_LABELS.items():
            lines.append(f"| {label} | {store['stages_s'].get(key, 0.0):.1f} |")
        lines += [f"| **wall time** | **{store['wall_s']:.1f}** |", "", *goal_lines(store), "",
                  "| run | wall s | extraction s | training s | evaluation s | other s | test acc |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, run in store["runs"].items():
            st = run["stages_s"]
            rest = run["wall_s"] - st["extraction"] - st["training"] - st["evaluation"]
            lines.append(f"| {name} | {run['wall_s']:.1f} | {st['extraction']:.1f} | {st['training']:.1f} | "
                         f"{st['evaluation']:.1f} | {rest:.1f} | {run['test_acc']:.3f} |")
    sweep = report.get("extraction_sweep")
    if sweep:
        lines += ["", "Extraction alone (head_only's, fresh store each), by decoding processes and backbone batch:", "",
                  "| --num_workers | --cache.batch_size | clips | extraction s | clips/s | backbone on the GPU s | "
                  "host queueing s (stacking / forward call) | host waiting for the GPU s | waiting for clips s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sweep:
            if "skipped" in row:
                lines.append(f"| {row['num_workers']} | {row['cache_batch_size']} | | | | | | | {row['skipped']} |")
                continue
            st = row["stages_s"]
            rate = row["clips"] / st["extraction"] if st["extraction"] else 0.0
            lines.append(f"| {row['num_workers']} | {row['cache_batch_size']} | {row['clips']} | "
                         f"{st['extraction']:.1f} | {rate:.1f} | {st['backbone_gpu']:.1f} | "
                         f"{st['encode_host'] + st['pooling'] + st['copies_out']:.1f} ({st['stage_in']:.1f} / "
                         f"{st['forward_host']:.1f}) | {st['gpu_wait']:.1f} | {st['decode_wait']:.1f} |")
    no_store = report.get("no_store")
    if no_store and store and "skipped" in no_store:
        lines += ["", f"Without the store: {no_store['skipped']}"]
    elif no_store and store:
        lines.append("")
        if no_store["mode"] == "full":
            lines.append(f"Without the store (`--cache.enabled false`), measured: {no_store['wall_s']:.1f} s "
                         f"({no_store['wall_s'] / store['wall_s']:.1f}x the store's wall time).")
        else:
            est = no_store["estimate"]
            sample = no_store["sample"]
            lines += [
                f"Without the store (`--cache.enabled false`), extrapolated from `{sample['command']}` "
                f"({sample['wall_s']:.1f} s): about {est['wall_s']:.0f} s for the full grid, "
                f"{est['wall_s'] / store['wall_s']:.1f}x the store's wall time.",
                "",
                "| run | s per training clip | s per eval clip | training s | evaluation s | other s | wall s |",
                "|---|---:|---:|---:|---:|---:|---:|",
            ]
            for name, run in est["runs"].items():
                lines.append(f"| {name} | {run['s_per_training_clip']:.4f} | {run['s_per_eval_clip']:.4f} | "
                             f"{run['training_s']:.1f} | {run['evaluation_s']:.1f} | {run['other_s']:.1f} | "
                             f"{run['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:vitl", help="Model spec passed to compare.")
    parser.add_argument("--strategies", default="head_only,pooler_and_head,lora,pooler_head_and_lora",
                        help="Comma-separated strategies (default: the guide's four).")
    parser.add_argument("--videos_per_class", type=int, default=200, help="Synthetic videos per class, all used.")
    parser.add_argument("--size", default="568x320", help="Video size WxH (568x320: 1080p after data prepare).")
    parser.add_argument("--video_frames", type=int, default=64, help="Frames per synthetic video.")
    parser.add_argument("--fps", type=int, default=30, help="Frame rate of the synthetic videos.")
    parser.add_argument("--epochs", type=int, default=5, help="--num_epochs of the grid.")
    parser.add_argument("--num_workers", type=int, default=0, help="--num_workers of the grid (decoding processes).")
    parser.add_argument("--synth_workers", type=int, default=None, help="Synthesis processes (default: all CPUs).")
    parser.add_argument("--cache_batch_size", type=int, default=None,
                        help="--cache.batch_size of the grid (clips per backbone pass; default: the CLI's).")
    parser.add_argument("--extraction_sweep", default="",
                        help="After the grid, time head_only's extraction (fresh store each) for each WORKERS:BATCH "
                             "pair, e.g. 14:8,8:8,8:32 (--num_workers : --cache.batch_size).")
    parser.add_argument("--deadline_s", type=float, default=None,
                        help="Start a sweep pair or the no-store run only if it is expected to end within this many "
                             "seconds of the start (judged from head_only's run in the grid).")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="cpu hides every GPU from the run.")
    parser.add_argument("--no_store", default="extrapolate", choices=["extrapolate", "full", "skip"],
                        help="How to get the grid's cost without the feature store.")
    parser.add_argument("--no_store_videos_per_class", type=int, default=20, help="Split size for extrapolate.")
    parser.add_argument("--no_store_epochs", type=int, default=1, help="Epochs for extrapolate.")
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one, removed).")
    parser.add_argument("--out", type=Path, default=Path("gpu_end_to_end.json"), help="JSON results.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the tables here.")
    args = parser.parse_args(argv)
    args.strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    pairs = [pair.split(":") for pair in args.extraction_sweep.split(",") if pair.strip()]
    if not all(len(p) == 2 and p[0].strip().isdigit() and p[1].strip().isdigit() and int(p[1]) >= 1 for p in pairs):
        parser.error(f"--extraction_sweep takes WORKERS:BATCH pairs such as 14:8,8:32, got {args.extraction_sweep!r}")
    args.extraction_sweep = [(int(workers), int(batch)) for workers, batch in pairs]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch starts: accelerate then picks the CPU
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # gpu_throughput beside this file
        sys.path.insert(0, here)
    import torch
    from gpu_throughput import environment, resolve_device, write_json_atomic

    from vjepa_tune.synth import synthesize

    device = resolve_device(args.device)
    work = args.work or Path(tempfile.mkdtemp(prefix="vjepa-e2e-"))
    script_started = time.perf_counter()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["pinned_staging"] = device.type == "cuda"  # what extraction.Encoding chooses
    report: dict[str, Any] = {"environment": environment(device), "settings": settings, "goal_s": GOAL_S}

    def too_late(expected_s: float) -> str | None:
        return late_start(args.deadline_s, time.perf_counter() - script_started, expected_s)

    def save() -> None:
        write_json_atomic(args.out, report)
        if args.markdown is not None:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(markdown(report), encoding="utf-8")

    save()
    cuda = device.type == "cuda"
    clock = StageClock(synchronize=torch.cuda.synchronize if cuda else (lambda: None),
                       gpu_event=(lambda: torch.cuda.Event(enable_timing=True)) if cuda else None)

    def progress(snapshot: dict[str, Any]) -> None:
        """The finished runs of the grid in progress, kept should a time limit stop it; dropped at the end."""
        report["in_progress"] = snapshot
        save()
    try:
        print(f"synthesizing {4 * args.videos_per_class} videos in {work / 'videos'}", flush=True)
        started = time.perf_counter()
        summary = synthesize(work / "videos", videos_per_class=args.videos_per_class, size=args.size,
                             frames=args.video_frames, fps=args.fps, seed=0, workers=args.synth_workers,
                             progress=False)
        report["synthesis"] = {"videos": summary.num_files, "seconds": round(time.perf_counter() - started, 1)}
        save()

        instrument(clock)
        full_size = ["--num_epochs", str(args.epochs), "--data.videos_per_class", str(args.videos_per_class)]

        def compare_argv(strategies: list[str], workers: int, store: Path, batch: int | None) -> list[str]:
            argv = ["compare", "--data.root", str(summary.root), "--model", args.model, "--strategies",
                    ",".join(strategies), "--num_workers", str(workers), "--cache.dir", str(store)]
            return argv + (["--cache.batch_size", str(batch)] if batch is not None else [])

        common = compare_argv(args.strategies, args.num_workers, work / "store", args.cache_batch_size)
        store_argv = [*common, *full_size, "--out", str(work / "runs-store")]
        report["store"] = run_grid("store on", store_argv, clock, progress)
        report.pop("in_progress", None)
        save()
        print(markdown(report), flush=True)
        # After the grid, so that the grid does not find the random model built or the videos probed already.
        head_only = report["store"]["runs"].get("head_only", {})
        expected = head_only.get("wall_s", report["store"]["wall_s"])  # a pair repeats head_only's run
        for workers, batch in args.extraction_sweep:
            if reason := too_late(expected):
                report.setdefault("extraction_sweep", []).append(
                    {"num_workers": workers, "cache_batch_size": batch, "skipped": reason})
                save()
                continue
            name = f"sweep-{workers}w-{batch}b"
            argv = [*compare_argv(["head_only"], workers, work / name / "store", batch), *full_size,
                    "--out", str(work / name / "runs")]
            grid = run_grid(f"extraction, {workers} workers, batch {batch}", argv, clock)
            report.setdefault("extraction_sweep", []).append({
                "num_workers": workers, "cache_batch_size": batch, "clips": grid["backbone_clips"],
                "wall_s": grid["wall_s"], "stages_s": grid["stages_s"]})
            expected = grid["wall_s"]
            save()
            shutil.rmtree(work / name, ignore_errors=True)  # 12 GB of features each

        off = [*common, "--cache.enabled", "false"]
        no_store_expected = 7.4 * report["store"]["wall_s"] if args.no_store == "full" else 40.0
        if args.no_store != "skip" and (reason := too_late(no_store_expected)):
            report["no_store"] = {"mode": args.no_store, "skipped": reason}
        elif args.no_store == "full":
            measured = run_grid("store off", [*off, *full_size, "--out", str(work / "runs-off")], clock, progress)
            report["no_store"] = {"mode": "full", "wall_s": measured["wall_s"], "measured": measured}
        elif args.no_store == "extrapolate":
            sample_size = ["--num_epochs", str(args.no_store_epochs),
                           "--data.videos_per_class", str(args.no_store_videos_per_class)]
            sample_argv = [*off, *sample_size, "--out", str(work / "runs-off-sample")]
            sample = run_grid("store off, sample", sample_argv, clock, progress)
            report["no_store"] = {"mode": "extrapolate", "sample": sample,
                                  "estimate": extrapolate(report["store"], sample, args.epochs)}
        report.pop("in_progress", None)
        save()
    finally:
        clock.restore()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
