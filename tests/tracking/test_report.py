"""report.md and its plots from hand-made runs: tables say what the runs say; choices use validation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vjepa_tune.tracking.report import (
    format_accuracy,
    format_duration,
    format_mean_std,
    format_share,
    precision_text,
    results_table,
    write_report,
)

CLASSES = ["a", "b", "c", "d"]


def _run(tmp_path: Path, name: str, strategy: str, test: float, val: float, *, n: int | None = None,
         lr: float = 2e-4, seed: int = 42, params: int = 1000, pct: float = 1.0, time_s: float = 10.0,
         confusion: list[list[int]] | None = None) -> dict:
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "splits.json").write_text(json.dumps({"classes": CLASSES}))
    confusion = confusion or [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    return {
        "name": name,
        "run_dir": str(run_dir),
        "settings": {"strategy": strategy, "videos_per_class": n, "learning_rate": lr, "lora_rank": 16,
                     "lora_alpha": 32.0, "lora_dropout": 0.1, "seed": seed},
        "metrics": {"approach": strategy, "test_acc": test, "best_val_acc": val, "trainable_params": params,
                    "total_params": 100_000, "trainable_pct": pct, "train_time_s": time_s,
                    "history": [{"epoch": 1, "train_loss": 1.2, "val_acc": val / 2},
                                {"epoch": 2, "train_loss": 0.9, "val_acc": val}],
                    "test": {"confusion": confusion}},
        "error": None,
    }


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading`, as lists of cells."""
    table: list[str] = []
    for line in markdown.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert table, f"no table after {heading!r}"
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]]


def test_formats_follow_the_guide() -> None:
    assert format_accuracy(0.8833) == "88.33%"
    assert format_share(13.1466) == "13.15%"
    assert format_share(0.132) == "0.13%"
    assert format_share(0.0010924) == "0.0011%"
    assert format_duration(2310) == "38.5 min"
    assert format_duration(42.13) == "42.1 s"
    assert format_duration(9000) == "2.5 h"
    assert format_mean_std([0.8]) == "80.00%"
    assert format_mean_std([0.8, 0.9]) == "85.00 ± 7.07% (2 seeds)"


def test_results_table_is_the_guides_ordered_by_validation_accuracy_never_by_test(tmp_path) -> None:
    runs = [
        _run(tmp_path, "head_only", "head_only", 0.55, 0.6, params=4_100, pct=0.0011, time_s=30),
        _run(tmp_path, "pooler_and_head", "pooler_and_head", 0.8833, 0.85, params=49_340_420, pct=13.15,
             time_s=2310),
        # The best test accuracy with the worst validation accuracy: last, whatever its test score.
        _run(tmp_path, "lora", "lora", 0.95, 0.5, params=495_620, pct=0.13, time_s=60),
    ]
    table = results_table(runs)
    lines = table.splitlines()
    assert lines[0] == "| Approach | Test Acc | Val Acc | Trainable Params | % of Total | Training Time |"
    assert lines[2] == "| `pooler_and_head` | 88.33% | 85.00% | 49,340,420 | 13.15% | 38.5 min |"
    assert lines[3] == "| `head_only` | 55.00% | 60.00% | 4,100 | 0.0011% | 30.0 s |"
    assert lines[4].startswith("| `lora` | 95.00% | 50.00% |")


def test_the_report_says_its_results_are_ordered_by_validation_accuracy(tmp_path) -> None:
    runs = [_run(tmp_path, "head_only", "head_only", 0.55, 0.6), _run(tmp_path, "lora", "lora", 0.9, 0.5)]
    text = write_report(tmp_path / "cmp", runs).read_text()
    results = text.split("## Results", 1)[1].split("##", 1)[0]
    assert "Ordered by validation accuracy" in results and "Best first." not in results
    assert [row[0] for row in _table_rows(text, "## Results")] == ["`head_only`", "`lora`"]


