"""Two CPU processes (torchrun, gloo) give the results of one process with the same effective batch.

The training set of the fixture (16 clips) is split into optimizer steps of 6 (batch 1 x 3 steps x 2 processes vs
batch 2 x 3 steps x 1 process): the last step holds 4 clips, so the processes' shards of it are uneven in the
micro-batches they make, the case that padding or DistributedDataParallel would get wrong.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from vjepa_tune.training import distributed

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(args: list[str], processes: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
                if processes > 1 else [sys.executable])
    done = subprocess.run([*launcher, "-m", "vjepa_tune", *args], env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _metrics(out: Path) -> dict:
    (run,) = [d for d in out.iterdir() if d.is_dir() and (d / "metrics.json").exists()]
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("strategy", ["pooler_and_head", "lora"])
def test_two_processes_match_one_with_the_same_effective_batch(synth_root: Path, tmp_path: Path,
                                                               strategy: str) -> None:
    common = ["train", "--model", "random:tiny", "--data.root", str(synth_root), "--strategy", strategy,
              "--lora.dropout", "0", "--num_epochs", "2", "--accumulation_steps", "3", "--learning_rate", "1e-3"]
    one_out, two_out = tmp_path / "one", tmp_path / "two"
    _run([*common, "--batch_size", "2", "--out", str(one_out), "--cache.dir", str(tmp_path / "store1")], 1)
    log = _run([*common, "--batch_size", "1", "--out", str(two_out), "--cache.dir", str(tmp_path / "store2")], 2)

    one, two = _metrics(one_out), _metrics(two_out)
    assert two["effective_batch"] == one["effective_batch"] == 6
    assert "effective batch 1 x 3 x 2 = 6" in log
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["val_acc"] == a["val_acc"]
    assert two["test"]["confusion"] == one["test"]["confusion"]
    assert sum(map(sum, two["test"]["confusion"])) == two["num_test"], "every test video counted exactly once"
    assert len(list(csv.DictReader((two_out / "experiments.csv").open()))) == 1, "only the main process records"
    assert len([d for d in two_out.iterdir() if d.is_dir()]) == 1

    extracted = re.search(r"(\d+) clips extracted by 2 processes \((\d+), (\d+)\)", log)
    assert extracted, log
    total, first, second = map(int, extracted.groups())
    assert total == first + second == 16 * 2 + 8, "each view of each video extracted once, by one process"
    assert len(list((tmp_path / "store2").rglob("*.npy"))) == total


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_result(synth_root: Path, tmp_path: Path) -> None:
    common = ["train", "--model", "random:tiny", "--data.root", str(synth_root), "--strategy", "lora",
              "--lora.dropout", "0", "--batch_size", "1", "--num_epochs", "3", "--cache.enabled", "false"]
    _run([*common, "--out", str(tmp_path / "whole")], 2)

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    victim = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "vjepa_tune",
         *common, "--out", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    while not list(killed.glob("*/checkpoint/state.pt")):
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    launcher = psutil.Process(victim.pid)
    for proc in [*launcher.children(recursive=True), launcher]:  # both workers and torchrun, mid-epoch 2
        proc.send_signal(signal.SIGKILL)
    victim.wait()
    assert not list(killed.glob("*/metrics.json"))

    log = _run([*common, "--out", str(killed), "--resume", "auto"], 2)
    assert "resumed after epoch 1" in log
    a, b = _metrics(tmp_path / "whole"), _metrics(killed)
    assert [h["train_loss"] for h in b["history"]] == pytest.approx([h["train_loss"] for h in a["history"]])
    assert [h["val_acc"] for h in b["history"]] == [h["val_acc"] for h in a["history"]]
    assert b["test"]["confusion"] == a["test"]["confusion"]
    assert len(list(csv.DictReader((killed / "experiments.csv").open()))) == 1


def test_shard_splits_contiguously_and_covers_everything() -> None:
    items = list(range(7))
    parts = [distributed.shard(items, i, 3) for i in range(3)]
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    assert distributed.shard(items[:1], 1, 2) == []


def test_compare_and_evaluate_with_two_processes_match_one(synth_root: Path, tmp_path: Path) -> None:
    common = ["--model", "random:tiny", "--data.root", str(synth_root), "--strategies", "head_only,lora",
              "--lora.dropout", "0", "--num_epochs", "1", "--accumulation_steps", "2"]
    _run(["compare", *common, "--batch_size", "2", "--out", str(tmp_path / "one"),
          "--cache.dir", str(tmp_path / "s1")], 1)
    _run(["compare", *common, "--batch_size", "1", "--out", str(tmp_path / "two"),
          "--cache.dir", str(tmp_path / "s2")], 2)
    (one,) = (tmp_path / "one").glob("compare-*")
    (two,) = (tmp_path / "two").glob("compare-*")
    assert (two / "report.md").exists() and len(list((tmp_path / "two").glob("compare-*"))) == 1
    for name in ("head_only", "lora"):
        a = json.loads((one / name / "metrics.json").read_text())
        b = json.loads((two / name / "metrics.json").read_text())
        assert b["history"][0]["train_loss"] == pytest.approx(a["history"][0]["train_loss"], abs=1e-5)
        assert b["test"]["confusion"] == a["test"]["confusion"]
    assert len(list(csv.DictReader((tmp_path / "two" / "experiments.csv").open()))) == 2

    _run(["evaluate", str(two / "lora"), "--num_clips", "2", "--json"], 1)
    single = json.loads((two / "lora" / "evaluation" / "test-2x1" / "metrics.json").read_text())
    (two / "lora" / "evaluation" / "test-2x1" / "metrics.json").unlink()
    _run(["evaluate", str(two / "lora"), "--num_clips", "2", "--json"], 2)
    double = json.loads((two / "lora" / "evaluation" / "test-2x1" / "metrics.json").read_text())
    assert double["num_videos"] == single["num_videos"] == b["num_test"]
    assert double["confusion"] == single["confusion"]
    assert double["top1"] == single["top1"]
