"""A run folder's names, its making and finding, and the records that describe the run (no torch).

Names and keys here are the contract of CLI.md, "Outputs": scripts and other tools read them. Every file is written
aside and renamed into place (`files.py`), so a crash or a full disk never leaves half a file where a finished one is
expected. Records written by earlier versions read back as today's code writes them: a setting added since reads as
the value those runs ran with (`ADDED_SINCE`), accelerate's old "no" precision as fp32.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from vjepa_tune.config import (
    PRETRAIN_LEFT_OFF,
    PretrainConfig,
    TrainConfig,
    from_plain,
    resumed_config,
    to_plain,
)
from vjepa_tune.data.fingerprints import file_identities
from vjepa_tune.data.overlap import TrainingVideos
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.data.splits import left_out_from_json, recorded_identities, splits_from_json, splits_to_json
from vjepa_tune.errors import BadInput
from vjepa_tune.files import write_json_atomic, write_text_atomic, write_yaml_atomic
from vjepa_tune.tracking.records import precision_name

if TYPE_CHECKING:
    from vjepa_tune.tracking.trackers import Trackers

Log = Callable[[str], None]
C = TypeVar("C", TrainConfig, PretrainConfig)

CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.json"
TRAIN_LOG_FILE = "train.log"
"""The console of the run, warnings included; a resumed run appends to it (`tracking/console_log.py`)."""
STATE_FILE = Path("checkpoint") / "state.pt"
MODEL_DIR = Path("model")
WEIGHTS_FILE = "trainable.safetensors"
MODEL_META_FILE = "model.json"
TENSORBOARD_DIR = "tensorboard"
TEST_PREDICTIONS_FILE = "test_predictions.csv"
"""One row per test video: what the best model said of it. Paired tests between runs scored on the same videos
(`compare`'s report) read it."""
TRACKERS_FILE = "trackers.json"
"""The MLflow and W&B run ids of the run (`tracking.trackers.Trackers.ids`): a resumed run continues those runs."""

# A pretraining run (`vjepa-tune pretrain`) shares config.yaml, splits.json (every video under `train`),
# checkpoint/state.pt, metrics.json and tensorboard/ with a training run, and holds instead of its model/:
PRETRAIN_LOG_FILE = "pretrain.log"
"""The console of a pretraining run."""
BEST_MODEL_DIR = Path("best_model")
"""With probing: the target encoder of the probe with the best validation accuracy, as a Hugging Face folder."""
PROBES_DIR = Path("probes")
"""One `train` run folder per probe (`step-000500`: the probe after 500 optimizer steps); their models are not kept."""
REPORT_FILE = "report.md"
PLOTS_DIR = Path("plots")
HF_CONFIG_FILE = "config.json"
"""What makes a folder a Hugging Face model folder (a pretraining run's model/ and best_model/)."""

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
INTERVAL_KEYS: tuple[str, ...] = ("test_acc", "best_val_acc", "mean_class_acc", "macro_f1")
"""The top-level figures of metrics.json that carry a 95% interval `K_ci: [low, high]` beside them."""
VERSIONS_REQUIRED_KEYS: tuple[str, ...] = ("python", "torch", "transformers", "peft", "vjepa_tune")

def is_finished(run_dir: Path) -> bool:
    """metrics.json is written last: a folder holding it is a finished run."""
    return (Path(run_dir) / METRICS_FILE).is_file()


def has_checkpoint(run_dir: Path) -> bool:
    """The run finished at least one epoch and can be resumed from it (unless it finished altogether)."""
    return (Path(run_dir) / STATE_FILE).is_file()


# ------------------------------------------------------------------------------------------------ the folder
def check_run_name(out: Path, run_name: str | None) -> None:
    """Refuse a `--run_name` whose folder already holds a finished run."""
    if run_name is not None and is_finished(Path(out) / run_name):
        raise BadInput(f"run folder {Path(out) / run_name} already holds a finished run; choose another --run_name.")


def new_run_dir(out: Path, strategy: str, run_name: str | None) -> Path:
    """The folder of a new run (not made yet): `run_name`, or <strategy>-<timestamp> with a suffix if taken."""
    out = Path(out)
    check_run_name(out, run_name)
    if run_name is not None:
        return out / run_name
    name = f"{strategy}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir, suffix = out / name, 1
    while run_dir.exists() and any(run_dir.iterdir()):
        suffix += 1
        run_dir = out / f"{name}-{suffix}"
    return run_dir


def is_pretraining_run(run_dir: Path) -> bool:
    """Whether the folder is a `vjepa-tune pretrain` run: its config.yaml holds the pretraining settings."""
    try:
        values = yaml.load((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"), Loader=_ConfigLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(values, dict) and {"masks", "ema", "predictor"} <= values.keys()


def find_resumable(out: Path, pretraining: bool = False) -> Path | None:
    """The newest run folder in `out` that has a checkpoint but no metrics.json: a training run's, or with
    `pretraining` a pretraining run's."""
    out = Path(out)
    if not out.is_dir():
        return None
    candidates = [d for d in out.iterdir() if d.is_dir() and has_checkpoint(d) and not is_finished(d)
                  and is_pretraining_run(d) == pretraining]
    return max(candidates, key=lambda d: (d / STATE_FILE).stat().st_mtime) if candidates else None


def run_to_resume(resume: str, out: Path, *, has_data: bool, log: Log, pretraining: bool = False) -> Path | None:
    """The folder `--resume` names: `auto` is the newest unfinished run of the kind (training, or `pretraining`) in
    `out` (None, said in `log`, when there is none and the data of a new run is given), anything else a run
    folder's path."""
    if resume == "auto":
        run_dir = find_resumable(out, pretraining)
        if run_dir is None:
            if not has_data:
                what = "pretraining run" if pretraining else "run"
                raise BadInput(
                    f"--resume auto: nothing to resume in {out} (no {what} folder there has a checkpoint without "
                    "metrics.json). To start a new run, give its data: --data.root DIR (and its other settings)."
                )
            log(f"--resume auto: nothing to resume in {out}; starting a new run")
        return run_dir
    run_dir = Path(resume)
    if not (run_dir / CONFIG_FILE).exists():
        raise BadInput(f"--resume {resume}: not a vjepa-tune run folder (no {CONFIG_FILE} in it).")
    if is_pretraining_run(run_dir) != pretraining:
        ours, theirs = ("pretrain", "train") if is_pretraining_run(run_dir) else ("train", "pretrain")
        raise BadInput(f"--resume {resume}: that folder is a `vjepa-tune {ours}` run; `vjepa-tune {theirs}` cannot "
                       f"continue it.")
    if is_finished(run_dir):
        raise BadInput(f"--resume {resume}: that run already finished ({METRICS_FILE} exists).")
    return run_dir


@contextlib.contextmanager
def run_folder(run_dir: Path, *, create: bool) -> Iterator[Path]:
    """The run's folder for the block, made first when `create` (with any of its parents, `--out` included).

    A folder this call made is removed again, with the parents it made, if the block fails before the run has a
    checkpoint: a failed command adds nothing to `--out`. A resumed run's folder, or one that existed before, is
    never removed. With several processes only the main one creates (the others pass `create=False`).
    """
    run_dir = Path(run_dir)
    made = [p for p in (run_dir, *run_dir.parents) if not p.exists()] if create else []
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield run_dir
    except BaseException:
        if made and not has_checkpoint(run_dir) and not is_finished(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
            for parent in made[1:]:
                with contextlib.suppress(OSError):  # only while empty
                    parent.rmdir()
        raise


# ------------------------------------------------------------------------------------------------ config.yaml
def write_config(run_dir: Path, cfg: TrainConfig) -> Path:
    """Write the full resolved configuration (`vjepa-tune train --config RUN_DIR/config.yaml` repeats it)."""
    path = Path(run_dir) / CONFIG_FILE
    header = f"vjepa-tune train --config {path}\nThe full resolved configuration of this run."
    return write_yaml_atomic(path, to_plain(cfg), header=header)


def read_config(run_dir: Path) -> TrainConfig:
    """A run folder's configuration; BadInput when the folder is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"run folder {run_dir} does not exist.")
    if not (run_dir / CONFIG_FILE).exists():
        raise BadInput(f"{run_dir} is not a vjepa-tune run folder (no {CONFIG_FILE} in it).")
    if is_pretraining_run(run_dir):
        raise BadInput(pretraining_run_note(run_dir))
    return read_config_yaml(run_dir / CONFIG_FILE)


def resumed_run_config(given: C, resume_dir: Path, log: Log) -> C:
    """The configuration a resumed run (training or pretraining, as `given` is) goes on with: its saved one, the
    trackers excepted (`config.resumed_config`); the flags given now that it ignores are said."""
    saved = read_pretrain_config(resume_dir) if isinstance(given, PretrainConfig) else read_config(resume_dir)
    resumed, notes = resumed_config(given, saved)
    log(f"resuming {resume_dir} with its saved configuration")
    for note in notes:
        log(note)
    return resumed


def write_pretrain_config(run_dir: Path, cfg: PretrainConfig) -> Path:
    """Write a pretraining run's full resolved configuration (`vjepa-tune pretrain --config RUN_DIR/config.yaml`
    repeats it); the settings pretraining has no flag for (`config.PRETRAIN_LEFT_OFF`) are left out."""
    path = Path(run_dir) / CONFIG_FILE
    values = to_plain(cfg)
    for group, names in PRETRAIN_LEFT_OFF.items():
        values[group] = {key: value for key, value in values[group].items() if key not in names}
    header = f"vjepa-tune pretrain --config {path}\nThe full resolved configuration of this pretraining run."
    return write_yaml_atomic(path, values, header=header)


def read_pretrain_config(run_dir: Path) -> PretrainConfig:
    """A pretraining run folder's configuration; BadInput when the folder is none."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise BadInput(f"{run_dir} is not a vjepa-tune run folder (no {CONFIG_FILE} in it).")
    values = _read_yaml_mapping(run_dir / CONFIG_FILE, _PRETRAIN_GROUPS)
    try:
        return from_plain(PretrainConfig, values)
    except BadInput as exc:
        raise BadInput(f"configuration file {run_dir / CONFIG_FILE}: {exc}") from None


def read_config_yaml(path: Path) -> TrainConfig:
    """Read a config.yaml back, refusing unknown keys; values are checked by `config.validate`, not here."""
    path = Path(path)
    values = _read_yaml_mapping(path, _GROUPS)
    for (group, name), value in ADDED_SINCE.items():
        settings = values.get(group) or {}
        if name not in settings:
            values[group] = {**settings, name: value}
    try:
        return from_plain(TrainConfig, values)
    except BadInput as exc:
        raise BadInput(f"configuration file {path}: {exc}") from None


def _read_yaml_mapping(path: Path, groups: tuple[str, ...]) -> dict[str, Any]:
    """A configuration file's mapping of settings, its `groups` checked to be mappings too."""
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
    for group in groups:
        if values.get(group) is not None and not isinstance(values[group], dict):
            raise BadInput(
                f"configuration file {path}: '{group}' must be a mapping of its settings "
                f"(such as '{group}:' then indented keys), found {values[group]!r}."
            )
    return values


ADDED_SINCE: dict[tuple[str, str], Any] = {("cache", "train_batch_size"): 1}
"""Settings added after runs began to be recorded, with the value a run recorded without them ran with: a resumed or
reloaded older run goes on exactly as it started (its stored-feature steps one `--batch_size` pass at a time)."""

_GROUPS = tuple(
    f.name for f in dataclasses.fields(TrainConfig) if dataclasses.is_dataclass(getattr(TrainConfig(), f.name))
)
_PRETRAIN_GROUPS = tuple(
    f.name for f in dataclasses.fields(PretrainConfig) if dataclasses.is_dataclass(getattr(PretrainConfig(), f.name))
)


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, where `1e-4` (no dot) is a string; people write learning rates that way."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def run_data_root(run_dir: Path) -> Path | None:
    """Where the run's listed videos were (its config.yaml's data.root, else its list file's folder); a pretraining
    run's are its pretraining videos."""
    data = (read_pretrain_config if is_pretraining_run(run_dir) else read_config)(run_dir).data
    if data.root is not None:
        return Path(data.root).expanduser()
    return Path(data.list_file).expanduser().parent if data.list_file is not None else None


# ------------------------------------------------------------------------------------------------ splits.json
def write_splits(run_dir: Path, splits: Splits, classes: list[str], left_out: Mapping[str, str] | None = None
                 ) -> Path:
    """Write the exact videos of each split with their size and fingerprint (`data.splits.splits_to_json`), so that
    a later `evaluate` or `predict` recognises copies of them even when the originals are gone; and the videos left
    out at set-up with their reasons (`read_resumed_splits`)."""
    chosen = splits.train + splits.val + splits.test
    found = file_identities([s.path for s in chosen], desc="fingerprinting videos")
    identities = {s.id: identity for s, identity in zip(chosen, found, strict=True) if identity is not None}
    return write_json_atomic(Path(run_dir) / SPLITS_FILE, splits_to_json(splits, classes, identities, left_out))


def read_resumed_splits(run_dir: Path, root: Path) -> tuple[Splits, dict[str, str]]:
    """A resumed run's splits (paths under `root`) and the videos (id -> reason) it left out before its first
    step: it probes only its splits' videos, so it learns of the others here. One read of splits.json."""
    recorded = read_recorded_splits(run_dir)
    return splits_from_json(recorded, Path(root), source=str(Path(run_dir) / SPLITS_FILE)), left_out_from_json(recorded)


def read_recorded_splits(run_dir: Path) -> dict[str, Any]:
    """A run's splits.json as written (`data.splits.splits_to_json`); BadInput when it is missing or unreadable."""
    run_dir = Path(run_dir)
    path = run_dir / SPLITS_FILE
    if not path.is_file():
        raise BadInput(f"{run_dir} has no {SPLITS_FILE}: it is not a vjepa-tune run folder, or it never started "
                       "training (a run writes one before its first epoch).")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    return recorded


def run_classes(run_dir: Path) -> list[str] | None:
    """The run's class names in label order (from splits.json); None when it has none to read."""
    try:
        return list(read_recorded_splits(run_dir)["classes"])
    except (BadInput, KeyError, TypeError):
        return None


def read_splits(run_dir: Path, root: Path) -> Splits:
    """The run's splits with their videos' paths under `root` (where the data set is)."""
    return splits_from_json(read_recorded_splits(run_dir), Path(root), source=str(Path(run_dir) / SPLITS_FILE))


def training_videos(run_dir: Path, data_root: Path | None = None) -> TrainingVideos:
    """What the run recorded of its videos, for `data.overlap.seen_in_training`; `data_root`: where its data set
    is now, if it moved (default: where it was, its config.yaml's)."""
    run_dir = Path(run_dir)
    recorded = read_recorded_splits(run_dir)
    root = data_root if data_root is not None else run_data_root(run_dir)
    splits = splits_from_json(recorded, root if root is not None else run_dir, source=str(run_dir / SPLITS_FILE))
    return TrainingVideos(run_dir=run_dir, splits=splits, identities=recorded_identities(recorded), data_root=root)


# ------------------------------------------------------------------------------------------------ metrics.json
def write_metrics(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write metrics.json after checking it keeps CLI.md's promises: a broken one is a bug (ValueError)."""
    check_metrics(metrics)
    return write_json_atomic(Path(run_dir) / METRICS_FILE, metrics)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json as today's code writes it, whichever version wrote it (old "no" precision: fp32)."""
    metrics = json.loads((Path(run_dir) / METRICS_FILE).read_text(encoding="utf-8"))
    if "precision" in metrics:
        metrics["precision"] = precision_name(metrics["precision"])
    return metrics


def read_finished_metrics(run_dir: Path) -> dict[str, Any] | None:
    """metrics.json of a finished run; None when there is none or it cannot be read."""
    try:
        return read_metrics(run_dir)
    except (OSError, ValueError):
        return None


def check_metrics(metrics: Mapping[str, Any]) -> None:
    """Required keys present, history entries complete, accuracies fractions, trainable_pct a percentage."""
    missing = [key for key in METRICS_REQUIRED_KEYS if key not in metrics]
    if missing:
        raise ValueError(f"metrics.json would miss required keys: {', '.join(missing)}.")
    history = metrics["history"]
    if not isinstance(history, list):
        raise ValueError(f"metrics['history'] must be a list of per-epoch entries, got {type(history).__name__}.")
    for i, entry in enumerate(history):
        lacking = [key for key in HISTORY_REQUIRED_KEYS if key not in entry]
        if lacking:
            raise ValueError(f"metrics['history'][{i}] lacks {', '.join(lacking)}: {entry!r}.")
        _check_fraction(f"history[{i}]['val_acc']", entry["val_acc"])
        _check_interval(f"history[{i}]['val_acc']", entry["val_acc"], entry.get("val_acc_ci"))
    lacking = [key for key in VERSIONS_REQUIRED_KEYS if key not in metrics["versions"]]
    if lacking:
        raise ValueError(f"metrics['versions'] lacks {', '.join(lacking)}.")
    _check_fraction("test_acc", metrics["test_acc"])
    _check_fraction("best_val_acc", metrics["best_val_acc"])
    for key in INTERVAL_KEYS:
        _check_interval(key, metrics.get(key), metrics.get(f"{key}_ci"))
    pct = metrics["trainable_pct"]
    if pct is not None and not 0 <= pct <= 100:
        raise ValueError(f"trainable_pct must be a percentage in [0, 100], got {pct!r}.")


PRETRAIN_METRICS_REQUIRED_KEYS: tuple[str, ...] = (
    "approach", "model", "steps", "num_videos", "skipped_videos", "history", "probes", "train_time_s", "versions",
)
PRETRAIN_HISTORY_REQUIRED_KEYS: tuple[str, ...] = (
    "step", "loss", "lr", "ema_momentum", "grad_norm", "target_std", "target_rank", "pred_std",
)


def write_pretrain_metrics(run_dir: Path, metrics: Mapping[str, Any]) -> Path:
    """Write a pretraining run's metrics.json (last: it marks the run finished) after checking its keys: one
    `history` entry per monitor step, one `probes` entry per probe with accuracies as fractions."""
    missing = [key for key in PRETRAIN_METRICS_REQUIRED_KEYS if key not in metrics]
    if missing:
        raise ValueError(f"metrics.json would miss required keys: {', '.join(missing)}.")
    for i, entry in enumerate(metrics["history"]):
        lacking = [key for key in PRETRAIN_HISTORY_REQUIRED_KEYS if key not in entry]
        if lacking:
            raise ValueError(f"metrics['history'][{i}] lacks {', '.join(lacking)}: {entry!r}.")
    for i, probe in enumerate(metrics["probes"]):
        for key in ("val_acc", "test_acc"):
            _check_fraction(f"probes[{i}]['{key}']", probe[key])
    return write_json_atomic(Path(run_dir) / METRICS_FILE, metrics)


def probe_dir(run_dir: Path, step: int) -> Path:
    """The folder of the probe after `step` optimizer steps."""
    return Path(run_dir) / PROBES_DIR / f"step-{step:06d}"


def _check_fraction(name: str, value: Any) -> None:
    """Accuracies are fractions: 85.0 here means someone wrote a percentage."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}.")


def _check_interval(name: str, value: Any, interval: Any) -> None:
    """`K_ci` is a [low, high] pair of fractions around K (or absent: records from before intervals)."""
    if interval is None:
        return
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        raise ValueError(f"{name}_ci must be a [low, high] pair, got {interval!r}.")
    low, high = interval
    _check_fraction(f"{name}_ci", low)
    _check_fraction(f"{name}_ci", high)
    if not low <= high:
        raise ValueError(f"{name}_ci must be [low, high] with low <= high, got {interval!r}.")


# ------------------------------------------------------------------------------------------------ test predictions
def write_test_predictions(
    run_dir: Path, classes: Sequence[str], scored: Sequence[tuple[Sample, Sequence[float]]],
    skipped: Mapping[str, str],
) -> Path:
    """test_predictions.csv: one row per test video, `id, label, predicted, score, correct, error, p_<class>...`.

    `scored` pairs each scored video with its class probabilities; `skipped` names the test videos that could not
    be read, with why (their rows have only an error). Written whole and atomically.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "label", "predicted", "score", "correct", "error", *(f"p_{c}" for c in classes)])
    for sample, probs in scored:
        best = max(range(len(probs)), key=probs.__getitem__)
        writer.writerow([sample.id, classes[sample.label], classes[best], f"{probs[best]:.6f}",
                         int(best == sample.label), "", *(f"{p:.6f}" for p in probs)])
    for video_id, reason in skipped.items():
        writer.writerow([video_id, "", "", "", "", reason, *([""] * len(classes))])
    return write_text_atomic(Path(run_dir) / TEST_PREDICTIONS_FILE, out.getvalue())


def read_test_outcomes(run_dir: Path) -> dict[str, bool] | None:
    """{video id: whether the run's best model got it right} for every scored test video; None when the run kept no
    per-video predictions (it finished before vjepa-tune recorded them) or they cannot be read."""
    path = Path(run_dir) / TEST_PREDICTIONS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    rows = csv.DictReader(io.StringIO(text))
    if rows.fieldnames is None or not {"id", "correct"} <= set(rows.fieldnames):
        return None
    return {row["id"]: row["correct"] == "1" for row in rows if row["correct"] in ("0", "1")}


# ------------------------------------------------------------------------------------------------ trackers.json
def write_tracker_ids(folder: Path, ids: Mapping[str, str]) -> Path:
    """Keep the ids of the folder's MLflow and W&B runs (a run's, or a comparison's parent run and group)."""
    return write_json_atomic(Path(folder) / TRACKERS_FILE, dict(ids))


def read_tracker_ids(folder: Path) -> dict[str, str]:
    """The ids `write_tracker_ids` kept ({} when there are none, or the file cannot be read)."""
    try:
        ids = json.loads((Path(folder) / TRACKERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in ids.items()} if isinstance(ids, dict) else {}


def open_kept_trackers(
    report_to: str | Sequence[str],
    run_dir: Path,
    *,
    out: Path,
    config: Mapping[str, object],
    resumed_at_step: int | None,
    main_process: bool,
    log: Log,
    job_type: str = "train",
    group: Trackers | None = None,
    earlier_ids: Mapping[str, str] | None = None,
) -> Trackers:
    """The run's trackers (`tracking.trackers.open_run_trackers`) with their ids kept in trackers.json before the
    first step; a resumed run (`resumed_at_step` given) continues the MLflow and W&B runs whose ids it kept there
    (or `earlier_ids`, where a run recorded before trackers.json kept them)."""
    from vjepa_tune.tracking.trackers import open_run_trackers  # here: accelerate and torch load with trackers only

    resume = ((read_tracker_ids(run_dir) or dict(earlier_ids or {}))
              if resumed_at_step is not None and main_process else None)
    trackers = open_run_trackers(report_to, run_dir, out=out, name=Path(run_dir).name, config=config, group=group,
                                 resume=resume, resumed_at_step=resumed_at_step, job_type=job_type, log=log,
                                 main_process=main_process)
    if main_process and trackers.ids:
        write_tracker_ids(run_dir, trackers.ids)
    return trackers


# ------------------------------------------------------------------------------------------------ model/model.json
def read_model_meta(run_dir: Path) -> dict[str, Any]:
    """model/model.json: what rebuilds the run's model (`runs.checkpoint.model_meta` writes it)."""
    run_dir = Path(run_dir)
    path = run_dir / MODEL_DIR / MODEL_META_FILE
    if not run_dir.is_dir():
        raise BadInput(f"run folder {run_dir} does not exist.")
    if is_pretraining_run(run_dir):
        raise BadInput(pretraining_run_note(run_dir))
    if not path.is_file():
        raise BadInput(
            f"{run_dir} holds no trained model ({MODEL_DIR / MODEL_META_FILE} is missing): is it a vjepa-tune run "
            "folder whose training finished at least one epoch?"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def pretraining_run_note(run_dir: Path) -> str:
    """What to do with a pretraining run where a classifier run was expected."""
    return (f"{run_dir} is a pretraining run (vjepa-tune pretrain): it holds an encoder, not a classifier. Its model "
            f"is {Path(run_dir) / MODEL_DIR}, a Hugging Face folder: fine-tune it with `vjepa-tune train --model "
            f"{Path(run_dir) / MODEL_DIR}`, or write it out with `vjepa-tune export {run_dir} OUT_DIR`.")
def run_hf_model_dir(run_dir: Path) -> Path | None:
    """RUN/model when it is a Hugging Face model folder (a config.json beside the weights, as `pretrain` writes the
    adapted backbone), else None: such a run is a model source like any local folder (`features`, `train --model`)."""
    folder = Path(run_dir) / MODEL_DIR
    return folder if (folder / "config.json").is_file() else None


def holds_trained_model(run_dir: Path) -> bool:
    """The folder is a run of `train` that saved a best model (model/model.json and its trained weights)."""
    folder = Path(run_dir) / MODEL_DIR
    return (folder / MODEL_META_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def recorded_train_clip_s(run_dir: Path) -> tuple[bool, float | None]:
    """(whether model.json records `train_clip_s`, its value): runs made before it was recorded say (False, None)."""
    try:
        meta = json.loads((Path(run_dir) / MODEL_DIR / MODEL_META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, None
    return ("train_clip_s" in meta), meta.get("train_clip_s")
