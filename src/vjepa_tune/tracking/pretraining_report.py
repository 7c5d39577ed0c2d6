"""A pretraining run's report: report.md with its plots, and the one sentence that says whether pretraining helped.

The verdict compares the probe's test accuracy at the start (the encoder as it came) and at the end, on the same
test videos, each with its 95% Wilson interval; when the intervals overlap it says that these videos cannot tell the
two apart rather than calling a difference. Works on metrics.json's values (plain data): the caller names the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.files import write_text_atomic
from vjepa_tune.text import counted
from vjepa_tune.tracking.plots import plot_collapse_signals, plot_pretraining_loss, plot_probe_accuracy

MAX_HISTORY_ROWS = 25
"""Monitor rows in report.md; a longer history is thinned evenly (first and last kept); metrics.json has them all."""


def _acc(probe: Mapping[str, Any], split: str) -> str:
    return format_interval(probe[f"{split}_acc"], probe[f"{split}_ci"])


def probe_verdict(probes: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: whether pretraining helped, by the probe's test accuracy at the first and the last probe."""
    if not probes:
        return ("No probe ran (give --probe.data.root with labelled videos), so whether pretraining helped a "
                "downstream task was not measured; the collapse signals say only whether the features kept their "
                "spread.")
    start, end = probes[0], probes[-1]
    if start["step"] == end["step"]:
        return (f"Only the start was probed: test accuracy {_acc(start, 'test')} on "
                f"{counted(start['num_test'], 'test video')}; there is no end to compare it with.")
    side_by_side = f"{_acc(start, 'test')} at the start and {_acc(end, 'test')} after {counted(end['step'], 'step')}"
    where = f"on the same {counted(end['num_test'], 'test video')} ({end['split']} split of {end['data']})"
    (s_low, s_high), (e_low, e_high) = start["test_ci"], end["test_ci"]
    if e_low > s_high:
        return f"Pretraining helped: the probe's test accuracy was {side_by_side}, {where}; the 95% intervals do " \
               "not overlap."
    if e_high < s_low:
        return f"Pretraining hurt: the probe's test accuracy was {side_by_side}, {where}; the 95% intervals do not " \
               "overlap."
    return (f"The probe's test accuracy was {side_by_side}, {where}; the 95% intervals overlap, so these videos "
            "cannot tell whether pretraining helped.")


def _thinned(history: Sequence[Mapping[str, Any]], rows: int = MAX_HISTORY_ROWS) -> list[Mapping[str, Any]]:
    if len(history) <= rows:
        return list(history)
    picks = sorted({round(k * (len(history) - 1) / (rows - 1)) for k in range(rows)})
    return [history[k] for k in picks]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in rows)]


def write_plots(plots_dir: Path, metrics: Mapping[str, Any], fall_fraction: float,
                references: Mapping[str, tuple[int, float]] | None = None) -> dict[str, Path]:
    """loss.png, collapse.png and (with probes) probe.png in `plots_dir`; returns them by name. `references`: each
    collapse signal's (step, value) its fall is measured against (default: its first value)."""
    history, findings, probes = metrics["history"], metrics.get("collapse") or [], metrics["probes"]
    plots: dict[str, Path] = {}
    if history:
        plots["loss"] = plot_pretraining_loss(history, findings, plots_dir / "loss.png")
        plots["collapse signals"] = plot_collapse_signals(history, findings, fall_fraction,
                                                          plots_dir / "collapse.png", references)
    if probes:
        plots["probe accuracy"] = plot_probe_accuracy(probes, plots_dir / "probe.png")
    return plots


def write_pretraining_report(report: Path, plots: Mapping[str, Path], metrics: Mapping[str, Any]) -> Path:
    """report.md: the verdict, what ran, the probes, the monitors, the collapse findings and the plots."""
    report = Path(report)
    probes, history = metrics["probes"], metrics["history"]
    lines = [
        f"# Continued pretraining of {metrics['model']}",
        "",
        metrics["verdict"],
        "",
        f"- videos: {counted(metrics['num_videos'], 'video')} in `{metrics['dataset']}`"
        + (f" ({counted(metrics['skipped_videos'], 'video')} left out: see metrics.json `skipped`)"
           if metrics["skipped_videos"] else ""),
        f"- {counted(metrics['steps'], 'optimizer step')} of {metrics['effective_batch']} clips "
        f"({_epochs(metrics['epochs'])}) in {metrics['train_time_s']:.0f} s, precision {metrics['precision']}",
        "- the model folder holds the target encoder: `model/` (the last)"
        + (f", `best_model/` (the best probe by validation accuracy, step {metrics['best_probe_step']})"
           if metrics.get("best_probe_step") is not None else ""),
    ]
    lines += [f"- {note}" for note in metrics.get("notes") or []]  # the predictor replaced, its warm-up, ...
    if metrics.get("stopped"):
        lines.append(f"- stopped early: {metrics['stopped']}")
    lines += ["", "## Probe", ""]
    if probes:
        lines += _table(["step", "validation acc (95% CI)", "test acc (95% CI)", "videos (val / test)"],
                        [[str(p["step"]), _acc(p, "val"), _acc(p, "test"), f"{p['num_val']} / {p['num_test']}"]
                         for p in probes])
        lines += ["", f"Split: {probes[-1]['split']} split of `{probes[-1]['data']}`; each probe is a `train` run "
                  "(its records under probes/)."]
    else:
        lines.append("No probe ran.")
    lines += ["", "## Monitors", ""]
    columns = ["step", "loss", "lr", "ema_momentum", "grad_norm", "target_std", "target_rank", "pred_std"]
    lines += _table(columns, [[_number(entry.get(c), 6 if c == "ema_momentum" else 4) for c in columns]
                              for entry in _thinned(history)])
    if len(history) > MAX_HISTORY_ROWS:
        lines += ["", f"{MAX_HISTORY_ROWS} of {len(history)} monitor steps; metrics.json's `history` has them all."]
    lines += ["", "## Collapse findings", ""]
    findings = metrics.get("collapse") or []
    lines += [f"- step {f['step']}: {f['message']}" for f in findings] or ["None."]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{name}]({path.relative_to(report.parent).as_posix()})" for name, path in plots.items()]
    lines.append("")
    return write_text_atomic(report, "\n".join(lines))


def _epochs(epochs: float) -> str:
    return f"{epochs:.3g} epoch" if epochs == 1 else f"{epochs:.3g} epochs"


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"
