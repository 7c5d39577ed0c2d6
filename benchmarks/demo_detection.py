"""How much of a long video the demo's best run labels correctly (issue 6's detection goal: at least 80%).

Eight 2-second synthetic clips of the four demo actions (each twice, a new scene at each cut) are joined into one
video; `predict_windows` labels it with windows as long as a demo training video, a quarter of one apart, and every
frame's window label is compared with the truth. Prints the fraction and the segments.

    .venv/bin/python benchmarks/demo_detection.py [--run RUN_DIR]     # default: run `vjepa-tune demo` first
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import vjepa_tune  # noqa: E402,F401  - sets the OpenMP wait policy before torch loads

SEQUENCE = ["sitting_down", "waving", "standing_up", "other"] * 2


def best_demo_run(work: Path) -> Path:
    from vjepa_tune.demo import run_demo

    result = run_demo(work / "runs", data_dir=work / "data", cache_dir=work / "store")
    runs = [json.loads(p.read_text()) | {"dir": p.parent} for p in result.compare_dir.glob("*/metrics.json")]
    return max(runs, key=lambda m: m["best_val_acc"])["dir"]


def write_long_video(path: Path, classes: list[str], seconds_per_clip: float = 2.0) -> list[str]:
    """Join one fresh clip per entry of `classes`, each looking like the demo's videos (its size and variety) with
    a new scene at each cut, into one video at the demo's frame rate; returns the true class of every frame."""
    import numpy as np

    from vjepa_tune.data.synthetic import draw_class_spec, ease_figure_spec, render_spec, write_video
    from vjepa_tune.demo import DEMO_FPS, DEMO_SIZE, DEMO_VARIETY
    from vjepa_tune.randomness import keyed_random

    frames = max(2, round(seconds_per_clip * DEMO_FPS))
    clips = []
    for i, name in enumerate(classes):
        rng = keyed_random("long video", i)
        spec = ease_figure_spec(draw_class_spec(name, rng, frames, DEMO_SIZE), 1.0 - DEMO_VARIETY, rng)
        clips.append(render_spec(spec))
    write_video(path, np.concatenate(clips), fps=DEMO_FPS)
    return [name for name in classes for _ in range(frames)]


def labelled_fraction(run_dir: Path, work: Path) -> float:
    from vjepa_tune import load_run
    from vjepa_tune.demo import DEMO_FPS, DEMO_FRAMES

    video = work / "actions.mp4"
    truth = write_long_video(video, SEQUENCE)
    window_s = DEMO_FRAMES / DEMO_FPS
    result = load_run(run_dir).predict_windows(video, window_s=window_s, stride_s=window_s / 4, min_score=0)
    predicted = result.label_at((i + 0.5) / DEMO_FPS for i in range(len(truth)))
    for segment in result.segments:
        print(f"  {segment.label:<14} {segment.start_s:6.2f}-{segment.end_s:6.2f} s  score {segment.score:.2f}")
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="A trained run (default: the demo's best run).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_dir = args.run or best_demo_run(work)
        fraction = labelled_fraction(run_dir, work)
    print(f"{run_dir}: {fraction:.1%} of the long video labelled correctly (goal: at least 80%)")


if __name__ == "__main__":
    main()
