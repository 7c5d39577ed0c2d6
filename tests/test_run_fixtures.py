"""Run folders written by earlier versions keep working: they load, resume, evaluate, predict and export.

tests/fixtures/runs/ was made by scripts/make_run_fixtures.py at commit dc2d1a0 and is never remade: a `lora` run on
the bundled `tiny` that finished, and one killed after its first epoch's checkpoint. Their records name the folders
they were made in (under `WORK`); each test copies them and substitutes where the copy lies, as a user whose data
moved would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from vjepa_tune.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "runs"
WORK = "/tmp/vjepa-tune-run-fixtures"
CLASSES = ["other", "sitting_down", "standing_up", "waving"]


@pytest.fixture()
def old_runs(tmp_path: Path) -> Path:
    """A copy of the fixtures laid out as they were made: data/, runs/{finished,interrupted}, runs/experiments.csv."""
    shutil.copytree(FIXTURES / "data", tmp_path / "data")
    for name in ("finished", "interrupted"):
        shutil.copytree(FIXTURES / name, tmp_path / "runs" / name)
    shutil.copy2(FIXTURES / "experiments.csv", tmp_path / "runs" / "experiments.csv")
    for path in [*(tmp_path / "runs").glob("*/config.yaml"), tmp_path / "runs" / "experiments.csv"]:
        path.write_text(path.read_text(encoding="utf-8").replace(WORK, str(tmp_path)), encoding="utf-8")
    return tmp_path


def test_the_fixtures_are_what_the_old_code_wrote() -> None:
    finished, interrupted = FIXTURES / "finished", FIXTURES / "interrupted"
    assert (finished / "metrics.json").is_file() and not (finished / "checkpoint").exists()
    assert (interrupted / "checkpoint" / "state.pt").is_file() and not (interrupted / "metrics.json").exists()
    assert json.loads((finished / "model" / "model.json").read_text())["classes"] == CLASSES


def test_an_old_finished_run_loads_and_predicts_in_python(old_runs: Path) -> None:
    from vjepa_tune import load_run

    predictor = load_run(old_runs / "runs" / "finished")
    video = old_runs / "data" / "waving" / "waving_0000.mp4"
    prediction = predictor.predict(video, progress=False)
    assert predictor.classes == CLASSES
    assert prediction.label in CLASSES
    assert abs(float(prediction.probs.sum()) - 1.0) < 1e-5


def test_an_old_finished_run_evaluates_and_predicts_from_the_command_line(old_runs: Path, capsys) -> None:
    run = old_runs / "runs" / "finished"
    assert main(["evaluate", str(run), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    recorded = json.loads((run / "splits.json").read_text())
    assert metrics["num_videos"] == len(recorded["test"]) == 4
    out = old_runs / "predictions.csv"
    assert main(["predict", str(run), str(old_runs / "data"), "--out", str(out)]) == 0
    assert len(out.read_text().strip().splitlines()) == 1 + 24


def test_an_old_run_recognises_copies_of_its_training_videos_from_the_listed_files_that_still_exist(
    old_runs: Path, capsys
) -> None:
    run = old_runs / "runs" / "finished"
    recorded = json.loads((run / "splits.json").read_text())
    assert "fingerprint_scheme" not in recorded  # written before fingerprints were recorded
    other = old_runs / "other"
    for side in ("train", "val", "test"):  # a copy of a test video is no overlap: the run never saw it
        entry = recorded[side][0]
        (other / entry["class"]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(old_runs / "data" / entry["id"], other / entry["class"] / f"renamed_{side}.mp4")
    (old_runs / "data" / recorded["train"][1]["id"]).unlink()
    assert main(["evaluate", str(run), "--data.root", str(other), "--out", str(old_runs / "eval"), "--json"]) == 0
    out, err = capsys.readouterr()
    overlap = json.loads(out)["overlap"]
    assert (overlap["videos"], overlap["train"], overlap["val"], overlap["unrecognisable"]) == (3, 1, 1, 1)
    assert "overlap: 2 of 3 videos were seen in training (train 1, val 1; 2 are copies under another path)" in err
    assert "1 of the run's 20 train and val videos is gone from" in err


def test_an_old_finished_run_exports_as_adapter_and_merged(old_runs: Path) -> None:
    from transformers import VJEPA2ForVideoClassification

    run = old_runs / "runs" / "finished"
    assert main(["export", str(run), str(old_runs / "adapter")]) == 0
    assert (old_runs / "adapter" / "adapter_config.json").is_file()
    assert main(["export", str(run), str(old_runs / "merged"), "--merge"]) == 0
    model = VJEPA2ForVideoClassification.from_pretrained(old_runs / "merged")
    assert [model.config.id2label[i] for i in range(4)] == CLASSES


def test_an_old_interrupted_run_resumes_to_the_end(old_runs: Path) -> None:
    import torch

    run = old_runs / "runs" / "interrupted"
    state = torch.load(run / "checkpoint" / "state.pt", map_location="cpu", weights_only=False)
    first_epoch = state["train_state"]["history"][0]
    assert main(["train", "--resume", "auto", "--out", str(old_runs / "runs")]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["history"]] == [1, 2]
    assert metrics["history"][0] == first_epoch
    assert metrics["test_acc_ci"] == metrics["test"]["top1_ci"] and metrics["history"][1]["val_acc_ci"]
    assert "val_acc_ci" not in metrics["history"][0]  # recorded by the old code, without an interval
    assert (run / "train.log").is_file()  # the resumed run starts its console log (the old one kept none)
    assert (run / "test_predictions.csv").is_file()
    assert main(["evaluate", str(run), "--split", "val"]) == 0


def test_an_old_experiments_csv_gets_the_new_columns_when_a_run_appends_to_it(old_runs: Path) -> None:
    """The fixtures' experiments.csv has the header of the version that made them: the resumed run's row adds the
    interval columns, empty for the old row, and the old row keeps every value it had."""
    from vjepa_tune.tracking.records import EXPERIMENT_COLUMNS, read_experiments

    path = old_runs / "runs" / "experiments.csv"
    old_header, old_row = path.read_text().splitlines()
    assert "test_acc_ci_low" not in old_header.split(",")
    assert main(["train", "--resume", "auto", "--out", str(old_runs / "runs")]) == 0
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(EXPERIMENT_COLUMNS) and lines[0].startswith(old_header + ",")
    new_columns = len(EXPERIMENT_COLUMNS) - len(old_header.split(","))
    assert lines[1] == old_row + "," * new_columns and len(lines) == 3
    old, new = read_experiments(path)
    assert old["test_acc_ci_low"] == old["test_acc_ci_high"] == "" and old["precision"] == "fp32"
    metrics = json.loads((old_runs / "runs" / "interrupted" / "metrics.json").read_text())
    assert new["run_dir"] == str((old_runs / "runs" / "interrupted").resolve())
    assert [float(new["test_acc_ci_low"]), float(new["test_acc_ci_high"])] == metrics["test_acc_ci"]


def test_an_old_run_that_never_recorded_its_clip_duration_measures_it_on_its_training_videos(
    old_runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vjepa_tune.inference.predictor import train_clip_seconds
    from vjepa_tune.runs.folder import read_config_yaml
    from vjepa_tune.synth import render_sequence, write_video

    run = old_runs / "runs" / "finished"
    assert "train_clip_s" not in json.loads((run / "model" / "model.json").read_text())
    data = read_config_yaml(run / "config.yaml").data
    assert train_clip_seconds(run, data) == pytest.approx(1.28), "its 32-frame, 25 fps training videos"
    long_video = old_runs / "recording.mp4"
    write_video(long_video, render_sequence([("waving", 70), ("other", 70)], 5, size=(64, 64)).frames, fps=25)
    assert main(["predict", str(run), str(long_video)]) == 0
    assert "x the run's training clips (typically 1.28 s)" in capsys.readouterr().err
    shutil.rmtree(old_runs / "data")
    assert train_clip_seconds(run, data) is None, "training videos gone: unknown, and no claim made"


def test_an_old_runs_records_name_its_precision_as_users_do(old_runs: Path) -> None:
    from vjepa_tune.runs.folder import read_metrics as read_metrics_json
    from vjepa_tune.tracking.records import read_experiments

    finished = old_runs / "runs" / "finished"
    assert json.loads((finished / "metrics.json").read_text())["precision"] == "no"  # as the old code wrote it
    assert read_metrics_json(finished)["precision"] == "fp32"
    assert {row["precision"] for row in read_experiments(old_runs / "runs" / "experiments.csv")} == {"fp32"}


def test_an_old_interrupted_run_resumed_with_a_tracker_added_reports_to_it_and_names_the_flags_it_ignores(
        old_runs: Path, monkeypatch: pytest.MonkeyPatch, trackers_read, capsys) -> None:
    trackers_read.isolate(monkeypatch, old_runs / "home")
    out = old_runs / "runs"
    assert main(["train", "--resume", "auto", "--out", str(out), "--report_to", "tensorboard,mlflow",
                 "--num_epochs", "9"]) == 0
    said = capsys.readouterr().out
    assert "--report_to tensorboard,mlflow applies from here on (the run began with tensorboard)" in said
    assert "--num_epochs 9 (the run's: 2)" in said
    run = out / "interrupted"
    assert [e["epoch"] for e in json.loads((run / "metrics.json").read_text())["history"]] == [1, 2]
    assert "report_to: tensorboard,mlflow" in (run / "config.yaml").read_text()
    client = trackers_read.mlflow(out)
    (tracked,) = client.search_runs([client.get_experiment_by_name("vjepa-tune").experiment_id])
    assert tracked.info.status == "FINISHED" and "test_acc" in tracked.data.metrics
