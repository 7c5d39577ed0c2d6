"""The report of a comparison: `report.md` with the guide's tables, and PNG plots beside it.

Input is one entry per grid point, as `compare` records it: `name`, `run_dir`, `settings` (strategy,
videos_per_class, learning_rate, lora_rank, lora_alpha, lora_dropout, seed), `metrics` (metrics.json's
content, or None) and `error` (None unless the run failed). Everything here is a pure function of those
entries and the run folders' splits.json, so a grid run again reports the same whatever it skipped.

Choices, stated in the report itself: a "setting" is a grid point without its seed; its results are the mean
over seeds (with the sample standard deviation when there are several); where several settings compete for one
cell or one strategy, the one with the best mean validation accuracy is shown, never the best test accuracy.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.evaluation.metrics import write_confusion
from vjepa_tune.files import write_text_atomic
from vjepa_tune.models.strategies import STRATEGIES
from vjepa_tune.text import counted
from vjepa_tune.tracking.plots import plot_params_vs_accuracy, plot_scaling, plot_training_curves
from vjepa_tune.tracking.records import precision_name

REPORT_FILE = "report.md"
CURVES_PNG = "training_curves.png"
SCALING_PNG = "scaling.png"
PARAMS_PNG = "params_vs_accuracy.png"
CONFUSION_STEM = "confusion_best"

HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("videos_per_class", "videos/class"),
    ("learning_rate", "lr"),
    ("lora_rank", "rank"),
    ("lora_alpha", "alpha"),
    ("lora_dropout", "dropout"),
)
"""Settings keys other than strategy and seed, with their short names in tables."""

_LORA_KEYS = {"lora_rank", "lora_alpha", "lora_dropout"}


def _uses_lora(strategy: str) -> bool:
    return strategy in STRATEGIES and STRATEGIES[strategy].uses_lora


@dataclass
class Setting:
    """One grid point without its seed, with the finished runs of each seed."""

    strategy: str
    key: tuple[Any, ...]
    runs: list[Mapping[str, Any]]

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.runs[0]["settings"]

    def values(self, metric: str) -> list[float]:
        return [float(r["metrics"][metric]) for r in self.runs]

    @property
    def val(self) -> float:
        return statistics.fmean(self.values("best_val_acc"))

    @property
    def test(self) -> float:
        return statistics.fmean(self.values("test_acc"))

    def best_run(self) -> Mapping[str, Any]:
        return max(self.runs, key=lambda r: r["metrics"]["best_val_acc"])


# ------------------------------------------------------------------------------------------ formatting
def format_accuracy(fraction: float) -> str:
    """88.33% (two decimals, as the guide writes accuracies)."""
    return f"{100 * fraction:.2f}%"


def format_share(percent: float) -> str:
    """A percentage of parameters: 13.15%, 0.13%, and small ones with two significant digits (0.0011%)."""
    return f"{percent:.2f}%" if percent >= 0.01 or percent == 0 else f"{percent:.2g}%"


def format_duration(seconds: float) -> str:
    """42.1 s below a minute, 38.5 min below two hours, then hours."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_mean_std(values: Sequence[float]) -> str:
    """One value as an accuracy; several as `mean ± sample std (n seeds)`, in percentage points."""
    if len(values) == 1:
        return format_accuracy(values[0])
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}% ({len(values)} seeds)"


def _value_text(key: str, value: Any) -> str:
    if value is None:
        return "all"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- grouping
def _finished(runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in runs if r.get("metrics") and not r.get("error")]


def varying_keys(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hyperparameter keys that take more than one value across the runs (what tells settings apart)."""
    return [key for key, _ in HYPERPARAMETERS if len({repr(r["settings"].get(key)) for r in runs}) > 1]


def _seeds_vary(runs: Sequence[Mapping[str, Any]]) -> bool:
    return len({r["settings"].get("seed") for r in runs}) > 1


def setting_text(settings: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`videos/class=50, lr=0.0001`: the given keys; LoRA keys only for strategies that have adapters."""
    names = dict(HYPERPARAMETERS)
    shown = [k for k in keys if k not in _LORA_KEYS or _uses_lora(settings.get("strategy", ""))]
    return ", ".join(f"{names[k]}={_value_text(k, settings.get(k))}" for k in shown) or "-"


def group_settings(runs: Sequence[Mapping[str, Any]]) -> list[Setting]:
    """Finished runs grouped by setting (every key but the seed), in the order they first appear."""
    groups: dict[tuple[Any, ...], Setting] = {}
    for run in _finished(runs):
        s = run["settings"]
        key = (s["strategy"], *(repr(s.get(k)) for k, _ in HYPERPARAMETERS))
        groups.setdefault(key, Setting(s["strategy"], key, [])).runs.append(run)
    return list(groups.values())


def _strategies(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["settings"]["strategy"] for r in runs))


