"""How long commands that need no model take from a fresh process: `cache list`, `data check`, `synth`.

    python benchmarks/startup.py [--repeats 7] [--src DIR]

Each command runs as `python -m vjepa_tune ...` in a new process, `--repeats` times, and the wall time of the
whole process (interpreter start, imports, the command's own work, exit) is taken; the median is printed.
`train --help` is the reference: a command line that imports no deep-learning library. `data check` probes a small
synthetic data set (4 classes x 10 videos, 64 px, 32 frames) made once beforehand; `synth` writes 4 videos
(1 per class, 64 px, 16 frames, one process) into a fresh folder each time. Goal (issue 15): `cache list`,
`data check` and `synth` start in under 1.5 s on the development machine. `--src` points at another checkout's
`src` (to measure a version before a change). The figures are in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vjepa_tune", *argv], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"vjepa-tune {' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="Fresh processes per command.")
    parser.add_argument("--src", type=Path, default=SRC, help="The vjepa_tune sources to measure.")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(args.src), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="vjepa-startup-") as work:
        work_dir = Path(work)
        data = work_dir / "data"
        store = work_dir / "store"
        store.mkdir()
        _time(["synth", str(data), "--videos_per_class", "10", "--size", "64", "--frames", "32"], env)
        commands: dict[str, list[str] | None] = {
            "train --help (reference)": ["train", "--help"],
            "cache list": ["cache", "list", "--cache.dir", str(store)],
            "data check (40 videos)": ["data", "check", "--data.root", str(data)],
            "synth (4 videos)": None,  # a new folder each run
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(args.repeats):
            for name, argv in commands.items():
                if argv is None:
                    argv = ["synth", str(work_dir / f"synth-{repeat}"), "--videos_per_class", "1", "--size", "64",
                            "--frames", "16", "--workers", "1"]
                times[name].append(_time(argv, env))

    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {args.repeats} fresh processes each\n")
    print("| command | median | min | max |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        print(f"| `{name}` | {statistics.median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s |")


if __name__ == "__main__":
    main()
