"""The files a run leaves behind (config.yaml, splits.json, metrics.json) and the shared experiments.csv.

Names, keys and columns here are the contract of CLI.md, "Outputs": scripts and other tools read them. Every
run file is written to a temporary file and renamed into place, so a crash or a full disk never leaves half a
file where a finished one is expected. `experiments.csv` is shared by every run under one `--out`, and two
runs may finish at once (a `compare` grid spread over processes): each row is appended under an exclusive lock
in a single write.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.metadata
import io
import json
import math
import os
import platform
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from vjepa_tune.config import TrainConfig, from_plain, to_plain
from vjepa_tune.data.fingerprints import DEFAULT_WORKERS
from vjepa_tune.data.overlap import SEEN_SPLITS, Overlap, TrainedOn, seen_in
from vjepa_tune.errors import BadInput

# Whole files are written by `vjepa_tune.files`; these names are re-exported here for their users.
from vjepa_tune.files import write_json_atomic as write_json_atomic
from vjepa_tune.files import write_text_atomic as write_text_atomic
from vjepa_tune.files import write_yaml_atomic as write_yaml_atomic

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a single O_APPEND write per row is the remaining safeguard.
    fcntl = None  # type: ignore[assignment]

CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.json"
EXPERIMENTS_FILE = "experiments.csv"
TRAIN_LOG_FILE = "train.log"
"""The console of the run, warnings included; a resumed run appends to it (`tracking/console_log.py`)."""

METRICS_REQUIRED_KEYS: tuple[str, ...] = (
    "approach",
    "model",
    "test_acc",
    "best_val_acc",
    "trainable_params",
    "total_params",
    "trainable_pct",
    "train_time_s",
    "num_train",
    "num_val",
    "num_test",
    "skipped_videos",
    "history",
    "versions",
)
HISTORY_REQUIRED_KEYS: tuple[str, ...] = ("epoch", "train_loss", "val_acc")
VERSIONS_REQUIRED_KEYS: tuple[str, ...] = ("python", "torch", "transformers", "peft", "vjepa_tune")

EXPERIMENT_COLUMNS: tuple[str, ...] = (
    # CLI.md's columns, in its order.
    "timestamp",
    "approach",
    "model",
    "dataset",
    "num_train",
    "num_val",
    "num_test",
    "videos_per_class",
    "learning_rate",
    "batch_size",
    "accumulation_steps",
    "num_epochs",
    "weight_decay",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "seed",
    "trainable_params",
    "total_params",
    "trainable_pct",
    "test_acc",
    "best_val_acc",
    "train_time_s",
    "run_dir",
    # Ours, after the contract's: what else decides whether two rows can be compared.
    "split_method",
    "frames_per_clip",
    "precision",
    "effective_batch",
    "skipped_videos",
    "best_epoch",
    "mean_class_acc",
    "macro_f1",
)

_VERSION_DISTRIBUTIONS = {
    "torch": "torch",
    "torchvision": "torchvision",
    "transformers": "transformers",
    "peft": "peft",
    "accelerate": "accelerate",
    "av": "av",
}


def versions() -> dict[str, str | None]:
    """Versions of Python and of the libraries that shape a result, for metrics.json (None: not installed).

    A library already imported reports its own `__version__`, which keeps build tags that package metadata
    drops (torch's `+cu130` says which CUDA build ran); torch is always imported for that reason. The others
    are read from package metadata, so nothing heavy is imported just to answer.
    """
    import torch

    from vjepa_tune import __version__

    found: dict[str, str | None] = {"python": platform.python_version()}
    for key, distribution in _VERSION_DISTRIBUTIONS.items():
        module_version = getattr(sys.modules.get(key), "__version__", None)
        if module_version is not None:
            found[key] = str(module_version)
            continue
        try:
            found[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[key] = None
    found["torch"] = str(torch.__version__)
    found["vjepa_tune"] = __version__
    return found


# ------------------------------------------------------------------------------------------------------------
# The files of one run.


def write_config_yaml(run_dir: Path, cfg: TrainConfig) -> Path:
    """Write the full resolved configuration (`vjepa-tune train --config RUN_DIR/config.yaml` repeats it)."""
    path = Path(run_dir) / CONFIG_FILE
    header = f"vjepa-tune train --config {path}\nThe full resolved configuration of this run."
    return write_yaml_atomic(path, to_plain(cfg), header=header)


def read_config_yaml(path: Path) -> TrainConfig:
    """Read a config.yaml back, refusing unknown keys; values are checked by `config.validate`, not here."""
    path = Path(path)
    try:
        values = yaml.load(path.read_text(encoding="utf-8"), Loader=_ConfigLoader)
    except FileNotFoundError:
        raise BadInput(f"configuration file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read configuration file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"configuration file {path} is not valid YAML: {exc}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise BadInput(
            f"configuration file {path} must hold a mapping of settings (such as 'strategy: lora'), "
            f"found a {type(values).__name__}."
        )
    for group in _GROUPS:
        if values.get(group) is not None and not isinstance(values[group], dict):
            raise BadInput(
                f"configuration file {path}: '{group}' must be a mapping of its settings "
                f"(such as '{group}:' then indented keys), found {values[group]!r}."
            )
    for (group, name), value in _ADDED_SINCE.items():
        settings = values.get(group) or {}
        if name not in settings:
            values[group] = {**settings, name: value}
    try:
        return from_plain(TrainConfig, values)
    except BadInput as exc:
        raise BadInput(f"configuration file {path}: {exc}") from None


_ADDED_SINCE: dict[tuple[str, str], Any] = {("cache", "train_batch_size"): 1}
"""Settings added after runs began to be recorded, with the value a run recorded without them ran with: a resumed or
reloaded older run goes on exactly as it started (its stored-feature steps one `--batch_size` pass at a time)."""

_GROUPS = tuple(
    f.name
    for f in dataclasses.fields(TrainConfig)
    if dataclasses.is_dataclass(getattr(TrainConfig(), f.name))
)


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-4` (no dot) is a string; people write learning rates that way."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def write_splits_json(run_dir: Path, splits: Mapping[str, Any]) -> Path:
    """Write the exact videos of each split (as built by `data.splits.splits_to_json`)."""
    if not isinstance(splits, Mapping):
        raise ValueError(f"splits must be a mapping, got {type(splits).__name__}.")
    return write_json_atomic(Path(run_dir) / SPLITS_FILE, splits)


def run_data_root(run_dir: Path) -> Path | None:
    """Where the run's listed videos were (its config.yaml's data.root, else its list file's folder)."""
    data = read_config_yaml(Path(run_dir) / CONFIG_FILE).data
    if data.root is not None:
        return Path(data.root).expanduser()
    return Path(data.list_file).expanduser().parent if data.list_file is not None else None


def read_trained_on(run_dir: str | os.PathLike[str], data_root: Path | None = None) -> TrainedOn:
    """What the run in `run_dir` recorded about the videos it used (its splits.json) and where they are: `data_root`
    if the data set moved, else the root its config.yaml names."""
    run_dir = Path(run_dir)
    splits_path = run_dir / SPLITS_FILE
    if not splits_path.is_file():
        raise BadInput(f"{run_dir} has no {SPLITS_FILE}, so the videos it trained on are unknown; a vjepa-tune run "
                       "folder writes one before its first epoch.")
    try:
        recorded = json.loads(splits_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {splits_path}: {exc}") from None
    root = data_root if data_root is not None else run_data_root(run_dir)
    return TrainedOn(run_dir, recorded, root, str(splits_path))


def seen_in_training(
    paths: Sequence[Path],
    run_dir: str | os.PathLike[str],
    *,
    data_root: Path | None = None,
    sides: Sequence[str] = SEEN_SPLITS,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
) -> Overlap:
    """Which of `paths` the run in `run_dir` trained or validated on (by path, or by size and fingerprint;
    `data.overlap.seen_in`). `data_root`: where the run's data set is now, if it moved."""
    trained_on = read_trained_on(run_dir, data_root)
    return seen_in(paths, trained_on, sides=sides, workers=workers, progress=progress)


def precision_name(value: str | None) -> str | None:
    """The precision as users name it (fp32, bf16, fp16): records written before said accelerate's "no" for fp32."""
    return "fp32" if value == "no" else value


def read_metrics_json(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json as today's code writes it, whichever version wrote it (old "no" precision: fp32)."""
    metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    if "precision" in metrics:
        metrics["precision"] = precision_name(metrics["precision"])
    return metrics


def write_metrics_json(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write metrics.json after checking it keeps CLI.md's promises: a broken one is a bug (ValueError)."""
    check_metrics(metrics)
    return write_json_atomic(Path(run_dir) / METRICS_FILE, metrics)


def check_metrics(metrics: Mapping[str, Any]) -> None:
    """Required keys present, history entries complete, accuracies fractions, trainable_pct a percentage."""
    missing = [key for key in METRICS_REQUIRED_KEYS if key not in metrics]
    if missing:
        raise ValueError(f"metrics.json would miss required keys: {', '.join(missing)}.")
    history = metrics["history"]
    if not isinstance(history, list):
        raise ValueError(
            f"metrics['history'] must be a list of per-epoch entries, got {type(history).__name__}."
        )
    for i, entry in enumerate(history):
        lacking = [key for key in HISTORY_REQUIRED_KEYS if key not in entry]
        if lacking:
            raise ValueError(f"metrics['history'][{i}] lacks {', '.join(lacking)}: {entry!r}.")
        _check_fraction(f"history[{i}]['val_acc']", entry["val_acc"])
    version_info = metrics["versions"]
    lacking = [key for key in VERSIONS_REQUIRED_KEYS if key not in version_info]
    if lacking:
        raise ValueError(f"metrics['versions'] lacks {', '.join(lacking)}.")
    _check_fraction("test_acc", metrics["test_acc"])
    _check_fraction("best_val_acc", metrics["best_val_acc"])
    pct = metrics["trainable_pct"]
    if pct is not None and not 0 <= pct <= 100:
        raise ValueError(f"trainable_pct must be a percentage in [0, 100], got {pct!r}.")


def _check_fraction(name: str, value: Any) -> None:
    """Accuracies are fractions: 85.0 here means someone wrote a percentage."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}.")


# ------------------------------------------------------------------------------------------------------------
# experiments.csv: one row per finished run, shared by every run under one --out.


def experiment_row(
    cfg: TrainConfig,
    metrics: Mapping[str, Any],
    run_dir: Path,
    dataset: str,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """The experiments.csv row of a finished run, from its configuration and its metrics.json content.

    Extra columns come from optional metrics keys of the same name (`split_method`, `precision`, `best_epoch`,
    `mean_class_acc`, `macro_f1`; the last two are the test split's); a missing one leaves its cell empty.
    """
    row: dict[str, Any] = {
        "timestamp": timestamp or datetime.now().astimezone().isoformat(timespec="seconds"),
        "dataset": dataset,
        "videos_per_class": cfg.data.videos_per_class,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "accumulation_steps": cfg.accumulation_steps,
        "num_epochs": cfg.num_epochs,
        "weight_decay": cfg.weight_decay,
        "lora_rank": cfg.lora.rank,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        "frames_per_clip": cfg.data.frames_per_clip,
        "precision": precision_name(metrics.get("precision", cfg.precision)),
        "effective_batch": metrics.get("effective_batch", cfg.batch_size * cfg.accumulation_steps),
    }
    for key in EXPERIMENT_COLUMNS:
        if key not in row:
            row[key] = metrics.get(key)
    return row


def append_experiment_row(csv_path: Path, row: Mapping[str, Any]) -> None:
    """Append one row, intact even when other processes append at the same moment.

    Under an exclusive `flock` on the CSV itself: the header is written only if the file is empty, and the row
    goes out in one write, then fsync. A file with another header (an older version's) keeps it: the row is
    written in that file's columns (missing ones empty). Keys that are not columns are dropped.
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(csv_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        with _locked(fd, exclusive=True):
            size = os.fstat(fd).st_size
            columns = _read_header(fd) if size else None
            out = io.StringIO()
            if size and os.pread(fd, 1, size - 1) != b"\n":
                out.write("\n")  # a previous line was cut short (disk full, killed): keep it off this row
            writer = csv.writer(out, lineterminator="\n")
            if not columns:
                columns = list(EXPERIMENT_COLUMNS)
                if not size:
                    writer.writerow(columns)
            writer.writerow([_csv_cell(row.get(column)) for column in columns])
            _write_all(fd, out.getvalue().encode("utf-8"))
            os.fsync(fd)
    finally:
        os.close(fd)


def read_experiments(csv_path: Path) -> list[dict[str, str]]:
    """Every row of experiments.csv as a dict of strings keyed by its header ([] when there is no file); an old
    row's precision "no" reads as fp32."""
    csv_path = Path(csv_path)
    try:
        f = open(csv_path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    with f:
        with _locked(f.fileno(), exclusive=False):
            text = f.read()
    rows = [dict(row) for row in csv.DictReader(io.StringIO(text), restval="")]
    for row in rows:
        if "precision" in row:
            row["precision"] = precision_name(row["precision"]) or ""
    return rows


def has_row_for(csv_path: Path, run_dir: Path) -> bool:
    """Whether experiments.csv already holds the row of this run folder (resume must not append it twice)."""
    wanted = {os.path.normpath(str(run_dir)), str(Path(run_dir).resolve())}
    for row in read_experiments(csv_path):
        value = row.get("run_dir") or ""
        if value and (os.path.normpath(value) in wanted or str(Path(value).resolve()) in wanted):
            return True
    return False


@contextmanager
def _locked(fd: int, exclusive: bool) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _read_header(fd: int) -> list[str]:
    """The column names of the file's first line (a UTF-8 byte-order mark, as spreadsheets write, ignored)."""
    data = b""
    while b"\n" not in data:
        chunk = os.pread(fd, 65536, len(data))
        if not chunk:
            break
        data += chunk
    first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
    return next(csv.reader([first_line]), [])


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return value


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
