"""The report of a comparison: `report.md` with the guide's tables, and PNG plots beside it.

Input is one entry per grid point, as `compare` records it: `name`, `run_dir`, `settings` (strategy,
videos_per_class, learning_rate, lora_rank, lora_alpha, lora_dropout, seed, data_seed), `metrics` (metrics.json's
content, or None), `error` (None unless the run failed) and `test_outcomes` ({test video id: right or wrong}, from
the run's test_predictions.csv; None when it kept none) and `classes` (its class names, from its splits.json).
Everything here is a pure function of those entries (the caller reads the run folders through `runs`), so a grid
run again reports the same whatever it skipped.

Choices, stated in the report itself: a "setting" is a grid point without its seeds (training and data); its
results are the mean over seeds with the sample standard deviation when there are several, else the one run's
figure with its 95% interval; where several settings compete for one cell or one strategy, the one with the best
mean validation accuracy is shown, never the best test accuracy. The paired comparison (`tracking.significance`)
tests each strategy's best setting against the best strategy's, run by run on the same test videos.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vjepa_tune.evaluation.metrics import write_confusion
from vjepa_tune.evaluation.statistics import ALPHA, POWER, format_mean_sd
from vjepa_tune.files import write_text_atomic
from vjepa_tune.text import counted
from vjepa_tune.tracking.grid_settings import (
    HYPERPARAMETERS,
    Setting,
    best_per_strategy,
    best_setting,
    data_seeds_vary,
    finished_runs,
    format_duration,
    format_share,
    group_settings,
    markdown_table,
    repetition,
    repetition_label,
    repetition_word,
    run_figure,
    setting_figure,
    setting_text,
    several_repetitions,
    strategies_in,
    value_text,
    varying_keys,
)
from vjepa_tune.tracking.plots import plot_params_vs_accuracy, plot_scaling, plot_training_curves
from vjepa_tune.tracking.records import precision_name
from vjepa_tune.tracking.significance import (
    PairedDifference,
    format_p,
    format_points,
    paired_difference,
    sensitivity_at_level,
)

REPORT_FILE = "report.md"
CURVES_PNG = "training_curves.png"
SCALING_PNG = "scaling.png"
PARAMS_PNG = "params_vs_accuracy.png"
CONFUSION_STEM = "confusion_best"

# ---------------------------------------------------------------------------------------------- tables
RESULTS_ORDER = (
    "Ordered by validation accuracy, best first (ties in grid order): choose on validation, never on test."
)
"""Says how `results_table` orders its rows; printed with the table wherever it appears."""


def results_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The guide's results table, one row per finished run, best validation accuracy first (`RESULTS_ORDER`)."""
    finished = finished_runs(runs)
    if not finished:
        return "No run finished."
    keys = varying_keys(finished)
    seeds = several_repetitions(finished)
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
            setting = f"{setting}, {repetition_label(run, finished)}" if keys else repetition_label(run, finished)
        rows.append(
            [
                f"`{s['strategy']}`",
                *([setting] if extra else []),
                run_figure(m, "test_acc"),
                run_figure(m, "best_val_acc"),
                f"{int(m['trainable_params']):,}",
                format_share(m["trainable_pct"]),
                format_duration(float(m["train_time_s"])),
            ]
        )
    return markdown_table(header, rows)


def scaling_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Test accuracy by videos per class (rows) and strategy (columns)."""
    groups = group_settings(runs)
    strategies = strategies_in(runs)
    sizes = sorted({g.settings["videos_per_class"] for g in groups}, key=lambda n: (n is None, n or 0))
    rows = []
    for n in sizes:
        row = [value_text("videos_per_class", n)]
        for strategy in strategies:
            cell = [g for g in groups if g.strategy == strategy and g.settings["videos_per_class"] == n]
            row.append(setting_figure(best_setting(cell), "test_acc", runs) if cell else "failed")
        rows.append(row)
    return markdown_table(["Videos per class", *(f"`{s}`" for s in strategies)], rows)


def best_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Each strategy's setting of best mean validation accuracy, stated in full, and its test accuracy."""
    every_key = [key for key, _ in HYPERPARAMETERS]
    rows = []
    for strategy, best in best_per_strategy(runs).items():
        rows.append(
            [
                f"`{strategy}`",
                setting_text(best.settings, every_key),
                setting_figure(best, "best_val_acc", runs),
                setting_figure(best, "test_acc", runs),
                ", ".join(f"`{r['name']}`" for r in best.runs),
            ]
        )
    return markdown_table(["Approach", "Best setting", "Val Acc", "Test Acc", "Runs"], rows)


