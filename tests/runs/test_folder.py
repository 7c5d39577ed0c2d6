"""The run folder's records (config.yaml, splits.json, metrics.json, model.json) and its making, finding and
resuming: the files users' scripts read, written as CLI.md promises and read back from every earlier version."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from vjepa_tune.config import DataConfig, LoraConfig, PretrainConfig, ProbeConfig, TrainConfig
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.runs.folder import (
    METRICS_REQUIRED_KEYS,
    STATE_FILE,
    check_run_name,
    find_resumable,
    is_pretraining_run,
    new_run_dir,
    read_config,
    read_config_yaml,
    read_metrics,
    read_pretrain_config,
    read_splits,
    run_classes,
    run_folder,
    run_to_resume,
    write_config,
    write_metrics,
    write_pretrain_config,
    write_pretrain_metrics,
    write_splits,
)


def test_config_yaml_round_trips_every_field(tmp_path) -> None:
    cfg = TrainConfig(
        strategy="pooler_and_head",
        model="random:tiny",
        out=tmp_path / "runs",
        num_epochs=3,
        learning_rate=1e-3,
        max_grad_norm=1.0,
        data=DataConfig(
            root=tmp_path / "videos", videos_per_class=20, split_ratios=[0.6, 0.2, 0.2], hflip=False
        ),
        lora=LoraConfig(rank=8, alpha=16.0, dropout=0.0),
    )
    path = write_config(tmp_path / "run", cfg)
    assert path == tmp_path / "run" / "config.yaml"
    assert path.read_text().startswith(f"# vjepa-tune train --config {path}\n")
    again = read_config_yaml(path)
    assert again == cfg
    assert isinstance(again.data.root, Path) and isinstance(again.out, Path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strategy: lora\nlearning_rat: 0.1\n", "unknown configuration key 'learning_rat'"),
        ("data:\n  rooot: /x\n", "unknown configuration key 'rooot'"),
        ("strategy: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("lora: 8\n", "'lora' must be a mapping"),
    ],
)
def test_bad_config_files_are_refused_naming_the_file(tmp_path, text, message) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message) as info:
        read_config_yaml(path)
    assert str(path) in str(info.value)


def test_hand_written_config_reads_exponent_numbers_as_numbers(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("strategy: head_only\nlearning_rate: 1e-4\ndata:\n  root: videos\n")
    cfg = read_config_yaml(path)
    assert cfg.learning_rate == 1e-4 and cfg.strategy == "head_only" and cfg.data.root == Path("videos")


def test_missing_config_file_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        read_config_yaml(tmp_path / "nope.yaml")


def test_metrics_json_holds_the_contract_keys(run_metrics, tmp_path) -> None:
    path = write_metrics(tmp_path, {**run_metrics(), "extra": {"top5": None}})
    written = json.loads(path.read_text())
    assert path.name == "metrics.json"
    assert set(METRICS_REQUIRED_KEYS) <= set(written)
    assert written["history"][1] == {"epoch": 2, "train_loss": 0.9, "val_acc": 0.8}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"skipped_videos": None}, "skipped_videos"),
        ({"history": [{"epoch": 1, "train_loss": 1.0}]}, r"history'\]\[0\] lacks val_acc"),
        ({"test_acc": 75.0}, "test_acc must be a fraction"),
        ({"history": [{"epoch": 1, "train_loss": 1.0, "val_acc": 80}]}, "val_acc'\\] must be a fraction"),
        ({"trainable_pct": 130.0}, "trainable_pct"),
        ({"test_acc_ci": [75.0, 90.0]}, r"test_acc_ci must be a fraction"),
        ({"best_val_acc_ci": [0.9, 0.5]}, r"best_val_acc_ci must be \[low, high\] with low <= high"),
        ({"macro_f1_ci": [0.5]}, r"macro_f1_ci must be a \[low, high\] pair"),
        ({"history": [{"epoch": 1, "train_loss": 1.0, "val_acc": 0.5, "val_acc_ci": 0.5}]},
         r"history\[0\]\['val_acc'\]_ci must be a \[low, high\] pair"),
        ({"versions": {"python": "3.11"}}, "versions'\\] lacks torch"),
    ],
)
def test_metrics_json_refuses_a_broken_promise(tmp_path, run_metrics, overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        write_metrics(tmp_path, run_metrics(**overrides))
    assert not (tmp_path / "metrics.json").exists()


def test_splits_json_records_each_video_with_its_size_and_fingerprint_and_reads_back(tmp_path) -> None:
    from vjepa_tune.data.fingerprints import file_identity

    root = tmp_path / "videos"
    samples = []
    for n, name in enumerate(("a/1.mp4", "a/2.mp4", "b/3.mp4")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(bytes([n]) * (100 + n))
        samples.append(Sample(path=root / name, label=int(name[0] == "b"), id=name, group=f"P{n}"))
    splits = Splits(train=samples[:1], val=samples[1:2], test=samples[2:], method="group")
    path = write_splits(tmp_path / "run", splits, ["a", "b"])
    recorded = json.loads(path.read_text())
    assert path.name == "splits.json" and recorded["method"] == "group" and recorded["classes"] == ["a", "b"]
    entry = recorded["train"][0]
    assert (entry["id"], entry["label"], entry["group"]) == ("a/1.mp4", 0, "P0")
    assert (entry["size"], entry["fingerprint"]) == tuple(vars(file_identity(root / "a/1.mp4")).values())
    again = read_splits(tmp_path / "run", root)
    assert [s.id for _, side in again.items() for s in side] == ["a/1.mp4", "a/2.mp4", "b/3.mp4"]
    assert again.method == "group" and again.test[0].path == root / "b/3.mp4"


def test_test_predictions_keep_each_videos_answer_and_read_back_as_right_or_wrong(tmp_path) -> None:
    from vjepa_tune.runs.folder import read_test_outcomes, write_test_predictions

    assert read_test_outcomes(tmp_path) is None  # a run from before they were kept
    a, b = (Sample(path=tmp_path / f"{n}.mp4", label=n, id=f"v{n}") for n in (0, 1))
    path = write_test_predictions(tmp_path, ["x", "y"], [(a, [0.9, 0.1]), (b, [0.7, 0.3])],
                                  {"v2": "could not be decoded during testing"})
    assert path.read_text().splitlines() == [
        "id,label,predicted,score,correct,error,p_x,p_y",
        "v0,x,x,0.900000,1,,0.900000,0.100000",
        "v1,y,x,0.700000,0,,0.700000,0.300000",
        "v2,,,,,could not be decoded during testing,,",
    ]
    assert read_test_outcomes(tmp_path) == {"v0": True, "v1": False}


def test_tracker_ids_are_kept_for_a_resumed_run(tmp_path) -> None:
    from vjepa_tune.runs.folder import read_tracker_ids, write_tracker_ids

    assert read_tracker_ids(tmp_path) == {}
    write_tracker_ids(tmp_path, {"mlflow": "a" * 32, "wandb": "x1y2"})
    assert read_tracker_ids(tmp_path) == {"mlflow": "a" * 32, "wandb": "x1y2"}
    (tmp_path / "trackers.json").write_text("{broken")
    assert read_tracker_ids(tmp_path) == {}


def test_old_metrics_saying_no_precision_read_as_fp32(run_metrics, tmp_path) -> None:
    """metrics.json said accelerate's "no" for fp32 before; it reads as fp32 now."""
    write_metrics(tmp_path, run_metrics(precision="no"))
    assert read_metrics(tmp_path)["precision"] == "fp32"
    write_metrics(tmp_path, run_metrics(precision="bf16"))
    assert read_metrics(tmp_path)["precision"] == "bf16"


