"""Shared records keep CLI.md's promises and are never half-written; experiments.csv survives concurrent runs."""

from __future__ import annotations

import csv
import multiprocessing
import platform
from pathlib import Path

import pytest

import vjepa_tune
from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.tracking import records
from vjepa_tune.tracking.records import (
    EXPERIMENT_COLUMNS,
    append_experiment_row,
    experiment_row,
    has_row_for,
    precision_name,
    read_experiments,
    versions,
)

CLI_MD_COLUMNS = (  # copied from CLI.md, "Outputs"
    "timestamp, approach, model, dataset, num_train, num_val, num_test, videos_per_class, learning_rate, "
    "batch_size, accumulation_steps, num_epochs, weight_decay, lora_rank, lora_alpha, lora_dropout, seed, "
    "trainable_params, total_params, trainable_pct, test_acc, best_val_acc, train_time_s, run_dir"
).split(", ")


def test_versions_names_every_library_that_shapes_a_result() -> None:
    found = versions()
    for key in ("python", "torch", "transformers", "peft", "vjepa_tune", "accelerate", "av"):
        assert key in found
    assert found["python"] == platform.python_version()
    assert found["vjepa_tune"] == vjepa_tune.__version__
    import torch

    assert found["torch"] == torch.__version__


def test_experiment_columns_start_with_cli_md_list_in_order() -> None:
    assert list(EXPERIMENT_COLUMNS[: len(CLI_MD_COLUMNS)]) == CLI_MD_COLUMNS
    assert len(set(EXPERIMENT_COLUMNS)) == len(EXPERIMENT_COLUMNS)


def test_experiment_row_fills_every_contract_column(run_metrics, tmp_path) -> None:
    cfg = TrainConfig(learning_rate=1e-3, data=DataConfig(videos_per_class=50))
    row = experiment_row(
        cfg, run_metrics(), tmp_path / "run", dataset="ntu", timestamp="2025-01-01T00:00:00+00:00"
    )
    assert set(row) == set(EXPERIMENT_COLUMNS)
    assert all(row[c] is not None for c in CLI_MD_COLUMNS)
    assert row["learning_rate"] == 1e-3 and row["videos_per_class"] == 50 and row["effective_batch"] == 4
    assert row["test_acc"] == 0.75 and row["run_dir"] == str(tmp_path / "run")


@pytest.mark.parametrize(("recorded", "named"), [("no", "fp32"), ("fp32", "fp32"), ("bf16", "bf16"),
                                                  ("fp16", "fp16")])
def test_precision_is_named_as_users_name_it(recorded: str, named: str) -> None:
    assert precision_name(recorded) == named


def test_old_experiment_rows_saying_no_precision_read_as_fp32(run_metrics, tmp_path) -> None:
    """experiments.csv said accelerate's "no" for fp32 before; it reads as fp32 now."""
    path = tmp_path / "experiments.csv"
    append_experiment_row(path, {"approach": "lora", "precision": "no", "run_dir": "old"})
    row = experiment_row(TrainConfig(), run_metrics(precision="no"), tmp_path / "run", dataset="d")
    assert row["precision"] == "fp32"
    append_experiment_row(path, row)
    assert [r["precision"] for r in read_experiments(path)] == ["fp32", "fp32"]


def test_first_append_writes_header_then_rows(tmp_path) -> None:
    path = tmp_path / "runs" / "experiments.csv"
    append_experiment_row(
        path, {"approach": "lora", "model": "org/model,v2", "test_acc": 0.5, "run_dir": "r1"}
    )
    append_experiment_row(
        path, {"approach": "head_only", "test_acc": None, "run_dir": "r2", "not_a_column": 1}
    )
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(EXPERIMENT_COLUMNS)
    assert len(lines) == 3
    rows = read_experiments(path)
    assert [r["approach"] for r in rows] == ["lora", "head_only"]
    assert rows[0]["model"] == "org/model,v2" and rows[0]["test_acc"] == "0.5"
    assert rows[1]["test_acc"] == "" and "not_a_column" not in rows[1]


def test_an_older_header_gets_the_new_columns_with_empty_values_for_its_old_rows(tmp_path) -> None:
    path = tmp_path / "experiments.csv"
    path.write_text("timestamp,approach,test_acc,run_dir,note\nt0,lora,0.5,old,mine\nt1,head_on")  # cut short
    before = path.stat().st_ino
    append_experiment_row(path, {"timestamp": "t2", "approach": "head_only", "run_dir": "new", "seed": 3,
                                 "test_acc_ci_low": 0.25})
    added = [c for c in EXPERIMENT_COLUMNS if c not in ("timestamp", "approach", "test_acc", "run_dir")]
    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    # its own columns first, in its order (a column of its own kept), then every column it lacked
    assert lines[0] == ["timestamp", "approach", "test_acc", "run_dir", "note", *added]
    assert lines[1] == ["t0", "lora", "0.5", "old", "mine", *[""] * len(added)]
    assert lines[2] == ["t1", "head_on", *[""] * (len(lines[0]) - 2)]
    new = dict(zip(lines[0], lines[3], strict=True))
    assert (new["timestamp"], new["seed"], new["test_acc_ci_low"], new["note"]) == ("t2", "3", "0.25", "")
    assert len(lines) == 4 and path.stat().st_ino != before, "rewritten beside it and renamed into place"
    assert not [p for p in tmp_path.iterdir() if p.name != "experiments.csv"], "no file left aside"
    append_experiment_row(path, {"timestamp": "t3", "run_dir": "newer"})  # now current: appended in place
    assert path.stat().st_ino != before and read_experiments(path)[-1]["timestamp"] == "t3"