def test_report_tables_choose_by_validation_and_average_seeds(tmp_path) -> None:
    runs = []
    for seed, (hi_test, lo_test) in zip((1, 2), ((0.9, 0.5), (0.8, 0.7)), strict=True):
        # lr 1e-3 scores better on test but worse on validation: it must never be the one shown.
        runs.append(_run(tmp_path, f"lora-n10-lr0.001-s{seed}", "lora", hi_test, 0.4, n=10, lr=1e-3,
                         seed=seed))
        runs.append(_run(tmp_path, f"lora-n10-lr0.0002-s{seed}", "lora", lo_test, 0.6, n=10, seed=seed))
        runs.append(_run(tmp_path, f"lora-n20-lr0.001-s{seed}", "lora", 0.75, 0.7, n=20, lr=1e-3,
                         seed=seed))
        runs.append(_run(tmp_path, f"lora-n20-lr0.0002-s{seed}", "lora", 0.95, 0.65, n=20, seed=seed))
        runs.append(_run(tmp_path, f"head_only-n10-s{seed}", "head_only", 0.3, 0.3, n=10, seed=seed))
        runs.append(_run(tmp_path, f"head_only-n20-s{seed}", "head_only", 0.4, 0.35, n=20, seed=seed))
    runs.append({**_run(tmp_path, "pooler_and_head-n20-s1", "pooler_and_head", 0, 0, n=20), "metrics": None,
                 "error": "NonFiniteLoss: the training loss became nan"})

    report = write_report(tmp_path / "cmp", runs, notes=["Split: random, made once."])
    text = report.read_text()
    assert report == tmp_path / "cmp" / "report.md"
    assert text.startswith("# Comparison: 12 of 13 runs finished")
    assert "- Split: random, made once." in text

    assert len(_table_rows(text, "## Results")) == 12
    scaling_section = text.split("## Test accuracy by videos per class", 1)[1]
    assert "| Videos per class | `lora` | `head_only` | `pooler_and_head` |" in scaling_section
    assert _table_rows(text, "## Test accuracy by videos per class") == [
        ["10", "60.00 ± 14.14% (2 seeds)", "30.00 ± 0.00% (2 seeds)", "failed"],
        ["20", "75.00 ± 0.00% (2 seeds)", "40.00 ± 0.00% (2 seeds)", "failed"],
    ]
    best = {row[0]: row for row in _table_rows(text, "## Best setting per strategy")}
    assert best["`lora`"][1:4] == ["videos/class=20, lr=0.001, rank=16, alpha=32, dropout=0.1",
                                   "70.00 ± 0.00% (2 seeds)", "75.00 ± 0.00% (2 seeds)"]
    assert best["`head_only`"][1] == "videos/class=20, lr=0.0002"
    assert "`pooler_and_head`" not in best
    failed = _table_rows(text, "## Failed runs")
    assert failed == [["`pooler_and_head-n20-s1`", "NonFiniteLoss: the training loss became nan"]]

    for png in ("training_curves.png", "scaling.png", "params_vs_accuracy.png", "confusion_best.png"):
        assert (tmp_path / "cmp" / png).stat().st_size > 1000, png
        assert f"]({png})" in text


def test_confusion_is_the_best_validation_runs(tmp_path) -> None:
    best = [[3, 0, 0, 0], [0, 2, 1, 0], [0, 0, 3, 0], [1, 0, 0, 2]]
    runs = [
        _run(tmp_path, "head_only", "head_only", 0.99, 0.5),
        _run(tmp_path, "lora", "lora", 0.8, 0.9, confusion=best),
    ]
    text = write_report(tmp_path / "cmp", runs).read_text()
    with open(tmp_path / "cmp" / "confusion_best.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == CLASSES
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == best
    assert "`lora`" in text.split("confusion matrix of the run", 1)[1].splitlines()[0]
    # One size only: no scaling plot, and the report does not point at one.
    assert not (tmp_path / "cmp" / "scaling.png").exists()
    assert "scaling.png" not in text


@pytest.mark.parametrize("count", [0, 1])
def test_report_with_no_finished_run_lists_the_failures(tmp_path, count) -> None:
    runs = [_run(tmp_path, "lora", "lora", 0.5, 0.5)][:count]
    failed = _run(tmp_path, "head_only", "head_only", 0, 0)
    runs.append({**failed, "metrics": None, "error": "RuntimeError: x|y"})
    text = write_report(tmp_path / "cmp", runs).read_text()
    assert "| `head_only` | RuntimeError: x\\|y |" in text.split("## Failed runs", 1)[1]
    if count == 0:
        assert "No run finished." in text
        assert not list((tmp_path / "cmp").glob("*.png"))


def test_the_report_names_the_precision_old_records_included(tmp_path) -> None:
    old, new = _run(tmp_path, "lora", "lora", 0.9, 0.5), _run(tmp_path, "head_only", "head_only", 0.5, 0.6)
    old["metrics"]["precision"] = "no"  # as metrics.json said fp32 before
    new["metrics"]["precision"] = "fp32"
    assert precision_text([old, new]) == "Trained in fp32."
    new["metrics"]["precision"] = "bf16"
    assert precision_text([old, new]) == "Trained in bf16 (1 run) and fp32 (1 run)."
    text = write_report(tmp_path / "cmp", [old, new]).read_text()
    assert "Trained in bf16 (1 run) and fp32 (1 run)." in text.split("## Results", 1)[1].split("##", 1)[0]
