"""Make the run-folder fixtures under tests/fixtures/runs/: run folders as users' existing runs hold them.

Run once, at commit dc2d1a0 (the code users had when the fixtures were made), and committed; later code must keep
loading, resuming, evaluating, predicting and exporting them (tests/test_run_fixtures.py). Do not remake them with
newer code: their point is that they were written by the old one.

    python scripts/make_run_fixtures.py tests/fixtures/runs

Writes:

- `data/`: the videos both runs were trained on (`vjepa-tune synth --videos_per_class 6 --size 64 --frames 32`);
- `finished/`: `train --strategy lora --model tiny --num_epochs 1`, finished (metrics.json, the best model);
- `interrupted/`: the same with `--num_epochs 2`, killed (os._exit, as SIGKILL leaves it) as its second epoch
  began, after the first epoch's checkpoint was written.

Their config.yaml files and experiments.csv name the folders they had here, all under `WORK` below (data, runs and
feature store); a test copies the fixtures and substitutes where it put them, as a user whose files moved would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

WORK = "/tmp/vjepa-tune-run-fixtures"

_KILL_IN_SECOND_EPOCH = """
import os, sys
from vjepa_tune.training import loop
real = loop._train_epoch
def killed(*args, **kwargs):
    if args[11] == 1:  # the epoch argument: the second epoch has begun, the first one's checkpoint is on disk
        os._exit(137)
    return real(*args, **kwargs)
loop._train_epoch = killed
from vjepa_tune.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


_PLAIN = "import sys; from vjepa_tune.cli import main; raise SystemExit(main(sys.argv[1:]))"


def _train(args: list[str], kill: bool) -> None:
    code = _KILL_IN_SECOND_EPOCH if kill else _PLAIN
    result = subprocess.run([sys.executable, "-c", code, *args], check=False)
    expected = 137 if kill else 0
    if result.returncode != expected:
        raise SystemExit(f"training exited with {result.returncode}, expected {expected}")


def main() -> None:
    target = Path(sys.argv[1])
    if target.exists():
        raise SystemExit(f"{target} exists; remove it first")
    work = Path(WORK)
    if work.exists():
        shutil.rmtree(work)
    data = work / "data"
    store = work / "store"
    from vjepa_tune.cli import main as cli

    assert cli(["synth", str(data), "--videos_per_class", "6", "--size", "64", "--frames", "32", "--seed", "0",
                "--workers", "1"]) == 0
    common = ["train", "--strategy", "lora", "--model", "tiny", "--data.root", str(data), "--out", str(work / "runs"),
              "--cache.dir", str(store), "--seed", "42"]
    _train([*common, "--run_name", "finished", "--num_epochs", "1"], kill=False)
    _train([*common, "--run_name", "interrupted", "--num_epochs", "2"], kill=True)
    target.mkdir(parents=True)
    shutil.copytree(data, target / "data")
    for name in ("finished", "interrupted"):
        shutil.copytree(work / "runs" / name, target / name)
    shutil.copy2(work / "runs" / "experiments.csv", target / "experiments.csv")
    shutil.rmtree(store)
    os.system(f"du -sh {target}/*")


if __name__ == "__main__":
    main()
