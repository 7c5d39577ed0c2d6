"""report.md and its plots from hand-made runs: tables say what the runs say; choices use validation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vjepa_tune.tracking.grid_settings import format_duration, format_share
from vjepa_tune.tracking.report import precision_text, results_table, write_report

CLASSES = ["a", "b", "c", "d"]


def _run(tmp_path: Path, name: str, strategy: str, test: float, val: float, *, n: int | None = None,
         lr: float = 2e-4, seed: int = 42, params: int = 1000, pct: float = 1.0, time_s: float = 10.0,
         confusion: list[list[int]] | None = None, data_seed: int | None = None, test_ci: list | None = None,
         val_ci: list | None = None, right: str | None = None) -> dict:
    """A finished run as compare records it; `right` is its per-video outcomes ("11110000": videos v0-v7)."""
    run_dir = tmp_path / name
    run_dir.mkdir(parents=True, exist_ok=True)
    confusion = confusion or [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    outcomes = None if right is None else {f"v{i}": c == "1" for i, c in enumerate(right)}
    return {
        "name": name,
        "run_dir": str(run_dir),
        "settings": {"strategy": strategy, "videos_per_class": n, "learning_rate": lr, "lora_rank": 16,
                     "lora_alpha": 32.0, "lora_dropout": 0.1, "seed": seed, "data_seed": data_seed},
        "metrics": {"approach": strategy, "test_acc": test, "test_acc_ci": test_ci, "best_val_acc": val,
                    "best_val_acc_ci": val_ci, "trainable_params": params, "num_test": len(right or "1234"),
                    "total_params": 100_000, "trainable_pct": pct, "train_time_s": time_s,
                    "history": [{"epoch": 1, "train_loss": 1.2, "val_acc": val / 2},
                                {"epoch": 2, "train_loss": 0.9, "val_acc": val}],
                    "test": {"confusion": confusion, "num_samples": len(right or "1234")}},
        "error": None,
        "test_outcomes": outcomes,
        "classes": CLASSES,
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
    assert format_share(13.1466) == "13.15%"
    assert format_share(0.132) == "0.13%"
    assert format_share(0.0010924) == "0.0011%"
    assert format_duration(2310) == "38.5 min"
    assert format_duration(42.13) == "42.1 s"
    assert format_duration(9000) == "2.5 h"


def test_results_table_is_the_guides_ordered_by_validation_accuracy_never_by_test(tmp_path) -> None:
    runs = [
        _run(tmp_path, "head_only", "head_only", 0.55, 0.6, params=4_100, pct=0.0011, time_s=30),
        _run(tmp_path, "pooler_and_head", "pooler_and_head", 0.8833, 0.85, params=49_340_420, pct=13.15,
             time_s=2310),
        # The best test accuracy with the worst validation accuracy: last, whatever its test score.
        _run(tmp_path, "lora", "lora", 0.95, 0.5, params=495_620, pct=0.13, time_s=60),
    ]
    runs[1]["metrics"].update(test_acc_ci=[0.6899, 0.9566], best_val_acc_ci=[0.6481, 0.9479])
    table = results_table(runs)
    lines = table.splitlines()
    assert lines[0] == "| Approach | Test Acc | Val Acc | Trainable Params | % of Total | Training Time |"
    assert lines[2] == "| `pooler_and_head` | 88.3% (69–96) | 85.0% (65–95) | 49,340,420 | 13.15% | 38.5 min |"
    assert lines[3] == "| `head_only` | 55.0% | 60.0% | 4,100 | 0.0011% | 30.0 s |"  # recorded without intervals
    assert lines[4].startswith("| `lora` | 95.0% | 50.0% |")


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
        ["10", "60.0 ± 14.1% (2 seeds)", "30.0 ± 0.0% (2 seeds)", "failed"],
        ["20", "75.0 ± 0.0% (2 seeds)", "40.0 ± 0.0% (2 seeds)", "failed"],
    ]
    best = {row[0]: row for row in _table_rows(text, "## Best setting per strategy")}
    assert best["`lora`"][1:4] == ["videos/class=20, lr=0.001, rank=16, alpha=32, dropout=0.1",
                                   "70.0 ± 0.0% (2 seeds)", "75.0 ± 0.0% (2 seeds)"]
    assert best["`head_only`"][1] == "videos/class=20, lr=0.0002"
    assert "`pooler_and_head`" not in best
    failed = _table_rows(text, "## Failed runs")
    assert failed == [["`pooler_and_head-n20-s1`", "NonFiniteLoss: the training loss became nan"]]

    for png in ("training_curves.png", "scaling.png", "params_vs_accuracy.png", "confusion_best.png"):
        assert (tmp_path / "cmp" / png).stat().st_size > 1000, png
        assert f"]({png})" in text


def test_the_paired_comparison_gives_each_strategys_difference_to_the_best_with_its_mcnemar_p(tmp_path) -> None:
    """Eight test videos. `pooler_and_head` (best validation accuracy) gets v0-v5 right; `lora` v0, v1 and v7:
    4 videos only the reference got right, 1 only `lora` -> exact McNemar p = 2 P(X <= 1 | Binomial(5, 1/2))
    = 2 (1 + 5) / 32 = 0.375. `head_only` gets none right: 6 to 0 -> p = 2 / 64 = 0.03125."""
    runs = [
        _run(tmp_path, "lora", "lora", 3 / 8, 0.7, right="11000001"),
        _run(tmp_path, "pooler_and_head", "pooler_and_head", 6 / 8, 0.9, right="11111100",
             test_ci=[0.4093, 0.9285]),
        _run(tmp_path, "head_only", "head_only", 0 / 8, 0.3, right="00000000"),
    ]
    text = write_report(tmp_path / "cmp", runs).read_text()
    section = text.split("## Paired comparison", 1)[1].split("\n## ", 1)[0]
    assert "| Approach | Test Acc | Difference to `pooler_and_head`, points | Videos only `pooler_and_head` / only " \
           "it got right | McNemar p |" in section
    assert _table_rows(text, "## Paired comparison") == [
        ["`pooler_and_head`", "75.0% (41–93)", "reference", "-", "-"],
        ["`lora`", "37.5%", "-37.5", "4 / 1", "0.38"],
        ["`head_only`", "0.0%", "-75.0", "6 / 0", "0.03"],
    ]
    assert ("At α = 0.05, this test set cannot tell `lora` (-37.5 points, p = 0.38) apart from `pooler_and_head`, "
            "the best by validation accuracy") in section
    assert "It tells `head_only` (-75.0 points, p = 0.03) apart from `pooler_and_head`." in section
    assert "not corrected for making 2 comparisons" in section
    # 6/8 right: d = (1.959964 + 0.841621) * sqrt(2 * 0.75 * 0.25 / 8) = 2.801585 * 0.216506 = 0.606560;
    # a 5-point difference: 2.801585² * 0.375 / 0.0025 = 1177.33 -> 1178 videos
    assert ("With 8 test videos and accuracies near 75.0% (`pooler_and_head`'s), two strategies must differ by about "
            "60.7 points for the difference to be detected (two-sided α 0.05, power 0.8, two accuracies at the "
            "observed level); a 5-point difference would need about 1178 test videos.") in section


def test_with_several_seeds_the_report_pairs_runs_seed_by_seed_and_tests_over_seeds(tmp_path) -> None:
    """Seed 1: McNemar 4 / 1 -> p = 0.375. Seed 2: `pooler_and_head` right on 7, `lora` on 5 of the same
    videos: 2 / 0 -> p = 2 / 4 = 0.5. Over seeds the differences are -0.375 and -0.25: mean -0.3125, sample sd
    0.0884, t = -0.3125 / (0.0884 / sqrt 2) = -5 with one degree of freedom: p = 1 - 2 atan(5) / pi = 0.1257."""
    runs = [
        _run(tmp_path, "lora-s1", "lora", 3 / 8, 0.7, seed=1, right="11000001"),
        _run(tmp_path, "pooler_and_head-s1", "pooler_and_head", 6 / 8, 0.9, seed=1, right="11111100",
             test_ci=[0.4093, 0.9285]),
        _run(tmp_path, "lora-s2", "lora", 5 / 8, 0.6, seed=2, right="11111000"),
        _run(tmp_path, "pooler_and_head-s2", "pooler_and_head", 7 / 8, 0.8, seed=2, right="11111110",
             test_ci=[0.5291, 0.9776]),
    ]
    text = write_report(tmp_path / "cmp", runs).read_text()
    assert _table_rows(text, "## Paired comparison") == [
        ["`pooler_and_head`", "81.2 ± 8.8% (2 seeds)", "reference", "-", "-"],
        ["`lora`", "50.0 ± 17.7% (2 seeds)", "-31.2 ± 8.8", "0.38, 0.50", "0.13"],
    ]
    section = text.split("## Paired comparison", 1)[1].split("\n## ", 1)[0]
    assert "| Approach | Test Acc | Difference to `pooler_and_head`, points | McNemar p | Paired t-test p (seeds) |" \
        in section
    assert ("At α = 0.05, no test set of this grid (one per seed) can tell `lora` apart from `pooler_and_head`"
            in section)
    assert "Over the seeds, the paired t-test finds none for `lora` (p = 0.13)." in section
    assert _table_rows(text, "## Seeds") == [
        ["`pooler_and_head`", "75.0% (41–93)", "87.5% (53–98)", "81.2 ± 8.8%", "85.0 ± 7.1%"],
        ["`lora`", "37.5%", "62.5%", "50.0 ± 17.7%", "65.0 ± 7.1%"],
    ]
    assert "| Approach | seed 1 | seed 2 | Test Acc, mean ± SD | Val Acc, mean ± SD |" in text


def test_data_seeds_are_their_own_repetitions_with_their_own_test_sets(tmp_path) -> None:
    runs = [_run(tmp_path, f"{strategy}-d{d}", strategy, acc, val, data_seed=d, right=right)
            for d, cases in ((0, (("lora", 0.5, 0.6, "1100"), ("head_only", 0.25, 0.4, "1000"))),
                             (1, (("lora", 0.75, 0.7, "1110"), ("head_only", 0.25, 0.5, "0001"))))
            for strategy, acc, val, right in cases]
    text = write_report(tmp_path / "cmp", runs).read_text()
    assert [row[1] for row in _table_rows(text, "## Results")] == ["data seed 1", "data seed 0", "data seed 1",
                                                                  "data seed 0"]
    assert "| Approach | data seed 0 | data seed 1 | Test Acc, mean ± SD | Val Acc, mean ± SD |" in text
    assert "## Data seeds" in text and "(2 data seeds)" in text
    assert "in each data seed's test set" in text
    # data seed 0: v1 only lora -> 1 / 0, p = 1; data seed 1: v0-v2 only lora, v3 only head_only -> 3 / 1,
    # p = 2 (1 + 4) / 16 = 0.625
    assert _table_rows(text, "## Paired comparison")[1][3] == "1.00, 0.62"


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


def test_the_plots_get_each_accuracys_interval_or_the_spread_over_seeds(tmp_path, monkeypatch) -> None:
    from vjepa_tune.tracking import report

    drawn: dict[str, object] = {}

    def keep(what: str):
        def plot(points, out):
            drawn[what] = points
            return out
        return plot

    for name in ("plot_scaling", "plot_params_vs_accuracy", "plot_training_curves"):
        monkeypatch.setattr(report, name, keep(name))
    one_seed = [_run(tmp_path, f"lora-n{n}", "lora", acc, val, n=n, params=500, test_ci=ci)
                for n, acc, val, ci in ((10, 0.5, 0.5, [0.25, 0.75]), (20, 0.875, 0.6, [0.69, 0.96]))]
    report.write_plots(tmp_path / "one", one_seed)
    assert drawn["plot_scaling"] == {"lora": [(10, 0.5, 0.25, 0.75), (20, 0.875, 0.69, 0.96)]}
    assert drawn["plot_params_vs_accuracy"] == [("lora", 500, 0.875, 0.69, 0.96)]  # best by validation: n=20
    assert drawn["plot_training_curves"] == {"lora": [one_seed[1]["metrics"]["history"]]}

    seeds = [_run(tmp_path, f"lora-n{n}-s{seed}", "lora", acc, 0.5 + n / 100, n=n, seed=seed, params=500)
             for n in (10, 20) for seed, acc in ((1, 0.5), (2, 0.7))]
    report.write_plots(tmp_path / "seeds", seeds)
    sd = 0.2 / 2**0.5  # the sample standard deviation of 0.5 and 0.7
    assert drawn["plot_scaling"] == {"lora": [(10, pytest.approx(0.6), pytest.approx(sd)),
                                              (20, pytest.approx(0.6), pytest.approx(sd))]}
    assert drawn["plot_params_vs_accuracy"] == [("lora", 500, pytest.approx(0.6), pytest.approx(0.6 - sd),
                                                 pytest.approx(0.6 + sd))]
    assert drawn["plot_training_curves"] == {"lora": [seeds[2]["metrics"]["history"], seeds[3]["metrics"]["history"]]}
