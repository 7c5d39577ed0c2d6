"""The pictures of a run and of a comparison: training curves, accuracy vs data size, accuracy vs parameters.

Every accuracy is drawn with its uncertainty where the caller has one: a 95% interval or the spread over seeds as
error bars, several seeds' training curves as their mean with the range they span shaded.

Drawn on a bare `matplotlib.figure.Figure` (rendered by Agg when saved as PNG), never through pyplot: no
global backend is chosen, no window can open, and nothing leaks between calls or threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

_DPI = 120
ACCURACY_LIMITS = (-0.05, 1.05)
"""The accuracy axis of every plot: a margin below 0% and above 100%, so that a point at 0% or 100% is drawn in
full instead of half hidden under the axis line."""


History = Sequence[Mapping[str, Any]]
"""metrics.json's `history`: entries with `epoch`, `train_loss`, `val_acc` and optionally `val_loss`."""


def plot_training_curves(histories: Mapping[str, History | Sequence[History]], out_png: Path) -> Path:
    """Loss (left) and validation accuracy (right) per epoch, one line per label (a run, or a strategy).

    A label maps to one history, or to several (its runs over seeds): those are drawn as their mean per epoch, with
    the range they span shaded. A missing or null value leaves a gap instead of failing; `val_loss` is dashed.
    """
    return _save(training_curves_figure(histories), out_png)


def training_curves_figure(histories: Mapping[str, History | Sequence[History]]) -> Figure:
    """The figure `plot_training_curves` saves."""
    if not histories:
        raise ValueError("plot_training_curves needs at least one history; got none.")
    runs = {label: _as_runs(value) for label, value in histories.items()}
    empty = [label for label, value in runs.items() if not value or not all(value)]
    if empty:
        raise ValueError(f"plot_training_curves got an empty history for {', '.join(map(repr, empty))}.")

    fig = Figure(figsize=(11, 4.2))
    loss_ax, acc_ax = fig.subplots(1, 2)
    spread = False
    for index, (label, label_runs) in enumerate(runs.items()):
        colour = f"C{index % 10}"
        name = label if len(label_runs) == 1 else f"{label} (mean of {len(label_runs)})"
        spread |= len(label_runs) > 1
        for ax, key, suffix, style in ((loss_ax, "train_loss", " (train)", "-"), (loss_ax, "val_loss", " (val)", "--"),
                                       (acc_ax, "val_acc", "", "-")):
            epochs, mean, low, high = _epoch_series(label_runs, key)
            if not epochs:
                continue
            ax.plot(epochs, mean, marker="o", linestyle=style, color=colour, label=f"{name}{suffix}")
            if len(label_runs) > 1:
                ax.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0)

    shaded = " (shaded: the range over seeds)" if spread else ""
    loss_ax.set(title="loss", xlabel="epoch", ylabel="loss")
    acc_ax.set(title=f"validation accuracy{shaded}", xlabel="epoch", ylabel="accuracy", ylim=ACCURACY_LIMITS)
    acc_ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _as_runs(value: History | Sequence[History]) -> list[History]:
    """One history, or several: a history's entries are mappings."""
    if not value:
        return [value]  # type: ignore[list-item]
    return [value] if isinstance(value[0], Mapping) else list(value)  # type: ignore[list-item]


def _epoch_series(runs: Sequence[History], key: str) -> tuple[list[float], list[float], list[float], list[float]]:
    """Epochs where some run has `key`, with the mean, lowest and highest value over the runs that have it."""
    by_epoch: dict[float, list[float]] = {}
    for history in runs:
        for entry in history:
            if entry.get(key) is not None:
                by_epoch.setdefault(entry["epoch"], []).append(float(entry[key]))
    epochs = sorted(by_epoch)
    values = [by_epoch[e] for e in epochs]
    return (epochs, [float(np.mean(v)) for v in values], [min(v) for v in values], [max(v) for v in values])


def plot_scaling(points: Mapping[str, Sequence[tuple[float, ...]]], out_png: Path) -> Path:
    """Test accuracy vs videos per class, one line per strategy.

    Each point is `(videos_per_class, accuracy)`, `(videos_per_class, mean, std)` (an error bar of one standard
    deviation either side: the spread over seeds) or `(videos_per_class, accuracy, low, high)` (an error bar from
    low to high: a 95% interval); one strategy uses one form throughout. The x axis turns logarithmic when sizes
    span 10x or more.
    """
    return _save(scaling_figure(points), out_png)