def _best(settings: Sequence[Setting]) -> Setting:
    """Best mean validation accuracy; a tie goes to the earlier setting in grid order, never to test."""
    return max(settings, key=lambda s: s.val)


def best_per_strategy(runs: Sequence[Mapping[str, Any]]) -> dict[str, Setting]:
    groups = group_settings(runs)
    return {
        strategy: _best([g for g in groups if g.strategy == strategy])
        for strategy in _strategies(_finished(runs))
    }


# ---------------------------------------------------------------------------------------------- tables
RESULTS_ORDER = (
    "Ordered by validation accuracy, best first (ties in grid order): choose on validation, never on test."
)
"""Says how `results_table` orders its rows; printed with the table wherever it appears."""


def results_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The guide's results table, one row per finished run, best validation accuracy first (`RESULTS_ORDER`)."""
    finished = _finished(runs)
    if not finished:
        return "No run finished."
    keys = varying_keys(finished)
    seeds = _seeds_vary(finished)
    extra = bool(keys) or seeds
    header = [
        "Approach",
        *(["Setting"] if extra else []),
        "Test Acc",
        "Val Acc",
        "Trainable Params",
        "% of Total",
        "Training Time",
    ]
    rows = []
    for run in sorted(finished, key=lambda r: -r["metrics"]["best_val_acc"]):
        m, s = run["metrics"], run["settings"]
        setting = setting_text(s, keys) if keys else ""
        if seeds:
            setting = f"{setting}, seed={s['seed']}" if keys else f"seed={s['seed']}"
        rows.append(
            [
                f"`{s['strategy']}`",
                *([setting] if extra else []),
                format_accuracy(m["test_acc"]),
                format_accuracy(m["best_val_acc"]),
                f"{int(m['trainable_params']):,}",
                format_share(m["trainable_pct"]),
                format_duration(float(m["train_time_s"])),
            ]
        )
    return _table(header, rows)


def scaling_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Test accuracy by videos per class (rows) and strategy (columns)."""
    groups = group_settings(runs)
    strategies = _strategies(runs)
    sizes = sorted({g.settings["videos_per_class"] for g in groups}, key=lambda n: (n is None, n or 0))
    rows = []
    for n in sizes:
        row = [_value_text("videos_per_class", n)]
        for strategy in strategies:
            cell = [g for g in groups if g.strategy == strategy and g.settings["videos_per_class"] == n]
            row.append(format_mean_std(_best(cell).values("test_acc")) if cell else "failed")
        rows.append(row)
    return _table(["Videos per class", *(f"`{s}`" for s in strategies)], rows)


def best_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Each strategy's setting of best mean validation accuracy, stated in full, and its test accuracy."""
    every_key = [key for key, _ in HYPERPARAMETERS]
    rows = []
    for strategy, best in best_per_strategy(runs).items():
        rows.append(
            [
                f"`{strategy}`",
                setting_text(best.settings, every_key),
                format_mean_std(best.values("best_val_acc")),
                format_mean_std(best.values("test_acc")),
                ", ".join(f"`{r['name']}`" for r in best.runs),
            ]
        )
    return _table(["Approach", "Best setting", "Val Acc", "Test Acc", "Runs"], rows)


def precision_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """`Trained in fp32.`, or `Trained in bf16 (3 runs) and fp32 (1 run).`; records from before said "no" for fp32."""
    names = [precision_name(r["metrics"].get("precision")) or "an unrecorded precision" for r in _finished(runs)]
    kinds = sorted(set(names))
    if len(kinds) == 1:
        return f"Trained in {kinds[0]}."
    return "Trained in " + " and ".join(f"{k} ({counted(names.count(k), 'run')})" for k in kinds) + "."


def failed_table(runs: Sequence[Mapping[str, Any]]) -> str:
    failed = [r for r in runs if r.get("error")]
    rows = [[f"`{r['name']}`", str(r["error"]).replace("|", "\\|").replace("\n", " ")] for r in failed]
    return _table(["Run", "Error"], rows)


# ----------------------------------------------------------------------------------------------- plots
def _classes(run: Mapping[str, Any]) -> list[str] | None:
    path = Path(run["run_dir"]) / "splits.json"
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["classes"])
    except (OSError, ValueError, KeyError):
        per_class = (run["metrics"].get("test") or {}).get("per_class")
        return list(per_class) if per_class else None