def test_a_run_recorded_before_a_setting_existed_reads_back_as_it_ran(tmp_path) -> None:
    """Runs recorded before --cache.train_batch_size ran their stored-feature steps one --batch_size pass at a time;
    resumed or reloaded, they must go on that way, while a run recorded with the setting keeps its value."""
    cfg = TrainConfig(model="random:tiny")
    path = write_config(tmp_path / "new", cfg)
    assert read_config_yaml(path).cache.train_batch_size == cfg.cache.train_batch_size == 8
    old = tmp_path / "old.yaml"
    old.write_text(path.read_text().replace("  train_batch_size: 8\n", ""))
    assert "train_batch_size" not in old.read_text()
    assert read_config_yaml(old).cache.train_batch_size == 1
    bare = tmp_path / "bare.yaml"
    bare.write_text("strategy: lora\n")
    assert read_config_yaml(bare).cache.train_batch_size == 1


def test_a_folder_that_is_no_run_is_refused_by_name(tmp_path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        read_config(tmp_path / "nowhere")
    with pytest.raises(BadInput, match="not a vjepa-tune run folder"):
        read_config(tmp_path)


# ------------------------------------------------------------------------------------------------ the folder
def test_a_new_run_gets_its_name_or_strategy_and_time_and_never_a_finished_runs_folder(run_metrics, tmp_path) -> None:
    assert new_run_dir(tmp_path, "lora", "mine") == tmp_path / "mine"
    first = new_run_dir(tmp_path, "lora", None)
    assert first.parent == tmp_path and first.name.startswith("lora-")
    (first / "something").mkdir(parents=True)  # taken within the same second: the next one gets a suffix
    second = new_run_dir(tmp_path, "lora", None)
    assert second != first and second.name.startswith(first.name)
    write_metrics(tmp_path / "done", run_metrics())
    with pytest.raises(BadInput, match="already holds a finished run"):
        check_run_name(tmp_path, "done")


def _unfinished(out: Path, name: str, age_s: float) -> Path:
    state = out / name / STATE_FILE
    state.parent.mkdir(parents=True)
    state.write_bytes(b"state")
    stamp = time.time() - age_s
    os.utime(state, (stamp, stamp))
    (out / name / "config.yaml").write_text("strategy: lora\n")
    return out / name


def test_resume_auto_finds_the_newest_unfinished_run_and_a_path_must_be_an_unfinished_run(
        run_metrics, tmp_path) -> None:
    said: list[str] = []
    assert find_resumable(tmp_path / "nowhere") is None
    older, newer = _unfinished(tmp_path, "older", 100), _unfinished(tmp_path, "newer", 10)
    finished = _unfinished(tmp_path, "finished", 1)
    write_metrics(finished, run_metrics())
    assert find_resumable(tmp_path) == newer
    assert run_to_resume("auto", tmp_path, has_data=False, log=said.append) == newer
    assert run_to_resume(str(older), tmp_path, has_data=False, log=said.append) == older
    with pytest.raises(BadInput, match="already finished"):
        run_to_resume(str(finished), tmp_path, has_data=False, log=said.append)
    with pytest.raises(BadInput, match="not a vjepa-tune run folder"):
        run_to_resume(str(tmp_path / "nowhere"), tmp_path, has_data=False, log=said.append)
    empty = tmp_path / "empty"
    with pytest.raises(BadInput, match="nothing to resume"):
        run_to_resume("auto", empty, has_data=False, log=said.append)
    assert run_to_resume("auto", empty, has_data=True, log=said.append) is None
    assert said == [f"--resume auto: nothing to resume in {empty}; starting a new run"]


def test_a_folder_made_for_a_run_that_fails_before_its_first_checkpoint_is_removed_with_the_parents_it_made(
    tmp_path,
) -> None:
    run_dir = tmp_path / "out" / "deeper" / "run"
    with pytest.raises(RuntimeError), run_folder(run_dir, create=True):
        (run_dir / "config.yaml").write_text("strategy: lora\n")
        raise RuntimeError("failed before the first epoch ended")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), run_folder(run_dir, create=True):
        (run_dir / STATE_FILE).parent.mkdir()
        (run_dir / STATE_FILE).write_bytes(b"state")
        raise RuntimeError("failed after a checkpoint")
    assert (run_dir / STATE_FILE).is_file(), "a run with a checkpoint is kept to be resumed"
    existing = tmp_path / "existing"
    existing.mkdir()
    with pytest.raises(RuntimeError), run_folder(existing, create=False):
        raise RuntimeError("a resumed run's folder")
    assert existing.is_dir()


