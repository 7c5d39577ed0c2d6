"""Trackers write what a user opens later: read back from MLflow's store (through its client), from the W&B offline
run folder (its transaction log, decoded with W&B's own protobufs) and from TensorBoard's event files.

One comparison is tracked once for the module with all three trackers: a parent with two runs, the first killed
after four steps and resumed from its step-2 checkpoint, then finished with plots and metrics.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from vjepa_tune.errors import BadInput
from vjepa_tune.tracking.tracker_settings import (
    final_scalars,
    flat_config,
    mlflow_tracking_uri,
    parse_report_to,
    wandb_mode,
)
from vjepa_tune.tracking.trackers import open_group_trackers, open_run_trackers

ALL = "tensorboard,mlflow,wandb"
CONFIG = {"strategy": "lora", "learning_rate": 0.0002, "lora": {"rank": 16, "alpha": 32.0}, "seed": 42,
          "data": {"root": "/videos", "frames_per_clip": 16}, "run_name": None}
METRICS = {"approach": "lora", "test_acc": 0.875, "test_acc_ci": [0.69, 0.957], "num_test": 24, "history": [],
           "versions": {"torch": "2"}}


def _png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 20, 3), colour, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, trackers_read: SimpleNamespace) -> Iterator[SimpleNamespace]:
    root = tmp_path_factory.mktemp("trackers")
    out = root / "runs"
    compare_dir = out / "compare-1"
    run_dir = compare_dir / "lora"
    other_dir = compare_dir / "head_only"
    messages: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        trackers_read.isolate(mp, root / "home")
        import mlflow

        group = open_group_trackers(ALL, compare_dir, out=out, name="compare-1", config={"strategies": ["lora"]},
                                    log=messages.append)
        with pytest.raises(RuntimeError, match="killed"):
            with open_run_trackers(ALL, run_dir, out=out, name="lora", config=CONFIG, group=group,
                                   log=messages.append) as first:
                for step in range(1, 5):
                    first.log_scalars(step, {"train/loss": 1.0 / step, "train/lr": np.float32(0.5)})
                raise RuntimeError("killed after step 4")
        first_status = mlflow.tracking.MlflowClient().get_run(first.ids["mlflow"]).info.status

        second = open_run_trackers(ALL, run_dir, out=out, name="lora", config=CONFIG, group=group,
                                   resume=first.ids, resumed_at_step=2, log=messages.append)
        for step in range(3, 6):
            second.log_scalars(step, {"train/loss": 10.0 + step})
        plots = [_png(run_dir / "confusion.png", (255, 0, 0)), _png(run_dir / "plots" / "curve.png", (0, 0, 255))]
        (run_dir / "metrics.json").write_text(json.dumps(METRICS))
        second.log_artifacts([*plots, run_dir / "metrics.json"])
        second.finish(METRICS)

        with open_run_trackers(ALL, other_dir, out=out, name="head_only", config=CONFIG, group=group,
                               log=messages.append) as other:
            other.log_scalars(1, {"train/loss": 2.0})

        (compare_dir / "report.md").write_text("# report\n")
        group.log_artifacts([compare_dir / "report.md", _png(compare_dir / "accuracy.png", (0, 255, 0))])
        group.finish({"runs": 2})
        uri_after = os.environ.get("MLFLOW_TRACKING_URI")
        yield SimpleNamespace(out=out, compare_dir=compare_dir, run_dir=run_dir, other_dir=other_dir,
                              group=group.ids, first=first.ids, second=second.ids, other=other.ids,
                              first_status=first_status, messages=messages, uri_after=uri_after,
                              wandb_runs=trackers_read.wandb_runs)


def _client(out: Path) -> object:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")


@pytest.fixture()
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, trackers_read: SimpleNamespace) -> None:
    trackers_read.isolate(monkeypatch, tmp_path / "home")


# ------------------------------------------------------------------------------------------ MLflow
def test_mlflow_run_holds_the_configuration_as_params(tracked: SimpleNamespace) -> None:
    run = _client(tracked.out).get_run(tracked.second["mlflow"])
    assert run.data.params == {"strategy": "lora", "learning_rate": "0.0002", "lora.rank": "16",
                               "lora.alpha": "32.0", "seed": "42", "data.root": "/videos",
                               "data.frames_per_clip": "16", "run_name": "None"}
    assert run.info.run_name == "lora"


def test_mlflow_keeps_every_logged_scalar_of_both_attempts_in_one_history(tracked: SimpleNamespace) -> None:
    client = _client(tracked.out)
    history = [(m.step, m.value) for m in client.get_metric_history(tracked.second["mlflow"], "train/loss")]
    # MLflow cannot drop values: steps 3 and 4 of the killed attempt stay beside the resumed attempt's
    assert sorted(history) == sorted([(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.25), (3, 13.0), (4, 14.0), (5, 15.0)])
    lr = client.get_metric_history(tracked.second["mlflow"], "train/lr")
    assert [m.value for m in lr] == [0.5] * 4  # numpy scalars are logged, not dropped


def test_mlflow_final_metrics_and_intervals_are_run_metrics(tracked: SimpleNamespace) -> None:
    metrics = _client(tracked.out).get_run(tracked.second["mlflow"]).data.metrics
    assert metrics["test_acc"] == 0.875 and metrics["num_test"] == 24.0
    assert (metrics["test_acc_ci_low"], metrics["test_acc_ci_high"]) == (0.69, 0.957)


def test_mlflow_artefacts_are_the_plots_and_files_stored_under_out(tracked: SimpleNamespace) -> None:
    client = _client(tracked.out)
    run_id = tracked.second["mlflow"]
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["confusion.png", "metrics.json", "plots"]
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/curve.png"]
    local = Path(client.download_artifacts(run_id, "metrics.json", str(tracked.out.parent)))
    assert json.loads(local.read_text()) == METRICS
    artifact_uri = client.get_run(run_id).info.artifact_uri
    assert artifact_uri.startswith((tracked.out / "mlartifacts").resolve().as_uri())
    assert (tracked.out / "mlflow.db").is_file()
    # mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI; once the runs ended, the user's (unset) is back
    assert tracked.uri_after is None


def test_mlflow_comparison_is_a_parent_run_with_its_runs_nested(tracked: SimpleNamespace) -> None:
    client = _client(tracked.out)
    parent = client.get_run(tracked.group["mlflow"])
    assert parent.info.run_name == "compare-1" and parent.info.status == "FINISHED"
    assert parent.data.params == {"strategies": '["lora"]'}
    assert parent.data.metrics == {"runs": 2.0}
    assert sorted(a.path for a in client.list_artifacts(parent.info.run_id)) == ["accuracy.png", "report.md"]
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["head_only", "lora"]


def test_a_resumed_run_continues_the_same_mlflow_run_and_a_killed_one_is_marked_failed(
    tracked: SimpleNamespace,
) -> None:
    assert tracked.first_status == "FAILED"
    assert tracked.second["mlflow"] == tracked.first["mlflow"]
    assert _client(tracked.out).get_run(tracked.second["mlflow"]).info.status == "FINISHED"
    assert any(m.startswith(f"MLflow: continuing {tracked.first['mlflow']}") for m in tracked.messages)


# ------------------------------------------------------------------------------------------ W&B offline
def test_wandb_runs_offline_in_the_run_folder_and_says_how_to_upload(tracked: SimpleNamespace) -> None:
    first, second = tracked.wandb_runs(tracked.run_dir)[0], tracked.wandb_runs(tracked.run_dir)[1]
    assert first.run_id == second.run_id == tracked.first["wandb"] == tracked.second["wandb"]
    assert any(m.startswith("W&B: not logged in") and "wandb sync" in m for m in tracked.messages)


def test_wandb_offline_run_holds_config_history_and_summary(tracked: SimpleNamespace) -> None:
    run = tracked.wandb_runs(tracked.run_dir)[1]
    assert {k: v for k, v in run.config.items() if not k.startswith("_")} == CONFIG
    losses = [(row["_step"], row["train/loss"]) for row in run.history if "train/loss" in row]
    assert losses == [(3, 13.0), (4, 14.0), (5, 15.0)]
    assert run.summary["test_acc"] == 0.875
    assert (run.summary["test_acc_ci_low"], run.summary["test_acc_ci_high"]) == (0.69, 0.957)
    assert run.exit_code == 0


def test_wandb_keeps_plots_as_images_and_other_files_as_run_files(tracked: SimpleNamespace) -> None:
    files = tracked.wandb_runs(tracked.run_dir)[1].folder / "files"
    assert len(list(files.glob("media/images/confusion_*.png"))) == 1
    assert len(list(files.glob("media/images/plots/curve_*.png"))) == 1
    assert json.loads((files / "metrics.json").read_text()) == METRICS


def test_wandb_groups_a_comparisons_runs_and_marks_a_killed_attempt(tracked: SimpleNamespace) -> None:
    first, second = tracked.wandb_runs(tracked.run_dir)[0], tracked.wandb_runs(tracked.run_dir)[1]
    other = tracked.wandb_runs(tracked.other_dir)[0]
    assert first.group == second.group == other.group == tracked.group["wandb"] == "compare-1"
    assert first.exit_code == 1
    assert [row["train/loss"] for row in first.history if "train/loss" in row] == [1.0, 0.5, 1 / 3, 0.25]


# ------------------------------------------------------------------------------------------ TensorBoard
def _events(folder: Path) -> object:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_events_stay_in_run_tensorboard_and_a_resume_replaces_the_killed_steps(
    tracked: SimpleNamespace,
) -> None:
    events = _events(tracked.run_dir / "tensorboard")
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert losses == [(1, 1.0), (2, 0.5), (3, 13.0), (4, 14.0), (5, 15.0)]
    assert events.Scalars("test_acc")[-1].value == 0.875
    assert sorted(events.Tags()["images"]) == ["confusion", "plots/curve"]
    assert (events.Images("confusion")[0].width, events.Images("confusion")[0].height) == (20, 12)


def test_tensorboard_records_the_configuration_once(tracked: SimpleNamespace) -> None:
    import yaml

    (hparams,) = (tracked.run_dir / "tensorboard").glob("*/hparams.yml")  # not again when the run resumed
    assert yaml.safe_load(hparams.read_text())["lora.rank"] == 16


def test_tensorboard_alone_writes_no_other_trackers_files(tmp_path: Path, isolated: None) -> None:
    with open_run_trackers("tensorboard", tmp_path / "run", out=tmp_path, name="run", config=CONFIG) as tracked:
        tracked.log_scalars(1, {"val/acc": 0.5})
    assert tracked.names == ("tensorboard",) and tracked.ids == {}
    assert [e.value for e in _events(tmp_path / "run" / "tensorboard").Scalars("val/acc")] == [0.5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no mlflow.db, no mlartifacts
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["tensorboard"]  # no wandb


def test_mlflow_writes_where_mlflow_tracking_uri_points_and_starts_anew_if_the_resumed_run_is_gone(
    tracked: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: None
) -> None:
    elsewhere = f"sqlite:///{tracked.out / 'mlflow.db'}"  # the module's store, as if it were a server's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    assert mlflow_tracking_uri(tmp_path / "out") == elsewhere
    messages: list[str] = []
    with open_run_trackers("mlflow", tmp_path / "run", out=tmp_path / "out", name="run", config=CONFIG,
                           resume={"mlflow": "0" * 32}, log=messages.append) as tracked:
        tracked.log_scalars(1, {"val/acc": 0.5})
    assert not (tmp_path / "out" / "mlflow.db").exists()
    assert messages[0] == f"MLflow: run {'0' * 32} of this run is not in {elsewhere}; starting a new MLflow run"
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=elsewhere).get_run(tracked.ids["mlflow"])
    assert run.data.metrics == {"val/acc": 0.5} and run.data.params["strategy"] == "lora"
    assert os.environ["MLFLOW_TRACKING_URI"] == elsewhere


# ------------------------------------------------------------------------------------------ choosing trackers
def test_report_to_is_a_comma_separated_list_of_known_trackers() -> None:
    assert parse_report_to("tensorboard") == ("tensorboard",)
    assert parse_report_to(" MLflow, tensorboard,mlflow ") == ("mlflow", "tensorboard")
    assert parse_report_to(["tensorboard,wandb"]) == ("tensorboard", "wandb")
    assert parse_report_to("none") == ()
    with pytest.raises(BadInput, match="unknown tracker 'comet'; choose from tensorboard, mlflow, wandb"):
        parse_report_to("tensorboard,comet")
    with pytest.raises(BadInput, match="unknown tracker an empty name"):
        parse_report_to("tensorboard,")


@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_asking_for_a_tracker_that_is_not_installed_names_what_to_install(
    package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what an absent package looks like to the import system
    with pytest.raises(BadInput, match=rf"needs the {package} package.*pip install 'vjepa-tune\[{package}\]'"):
        parse_report_to(f"tensorboard,{package}")
    with pytest.raises(BadInput, match="not installed"):
        open_run_trackers(package, tmp_path / "run", out=tmp_path, name="run", config=CONFIG)
    assert list(tmp_path.iterdir()) == []


def test_mlflow_without_its_sqlite_packages_asks_for_them_unless_a_server_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(BadInput, match=r"SQLite file \(mlflow.db in --out\), which needs sqlalchemy"):
        parse_report_to("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert parse_report_to("mlflow") == ("mlflow",)


def test_wandb_is_offline_unless_logged_in_and_wandb_mode_decides_when_set(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert wandb_mode({"HOME": str(home)}) == "offline"
    assert wandb_mode({"HOME": str(home), "WANDB_API_KEY": "k" * 40}) == "online"
    (home / ".netrc").write_text("machine github.com login me password secret\n")
    assert wandb_mode({"HOME": str(home)}) == "offline"
    (home / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    assert wandb_mode({"HOME": str(home)}) == "online"
    own = tmp_path / "netrc"
    own.write_text("machine wandb.example.com login user password " + "k" * 40 + "\n")
    assert wandb_mode({"HOME": str(tmp_path), "NETRC": str(own)}) == "offline"  # for another host
    assert wandb_mode({"HOME": str(tmp_path), "NETRC": str(own), "WANDB_BASE_URL": "https://wandb.example.com"}) \
        == "online"
    assert wandb_mode({"HOME": str(home), "WANDB_MODE": "disabled"}) is None  # W&B reads WANDB_MODE itself


def test_mlflow_store_is_out_mlflow_db_unless_the_user_sets_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert mlflow_tracking_uri(tmp_path) == "http://mlflow.example:5000"


def test_only_the_main_process_tracks(tmp_path: Path) -> None:
    with open_run_trackers(ALL, tmp_path / "run", out=tmp_path, name="run", config=CONFIG,
                           main_process=False) as tracked:
        tracked.log_scalars(1, {"train/loss": 1.0})
        tracked.log_artifacts([tmp_path / "written-by-the-main-process.png"])
        tracked.finish(METRICS)
    assert tracked.ids == {} and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ values
def test_flat_config_uses_dotted_keys_and_json_for_lists() -> None:
    assert flat_config({"lora": {"rank": 16, "target": ["q", "v"]}, "out": Path("/runs"), "seed": None}) == {
        "lora.rank": 16, "lora.target": '["q", "v"]', "out": "/runs", "seed": None}


def test_final_scalars_keep_numbers_and_split_intervals() -> None:
    assert final_scalars({**METRICS, "early_stopped": True, "top5": None}) == {
        "test_acc": 0.875, "test_acc_ci_low": 0.69, "test_acc_ci_high": 0.957, "num_test": 24.0}
