"""Experiment trackers for a run and for a comparison: TensorBoard, MLflow and Weights & Biases (`--report_to`).

Built on accelerate's tracker classes (`accelerate.tracking`), so each tracker's own conventions hold; this module
decides where each one writes, groups a comparison's runs, continues a resumed run, and gives the training loop
one object to call: `log_scalars(step, values)`, `log_artifacts(paths)`, `finish(metrics)`.

Where each tracker writes:

- TensorBoard: `RUN/tensorboard/` (event files; the run's configuration in the HParams tab, with accelerate's
  `hparams.yml` beside it). A resumed run drops what a killed attempt wrote after its checkpoint (`purge_step`).
- MLflow: the SQLite file `OUT/mlflow.db`, artefacts under `OUT/mlartifacts/`, unless `MLFLOW_TRACKING_URI` is set
  (then the store it names, and that store's artefact root). Experiment `vjepa-tune` (`MLFLOW_EXPERIMENT_NAME`
  overrides). A comparison is a parent run; its runs are nested child runs.
- W&B: `RUN/wandb/` (`WANDB_DIR` overrides), project `vjepa-tune` (`WANDB_PROJECT` overrides). Offline unless the
  user is logged in (see `wandb_mode`); `wandb sync` uploads an offline run later. A comparison is a W&B group.

The ids in `Trackers.ids` ({"mlflow": run id, "wandb": run id}; for a comparison the parent run id and the group
name) are what the caller keeps in the run folder: passed back as `resume=`, they continue the same MLflow run and
the same W&B run, and nest a continued comparison's runs under the same parent.

Only the main process tracks: on the others `open_run_trackers` and `open_group_trackers` return an object that
does nothing, so callers need no branch.
"""

from __future__ import annotations

import importlib.util
import json
import netrc
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from vjepa_tune.errors import BadInput

if TYPE_CHECKING:
    from accelerate.tracking import GeneralTracker

Log = Callable[[str], None]
Scalar = str | int | float | bool | None

TRACKER_NAMES: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")
DEFAULT_REPORT_TO: tuple[str, ...] = ("tensorboard",)
PROJECT = "vjepa-tune"
"""The MLflow experiment and W&B project runs go to, unless MLFLOW_EXPERIMENT_NAME or WANDB_PROJECT say otherwise."""
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_PACKAGES: dict[str, tuple[str, ...]] = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow",), "wandb": ("wandb",)}
_SQLITE_PACKAGES = ("sqlalchemy", "alembic")
_WANDB_HOST = "https://api.wandb.ai"


# --------------------------------------------------------------------------------------------- choosing
def parse_report_to(value: str | Sequence[str]) -> tuple[str, ...]:
    """`tensorboard,mlflow` (or a list) -> ("tensorboard", "mlflow"); `none` -> (). Checks the packages now.

    Checked when the command starts, so that a missing package is reported before hours of training, not after.
    """
    parts = value.split(",") if isinstance(value, str) else [p for item in value for p in str(item).split(",")]
    names = [p.strip().lower() for p in parts]
    if names == ["none"]:
        return ()
    chosen: list[str] = []
    for name in names:
        if name not in TRACKER_NAMES:
            shown = repr(name) if name else "an empty name"
            raise BadInput(
                f"--report_to {','.join(names)}: unknown tracker {shown}; choose from {', '.join(TRACKER_NAMES)} "
                "(comma-separated), or none."
            )
        if name not in chosen:
            chosen.append(name)
    for name in chosen:
        _require(name)
    return tuple(chosen)


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (an entry of None in sys.modules means absent)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(name: str) -> None:
    missing = [m for m in _PACKAGES[name] if not _installed(m)]
    if missing:
        raise BadInput(
            f"--report_to {name} needs the {' and '.join(missing)} package, which is not installed: "
            f"pip install 'vjepa-tune[{name}]'"
        )
    if name == "mlflow" and _mlflow_uri_is_sqlite():
        missing = [m for m in _SQLITE_PACKAGES if not _installed(m)]
        if missing:
            raise BadInput(
                f"--report_to mlflow writes to a SQLite file ({MLFLOW_DB} in --out), which needs "
                f"{' and '.join(missing)}, not installed: pip install 'vjepa-tune[mlflow]' (or set "
                "MLFLOW_TRACKING_URI to a tracking server)"
            )


def _mlflow_uri_is_sqlite() -> bool:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return not uri or uri.startswith("sqlite:")


