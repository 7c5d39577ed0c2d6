"""`vjepa-tune demo` end to end: the guide's four strategies on the bundled `tiny`, its table and its records."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from vjepa_tune.compare.grid import GUIDE_STRATEGIES


def test_demo_trains_the_four_guide_strategies_and_writes_the_guides_table(demo_result: Path) -> None:
    metrics = {m["approach"]: m for m in (json.loads(p.read_text()) for p in demo_result.glob("*/metrics.json"))}
    assert set(metrics) == set(GUIDE_STRATEGIES)
    for m in metrics.values():
        assert m["model"] == "tiny" and [h["epoch"] for h in m["history"]] == [1, 2, 3, 4, 5]
        assert m["effective_batch"] == 4, "the guide's batch 1 x 4 accumulation steps"
    assert metrics["head_only"]["trainable_params"] < metrics["lora"]["trainable_params"]
    assert metrics["lora"]["trainable_params"] < metrics["pooler_and_head"]["trainable_params"]
    assert metrics["pooler_and_head"]["trainable_params"] < metrics["pooler_head_and_lora"]["trainable_params"]

    report = (demo_result / "report.md").read_text()
    assert "| Approach | Test Acc | Val Acc | Trainable Params | % of Total | Training Time |" in report
    rows = {row[0].strip("`"): row for row in _table_rows(report, "## Results")}
    assert set(rows) == set(GUIDE_STRATEGIES)
    for name, m in metrics.items():  # each accuracy with the Wilson interval of its counts, by hand
        assert m["num_test"] == m["test"]["num_samples"] == 24
        assert rows[name][1] == _with_interval(m["test"]["num_correct"], 24), name
        assert rows[name][2] == _with_interval(round(24 * m["best_val_acc"]), 24), name
    rows = list(csv.DictReader((demo_result.parent / "experiments.csv").open()))
    assert sorted(r["approach"] for r in rows) == sorted(GUIDE_STRATEGIES)
    assert (demo_result / "training_curves.png").exists() and (demo_result / "confusion_best.png").exists()
    assert "Ordered by validation accuracy" in (demo_result / "compare.log").read_text()
    for name in GUIDE_STRATEGIES:
        assert "epoch 5/5" in (demo_result / name / "train.log").read_text()


def test_the_demos_report_pairs_every_strategy_with_the_best_on_the_same_test_videos(demo_result: Path) -> None:
    """The paired comparison, checked by hand from the runs' test_predictions.csv: the videos only one of two
    strategies got right and the exact binomial McNemar p-value; and what 24 test videos can detect."""
    metrics = {name: json.loads((demo_result / name / "metrics.json").read_text()) for name in GUIDE_STRATEGIES}
    reference = max(GUIDE_STRATEGIES, key=lambda name: metrics[name]["best_val_acc"])  # first of equals: grid order
    right = {name: {r["id"]: r["correct"] == "1" for r in csv.DictReader((demo_result / name /
                                                                           "test_predictions.csv").open())}
             for name in GUIDE_STRATEGIES}
    report = (demo_result / "report.md").read_text()
    rows = {row[0].strip("`"): row for row in _table_rows(report, "## Paired comparison")}
    assert rows[reference][2:] == ["reference", "-", "-"]
    for name in GUIDE_STRATEGIES:
        if name == reference:
            continue
        only_ref = sum(right[reference][v] and not right[name][v] for v in right[name])
        only_it = sum(right[name][v] and not right[reference][v] for v in right[name])
        n, k = only_ref + only_it, min(only_ref, only_it)
        p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
        difference = 100 * (metrics[name]["test_acc"] - metrics[reference]["test_acc"])
        assert rows[name][2:] == [f"{difference:+.1f}", f"{only_ref} / {only_it}", f"{p:.2f}"], name
    section = report.split("## Paired comparison", 1)[1].split("\n## ", 1)[0]
    assert "this test set cannot tell" in section or "this test set tells" in section
    # at the reference's level p on 24 videos: d = (1.959964 + 0.841621) sqrt(2 p (1 - p) / 24)
    level = metrics[reference]["test"]["num_correct"] / 24
    detectable = 2.801585 * math.sqrt(2 * level * (1 - level) / 24)
    assert f"With 24 test videos and accuracies near {100 * level:.1f}%" in section
    assert f"differ by about {100 * detectable:.1f} points" in section


def test_the_small_data_note_gives_the_demos_settings_where_users_see_them(capsys: pytest.CaptureFixture) -> None:
    """With synth's defaults (--variety 1) and two epochs `tiny` trains to chance: the note that says so (in the
    train log of a `tiny` run near chance, and in `synth --help`) must name the settings the demo really uses."""
    from vjepa_tune import demo
    from vjepa_tune.cli import main
    from vjepa_tune.config import TrainConfig
    from vjepa_tune.models.specs import TINY_SMALL_DATA_NOTE

    width, height = demo.DEMO_SIZE
    crop = ",".join(f"{v:g}" for v in demo.DEMO_CROP_SCALE)
    for needle in (f"--variety {demo.DEMO_VARIETY:g}", f"{demo.DEMO_VIDEOS_PER_CLASS} per class", f"{width} px",
                   f"{demo.DEMO_FRAMES} frames", f"{TrainConfig.num_epochs} epochs", f"--data.crop_scale {crop}",
                   "chance accuracy", "vjepa-tune demo"):
        assert needle in TINY_SMALL_DATA_NOTE, needle
    assert width == height
    assert main(["synth", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for needle in ("--model tiny", f"--variety {demo.DEMO_VARIETY:g}", f"--videos_per_class "
                   f"{demo.DEMO_VIDEOS_PER_CLASS}", f"--size {width}", f"--data.crop_scale {crop}", "chance"):
        assert needle in help_text, needle



def test_the_demos_best_strategy_reaches_80_percent_on_the_four_actions(demo_result: Path) -> None:
    """Issue 4: with the demo's defaults (data seed 0) the best strategy reaches at least 0.80 test accuracy
    (chance 0.25); BENCHMARKS.md records every strategy for data seeds 0, 1 and 2."""
    accuracy = {p.parent.name: json.loads(p.read_text())["test_acc"] for p in demo_result.glob("*/metrics.json")}
    assert max(accuracy.values()) >= 0.80, accuracy


def test_the_demos_best_run_labels_80_percent_of_long_videos_of_joined_clips(demo_result: Path, tmp_path: Path) -> None:
    """Issue 6's detection goal on the demo: six videos, each of 24 fresh 2-second clips of the four actions in turn,
    each clip in its own scene as the demo draws them, joined back to back and labelled by the demo's best run (by
    validation accuracy, as its report picks it) with windows as long as a demo video, laid out shot by shot, every
    view also mirrored (`--flip true`). Every join is found and nothing else; together at least 80% of the frames
    are labelled right (84% measured for the seed-0 demo, 70-94% per video; BENCHMARKS.md, "Long-video detection").
    Without the cut search, windows across the joins label far less of the video right."""
    from vjepa_tune import load_run
    from vjepa_tune.demo import DEMO_FPS, DEMO_FRAMES, DEMO_SIZE, DEMO_VARIETY
    from vjepa_tune.synth import render_joined_clips, write_video

    metrics = {name: json.loads((demo_result / name / "metrics.json").read_text()) for name in GUIDE_STRATEGIES}
    best = max(GUIDE_STRATEGIES, key=lambda name: metrics[name]["best_val_acc"])
    run = load_run(demo_result / best)
    classes = ["sitting_down", "waving", "standing_up", "other"] * 6
    window_s = DEMO_FRAMES / DEMO_FPS

    def labelled_right(video: Path, truth: list[str], cuts: bool, flip: bool) -> tuple[float, list[float]]:
        result = run.predict_windows(video, window_s=window_s, stride_s=window_s / 4, min_score=0, progress=False,
                                     cuts=cuts, flip=flip)
        labels = result.label_at((i + 0.5) / DEMO_FPS for i in range(len(truth)))
        return sum(label == t for label, t in zip(labels, truth, strict=True)) / len(truth), result.cuts

    fractions = []
    for seed in range(1, 7):
        joined = render_joined_clips(classes, 2 * DEMO_FPS, seed=seed, size=DEMO_SIZE, variety=DEMO_VARIETY)
        video = tmp_path / f"joined-{seed}.mp4"
        write_video(video, joined.frames, fps=DEMO_FPS)
        fraction, cuts = labelled_right(video, joined.frame_labels(), cuts=True, flip=True)
        assert cuts == pytest.approx([2.0 * k for k in range(1, len(classes))]), f"video {seed}: every join only"
        fractions.append(fraction)
        if seed == 1:
            across_cuts, _ = labelled_right(video, joined.frame_labels(), cuts=False, flip=True)
    mean = sum(fractions) / len(fractions)
    shown = ", ".join(f"{f:.1%}" for f in fractions)
    assert mean >= 0.80, f"{best}: {mean:.1%} of the frames labelled right ({shown})"
    assert fractions[0] >= across_cuts + 0.15, f"{best}: {fractions[0]:.1%} shot by shot, {across_cuts:.1%} across"


def _with_interval(correct: int, total: int) -> str:
    """`87.5% (69–96)` by hand: the Wilson score interval (z = 1.959964) in whole percent, rounded half up."""
    z, p = 1.959963984540054, correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    low = 0.0 if correct == 0 else centre - half
    high = 1.0 if correct == total else centre + half
    return f"{100 * p:.1f}% ({math.floor(100 * low + 0.5)}–{math.floor(100 * high + 0.5)})"


def _table_rows(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading`, as lists of cells."""
    table: list[str] = []
    for line in markdown.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in table[2:]]
