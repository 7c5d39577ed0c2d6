"""`vjepa-tune demo`: the guide's whole experiment on a laptop, with no GPU and no network.

It synthesizes the four-action data set (sitting down, standing up, waving, other) as real encoded videos, once
(at the easy end of `synth --variety`, see DEMO_VARIETY), then runs the guide's four strategies through `compare`
on the bundled pretrained `tiny` model with the guide's hyperparameters (training crops of the whole frame,
see DEMO_CROP_SCALE), and prints the guide's results table. The data set is fixed by the defaults below; `--data_seed`
draws another one of the same kind (BENCHMARKS.md records the figures for seeds 0, 1 and 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.compare.grid import GUIDE_STRATEGIES, CompareGrid
from vjepa_tune.config import CacheConfig, DataConfig, TrainConfig

if TYPE_CHECKING:
    from vjepa_tune.compare.recipe import CompareResult

DEMO_VIDEOS_PER_CLASS = 40
DEMO_SIZE = (64, 64)
DEMO_FRAMES = 32
DEMO_FPS = 25
DEMO_VARIETY = 0.0
"""`synth --variety`: the easy end, large, centred, thick figures on flat backgrounds with a still camera (the
motions, timing, body proportions and colours still vary). At 64 px a 1.8 M-parameter model cannot yet see the
thin, small figures of full variety well enough (docs/tiny_model.md has the measurements)."""

DEMO_CROP_SCALE = [1.0, 1.0]
"""`--data.crop_scale` of the demo's training crops: the whole frame (RandomResizedCrop then only varies the aspect
ratio; flips stay). The guide's (torchvision's) 0.08-1 at 64 px often crops an 18-pixel patch with no figure in
it, a wrong label for that epoch's view. Everything else is the guide's. docs/tiny_model.md has the figures."""


def demo_data_dir(data_seed: int) -> Path:
    base = os.environ.get("VJEPA_TUNE_CACHE")
    root = Path(base).parent if base else Path.home() / ".cache" / "vjepa-tune"
    w, h = DEMO_SIZE
    name = f"actions-{DEMO_VIDEOS_PER_CLASS}x{w}x{h}x{DEMO_FRAMES}-variety{DEMO_VARIETY:g}-seed{data_seed}"
    return root / "demo-data" / name


def run_demo(out: Path, *, data_seed: int = 0, data_dir: Path | None = None, cache_dir: Path | None = None,
             model: str = "tiny", log: Callable[[str], None] = print) -> CompareResult:
    """Synthesize (once) and run the four guide strategies; returns the `CompareResult`."""
    # here, not at the top: the command line starts without torch
    from vjepa_tune.compare.recipe import run_compare
    from vjepa_tune.synth import synthesize

    data_dir = data_dir or demo_data_dir(data_seed)
    summary = synthesize(data_dir, videos_per_class=DEMO_VIDEOS_PER_CLASS, size=DEMO_SIZE, frames=DEMO_FRAMES,
                         fps=DEMO_FPS, seed=data_seed, variety=DEMO_VARIETY)
    log(f"demo data: {summary.num_files} videos in {data_dir} ({summary.written} written now)")
    base = TrainConfig(model=model, out=out,
                       data=DataConfig(root=data_dir, format="folder", crop_scale=list(DEMO_CROP_SCALE)),
                       cache=CacheConfig(dir=cache_dir))
    return run_compare(base, CompareGrid(strategies=list(GUIDE_STRATEGIES)), log=log)


def build(p: ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_runs"), help="Folder for the runs, report and CSV.")
    p.add_argument("--data_seed", type=int, default=0, help="Seed of the synthetic data set (0 = the demo's).")
    p.add_argument("--data_dir", type=Path | None, default=None,
                   help="Where to synthesize the data (default: ~/.cache/vjepa-tune/demo-data/...).")
    p.add_argument("--cache.dir", type=Path | None, default=None, help="Feature store folder.")
    p.add_argument("--model", type=str, default="tiny", help="Model to fine-tune (default: the bundled tiny).")


def run(args: Namespace) -> int:
    cache_dir = (args.as_dict().get("cache") or {}).get("dir")
    result = run_demo(Path(args.out), data_seed=args.data_seed, data_dir=args.data_dir,
                      cache_dir=Path(cache_dir) if cache_dir else None, model=args.model)
    return 1 if result.failed else 0