def scaling_figure(points: Mapping[str, Sequence[tuple[float, ...]]]) -> Figure:
    """The figure `plot_scaling` saves."""
    if not points:
        raise ValueError("plot_scaling needs at least one strategy; got none.")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    all_x: set[float] = set()
    for label, series in points.items():
        if not series:
            raise ValueError(f"plot_scaling got no points for {label!r}.")
        arity = {len(p) for p in series}
        if not arity <= {2, 3, 4} or len(arity) != 1:
            raise ValueError(
                f"plot_scaling: the points of {label!r} must all be (x, accuracy), all (x, mean, std) or all "
                f"(x, accuracy, low, high); got {series!r}."
            )
        ordered = sorted(series, key=lambda p: p[0])
        xs = [p[0] for p in ordered]
        ys = [p[1] for p in ordered]
        errors = _y_errors(ordered)
        ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=4 if errors is not None else 0, label=label)
        all_x.update(xs)

    if min(all_x) > 0 and max(all_x) / min(all_x) >= 10:
        ax.set_xscale("log")
    ax.set_xticks(sorted(all_x), labels=[f"{x:g}" for x in sorted(all_x)])
    ax.minorticks_off()
    ax.set(
        title="test accuracy vs training data",
        xlabel="videos per class",
        ylabel="test accuracy",
        ylim=ACCURACY_LIMITS,
    )
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _y_errors(points: Sequence[tuple[float, ...]]) -> np.ndarray | None:
    """matplotlib's `yerr` (distances below and above) for points `(x, y, std)` or `(x, y, low, high)`."""
    if len(points[0]) == 2:
        return None
    if len(points[0]) == 3:
        return np.array([[p[2] for p in points], [p[2] for p in points]], dtype=float)
    return np.array([[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]], dtype=float)


def plot_params_vs_accuracy(points: Sequence[tuple[Any, ...]], out_png: Path) -> Path:
    """Trainable parameters (log scale) vs accuracy, one point per `(label, trainable_params, accuracy)`, or per
    `(label, trainable_params, accuracy, low, high)` with an error bar from low to high (a 95% interval, or the
    spread over seeds).

    Points are named in a legend rather than beside them: strategies with nearly the same parameter count
    (pooler and head, with or without LoRA) would otherwise write their names over each other.
    """
    return _save(params_vs_accuracy_figure(points), out_png)


def params_vs_accuracy_figure(points: Sequence[tuple[Any, ...]]) -> Figure:
    """The figure `plot_params_vs_accuracy` saves."""
    if not points:
        raise ValueError(
            "plot_params_vs_accuracy needs at least one (label, trainable_params, accuracy) point."
        )
    not_positive = [p for p in points if not p[1] > 0]
    if not_positive:
        raise ValueError(f"trainable_params must be > 0 on a log axis; got {not_positive!r}.")

    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    for index, (label, params, accuracy, *interval) in enumerate(points):
        marker = _MARKERS[(index // 10) % len(_MARKERS)]
        if interval:
            low, high = interval
            ax.errorbar([params], [accuracy], yerr=[[accuracy - low], [high - accuracy]], fmt="none",
                        ecolor=f"C{index % 10}", capsize=4, zorder=2)
        ax.scatter(
            [params],
            [accuracy],
            s=60,
            color=f"C{index % 10}",
            marker=marker,
            zorder=3,
            label=f"{label}: {accuracy:.1%}, {params:,} params",
        )
    ax.set_xscale("log")
    params = [p[1] for p in points]
    ax.set_xlim(min(params) / 3, max(params) * 3)
    ax.set(
        title="accuracy vs trainable parameters",
        xlabel="trainable parameters",
        ylabel="accuracy",
        ylim=ACCURACY_LIMITS,
    )
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


_MARKERS = ("o", "s", "^", "D", "v", "P")


def _save(fig: Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=_DPI)
    return out_png


# ------------------------------------------------------------------------------------------------ pretraining
def plot_pretraining_loss(history: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
                          out_png: Path) -> Path:
    """A pretraining run's loss at each monitor step (left) and its learning rate and EMA momentum (right), with
    a dashed line at each step where a `collapse:` finding was made."""
    return _save(pretraining_loss_figure(history, findings), out_png)


def pretraining_loss_figure(history: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]]) -> Figure:
    """The figure `plot_pretraining_loss` saves."""
    if not history:
        raise ValueError("plot_pretraining_loss needs at least one monitor entry; got none.")
    fig = Figure(figsize=(11, 4.2))
    loss_ax, lr_ax = fig.subplots(1, 2)
    steps, loss = _by_step(history, "loss")
    loss_ax.plot(steps, loss, marker="o", markersize=3, color="C0", label="loss (mean since the last monitor)")
    _mark_findings(loss_ax, findings)
    loss_ax.set(title="V-JEPA loss", xlabel="optimizer step", ylabel="L1 loss")
    steps, lr = _by_step(history, "lr")
    lr_ax.plot(steps, lr, color="C1", label="learning rate")
    lr_ax.set(title="schedules", xlabel="optimizer step", ylabel="learning rate")
    ema_ax = lr_ax.twinx()
    steps, ema = _by_step(history, "ema_momentum")
    ema_ax.plot(steps, ema, color="C2", linestyle="--", label="EMA momentum")
    ema_ax.set_ylabel("EMA momentum")
    lines = lr_ax.get_lines() + ema_ax.get_lines()
    lr_ax.legend(lines, [line.get_label() for line in lines], fontsize="small")
    loss_ax.legend(fontsize="small")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


