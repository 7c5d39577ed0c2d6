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

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from accelerate import PartialState
from accelerate.tracking import GeneralTracker, MLflowTracker, TensorBoardTracker, WandBTracker
from PIL import Image

from vjepa_tune.errors import BadInput
from vjepa_tune.tracking.tracker_settings import (
    MLFLOW_ARTIFACTS,
    PROJECT,
    TENSORBOARD_DIR,
    final_scalars,
    flat_config,
    mlflow_tracking_uri,
    parse_report_to,
    wandb_mode,
)

Log = Callable[[str], None]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

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

    def flush(self) -> None:
        """Write out what is queued (MLflow's per-step metrics): called at each checkpoint, so that a run killed
        later and resumed from it keeps everything logged up to it."""
        if any(tracker.name == "mlflow" for tracker in self._trackers):
            import mlflow  # an optional dependency (the `mlflow` extra), imported when it is used

            mlflow.flush_async_logging()

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
                    import mlflow  # an optional dependency (the `mlflow` extra), imported when it is used

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
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))[None]


def _tracks(main_process: bool | None) -> bool:
    """Only the main process tracks; None asks accelerate which one this is."""
    return PartialState().is_main_process if main_process is None else main_process


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
    main_process: bool | None = None,
) -> Trackers:
    """Start the trackers of one training run and record its configuration; returns the object to log to.

    `out` is `--out` (MLflow's SQLite file lives there), `name` the run's name (its folder's), `config` the resolved
    configuration as plain data. `group` is the comparison's `open_group_trackers` result; `resume` the `ids` of
    an earlier attempt at this run, `resumed_at_step` the optimizer step of the checkpoint it continues from.
    `job_type` labels the W&B run (train, pretrain). `main_process`: whether this process tracks (default: whether
    accelerate says it is the main one).
    """
    names = parse_report_to(report_to)
    run_dir = Path(run_dir)
    if not names or not _tracks(main_process):
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
    main_process: bool | None = None,
) -> Trackers:
    """Open a comparison's grouping: an MLflow parent run (its runs nest under it, and it keeps the report and the
    plots) and a W&B group named `name`. Pass the result as `group=` to each run's `open_run_trackers`, and keep it
    open until the last run has finished. TensorBoard needs nothing: `tensorboard --logdir COMPARE_DIR` shows the
    runs side by side."""
    names = parse_report_to(report_to)
    compare_dir = Path(compare_dir)
    if not names or not _tracks(main_process):
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
    import mlflow  # an optional dependency (the `mlflow` extra), imported when it is used

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
    import mlflow  # an optional dependency (the `mlflow` extra), imported when it is used

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
    # an optional dependency (the `mlflow` extra), imported when it is used
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
