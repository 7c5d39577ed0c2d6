"""The training recipe end to end on real decoded videos and `random:tiny`: records, fitting, repeatability,
resume after a real SIGKILL, what a failure leaves behind, and the refusals of bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vjepa_tune.cli import main
from vjepa_tune.config import CacheConfig, DataConfig, TrainConfig, validate
from vjepa_tune.errors import NonFiniteLoss
from vjepa_tune.training.recipe import train

SRC = Path(__file__).resolve().parents[2] / "src"


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", "random:tiny", "--data.root", str(root), "--out", str(out), *extra]


def _only_run(out: Path) -> Path:
    runs = [d for d in out.iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.fixture(scope="module")
def lora_run(synth_root: Path, store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lora-run")
    code = main(_train_args(synth_root, out, "--strategy", "lora", "--num_epochs", "2",
                            "--cache.dir", str(store_dir)))
    assert code == 0
    return _only_run(out)


def _config(root: Path, out: Path, store: Path, **settings: object) -> TrainConfig:
    """A `random:tiny` run on `root` (the Python API's equivalent of `_train_args`)."""
    settings.setdefault("model", "random:tiny")
    return validate(TrainConfig(out=out, data=DataConfig(root=root), cache=CacheConfig(dir=store), **settings))


def _hand_wilson(correct: int, total: int) -> list[float]:
    """The Wilson score interval written out: centre (p + z²/2n) / (1 + z²/n), half-width
    z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²), z = 1.959964 (95%)."""
    z, p = 1.959963984540054, correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * (p * (1 - p) / total + z * z / (4 * total * total)) ** 0.5
    return [max(0.0, centre - half), min(1.0, centre + half)]


def test_run_folder_holds_the_contract_records(lora_run: Path) -> None:
    for name in ("config.yaml", "splits.json", "metrics.json", "confusion.csv", "confusion.png",
                 "test_predictions.csv", "model/trainable.safetensors", "model/model.json"):
        assert (lora_run / name).exists(), name
    assert list((lora_run / "tensorboard").glob("events.out.tfevents.*"))
    assert not (lora_run / "checkpoint").exists(), "a finished run drops its resumable state"

    metrics = json.loads((lora_run / "metrics.json").read_text())
    for key in ("approach", "model", "test_acc", "best_val_acc", "trainable_params", "total_params",
                "trainable_pct", "train_time_s", "num_train", "num_val", "num_test", "skipped_videos",
                "history", "versions"):
        assert key in metrics, key
    assert metrics["approach"] == "lora"
    assert 0.0 <= metrics["test_acc"] <= 1.0 and 0.0 <= metrics["best_val_acc"] <= 1.0
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert all({"epoch", "train_loss", "val_acc"} <= set(h) for h in metrics["history"])
    assert metrics["trainable_pct"] == pytest.approx(100 * metrics["trainable_params"] / metrics["total_params"])
    assert set(metrics["versions"]) >= {"python", "torch", "transformers", "peft", "vjepa_tune"}
    assert metrics["skipped_videos"] == 0
    model_meta = json.loads((lora_run / "model" / "model.json").read_text())
    assert model_meta["train_clip_s"] == pytest.approx(1.28), "32 frames at 25 fps, spanned by a uniform clip"
    assert metrics["precision"] == "fp32"  # as users name it, not accelerate's "no"

    splits = json.loads((lora_run / "splits.json").read_text())
    assert len(splits["train"]) == metrics["num_train"] and len(splits["test"]) == metrics["num_test"]
    ids = [s["id"] for part in ("train", "val", "test") for s in splits[part]]
    assert len(ids) == len(set(ids)) == 24

    rows = list(csv.DictReader((lora_run.parent / "experiments.csv").open()))
    assert len(rows) == 1
    assert rows[0]["approach"] == "lora" and Path(rows[0]["run_dir"]) == lora_run.resolve()
    assert float(rows[0]["test_acc"]) == pytest.approx(metrics["test_acc"])
    assert rows[0]["precision"] == "fp32"
    for key in ("test_acc", "best_val_acc", "mean_class_acc", "macro_f1"):
        low, high = (float(rows[0][f"{key}_ci_{end}"]) for end in ("low", "high"))
        assert [low, high] == pytest.approx(metrics[f"{key}_ci"], abs=1e-12), key


def test_every_accuracy_in_metrics_json_carries_the_wilson_interval_of_its_counts(lora_run: Path) -> None:
    metrics = json.loads((lora_run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["num_samples"] == metrics["num_test"] == 4 and test["num_correct"] == round(4 * metrics["test_acc"])
    assert metrics["test_acc_ci"] == test["top1_ci"] == pytest.approx(_hand_wilson(test["num_correct"], 4))
    for entry in metrics["history"]:  # 4 validation videos each epoch
        assert entry["val_acc_ci"] == pytest.approx(_hand_wilson(round(4 * entry["val_acc"]), 4))
    best = metrics["history"][metrics["best_epoch"] - 1]
    assert metrics["best_val_acc_ci"] == best["val_acc_ci"]
    # the class averages: a bootstrap over the test videos, around the figure
    for key in ("mean_class_acc", "macro_f1"):
        low, high = metrics[f"{key}_ci"]
        assert metrics[key] == test[key] and test[f"{key}_ci"] == [low, high] and 0 <= low <= high <= 1
    assert test["intervals"]["resamples"] == 2000 and test["intervals"]["seed"] == 0


def test_the_run_keeps_what_its_best_model_said_of_every_test_video(lora_run: Path) -> None:
    metrics = json.loads((lora_run / "metrics.json").read_text())
    splits = json.loads((lora_run / "splits.json").read_text())
    rows = list(csv.DictReader((lora_run / "test_predictions.csv").open()))
    assert [r["id"] for r in rows] == [s["id"] for s in splits["test"]]
    assert list(rows[0]) == ["id", "label", "predicted", "score", "correct", "error",
                             *(f"p_{c}" for c in splits["classes"])]
    assert [r["label"] for r in rows] == [s["class"] for s in splits["test"]]
    assert sum(int(r["correct"]) for r in rows) == metrics["test"]["num_correct"]
    classes = splits["classes"]
    confusion = [[0] * len(classes) for _ in classes]
    for r in rows:
        assert int(r["correct"]) == (r["label"] == r["predicted"])
        assert float(r["score"]) == max(float(r[f"p_{c}"]) for c in classes)
        confusion[classes.index(r["label"])][classes.index(r["predicted"])] += 1
    assert confusion == metrics["test"]["confusion"]


def test_config_yaml_repeats_the_run_bit_exactly(lora_run: Path, store_dir: Path, tmp_path: Path) -> None:
    config = lora_run / "config.yaml"
    assert yaml.safe_load(config.read_text())["strategy"] == "lora"
    assert main(["train", "--config", str(config), "--out", str(tmp_path)]) == 0
    first = json.loads((lora_run / "metrics.json").read_text())
    again = json.loads((_only_run(tmp_path) / "metrics.json").read_text())
    assert [h["train_loss"] for h in again["history"]] == [h["train_loss"] for h in first["history"]]
    assert [h["val_acc"] for h in again["history"]] == [h["val_acc"] for h in first["history"]]
    assert again["test"]["confusion"] == first["test"]["confusion"]


def test_a_short_run_fits_its_training_clips(synth_root: Path, store_dir: Path, tmp_path: Path) -> None:
    code = main(_train_args(
        synth_root, tmp_path, "--strategy", "head_only", "--num_epochs", "40", "--batch_size", "16",
        "--accumulation_steps", "1", "--learning_rate", "5e-2", "--cache.views", "1", "--data.hflip", "false",
        "--data.crop_scale", "1.0,1.0", "--cache.dir", str(store_dir),
    ))
    assert code == 0
    history = json.loads((_only_run(tmp_path) / "metrics.json").read_text())["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"], history


def _spawn_train(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vjepa_tune", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _tensorboard_steps(run_dir: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(synth_root: Path, tmp_path: Path) -> None:
    common = ["--strategy", "lora", "--num_epochs", "3", "--cache.enabled", "false"]
    whole_out, killed_out = tmp_path / "whole", tmp_path / "killed"
    whole = _spawn_train(_train_args(synth_root, whole_out, *common))

    victim = _spawn_train(_train_args(synth_root, killed_out, *common))
    deadline = time.monotonic() + 300
    while not list(killed_out.glob("*/checkpoint/state.pt")):
        assert victim.poll() is None, victim.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)  # epoch 1 is saved; epoch 2 has just begun
    victim.wait()
    run_dir = _only_run(killed_out)
    assert not (run_dir / "metrics.json").exists()
    state = torch.load(run_dir / "checkpoint" / "state.pt", weights_only=False)
    assert state["train_state"]["epoch"] == 1

    resumed = _spawn_train(_train_args(synth_root, killed_out, *common, "--resume", "auto"))
    out_resumed, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out_resumed
    assert "resumed after epoch 1" in out_resumed
    out_whole, _ = whole.communicate(timeout=600)
    assert whole.returncode == 0, out_whole

    a = json.loads((_only_run(whole_out) / "metrics.json").read_text())
    b = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in b["history"]] == [1, 2, 3]
    for key in ("train_loss", "val_acc", "lr"):
        assert [h[key] for h in b["history"]] == [h[key] for h in a["history"]], key
    assert b["test_acc"] == a["test_acc"] and b["test"]["confusion"] == a["test"]["confusion"]
    assert len(list(csv.DictReader((killed_out / "experiments.csv").open()))) == 1
    log = (run_dir / "train.log").read_text()
    headers = [line for line in log.splitlines() if line.startswith("# ")]
    assert len(headers) == 2 and headers[1].endswith("--resume auto"), headers  # the resumed run appended
    first, second = log.split(headers[1])
    assert "epoch 1/3: train loss" in first and "epoch 3/3" not in first
    assert "resumed after epoch 1" in second and "epoch 3/3: train loss" in second and "test acc" in second
    steps = _tensorboard_steps(run_dir, "train/loss")
    assert steps == sorted(set(steps)) == _tensorboard_steps(_only_run(whole_out), "train/loss")
    assert _tensorboard_steps(run_dir, "val/acc") == _tensorboard_steps(_only_run(whole_out), "val/acc")


def test_a_killed_run_resumed_continues_the_same_mlflow_and_wandb_runs_and_reports_everything_to_them(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trackers_read
) -> None:
    """`--report_to tensorboard,mlflow,wandb`, SIGKILLed after its first epoch's checkpoint, then resumed: one MLflow
    run and one W&B run id hold the configuration, every step's scalars, the final metrics with their intervals and
    the run's files."""
    trackers_read.isolate(monkeypatch, tmp_path / "home")  # the spawned run inherits the environment
    out = tmp_path / "runs"
    args = _train_args(synth_root, out, "--strategy", "lora", "--num_epochs", "2", "--cache.enabled", "false",
                       "--run_name", "tracked", "--report_to", "tensorboard,mlflow,wandb")
    victim = _spawn_train(args)
    deadline = time.monotonic() + 300
    while not (out / "tracked" / "checkpoint" / "state.pt").exists():
        assert victim.poll() is None, victim.stdout.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run_dir = out / "tracked"
    ids = json.loads((run_dir / "trackers.json").read_text())
    assert set(ids) == {"mlflow", "wandb"}

    assert main(["train", "--resume", "auto", "--out", str(out)]) == 0
    assert json.loads((run_dir / "trackers.json").read_text()) == ids
    metrics = json.loads((run_dir / "metrics.json").read_text())
    client = trackers_read.mlflow(out)
    run = client.get_run(ids["mlflow"])
    assert len(client.search_runs([run.info.experiment_id])) == 1, "the resumed run started no second MLflow run"
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["strategy"] == "lora" and run.data.params["lora.rank"] == "16"
    assert run.data.params["report_to"] == "tensorboard,mlflow,wandb"
    assert run.data.metrics["test_acc"] == metrics["test_acc"]
    assert [run.data.metrics["best_val_acc_ci_low"], run.data.metrics["best_val_acc_ci_high"]] == \
        metrics["best_val_acc_ci"]
    steps = {m.step for m in client.get_metric_history(ids["mlflow"], "train/loss")}
    assert steps == {1, 2, 3, 4, 5, 6, 7, 8}, "16 videos in steps of 4, two epochs: both attempts' steps"
    val = sorted((m.step, m.value) for m in client.get_metric_history(ids["mlflow"], "val/acc"))
    assert val == [(4, metrics["history"][0]["val_acc"]), (8, metrics["history"][1]["val_acc"])]
    assert {a.path for a in client.list_artifacts(ids["mlflow"])} == {"confusion.png", "metrics.json",
                                                                      "test_predictions.csv"}

    # W&B: one offline folder per attempt, both of the run's id (what the SIGKILLed one logged is whatever W&B's
    # service wrote out before it died with it); the resumed one holds the configuration, its steps, the summary
    killed, resumed = trackers_read.wandb_runs(run_dir)
    assert killed.folder.name.endswith(f"-{ids['wandb']}") and resumed.run_id == ids["wandb"]
    assert resumed.exit_code == 0 and resumed.config["strategy"] == "lora"
    assert resumed.summary["test_acc"] == metrics["test_acc"]
    assert [row["_step"] for row in resumed.history if "train/loss" in row] == [5, 6, 7, 8]
    assert _tensorboard_steps(run_dir, "train/loss") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(
    synth_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    def diverge_in_epoch_2(epoch: int, model: torch.nn.Module) -> None:
        if epoch == 1:  # weights gone to NaN in the second epoch
            with torch.no_grad():
                for p in model.parameters():
                    if p.requires_grad:
                        p.fill_(float("nan"))

    cfg = _config(synth_root, tmp_path, store_dir, strategy="pooler_and_head", num_epochs=3)
    with pytest.raises(NonFiniteLoss) as error:
        train(cfg, log=lambda _: None, before_epoch=diverge_in_epoch_2)
    run_dir = _only_run(tmp_path)
    assert "training loss became nan at epoch 2" in str(error.value)
    assert f"the last good checkpoint (after epoch 1) is kept in {run_dir / 'checkpoint' / 'state.pt'}" in str(
        error.value)
    assert (run_dir / "checkpoint" / "state.pt").is_file() and not (run_dir / "metrics.json").exists()


def test_the_run_folder_keeps_the_console_log_warnings_included(
    synth_root: Path, store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    import logging
    import warnings

    from vjepa_tune.models.specs import small_data_note
    from vjepa_tune.tracking.console_log import ConsoleLog

    def warn(epoch: int, model: torch.nn.Module) -> None:
        warnings.warn("a warning raised while training", UserWarning, stacklevel=1)
        library = logging.getLogger("vjepa_tune.test.library")  # a library's own console handler, as transformers'
        library.propagate = False
        library.handlers = [logging.StreamHandler()]
        library.warning("a library's log record")

    command = f"vjepa-tune train --model tiny --data.root {synth_root}"
    cfg = _config(synth_root, tmp_path, store_dir, model="tiny", strategy="head_only", num_epochs=1)
    with ConsoleLog(command_line=command):
        train(cfg, before_epoch=warn)
    logging.getLogger("vjepa_tune.test.library").handlers.clear()
    run_dir = _only_run(tmp_path)
    lines = (run_dir / "train.log").read_text().splitlines()
    assert lines[0].startswith("# ") and lines[0].endswith(f" {command}")
    text = "\n".join(lines)
    assert "data: 24 videos in 4 classes" in text and "epoch 1/1: train loss" in text
    assert "test acc " in text and f"records in {run_dir}" in text
    assert sum("UserWarning: a warning raised while training" in line for line in lines) == 1
    assert "a library's log record" in lines
    metrics = json.loads((run_dir / "metrics.json").read_text())
    note = small_data_note("tiny", metrics["best_val_acc"], metrics["test_acc"], 4)  # said when tiny stays near chance
    assert (note in lines and note in capsys.readouterr().out) if note else not any("`tiny`" in x for x in lines)


def test_tiny_near_chance_is_told_what_settings_work_and_no_other_run_is() -> None:
    from vjepa_tune.models.specs import TINY_SMALL_DATA_NOTE, small_data_note

    assert small_data_note("tiny", 0.25, 0.25, 4) == TINY_SMALL_DATA_NOTE
    assert small_data_note("tiny", 0.4167, 0.3333, 4) == TINY_SMALL_DATA_NOTE  # synth's defaults, two epochs
    assert small_data_note("tiny", 0.6667, 0.875, 4) is None  # the demo's lora run: nothing to say
    assert small_data_note("tiny", 0.25, 0.5, 4) is None  # one of them clearly learnt
    assert small_data_note("tiny", 0.5, 0.5, 2) == TINY_SMALL_DATA_NOTE  # chance for two classes
    assert small_data_note("tiny", 0.8, 0.8, 2) is None and small_data_note("tiny", 0.5, 0.5, 10) is None
    assert small_data_note("random:tiny", 0.25, 0.25, 4) is None
    assert small_data_note("facebook/vjepa2-vitl-fpc16-256-ssv2", 0.25, 0.25, 4) is None


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--strategy", "full_finetune"], "--strategy 'full_finetune' is not one of head_only, pooler_and_head"),
        (["--learning_rate", "-1"], "--learning_rate must be a positive number"),
        (["--batch_size", "0"], "--batch_size must be a whole number >= 1"),
        (["--lora.dropout", "1.5"], "--lora.dropout must be in [0, 1)"),
        (["--data.frames_per_clip", "15"], "--data.frames_per_clip must be an even number"),
        (["--data.crop_size", "96"], "differs from the model's crop size 64"),
        (["--precision", "fp8"], "precision"),
        (["--num_epochs", "two"], "num_epochs"),
        (["--report_to", "tensorboard,comet"], "unknown tracker 'comet'; choose from tensorboard, mlflow, wandb"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    code = main(_train_args(synth_root, tmp_path, "--cache.enabled", "false", *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and "Traceback" not in err


def test_label_mismatch_with_a_local_model_is_reinitialised_and_said(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vjepa_tune.models.loading import load_model

    model_dir = tmp_path / "three-labels"
    load_model("random:tiny", num_labels=3, id2label={0: "a", 1: "b", 2: "c"}).save_pretrained(model_dir)
    code = main(["train", "--model", str(model_dir), "--data.root", str(synth_root), "--out", str(tmp_path / "o"),
                 "--strategy", "head_only", "--num_epochs", "1", "--cache.enabled", "false"])
    assert code == 0
    assert "classifier re-initialised: checkpoint has 3 labels" in capsys.readouterr().out


def test_missing_data_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_train_args(tmp_path / "nowhere", tmp_path / "out")) == 2
    assert "nowhere" in capsys.readouterr().err


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--data.root", "{tmp}/nowhere"], "--data.root {tmp}/nowhere does not exist"),
        (["--data.root", "{root}", "--data.crop_size", "32"], "--data.crop_size 32 differs from the model's"),
        (["--data.root", "{root}", "--num_epochs", "0"], "--num_epochs must be a whole number >= 1, got 0"),
        (["--data.root", "{root}", "--model", "{tmp}/no-model"], "--model {tmp}/no-model: no such directory"),
        ([], "--data.root is required"),
    ],
    ids=["missing-root", "bad-crop-size", "zero-epochs", "model-cannot-load", "no-root"],
)
def test_a_failed_train_adds_nothing_to_out_not_even_out_itself(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], needle: str
) -> None:
    argv = [f.format(tmp=tmp_path, root=synth_root) for f in ["train", "--model", "random:tiny", *flags]]
    new_out, existing_out = tmp_path / "runs", tmp_path / "existing"
    existing_out.mkdir()
    (existing_out / "experiments.csv").write_text("run_dir\n")
    for out in (new_out, existing_out):
        before = _tree(tmp_path)
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert needle.format(tmp=tmp_path) in err and "Traceback" not in err
        assert _tree(tmp_path) == before, f"--out {out} changed"
    assert not new_out.exists()


def test_a_failure_in_the_first_epoch_leaves_no_run_folder(synth_root: Path, store_dir: Path, tmp_path: Path) -> None:
    def fail(epoch: int, model: torch.nn.Module) -> None:
        raise RuntimeError("injected failure in the first epoch")

    out = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="injected failure in the first epoch"):
        train(_config(synth_root, out, store_dir, strategy="head_only"), log=lambda _: None, before_epoch=fail)
    assert not out.exists(), "the run folder and the --out it made are gone"


def test_a_non_finite_loss_in_the_first_epoch_leaves_no_run_folder_and_says_there_is_no_checkpoint(
    synth_root: Path, store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    code = main(_train_args(synth_root, out, "--strategy", "pooler_and_head", "--num_epochs", "3",
                            "--learning_rate", "1e30", "--cache.dir", str(store_dir)))
    err = capsys.readouterr().err
    assert code == 1 and "training loss became" in err and "no checkpoint to resume from" in err, err
    assert list(out.iterdir()) == [], "--out existed: it stays, empty as it was"


def test_a_failure_after_a_checkpoint_keeps_the_run_and_a_resumed_runs_folder_is_never_removed(
    synth_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    def fail_in_epoch_2(epoch: int, model: torch.nn.Module) -> None:
        if epoch == 1:
            raise RuntimeError("injected failure in the second epoch")

    cfg = _config(synth_root, tmp_path, store_dir, strategy="head_only", num_epochs=2)
    with pytest.raises(RuntimeError):
        train(cfg, log=lambda _: None, before_epoch=fail_in_epoch_2)
    run_dir = _only_run(tmp_path)
    assert (run_dir / "checkpoint" / "state.pt").is_file(), "epoch 1 finished: its checkpoint stays to resume from"
    with pytest.raises(RuntimeError):
        train(cfg, resume=str(run_dir), log=lambda _: None, before_epoch=fail_in_epoch_2)
    assert (run_dir / "checkpoint" / "state.pt").is_file() and (run_dir / "config.yaml").is_file()
    assert main(["train", "--resume", "auto", "--out", str(tmp_path)]) == 0
    assert (run_dir / "metrics.json").is_file()


def test_a_resumed_run_still_reports_the_unreadable_videos_it_left_out_when_it_started(
    synth_root: Path, store_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    broken = next(p for p in sorted(root.iterdir()) if p.is_dir()) / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    broken_id = broken.relative_to(root).as_posix()

    def fail_in_epoch_2(epoch: int, model: torch.nn.Module) -> None:
        if epoch == 1:
            raise RuntimeError("injected failure in the second epoch")

    cfg = _config(root, tmp_path / "runs", store_dir, strategy="head_only", num_epochs=2)
    with pytest.raises(RuntimeError):
        train(cfg, log=lambda _: None, before_epoch=fail_in_epoch_2)
    run_dir = _only_run(tmp_path / "runs")
    recorded = json.loads((run_dir / "splits.json").read_text())
    assert [e["id"] for e in recorded["left_out"]] == [broken_id]
    assert broken_id not in {e["id"] for side in ("train", "val", "test") for e in recorded[side]}
    train(cfg, resume=str(run_dir), log=lambda _: None)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["skipped_videos"] == 1 and [s["id"] for s in metrics["skipped"]] == [broken_id]


def test_resume_auto_with_nothing_to_resume_says_so_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    assert main(["train", "--resume", "auto", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"nothing to resume in {out}" in err and "--data.root" in err and "Traceback" not in err
    assert not out.exists()


def test_resume_auto_with_nothing_to_resume_and_data_given_starts_a_new_run_and_says_so(
    synth_root: Path, store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_train_args(synth_root, tmp_path, "--strategy", "head_only", "--num_epochs", "1", "--resume", "auto",
                            "--cache.dir", str(store_dir))) == 0
    assert f"nothing to resume in {tmp_path}; starting a new run" in capsys.readouterr().out
    assert (_only_run(tmp_path) / "metrics.json").is_file()


def test_early_stopping_ends_the_run_after_epochs_without_improvement(
    synth_root: Path, store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(_train_args(synth_root, tmp_path, "--strategy", "head_only", "--num_epochs", "6",
                            "--learning_rate", "1e-12", "--early_stopping", "2", "--cache.dir", str(store_dir)))
    assert code == 0
    history = json.loads((_only_run(tmp_path) / "metrics.json").read_text())["history"]
    assert len(history) == 3, "epoch 1 sets the best; epochs 2 and 3 do not beat it; the run stops"
    assert "early stopping: no better validation accuracy for 2 epochs" in capsys.readouterr().out


def test_smoothing_clipping_and_cosine_options_train(synth_root: Path, store_dir: Path, tmp_path: Path) -> None:
    code = main(_train_args(synth_root, tmp_path, "--strategy", "lora", "--num_epochs", "2", "--label_smoothing",
                            "0.1", "--max_grad_norm", "0.5", "--scheduler", "cosine", "--warmup_ratio", "0.2",
                            "--class_balance", "loss", "--cache.dir", str(store_dir)))
    assert code == 0
    metrics = json.loads((_only_run(tmp_path) / "metrics.json").read_text())
    assert metrics["history"][-1]["lr"] < 2e-4, "the cosine schedule has decayed the learning rate"