def test_a_trained_run_records_the_size_and_fingerprint_of_every_video_it_lists(trained_run) -> None:
    from vjepa_tune.data.fingerprints import FINGERPRINT_SCHEME, file_identity

    run = trained_run("head_only")
    recorded = json.loads((run / "splits.json").read_text())
    root = Path(read_config(run).data.root)
    assert recorded["version"] == 2 and recorded["fingerprint_scheme"] == FINGERPRINT_SCHEME
    entries = [e for name in ("train", "val", "test") for e in recorded[name]]
    assert len(entries) == 24
    for entry in entries:
        identity = file_identity(root / entry["id"])
        assert (entry["size"], entry["fingerprint"]) == (identity.size, identity.fingerprint), entry["id"]


def test_a_pretraining_config_round_trips_without_the_settings_pretrain_has_no_flag_for(tmp_path) -> None:
    cfg = PretrainConfig(model="tiny", max_steps=7, data=DataConfig(root=tmp_path / "footage", crop_scale=[0.5, 1.0]),
                         probe=ProbeConfig(data=DataConfig(root=tmp_path / "labelled", videos_per_class=5), every=3))
    cfg.masks.long_range.num_blocks = 3
    cfg.ema.end = 0.9999
    write_pretrain_config(tmp_path, cfg)
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith(f"# vjepa-tune pretrain --config {tmp_path / 'config.yaml'}")
    assert read_pretrain_config(tmp_path) == cfg
    assert is_pretraining_run(tmp_path)
    values = yaml.safe_load(text)
    assert "split_ratios" not in values["data"] and values["probe"]["data"]["videos_per_class"] == 5


