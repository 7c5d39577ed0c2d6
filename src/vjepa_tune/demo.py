"""`vjepa-tune demo`: the guide's whole experiment on a laptop, with no GPU and no network.

It synthesizes the four-action data set (sitting down, standing up, waving, other) as real encoded videos, once,
then runs the guide's four strategies through `compare` on the bundled pretrained `tiny` model with the guide's
hyperparameters, and prints the guide's results table. The data set is fixed by the defaults below; `--data_seed`
draws another one of the same kind (BENCHMARKS.md records the figures for seeds 0, 1 and 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vjepa_tune.cli import Command, register
from vjepa_tune.config import CacheConfig, DataConfig, TrainConfig

DEMO_VIDEOS_PER_CLASS = 40
DEMO_SIZE = (64, 64)
DEMO_FRAMES = 32
DEMO_FPS = 25


def demo_data_dir(data_seed: int) -> Path:
    base = os.environ.get("VJEPA_TUNE_CACHE")
    root = Path(base).parent if base else Path.home() / ".cache" / "vjepa-tune"
    w, h = DEMO_SIZE
    return root / "demo-data" / f"actions-{DEMO_VIDEOS_PER_CLASS}x{w}x{h}x{DEMO_FRAMES}-seed{data_seed}"


def run_demo(out: Path, *, data_seed: int = 0, data_dir: Path | None = None, cache_dir: Path | None = None,
             model: str = "tiny", log: Any = print) -> Any:
    """Synthesize (once) and run the four guide strategies; returns the `CompareResult`."""
    from vjepa_tune.compare import GUIDE_STRATEGIES, CompareGrid, run_compare
    from vjepa_tune.data.synthetic import synthesize

    data_dir = data_dir or demo_data_dir(data_seed)
    summary = synthesize(data_dir, videos_per_class=DEMO_VIDEOS_PER_CLASS, size=DEMO_SIZE, frames=DEMO_FRAMES,
                         fps=DEMO_FPS, seed=data_seed)
    log(f"demo data: {summary.num_files} videos in {data_dir} ({summary.written} written now)")
    base = TrainConfig(model=model, out=out, data=DataConfig(root=data_dir, format="folder"),
                       cache=CacheConfig(dir=cache_dir))
    return run_compare(base, CompareGrid(strategies=list(GUIDE_STRATEGIES)), log=log)


def _build(p: Any) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_runs"), help="Folder for the runs, report and CSV.")
    p.add_argument("--data_seed", type=int, default=0, help="Seed of the synthetic data set (0 = the demo's).")
    p.add_argument("--data_dir", type=Path | None, default=None,
                   help="Where to synthesize the data (default: ~/.cache/vjepa-tune/demo-data/...).")
    p.add_argument("--cache.dir", type=Path | None, default=None, help="Feature store folder.")
    p.add_argument("--model", type=str, default="tiny", help="Model to fine-tune (default: the bundled tiny).")


def _run(a: Any) -> int:
    values = a.as_dict()
    cache_dir = (values.get("cache") or {}).get("dir")
    result = run_demo(Path(a.out), data_seed=a.data_seed, data_dir=a.data_dir,
                      cache_dir=Path(cache_dir) if cache_dir else None, model=a.model)
    return 1 if result.failed else 0


register(Command("demo", "Run the guide's four strategies on the bundled tiny model and synthetic videos.",
                 _build, _run))
