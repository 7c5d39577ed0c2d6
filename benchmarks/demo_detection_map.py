"""Detection measured as the field measures it, on the demo's runs: THUMOS14's mAP at tIoU 0.3-0.7 (issue 18).

Long recordings of the four demo actions with idle stretches between them (`synth --long`: one performer in one
scene, drawn like the demo's videos: 64 px, 25 fps, variety 0, each action in a 32-frame clip, 0.5-3 s idle
before each), scored with `evaluate --detection` for each of the demo's runs (trained on the bundled `tiny`):
windows of the run's clip length (1.28 s) every 0.64 s (the defaults), the same with every window also mirrored
(`--flip true`), and windows of half a clip every 0.32 s. Prints per run the mAP at each tIoU and their mean, AP
per class at 0.5, the share of time labelled right (all of it, and inside actions only: the runs have no
background class), and the time the export of the same videos' features for ActionFormer took.

    .venv/bin/python benchmarks/demo_detection_map.py [--runs COMPARE_DIR] [--videos 6] [--actions 16]
    # default: run the demo first (about a minute)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import vjepa_tune  # noqa: E402,F401  - sets the OpenMP wait policy before torch loads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None, help="A compare folder (default: run the demo first).")
    parser.add_argument("--videos", type=int, default=6, help="Long recordings (seed 1).")
    parser.add_argument("--actions", type=int, default=16, help="Actions per recording.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the recordings.")
    args = parser.parse_args()

    from vjepa_tune.demo import DEMO_FPS, DEMO_FRAMES, DEMO_SIZE, DEMO_VARIETY, run_demo
    from vjepa_tune.features import write_features
    from vjepa_tune.inference.detection import evaluate_detection_run
    from vjepa_tune.synth import synthesize_long

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        compare_dir = args.runs or run_demo(work / "runs", data_dir=work / "data", cache_dir=work / "store",
                                            log=lambda _: None).compare_dir
        long = synthesize_long(work / "long", videos=args.videos, actions=args.actions, idle_s=(0.5, 3.0),
                               size=DEMO_SIZE, frames=DEMO_FRAMES, fps=DEMO_FPS, seed=args.seed,
                               variety=DEMO_VARIETY, progress=False)
        print(long.describe().splitlines()[0])
        runs = sorted(p.parent for p in compare_dir.glob("*/metrics.json"))
        variants = [("windows of the run's clip (1.28 s) every 0.64 s, one view", None, False),
                    ("the same, every window also mirrored (--flip true)", None, True),
                    ("windows of half a clip (0.64 s) every 0.32 s, one view", 0.64, False)]
        for title, window_s, flip in variants:
            print(f"\n{title}")
            print(f"{'run':<22} {'mAP@0.3':>8} {'0.4':>6} {'0.5':>6} {'0.6':>6} {'0.7':>6} {'avg':>6} "
                  f"{'avg 95% CI':>11}  "
                  f"{'AP@0.5 other / sit / stand / wave':<36} {'time right':>10} {'in actions':>10} {'proposals':>9}")
            for run_dir in runs:
                evaluation = evaluate_detection_run(run_dir, long.annotations, long.videos_dir, window_s=window_s,
                                                    flip=flip, out_dir=work / "eval" / f"{run_dir.name}-{title}",
                                                    progress=False, log=lambda _: None)
                result, shares = evaluation.result, evaluation.time_labelling
                at_half = result.tiou_thresholds.index(0.5)
                per_class = " / ".join(f"{100 * result.ap_per_class[c][at_half]:.1f}"
                                       for c in ("other", "sitting_down", "standing_up", "waving"))
                maps = " ".join(f"{100 * v:6.1f}" for v in result.map_per_threshold)
                low, high = evaluation.intervals.average_map
                print(f"{run_dir.name:<22} {maps[0:6]:>8} {maps[7:]} {100 * result.average_map:6.1f} "
                      f"{f'({100 * low:.0f}-{100 * high:.0f})':>11}  "
                      f"{per_class:<36} {100 * (shares.share_right or 0):9.1f}% "
                      f"{100 * (shares.share_right_in_actions or 0):9.1f}% "
                      f"{sum(result.num_detections.values()):>9}")
        started = time.perf_counter()
        summary = write_features("tiny", [long.videos_dir], work / "features", output_format="actionformer",
                                 annotations=long.annotations, progress=False, log=lambda _: None)
        elapsed = time.perf_counter() - started
        print(f"\nfeatures --format actionformer of the {args.videos} recordings with tiny (window 16, stride 4): "
              f"{summary.rows} rows in {elapsed:.1f} s ({summary.rows / elapsed:.0f} windows/s, model load included)")


if __name__ == "__main__":
    main()