def mlflow_tracking_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else the SQLite file `OUT/mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(out) / MLFLOW_DB).resolve()}"


def wandb_logged_in(environ: Mapping[str, str] | None = None) -> bool:
    """Whether W&B has credentials: WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, or an API key for the W&B host
    (WANDB_BASE_URL, default api.wandb.ai) in the netrc file `wandb login` writes (NETRC, else ~/.netrc)."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(environ.get("WANDB_BASE_URL") or _WANDB_HOST).netloc
    if environ.get("NETRC"):
        path = Path(environ["NETRC"]).expanduser()
    else:
        home = Path(environ.get("HOME") or Path.home())
        path = next((p for p in (home / ".netrc", home / "_netrc") if p.is_file()), home / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def wandb_mode(environ: Mapping[str, str] | None = None) -> str | None:
    """The `mode` to start W&B with: None when WANDB_MODE is set (W&B reads it), else online if logged in, else
    offline, so that a user without an account still gets a run folder `wandb sync` can upload later."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_MODE"):
        return None
    return "online" if wandb_logged_in(environ) else "offline"


# --------------------------------------------------------------------------------------------- values
def flat_config(config: Mapping[str, object], prefix: str = "") -> dict[str, Scalar]:
    """A nested configuration as dotted keys with scalar values (`lora.rank: 16`), as MLflow params and
    TensorBoard hparams need; lists become JSON text."""
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = str(value)
    return flat


def final_scalars(metrics: Mapping[str, object]) -> dict[str, float]:
    """The numbers of a metrics.json worth a tracker's summary: top-level numbers (not flags), and each `K_ci`
    interval as `K_ci_low` and `K_ci_high`. Nested tables (history, per-class scores, versions) are left out."""
    scalars: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            scalars[key] = float(value)
        elif key.endswith("_ci") and isinstance(value, (list, tuple)) and len(value) == 2:
            low, high = value
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                scalars[f"{key}_low"], scalars[f"{key}_high"] = float(low), float(high)
    return scalars


# --------------------------------------------------------------------------------------------- trackers
class Trackers:
    """The open trackers of one run (or one comparison); what the training loop and `compare` call.

    A context manager: leaving the block with an exception ends the MLflow run as FAILED (KILLED on Ctrl-C) and the
    W&B run with exit code 1, so a run that died is not shown as finished; leaving it normally finishes them.
    """

    def __init__(
        self,
        trackers: Sequence[GeneralTracker],
        ids: Mapping[str, str],
        base_dir: Path,
        on_end: Sequence[Callable[[], None]] = (),
    ) -> None:
        self._trackers = list(trackers)
        self._on_end = list(on_end)
        self.ids: dict[str, str] = dict(ids)
        """{"mlflow": run id, "wandb": run id} (a comparison: parent run id, group name): keep them to resume."""
        self.base_dir = Path(base_dir)
        self._step: int | None = None
        self._open = bool(self._trackers or self._on_end)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self._trackers)

    def log_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Log scalars at an optimizer step (train/loss, val/acc, ...) to every tracker."""
        self._step = step
        plain = {key: float(value) for key, value in values.items()}
        for tracker in self._trackers:
            if tracker.name == "mlflow":  # a database write per step would take milliseconds; queued, it doesn't
                tracker.log(plain, step=step, synchronous=False)
            else:
                tracker.log(plain, step=step)

    def log_artifacts(self, paths: Iterable[Path | str]) -> None:
        """Keep files with the run: MLflow artefacts (keeping their folder below the run folder); images (plots)
        also in TensorBoard's Images tab and as W&B images, other files as W&B run files."""
        if not self._trackers:
            return
        for path in map(Path, paths):
            if not path.is_file():
                raise FileNotFoundError(f"artefact {path} does not exist.")
            try:
                relative = path.resolve().relative_to(self.base_dir.resolve())
            except ValueError:
                relative = Path(path.name)
            folder = relative.parent.as_posix()
            tag = relative.with_suffix("").as_posix()
            image = path.suffix.lower() in IMAGE_SUFFIXES
            for tracker in self._trackers:
                if tracker.name == "mlflow":
                    tracker.log_artifact(str(path), artifact_path=None if folder == "." else folder)
                elif tracker.name == "tensorboard" and image:
                    tracker.log_images({tag: _rgb_batch(path)}, step=self._step or 0, dataformats="NHWC")
                elif tracker.name == "wandb" and image:
                    tracker.log_images({tag: [str(path)]}, step=self._step)
                elif tracker.name == "wandb":
                    base = path.resolve().parents[len(relative.parts) - 1]  # keeps the folder below the run's
                    tracker.run.save(str(path.resolve()), base_path=str(base), policy="now")

    def finish(self, metrics: Mapping[str, object] | None = None) -> None:
        """Record the final metrics (see `final_scalars`) and end every tracker's run as finished."""
        if not self._open:
            return
        self._open = False
        try:
            final = final_scalars(metrics or {})
            for tracker in self._trackers:
                if final and tracker.name == "wandb":
                    tracker.run.summary.update(final)
                elif final:
                    tracker.log(final, step=self._step)
            for tracker in reversed(self._trackers):
                tracker.finish()
        finally:
            self._end()

    def close(self, status: str = "FAILED") -> None:
        """End runs that did not finish: MLflow with `status` (FAILED or KILLED), W&B with exit code 1."""
        if not self._open:
            return
        self._open = False
        try:
            for tracker in reversed(self._trackers):
                if tracker.name == "mlflow":
                    import mlflow

                    mlflow.end_run(status=status)
                elif tracker.name == "wandb":
                    tracker.run.finish(exit_code=1)
                else:
                    tracker.finish()
        finally:
            self._end()

    def _end(self) -> None:
        for undo in reversed(self._on_end):
            undo()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")


def _rgb_batch(path: Path) -> np.ndarray:
    """An image file as a (1, H, W, 3) uint8 array, as TensorBoard's add_images takes it."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))[None]


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def open_run_trackers(
    report_to: str | Sequence[str],
    run_dir: Path,
    *,
    out: Path,
    name: str,
    config: Mapping[str, object],
    group: Trackers | None = None,
    resume: Mapping[str, str] | None = None,
    resumed_at_step: int | None = None,
    project: str = PROJECT,
    job_type: str = "train",
    log: Log = print,
) -> Trackers:
    """Start the trackers of one training run and record its configuration; returns the object to log to.

    `out` is `--out` (MLflow's SQLite file lives there), `name` the run's name (its folder's), `config` the resolved
    configuration as plain data. `group` is the comparison's `open_group_trackers` result; `resume` the `ids` of
    an earlier attempt at this run, `resumed_at_step` the optimizer step of the checkpoint it continues from.
    `job_type` labels the W&B run (train, pretrain).
    """
    names = parse_report_to(report_to)
    run_dir = Path(run_dir)
    if not names or not _is_main_process():
        return Trackers([], {}, run_dir)
    resume = dict(resume or {})
    resuming = resumed_at_step is not None or bool(resume)
    started: list[GeneralTracker] = []
    ids: dict[str, str] = {}
    on_end: list[Callable[[], None]] = []
    try:
        for tracker_name in names:
            if tracker_name == "tensorboard":
                started.append(_start_tensorboard(run_dir, config, resumed_at_step, resuming))
            elif tracker_name == "mlflow":
                parent = group.ids.get("mlflow") if group is not None else None
                uri, undo = _use_mlflow_store(out)
                on_end.append(undo)
                tracker = _start_mlflow(uri, project, name, config, resume.get("mlflow"), parent, log)
                started.append(tracker)
                ids["mlflow"] = tracker.active_run.info.run_id
            elif tracker_name == "wandb":
                wandb_group = group.ids.get("wandb") if group is not None else None
                tracker = _start_wandb(
                    run_dir, project, name, config, resume.get("wandb"), wandb_group, job_type, log
                )
                started.append(tracker)
                ids["wandb"] = tracker.run.id
    except BaseException:
        Trackers(started, ids, run_dir, on_end).close()
        raise
    return Trackers(started, ids, run_dir, on_end)


def open_group_trackers(
    report_to: str | Sequence[str],
    compare_dir: Path,
    *,
    out: Path,
    name: str,
    config: Mapping[str, object],
    resume: Mapping[str, str] | None = None,
    project: str = PROJECT,
    log: Log = print,
) -> Trackers:
    """Open a comparison's grouping: an MLflow parent run (its runs nest under it, and it keeps the report and the
    plots) and a W&B group named `name`. Pass the result as `group=` to each run's `open_run_trackers`, and keep it
    open until the last run has finished. TensorBoard needs nothing: `tensorboard --logdir COMPARE_DIR` shows the
    runs side by side."""
    names = parse_report_to(report_to)
    compare_dir = Path(compare_dir)
    if not names or not _is_main_process():
        return Trackers([], {}, compare_dir)
    resume = dict(resume or {})
    started: list[GeneralTracker] = []
    ids: dict[str, str] = {}
    on_end: list[Callable[[], None]] = []
    if "mlflow" in names:
        uri, undo = _use_mlflow_store(out)
        on_end.append(undo)
        try:
            tracker = _start_mlflow(uri, project, name, config, resume.get("mlflow"), None, log)
        except BaseException:
            Trackers([], {}, compare_dir, on_end).close()
            raise
        started.append(tracker)
        ids["mlflow"] = tracker.active_run.info.run_id
    if "wandb" in names:
        ids["wandb"] = resume.get("wandb") or name
    return Trackers(started, ids, compare_dir, on_end)


# --------------------------------------------------------------------------------------------- one tracker each
def _start_tensorboard(
    run_dir: Path, config: Mapping[str, object], resumed_at_step: int | None, resuming: bool
) -> GeneralTracker:
    from accelerate.tracking import TensorBoardTracker

    purge = resumed_at_step + 1 if resumed_at_step is not None else None  # drop what a killed attempt wrote after
    tracker = TensorBoardTracker(TENSORBOARD_DIR, run_dir, purge_step=purge)
    tracker.start()
    if not resuming:  # the configuration was stored when the run began
        tracker.store_init_configuration(flat_config(config))
    return tracker


def _use_mlflow_store(out: Path) -> tuple[str, Callable[[], None]]:
    """Point MLflow at the store for `out`; returns its URI and what puts the user's setting back afterwards.

    mlflow.set_tracking_uri also writes MLFLOW_TRACKING_URI into the environment (for subprocesses); left there, it
    would read as the user's choice to the next run in this process, which may have another --out.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    uri = mlflow_tracking_uri(out)
    mlflow.set_tracking_uri(uri)
    return uri, lambda: mlflow.set_tracking_uri(before)


def _start_mlflow(
    uri: str,
    project: str,
    name: str,
    config: Mapping[str, object],
    resume_id: str | None,
    parent_id: str | None,
    log: Log,
) -> GeneralTracker:
    import mlflow
    from accelerate.tracking import MLflowTracker

    sqlite_file = uri.startswith("sqlite:///")
    if resume_id is not None and not _mlflow_run_exists(resume_id):
        log(f"MLflow: run {resume_id} of this run is not in {uri}; starting a new MLflow run")
        resume_id = None
    # a SQLite store keeps artefacts beside its file (MLflow's default would be ./mlruns, wherever the user stands)
    artifacts = (Path(uri.removeprefix("sqlite:///")).parent / MLFLOW_ARTIFACTS).as_uri() if sqlite_file else None
    tracker = MLflowTracker(project, logging_dir=artifacts, run_name=name)
    if resume_id is not None:
        tracker.run_id = resume_id
    # nest under the comparison's parent run (open while its runs train: MLflow records it as their parent), or
    # under a run that the caller (a notebook, an MLflow project) has open
    active = mlflow.active_run()
    if parent_id is not None and (active is None or active.info.run_id != parent_id):
        raise RuntimeError(f"the comparison's MLflow run {parent_id} must be open while its runs are tracked.")
    tracker.nested_run = active is not None
    try:
        tracker.start()
    except Exception as exc:  # noqa: BLE001 - a store that cannot be reached is the user's to fix
        raise BadInput(f"--report_to mlflow: could not start a run in the MLflow store {uri}: {exc}") from exc
    if resume_id is None:  # params cannot change once logged; a continued run keeps those it began with
        tracker.store_init_configuration(flat_config(config))
    run_id = tracker.active_run.info.run_id
    where = f"{uri} (browse: mlflow ui --backend-store-uri {uri})" if sqlite_file else uri
    log(f"MLflow: {'continuing' if resume_id else 'run'} {run_id} in experiment '{tracker.experiment_name}' at {where}")
    return tracker


def _mlflow_run_exists(run_id: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_run(run_id).info.lifecycle_stage == "active"  # not deleted
    except MlflowException:
        return False


def _start_wandb(
    run_dir: Path,
    project: str,
    name: str,
    config: Mapping[str, object],
    resume_id: str | None,
    group: str | None,
    job_type: str,
    log: Log,
) -> GeneralTracker:
    from accelerate.tracking import WandBTracker

    mode = wandb_mode()
    init: dict[str, object] = {"name": name, "job_type": job_type, "resume": "allow"}
    if not os.environ.get("WANDB_DIR"):
        init["dir"] = str(run_dir)
    if mode is not None:
        init["mode"] = mode
    if resume_id is not None:
        init["id"] = resume_id
    if group is not None:
        init["group"] = group
    tracker = WandBTracker(os.environ.get("WANDB_PROJECT") or project, **init)
    try:
        tracker.start()
    except Exception as exc:  # noqa: BLE001 - credentials or a server that cannot be reached are the user's to fix
        raise BadInput(
            f"--report_to wandb: could not start a W&B run: {exc}. Set WANDB_MODE=offline to write it locally "
            "and upload it later with `wandb sync`."
        ) from exc
    tracker.store_init_configuration(json.loads(json.dumps(dict(config), default=str)))
    if mode == "offline":
        log(f"W&B: not logged in, so run {tracker.run.id} is written offline to {Path(tracker.run.dir).parent}; "
            "`wandb login`, then `wandb sync` on that folder, uploads it")
    return tracker