def test_experiment_row_carries_each_scores_interval_and_the_test_videos_scored(run_metrics, tmp_path) -> None:
    metrics = run_metrics(test_acc_ci=[0.69, 0.96], best_val_acc_ci=[0.49, 0.94], mean_class_acc=0.7,
                       mean_class_acc_ci=[0.5, 0.9], macro_f1=None, macro_f1_ci=None, test={"num_samples": 24})
    row = experiment_row(TrainConfig(), metrics, tmp_path / "run", dataset="d")
    assert (row["test_acc_ci_low"], row["test_acc_ci_high"]) == (0.69, 0.96)
    assert (row["best_val_acc_ci_low"], row["best_val_acc_ci_high"]) == (0.49, 0.94)
    assert (row["mean_class_acc_ci_low"], row["mean_class_acc_ci_high"]) == (0.5, 0.9)
    assert (row["macro_f1_ci_low"], row["macro_f1_ci_high"]) == (None, None)
    assert row["num_test_scored"] == 24


def test_append_after_a_cut_short_line_starts_a_new_line(tmp_path) -> None:
    path = tmp_path / "experiments.csv"
    header = ",".join(EXPERIMENT_COLUMNS)
    path.write_text(f"{header}\nt,lora\nt,head_on")  # a writer died mid-line
    append_experiment_row(path, {"approach": "lora", "run_dir": "r2"})
    lines = path.read_text().splitlines()
    assert lines[:3] == [header, "t,lora", "t,head_on"]
    assert next(csv.DictReader([header, lines[3]])) == {**dict.fromkeys(EXPERIMENT_COLUMNS, ""), "approach": "lora",
                                                        "run_dir": "r2"}
    assert has_row_for(path, "r2")


def test_has_row_for_matches_the_run_folder(tmp_path, monkeypatch) -> None:
    path = tmp_path / "experiments.csv"
    assert not has_row_for(path, tmp_path / "run-1")  # no file yet
    assert read_experiments(path) == []
    append_experiment_row(path, {"approach": "lora", "run_dir": str(tmp_path / "run-1")})
    assert has_row_for(path, tmp_path / "run-1")
    assert has_row_for(path, str(tmp_path / "run-1") + "/")
    assert not has_row_for(path, tmp_path / "run-10")
    monkeypatch.chdir(tmp_path)
    assert has_row_for(path, Path("run-1"))  # relative to where the command runs


ROWS_PER_WRITER = 200


def _append_many(csv_path: str, writer_id: int, start) -> None:
    start.wait()
    for i in range(ROWS_PER_WRITER):
        # a long cell: a row written in pieces would interleave with the other writer's
        records.append_experiment_row(
            Path(csv_path),
            {
                "approach": f"w{writer_id}",
                "model": f"w{writer_id}-{i}-" + "x" * 3000,
                "seed": i,
                "run_dir": f"r{i}",
            },
        )


@pytest.mark.parametrize("older_header", [False, True])
def test_two_processes_appending_at_once_leave_every_row_intact(tmp_path, older_header) -> None:
    """Also when the file has an older header: one of them adds the new columns while the other waits for the lock
    of a file that is then replaced."""
    path = tmp_path / "experiments.csv"
    if older_header:
        path.write_text(",".join(EXPERIMENT_COLUMNS[:24]) + "\n")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    writers = [ctx.Process(target=_append_many, args=(str(path), w, start)) for w in (0, 1)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
        assert p.exitcode == 0

    with open(path, newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(EXPERIMENT_COLUMNS)
    assert sum(1 for line in lines if line[0] == "timestamp") == 1
    assert len(lines) == 1 + 2 * ROWS_PER_WRITER
    assert all(len(line) == len(EXPERIMENT_COLUMNS) for line in lines)
    model_col, seed_col = EXPERIMENT_COLUMNS.index("model"), EXPERIMENT_COLUMNS.index("seed")
    for w in (0, 1):
        mine = [line for line in lines[1:] if line[1] == f"w{w}"]
        assert [int(line[seed_col]) for line in mine] == list(range(ROWS_PER_WRITER))
        assert [line[model_col] for line in mine] == [
            f"w{w}-{i}-" + "x" * 3000 for i in range(ROWS_PER_WRITER)
        ]