def write_plots(compare_dir: Path, runs: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """The PNG plots of the finished runs; returns {what: path} for those drawn."""
    compare_dir = Path(compare_dir)
    best = best_per_strategy(runs)
    if not best:
        return {}
    drawn: dict[str, Path] = {}
    curves = {
        s: g.best_run()["metrics"]["history"] for s, g in best.items() if g.best_run()["metrics"]["history"]
    }
    if curves:
        drawn["curves"] = plot_training_curves(curves, compare_dir / CURVES_PNG)

    groups = group_settings(runs)
    sizes = {g.settings["videos_per_class"] for g in groups}
    if len(sizes) > 1 and None not in sizes:
        points: dict[str, list[tuple[float, ...]]] = {}
        several = any(len(g.runs) > 1 for g in groups)
        for strategy in best:
            for n in sorted(sizes):
                cell = [g for g in groups if g.strategy == strategy and g.settings["videos_per_class"] == n]
                if cell:
                    tests = _best(cell).values("test_acc")
                    spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
                    points.setdefault(strategy, []).append(
                        (n, statistics.fmean(tests), spread) if several else (n, tests[0])
                    )
        drawn["scaling"] = plot_scaling(points, compare_dir / SCALING_PNG)

    param_points = [
        (s, int(g.runs[0]["metrics"]["trainable_params"]), g.test)
        for s, g in best.items()
        if int(g.runs[0]["metrics"]["trainable_params"]) > 0
    ]
    if param_points:
        drawn["params"] = plot_params_vs_accuracy(param_points, compare_dir / PARAMS_PNG)

    top = max(_finished(runs), key=lambda r: r["metrics"]["best_val_acc"])
    confusion = (top["metrics"].get("test") or {}).get("confusion")
    classes = _classes(top)
    if confusion and classes and len(confusion) == len(classes):
        _, png = write_confusion(compare_dir, confusion, classes, stem=CONFUSION_STEM)
        drawn["confusion"] = png
        drawn["confusion_run"] = Path(top["run_dir"])
    return drawn


# ------------------------------------------------------------------------------------------- report.md
def write_report(compare_dir: Path, runs: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> Path:
    """Write `report.md` and its plots into `compare_dir`; `notes` are markdown lines on data and split."""
    compare_dir = Path(compare_dir)
    finished = _finished(runs)
    failed = [r for r in runs if r.get("error")]
    drawn = write_plots(compare_dir, runs)
    several_seeds = _seeds_vary(finished)

    parts = [f"# Comparison: {len(finished)} of {counted(len(runs), 'run')} finished", ""]
    if notes:
        parts += [*(f"- {note}" for note in notes), ""]
    parts += [
        "## Results",
        "",
        "Test Acc is top-1 accuracy on the test split of the model from the epoch with the best validation "
        f"accuracy (Val Acc). {RESULTS_ORDER}" + (f" {precision_text(runs)}" if finished else ""),
        "",
        results_table(runs),
        "",
    ]
    if finished:
        parts += [
            "## Test accuracy by videos per class",
            "",
            "Where several settings share a cell, the one with the best validation accuracy is shown"
            + (
                "; with several seeds, the mean ± sample standard deviation over seeds."
                if several_seeds
                else "."
            ),
            "",
            scaling_table(runs),
            "",
            "## Best setting per strategy",
            "",
            "Chosen by validation accuracy"
            + (" (mean over seeds)" if several_seeds else "")
            + "; the test accuracy is reported for it, never used to choose.",
            "",
            best_table(runs),
            "",
        ]
    if failed:
        parts += [
            "## Failed runs",
            "",
            failed_table(runs),
            "",
            "Run the same command again to retry them; finished runs are skipped.",
            "",
        ]
    if drawn:
        parts += ["## Plots", ""]
        if "curves" in drawn:
            parts += [
                "Training loss and validation accuracy per epoch, best run of each strategy:",
                "",
                f"![training curves]({CURVES_PNG})",
                "",
            ]
        if "scaling" in drawn:
            parts += ["Test accuracy against videos per class:", "", f"![scaling]({SCALING_PNG})", ""]
        if "params" in drawn:
            parts += [
                "Trainable parameters (log scale) against test accuracy, best setting of each strategy:",
                "",
                f"![parameters vs accuracy]({PARAMS_PNG})",
                "",
            ]
        if "confusion" in drawn:
            parts += [
                f"Test confusion matrix of the run with the best validation accuracy, "
                f"`{drawn['confusion_run'].name}` (counts in `{CONFUSION_STEM}.csv`):",
                "",
                f"![confusion matrix]({CONFUSION_STEM}.png)",
                "",
            ]
    return write_text_atomic(compare_dir / REPORT_FILE, "\n".join(parts))
