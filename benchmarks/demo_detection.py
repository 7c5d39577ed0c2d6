"""How much of a long video the demo's runs label correctly (issue 6's detection goal: at least 80%).

Fresh synthetic clips of the four demo actions, each in its own scene and drawn like the demo's videos (their size
and variety), are joined back to back into one edited video (`render_joined_clips`); `predict_windows` labels it
with windows as long as a demo training video, a quarter of one apart, and every frame's label (`label_at`) is
compared with the clip it comes from. For clips of 1.28 s (a demo video), 2 s and 3 s, prints per run the
fraction of each of `--videos` videos (seeds 1, 2, ...) labelled right with the windows laid out shot by shot (the
default) and their mean, the same with every window also mirrored (`--flip true`), and the first video's fraction
without looking for cuts.

    .venv/bin/python benchmarks/demo_detection.py [--runs COMPARE_DIR] [--clips 24] [--videos 6]
    # default: run the demo first
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import vjepa_tune  # noqa: E402,F401  - sets the OpenMP wait policy before torch loads

ACTIONS = ["sitting_down", "waving", "standing_up", "other"]


def demo_runs(work: Path) -> Path:
    from vjepa_tune.demo import run_demo

    return run_demo(work / "runs", data_dir=work / "data", cache_dir=work / "store").compare_dir


def write_long_video(path: Path, num_clips: int, frames_per_clip: int, seed: int) -> list[str]:
    """`num_clips` demo-like clips, the four actions in turn, joined into `path`; the true class of every frame."""
    from vjepa_tune.demo import DEMO_FPS, DEMO_SIZE, DEMO_VARIETY
    from vjepa_tune.synth import render_joined_clips, write_video

    classes = [ACTIONS[i % len(ACTIONS)] for i in range(num_clips)]
    video = render_joined_clips(classes, frames_per_clip, seed, size=DEMO_SIZE, variety=DEMO_VARIETY)
    write_video(path, video.frames, fps=DEMO_FPS)
    return video.frame_labels()


def labelled_fraction(run: Any, video: Path, truth: list[str], *, cuts: bool = True, flip: bool = False) -> float:
    """The fraction of `video`'s frames that `run` (a loaded run) labels as `truth` says, windows as long as a demo
    video."""
    from vjepa_tune.demo import DEMO_FPS, DEMO_FRAMES

    window_s = DEMO_FRAMES / DEMO_FPS
    result = run.predict_windows(video, window_s=window_s, stride_s=window_s / 4, min_score=0, progress=False,
                                 cuts=cuts, flip=flip)
    predicted = result.label_at((i + 0.5) / DEMO_FPS for i in range(len(truth)))
    return sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=None, help="A compare folder (default: run the demo first).")
    parser.add_argument("--clips", type=int, default=24, help="Clips joined into each long video.")
    parser.add_argument("--videos", type=int, default=6, help="Long videos per clip length (seeds 1, 2, ...).")
    args = parser.parse_args()
    from vjepa_tune import load_run

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        compare_dir = args.runs or demo_runs(work)
        runs = sorted(p.parent for p in compare_dir.glob("*/metrics.json"))
        print(f"{args.videos} videos of {args.clips} joined clips per clip length; windows of one demo video")
        for frames in (32, 50, 75):
            videos = []
            for seed in range(1, args.videos + 1):
                path = work / f"long-{frames}-{seed}.mp4"
                videos.append((path, write_long_video(path, args.clips, frames, seed)))
            for run_dir in runs:
                run = load_run(run_dir)
                shots = [labelled_fraction(run, path, truth) for path, truth in videos]
                mirrored = [labelled_fraction(run, path, truth, flip=True) for path, truth in videos]
                uncut = labelled_fraction(run, *videos[0], cuts=False)
                print(f"{run_dir.name:<22} clips of {frames / 25:.2f} s  shot by shot: {_summary(shots)}  "
                      f"mirrored too: {_summary(mirrored)}  no cut search (video 1): {uncut:.1%}")


def _summary(fractions: list[float]) -> str:
    return f"mean {sum(fractions) / len(fractions):.1%} ({' '.join(f'{f:.1%}' for f in fractions)})"


if __name__ == "__main__":
    main()
