"""A comparison's runs grouped into settings (a grid point without its seeds), and the text of their figures.

The report's tables (`tracking.report`) are made of these: a setting's result is the mean over its seeds with the
sample standard deviation when there are several, else the one run's figure with its 95% interval; where settings
compete for one strategy, the one with the best mean validation accuracy is chosen, never the best test accuracy.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vjepa_tune.evaluation.statistics import format_interval, format_mean_sd
from vjepa_tune.models.strategies import STRATEGIES
from vjepa_tune.text import counted
from vjepa_tune.tracking.significance import Repetition, ScoredRun

HYPERPARAMETERS: tuple[tuple[str, str], ...] = (
    ("videos_per_class", "videos/class"),
    ("learning_rate", "lr"),
    ("lora_rank", "rank"),
    ("lora_alpha", "alpha"),
    ("lora_dropout", "dropout"),
)
"""Settings keys other than strategy and seed, with their short names in tables."""

_LORA_KEYS = {"lora_rank", "lora_alpha", "lora_dropout"}


def uses_lora(strategy: str) -> bool:
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

    def scored(self) -> dict[Repetition, ScoredRun]:
        """Each run's test accuracy and per-video outcomes, by repetition (data seed, training seed)."""
        return {repetition(r): ScoredRun(float(r["metrics"]["test_acc"]), r.get("test_outcomes")) for r in self.runs}


def repetition(run: Mapping[str, Any]) -> Repetition:
    """(data seed, training seed): what tells the runs of one setting apart."""
    return run["settings"].get("data_seed"), run["settings"].get("seed")


# ------------------------------------------------------------------------------------------ formatting
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


def run_figure(metrics: Mapping[str, Any], key: str) -> str:
    """One run's score with its 95% interval, `87.5% (69–96)` (the figure alone for a run recorded without one)."""
    return format_interval(float(metrics[key]), metrics.get(f"{key}_ci"))


def setting_figure(setting: Setting, key: str, runs: Sequence[Mapping[str, Any]]) -> str:
    """A setting's score: its one run's with the interval, or `mean ± sample standard deviation (3 seeds)`."""
    if len(setting.runs) == 1:
        return run_figure(setting.runs[0]["metrics"], key)
    return f"{format_mean_sd(setting.values(key))} ({counted(len(setting.runs), repetition_word(runs))})"


def repetition_word(runs: Sequence[Mapping[str, Any]]) -> str:
    """What the repetitions of a setting are called: seeds, data seeds, or runs when both vary."""
    seeds, data_seeds = seeds_vary(runs), data_seeds_vary(runs)
    return "run" if seeds and data_seeds else "data seed" if data_seeds else "seed"


def repetition_label(run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> str:
    """`seed 42`, `data seed 1`, or `data seed 1, seed 42`: the seeds that vary in the grid."""
    data_seed, seed = repetition(run)
    parts = [f"data seed {data_seed}"] if data_seeds_vary(runs) else []
    if seeds_vary(runs) or not parts:
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def value_text(key: str, value: Any) -> str:
    if value is None:
        return "all"
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- grouping
def finished_runs(runs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in runs if r.get("metrics") and not r.get("error")]


def varying_keys(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hyperparameter keys that take more than one value across the runs (what tells settings apart)."""
    return [key for key, _ in HYPERPARAMETERS if len({repr(r["settings"].get(key)) for r in runs}) > 1]


def seeds_vary(runs: Sequence[Mapping[str, Any]]) -> bool:
    return len({r["settings"].get("seed") for r in runs}) > 1


def data_seeds_vary(runs: Sequence[Mapping[str, Any]]) -> bool:
    return len({r["settings"].get("data_seed") for r in runs}) > 1


def several_repetitions(runs: Sequence[Mapping[str, Any]]) -> bool:
    return seeds_vary(runs) or data_seeds_vary(runs)


def setting_text(settings: Mapping[str, Any], keys: Sequence[str]) -> str:
    """`videos/class=50, lr=0.0001`: the given keys; LoRA keys only for strategies that have adapters."""
    names = dict(HYPERPARAMETERS)
    shown = [k for k in keys if k not in _LORA_KEYS or uses_lora(settings.get("strategy", ""))]
    return ", ".join(f"{names[k]}={value_text(k, settings.get(k))}" for k in shown) or "-"


def group_settings(runs: Sequence[Mapping[str, Any]]) -> list[Setting]:
    """Finished runs grouped by setting (every key but the seeds), in the order they first appear."""
    groups: dict[tuple[Any, ...], Setting] = {}
    for run in finished_runs(runs):
        s = run["settings"]
        key = (s["strategy"], *(repr(s.get(k)) for k, _ in HYPERPARAMETERS))
        groups.setdefault(key, Setting(s["strategy"], key, [])).runs.append(run)
    return list(groups.values())


def strategies_in(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["settings"]["strategy"] for r in runs))


def best_setting(settings: Sequence[Setting]) -> Setting:
    """Best mean validation accuracy; a tie goes to the earlier setting in grid order, never to test."""
    return max(settings, key=lambda s: s.val)


def best_per_strategy(runs: Sequence[Mapping[str, Any]]) -> dict[str, Setting]:
    groups = group_settings(runs)
    return {
        strategy: best_setting([g for g in groups if g.strategy == strategy])
        for strategy in strategies_in(finished_runs(runs))
    }