def _unfinished_pretraining(out: Path, name: str, age_s: float) -> Path:
    run = _unfinished(out, name, age_s)
    write_pretrain_config(run, PretrainConfig())
    return run


def test_resume_finds_only_runs_of_its_own_kind_and_refuses_the_other_kind_by_name(tmp_path) -> None:
    said: list[str] = []
    training = _unfinished(tmp_path, "training", 10)
    pretraining = _unfinished_pretraining(tmp_path, "pretraining", 100)
    assert not is_pretraining_run(training) and is_pretraining_run(pretraining)
    assert find_resumable(tmp_path) == training and find_resumable(tmp_path, pretraining=True) == pretraining
    assert run_to_resume("auto", tmp_path, has_data=False, log=said.append, pretraining=True) == pretraining
    with pytest.raises(BadInput, match="is a `vjepa-tune pretrain` run; `vjepa-tune train` cannot continue it"):
        run_to_resume(str(pretraining), tmp_path, has_data=False, log=said.append)
    with pytest.raises(BadInput, match="is a `vjepa-tune train` run; `vjepa-tune pretrain` cannot continue it"):
        run_to_resume(str(training), tmp_path, has_data=False, log=said.append, pretraining=True)
    with pytest.raises(BadInput, match="no pretraining run folder there"):
        run_to_resume("auto", tmp_path / "empty", has_data=False, log=said.append, pretraining=True)


def test_pretraining_metrics_hold_a_monitor_entry_per_step_and_fractions_for_the_probes(tmp_path) -> None:
    entry = {"step": 1, "loss": 0.8, "lr": 1e-4, "ema_momentum": 0.999, "grad_norm": 1.0, "target_std": 0.7,
             "target_rank": 30.0, "pred_std": 0.1}
    metrics = {"approach": "pretrain", "model": "tiny", "steps": 1, "num_videos": 8, "skipped_videos": 0,
               "history": [entry], "probes": [{"val_acc": 0.5, "test_acc": 0.25}], "train_time_s": 1.0,
               "versions": {}}
    write_pretrain_metrics(tmp_path, metrics)
    assert read_metrics(tmp_path)["history"] == [entry]
    with pytest.raises(ValueError, match="history'\\]\\[0\\] lacks pred_std"):
        write_pretrain_metrics(tmp_path, {**metrics, "history": [{k: v for k, v in entry.items() if k != "pred_std"}]})
    with pytest.raises(ValueError, match="probes\\[0\\]\\['test_acc'\\] must be a fraction"):
        write_pretrain_metrics(tmp_path, {**metrics, "probes": [{"val_acc": 0.5, "test_acc": 25.0}]})
    with pytest.raises(ValueError, match="would miss required keys: probes"):
        write_pretrain_metrics(tmp_path, {k: v for k, v in metrics.items() if k != "probes"})


def test_a_runs_class_names_come_from_its_splits_json_and_none_without_one(tmp_path) -> None:
    a, b = (Sample(path=tmp_path / f"{n}.mp4", label=n, id=f"v{n}") for n in (0, 1))
    write_splits(tmp_path / "run", Splits(train=[a], val=[b], test=[], method="random"), ["walk", "wave"])
    assert run_classes(tmp_path / "run") == ["walk", "wave"]
    assert run_classes(tmp_path / "nothing") is None