COLLAPSE_SIGNALS = ("target_std", "target_rank", "pred_std")


def plot_collapse_signals(history: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
                          fall_fraction: float, out_png: Path,
                          references: Mapping[str, tuple[int, float]] | None = None) -> Path:
    """target_std, target_rank and pred_std at each monitor step, one panel each, with the level below which a
    fall is reported (`fall_fraction` of the signal's reference: `references[name]`, (step, value), as the monitor
    took it, else its first value) dotted and each finding's step dashed."""
    return _save(collapse_signals_figure(history, findings, fall_fraction, references), out_png)


def collapse_signals_figure(history: Sequence[Mapping[str, Any]], findings: Sequence[Mapping[str, Any]],
                            fall_fraction: float,
                            references: Mapping[str, tuple[int, float]] | None = None) -> Figure:
    """The figure `plot_collapse_signals` saves."""
    if not history:
        raise ValueError("plot_collapse_signals needs at least one monitor entry; got none.")
    fig = Figure(figsize=(13, 3.8))
    titles = {"target_std": "target features' spread", "target_rank": "target features' effective rank",
              "pred_std": "predictions' spread"}
    for ax, name in zip(fig.subplots(1, len(COLLAPSE_SIGNALS)), COLLAPSE_SIGNALS, strict=True):
        steps, values = _by_step(history, name)
        ax.plot(steps, values, marker="o", markersize=3, color="C0", label=name)
        if references is not None:  # the monitor's own: a signal it took none for (yet) has no level
            reference = references.get(name)
        else:
            reference = (steps[0], values[0]) if values else None
        if reference is not None:
            ax.axhline(fall_fraction * reference[1], color="C3", linestyle=":",
                       label=f"{fall_fraction:.0%} of its value at step {reference[0]}")
        _mark_findings(ax, findings)
        ax.set(title=titles[name], xlabel="optimizer step", ylabel=name)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_probe_accuracy(probes: Sequence[Mapping[str, Any]], out_png: Path) -> Path:
    """The probe's validation and test accuracy at each probe step, with their 95% intervals as error bars."""
    return _save(probe_accuracy_figure(probes), out_png)


def probe_accuracy_figure(probes: Sequence[Mapping[str, Any]]) -> Figure:
    """The figure `plot_probe_accuracy` saves. Each probe has `step`, `val_acc`, `val_ci`, `test_acc`, `test_ci`."""
    if not probes:
        raise ValueError("plot_probe_accuracy needs at least one probe; got none.")
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ordered = sorted(probes, key=lambda p: p["step"])
    steps = [p["step"] for p in ordered]
    shift = (max(steps) - min(steps)) * 0.008 or 0.05  # the two bars of a step side by side, not on top
    for offset, (split, colour) in zip((-shift, shift), (("val", "C0"), ("test", "C1")), strict=True):
        values = [p[f"{split}_acc"] for p in ordered]
        low = [p[f"{split}_acc"] - p[f"{split}_ci"][0] for p in ordered]
        high = [p[f"{split}_ci"][1] - p[f"{split}_acc"] for p in ordered]
        name = "validation" if split == "val" else "test"
        ax.errorbar([s + offset for s in steps], values, yerr=[low, high], marker="o", capsize=4, color=colour,
                    label=f"{name} accuracy ({ordered[-1][f'num_{split}']} videos, 95% interval)")
    ax.set(title="downstream probe on the target encoder", xlabel="optimizer step", ylabel="accuracy",
           ylim=ACCURACY_LIMITS)
    ax.set_xticks(steps)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def _by_step(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(entry["step"], entry[key]) for entry in history if entry.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _mark_findings(ax: Any, findings: Sequence[Mapping[str, Any]]) -> None:
    for k, step in enumerate(sorted({f["step"] for f in findings})):
        ax.axvline(step, color="C3", linestyle="--", alpha=0.6, label="collapse: finding" if k == 0 else None)
