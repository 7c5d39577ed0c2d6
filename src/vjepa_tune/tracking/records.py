"""Records shared beyond one run: experiments.csv, the library versions a result was made with, and whole JSON and
YAML files written atomically. A run folder's own files belong to `runs.folder`.

Columns here are the contract of CLI.md, "Outputs": scripts and other tools read them. `experiments.csv` is shared
by every run under one `--out`, and two runs may finish at once (a `compare` grid spread over processes): each row
is appended under an exclusive lock in a single write. A file an older version began, with fewer columns, gets the
new ones (empty for its old rows) when the next row is appended: rewritten whole beside it and renamed into place,
under the same lock.
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import math
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from vjepa_tune.config import TrainConfig
from vjepa_tune.files import write_text_atomic
from vjepa_tune.version import __version__

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a single O_APPEND write per row is the remaining safeguard.
    fcntl = None  # type: ignore[assignment]

EXPERIMENTS_FILE = "experiments.csv"

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
    # 95% intervals of the four scores (Wilson for the accuracies, a bootstrap over videos for the class averages).
    "test_acc_ci_low",
    "test_acc_ci_high",
    "best_val_acc_ci_low",
    "best_val_acc_ci_high",
    "mean_class_acc_ci_low",
    "mean_class_acc_ci_high",
    "macro_f1_ci_low",
    "macro_f1_ci_high",
    "num_test_scored",
)
INTERVAL_COLUMNS: tuple[str, ...] = ("test_acc", "best_val_acc", "mean_class_acc", "macro_f1")
"""The scores whose metrics.json interval `K_ci` becomes the columns `K_ci_low` and `K_ci_high`."""

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
    import torch  # here: records are written by commands that start without torch, and torch reports its build

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


def precision_name(value: str | None) -> str | None:
    """The precision as users name it (fp32, bf16, fp16): records written before said accelerate's "no" for fp32."""
    return "fp32" if value == "no" else value


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
    `mean_class_acc`, `macro_f1`; the last two are the test split's), the intervals from `K_ci` (`K_ci_low`,
    `K_ci_high`) and `num_test_scored` from the test block's `num_samples` (the test videos that could be read);
    a missing one leaves its cell empty.
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
    for key in INTERVAL_COLUMNS:
        interval = metrics.get(f"{key}_ci")
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = interval if interval is not None else (None, None)
    row["num_test_scored"] = (metrics.get("test") or {}).get("num_samples")
    for key in EXPERIMENT_COLUMNS:
        if key not in row:
            row[key] = metrics.get(key)
    return row


def append_experiment_row(csv_path: Path, row: Mapping[str, Any]) -> None:
    """Append one row, intact even when other processes append at the same moment.

    Under an exclusive `flock` on the CSV itself: the header is written only if the file is empty, and the row
    goes out in one write, then fsync. A file with another header keeps its columns, in its order, and gets the
    columns of EXPERIMENT_COLUMNS it lacks at the end (`_add_columns`); the row is written in the resulting columns
    (missing ones empty). Keys that are not columns are dropped.
    """
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(csv_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            with _locked(fd, exclusive=True):
                if not _is_current(fd, csv_path):
                    continue  # another process replaced the file while we waited for its lock: open the new one
                size = os.fstat(fd).st_size
                columns = _read_header(fd) if size else None
                if columns and any(c not in columns for c in EXPERIMENT_COLUMNS):
                    _add_columns(fd, csv_path, columns)
                    continue  # append to the rewritten file, under its own lock
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
                return
        finally:
            os.close(fd)


def _is_current(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (a header upgrade renames a new file into place)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (here.st_dev, here.st_ino)


def _add_columns(fd: int, path: Path, columns: list[str]) -> None:
    """Rewrite the locked file with the columns it lacks added at the end, empty in its rows, and rename it into
    place: readers see the old file or the new one, and appenders waiting on the old file's lock reopen it."""
    data = b""
    while chunk := os.pread(fd, 1 << 20, len(data)):
        data += chunk
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))[1:]
    wider = columns + [c for c in EXPERIMENT_COLUMNS if c not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(wider)
    for cells in rows:
        if cells:
            writer.writerow(cells + [""] * (len(wider) - len(cells)))
    write_text_atomic(path, out.getvalue())


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