def seeds_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """Each strategy's best setting run by run (test accuracy with its 95% interval), then the mean ± sample
    standard deviation of test and validation accuracy over them; best mean validation accuracy first."""
    finished = finished_runs(runs)
    best = best_per_strategy(runs)
    repetitions = list(dict.fromkeys(repetition(r) for r in finished))
    labels = {repetition(r): repetition_label(r, finished) for r in finished}
    rows = []
    for strategy, setting in sorted(best.items(), key=lambda item: -item[1].val):
        by_repetition = {repetition(r): r for r in setting.runs}
        cells = [run_figure(by_repetition[k]["metrics"], "test_acc") if k in by_repetition else "-"
                 for k in repetitions]
        rows.append([f"`{strategy}`", *cells, format_mean_sd(setting.values("test_acc")),
                     format_mean_sd(setting.values("best_val_acc"))])
    header = ["Approach", *(labels[k] for k in repetitions), "Test Acc, mean ± SD", "Val Acc, mean ± SD"]
    return markdown_table(header, rows)


def reference_strategy(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """The strategy whose best setting has the best mean validation accuracy (ties: grid order); None if no run
    finished."""
    best = best_per_strategy(runs)
    return max(best, key=lambda s: best[s].val) if best else None


def paired_differences(runs: Sequence[Mapping[str, Any]]) -> dict[str, PairedDifference]:
    """Each other strategy's best setting against the reference's, run by run (`tracking.significance`), best
    validation accuracy first."""
    best = best_per_strategy(runs)
    reference = reference_strategy(runs)
    if reference is None:
        return {}
    others = sorted((s for s in best if s != reference), key=lambda s: -best[s].val)
    found = {}
    for strategy in others:
        with_shared = [r for r in best[strategy].scored() if r in best[reference].scored()]
        if with_shared:
            found[strategy] = paired_difference(best[reference].scored(), best[strategy].scored())
    return found


def paired_table(runs: Sequence[Mapping[str, Any]]) -> str:
    """The reference and every other strategy's difference to it, with the exact McNemar p-value (per run, when
    there are several seeds) and, with several seeds, the paired t-test over them."""
    best = best_per_strategy(runs)
    reference = reference_strategy(runs)
    several = several_repetitions(finished_runs(runs))
    pairs = paired_differences(runs)
    ref_name = f"`{reference}`"
    if several:
        header = ["Approach", "Test Acc", f"Difference to {ref_name}, points", "McNemar p",
                  f"Paired t-test p ({repetition_word(runs)}s)"]
    else:
        header = ["Approach", "Test Acc", f"Difference to {ref_name}, points",
                  f"Videos only {ref_name} / only it got right", "McNemar p"]
    rows = [[ref_name, setting_figure(best[reference], "test_acc", runs), "reference", "-", "-"]]
    for strategy, pair in pairs.items():
        figure = setting_figure(best[strategy], "test_acc", runs)
        tests = ", ".join(format_p(t.p_value) if t is not None else "-" for t in pair.tests)
        if several:
            spread = format_mean_sd(pair.differences).removesuffix("%")
            mean_sd = spread if len(pair.differences) > 1 else format_points(pair.differences[0])
            over = pair.over_seeds
            seed_p = format_p(over.p_value) if over is not None and over.p_value is not None else "not computable"
            rows.append([f"`{strategy}`", figure, _signed(mean_sd), tests, seed_p])
        else:
            (test,) = pair.tests
            discordant = f"{test.only_first} / {test.only_second}" if test is not None else "-"
            rows.append([f"`{strategy}`", figure, format_points(pair.differences[0]), discordant, tests])
    return markdown_table(header, rows)


def _signed(mean_sd: str) -> str:
    """`-4.2 ± 2.1` stays; a mean without a sign gets one (`+4.2 ± 2.1`)."""
    return mean_sd if mean_sd.startswith(("-", "+")) else f"+{mean_sd}"


def paired_words(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the paired tests say, in sentences: which differences this test set cannot tell apart, which it can."""
    reference = reference_strategy(runs)
    pairs = paired_differences(runs)
    if reference is None or not pairs:
        return []
    ref = f"`{reference}`"
    level = f"At α = {ALPHA:g}"
    untested = {s: p for s, p in pairs.items() if not any(t is not None for t in p.tests)}
    tested = {s: p for s, p in pairs.items() if s not in untested}
    words: list[str] = []
    several = several_repetitions(finished_runs(runs))
    if not several:
        apart = [s for s, p in tested.items() if p.significant() == [True]]
        together = [s for s in tested if s not in apart]

        def each(names: list[str]) -> str:
            return _listed([f"`{s}` ({format_points(tested[s].differences[0])} points, p = "
                            f"{format_p(tested[s].tests[0].p_value)})" for s in names])  # type: ignore[union-attr]

        if together:
            words.append(f"{level}, this test set cannot tell {each(together)} apart from {ref}, the best by "
                         "validation accuracy: differences this size can come from the draw of test videos alone.")
        if apart:
            words.append(f"It tells {each(apart)} apart from {ref}." if together else
                         f"{level}, this test set tells {each(apart)} apart from {ref}, the best by validation "
                         "accuracy.")
    else:
        word = repetition_word(runs)
        never = [s for s, p in tested.items() if not any(p.significant())]
        some = [s for s in tested if s not in never]
        if never:
            words.append(f"{level}, no test set of this grid (one per {word}) can tell {_listed(never, '`')} apart "
                         f"from {ref}, the best by validation accuracy (McNemar, run by run).")
        if some:
            told = [f"`{s}` on {sum(tested[s].significant())} of {len(tested[s].significant())}" for s in some]
            words.append(f"McNemar tells {_listed(told)} {word}s apart from {ref}.")
        over = {s: p.over_seeds for s, p in pairs.items() if p.over_seeds is not None}
        computed = {s: t for s, t in over.items() if t.p_value is not None}
        if computed:
            found = [s for s, t in computed.items() if t.p_value < ALPHA]  # type: ignore[operator]
            missed = [s for s in computed if s not in found]
            parts = []
            if found:
                parts.append(f"a difference for {_listed([_p_named(s, computed) for s in found])}")
            if missed:
                parts.append(f"none for {_listed([_p_named(s, computed) for s in missed])}")
            words.append(f"Over the {word}s, the paired t-test finds {' and '.join(parts)}.")
        for s, t in over.items():
            if t.p_value is None:
                words.append(f"The paired t-test for `{s}` is {t.reason}.")
    for s, p in untested.items():
        words.append(f"`{s}` has no McNemar test: {p.unpaired}.")
    if len(pairs) > 1:
        words.append(f"The p-values are not corrected for making {len(pairs)} comparisons.")
    return words


def _p_named(strategy: str, tests: Mapping[str, Any]) -> str:
    return f"`{strategy}` (p = {format_p(tests[strategy].p_value)})"


def _listed(items: Sequence[str], quote: str = "") -> str:
    """`a`, `a or b`, `a, b or c`."""
    quoted = [f"{quote}{item}{quote}" for item in items]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def sensitivity_words(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """How large a difference the test set could detect at the reference's level, and how many test videos a
    5-point difference would need."""
    reference = reference_strategy(runs)
    if reference is None:
        return None
    setting = best_per_strategy(runs)[reference]
    metrics = setting.runs[0]["metrics"]
    num_videos = int((metrics.get("test") or {}).get("num_samples") or metrics.get("num_test") or 0)
    if num_videos < 1:
        return None
    found = sensitivity_at_level(setting.values("test_acc"), num_videos)
    each = " in each data seed's test set" if data_seeds_vary(runs) else ""
    return (
        f"With {counted(num_videos, 'test video')}{each} and accuracies near {100 * found.accuracy:.1f}% "
        f"(`{reference}`'s), two strategies must differ by about {100 * found.detectable_difference:.1f} points for "
        f"the difference to be detected (two-sided α {ALPHA:g}, power {POWER:g}, two accuracies at the observed "
        f"level); a {100 * found.difference:g}-point difference would need about "
        f"{counted(found.videos_for_difference, 'test video')}."
    )


def precision_text(runs: Sequence[Mapping[str, Any]]) -> str:
    """`Trained in fp32.`, or `Trained in bf16 (3 runs) and fp32 (1 run).`; records from before said "no" for fp32."""
    names = [precision_name(r["metrics"].get("precision")) or "an unrecorded precision" for r in finished_runs(runs)]
    kinds = sorted(set(names))
    if len(kinds) == 1:
        return f"Trained in {kinds[0]}."
    return "Trained in " + " and ".join(f"{k} ({counted(names.count(k), 'run')})" for k in kinds) + "."


def failed_table(runs: Sequence[Mapping[str, Any]]) -> str:
    failed = [r for r in runs if r.get("error")]
    rows = [[f"`{r['name']}`", str(r["error"]).replace("|", "\\|").replace("\n", " ")] for r in failed]
    return markdown_table(["Run", "Error"], rows)


# ----------------------------------------------------------------------------------------------- plots
def _classes(run: Mapping[str, Any]) -> list[str] | None:
    """The run's class names (its entry's `classes`, read from the run folder by the caller), else its test
    metrics' per-class keys."""
    if run.get("classes"):
        return list(run["classes"])
    per_class = (run["metrics"].get("test") or {}).get("per_class")
    return list(per_class) if per_class else None


def write_plots(compare_dir: Path, runs: Sequence[Mapping[str, Any]]) -> dict[str, Path]:
    """The PNG plots of the finished runs; returns {what: path} for those drawn. Accuracies carry their
    uncertainty: one run's 95% interval, or the spread of several seeds (error bars; shaded curves)."""
    compare_dir = Path(compare_dir)
    best = best_per_strategy(runs)
    if not best:
        return {}
    drawn: dict[str, Path] = {}
    curves = {s: [r["metrics"]["history"] for r in g.runs] for s, g in best.items()
              if all(r["metrics"]["history"] for r in g.runs)}
    if curves:
        drawn["curves"] = plot_training_curves(curves, compare_dir / CURVES_PNG)

    groups = group_settings(runs)
    sizes = {g.settings["videos_per_class"] for g in groups}
    if len(sizes) > 1 and None not in sizes:
        points: dict[str, list[tuple[float, ...]]] = {}
        for strategy in best:
            cells = [(n, best_setting(cell)) for n in sorted(sizes)
                     if (cell := [g for g in groups if g.strategy == strategy and g.settings["videos_per_class"] == n])]
            points[strategy] = [_with_uncertainty(n, g) for n, g in cells]
            if len({len(p) for p in points[strategy]}) > 1:  # one run without an interval: no bars for any
                points[strategy] = [p[:2] for p in points[strategy]]
        drawn["scaling"] = plot_scaling(points, compare_dir / SCALING_PNG)

    param_points = [
        (s, int(g.runs[0]["metrics"]["trainable_params"]), *_with_uncertainty(None, g, as_bounds=True)[1:])
        for s, g in best.items()
        if int(g.runs[0]["metrics"]["trainable_params"]) > 0
    ]
    if param_points:
        drawn["params"] = plot_params_vs_accuracy(param_points, compare_dir / PARAMS_PNG)

    top = max(finished_runs(runs), key=lambda r: r["metrics"]["best_val_acc"])
    confusion = (top["metrics"].get("test") or {}).get("confusion")
    classes = _classes(top)
    if confusion and classes and len(confusion) == len(classes):
        _, png = write_confusion(compare_dir, confusion, classes, stem=CONFUSION_STEM)
        drawn["confusion"] = png
        drawn["confusion_run"] = Path(top["run_dir"])
    return drawn


def _with_uncertainty(x: Any, setting: Setting, as_bounds: bool = False) -> tuple[Any, ...]:
    """A plot point for the setting's test accuracy: (x, mean, sd) over several runs ((x, mean, low, high) with
    `as_bounds`), (x, accuracy, low, high) for one run with its interval, else (x, accuracy)."""
    tests = setting.values("test_acc")
    if len(tests) > 1:
        mean, sd = statistics.fmean(tests), statistics.stdev(tests)
        return (x, mean, mean - sd, mean + sd) if as_bounds else (x, mean, sd)
    interval = setting.runs[0]["metrics"].get("test_acc_ci")
    return (x, tests[0], *interval) if interval is not None else (x, tests[0])


def report_files(compare_dir: Path) -> list[Path]:
    """report.md and the plots beside it that exist: what a tracker keeps of a comparison."""
    names = (REPORT_FILE, CURVES_PNG, SCALING_PNG, PARAMS_PNG, f"{CONFUSION_STEM}.png")
    return [Path(compare_dir) / name for name in names if (Path(compare_dir) / name).is_file()]


# ------------------------------------------------------------------------------------------- report.md
def write_report(compare_dir: Path, runs: Sequence[Mapping[str, Any]], notes: Sequence[str] = ()) -> Path:
    """Write `report.md` and its plots into `compare_dir`; `notes` are markdown lines on data and split."""
    compare_dir = Path(compare_dir)
    finished = finished_runs(runs)
    failed = [r for r in runs if r.get("error")]
    drawn = write_plots(compare_dir, runs)
    several_seeds = several_repetitions(finished)
    word = repetition_word(finished) if finished else "seed"

    parts = [f"# Comparison: {len(finished)} of {counted(len(runs), 'run')} finished", ""]
    if notes:
        parts += [*(f"- {note}" for note in notes), ""]
    parts += [
        "## Results",
        "",
        "Test Acc is top-1 accuracy on the test split of the model from the epoch with the best validation "
        "accuracy (Val Acc); in parentheses, its 95% interval in percent (Wilson score: where the accuracy on "
        f"all such videos could lie, given this many test videos). {RESULTS_ORDER}"
        + (f" {precision_text(runs)}" if finished else ""),
        "",
        results_table(runs),
        "",
    ]
    if finished and len(best_per_strategy(runs)) > 1:
        reference = reference_strategy(runs)
        parts += [
            "## Paired comparison",
            "",
            f"Each strategy's best setting against `{reference}`, the best by validation accuracy, on the same test "
            "videos: the difference in test accuracy and the exact McNemar p-value, which looks only at the videos "
            "one of the two got right and the other did not (the probability of a split of those videos at least "
            "this uneven if both strategies were equally accurate)"
            + (f"; run by run for each {word}, and the paired t-test over the {word}s." if several_seeds else "."),
            "",
            paired_table(runs),
            "",
            *(f"{line}" for line in paired_words(runs)),
            "",
        ]
        if sensitivity := sensitivity_words(runs):
            parts += [f"**What this test set can detect.** {sensitivity}", ""]
    if finished and several_seeds:
        parts += [
            f"## {word.capitalize()}s",
            "",
            f"Each strategy's best setting {word} by {word} (test accuracy with its 95% interval), and the mean ± "
            f"sample standard deviation over the {word}s.",
            "",
            seeds_table(runs),
            "",
        ]
    if finished:
        parts += [
            "## Test accuracy by videos per class",
            "",
            "Where several settings share a cell, the one with the best validation accuracy is shown"
            + (
                f"; with several {word}s, the mean ± sample standard deviation over them."
                if several_seeds
                else ", with its 95% interval."
            ),
            "",
            scaling_table(runs),
            "",
            "## Best setting per strategy",
            "",
            "Chosen by validation accuracy"
            + (f" (mean over {word}s)" if several_seeds else "")
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
                "Training loss and validation accuracy per epoch, best setting of each strategy"
                + (f" (the mean over {word}s, their range shaded):" if several_seeds else ":"),
                "",
                f"![training curves]({CURVES_PNG})",
                "",
            ]
        if "scaling" in drawn:
            parts += [
                "Test accuracy against videos per class"
                + (f" (error bars: ± one standard deviation over {word}s):" if several_seeds else
                   " (error bars: 95% intervals):"),
                "",
                f"![scaling]({SCALING_PNG})",
                "",
            ]
        if "params" in drawn:
            parts += [
                "Trainable parameters (log scale) against test accuracy, best setting of each strategy"
                + (f" (error bars: ± one standard deviation over {word}s):" if several_seeds else
                   " (error bars: 95% intervals):"),
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
