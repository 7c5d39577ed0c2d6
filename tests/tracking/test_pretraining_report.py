"""A pretraining run's report says in one sentence whether pretraining helped, with both probes' intervals side by
side, and never calls a difference its test videos cannot show."""

from __future__ import annotations

from pathlib import Path

import pytest

from vjepa_tune.evaluation.statistics import wilson_interval
from vjepa_tune.tracking.pretraining_report import probe_verdict, write_plots, write_pretraining_report


def _probe(step: int, val: int, test: int, n: int = 100) -> dict:
    return {"step": step, "val_acc": val / n, "val_correct": val, "num_val": n, "val_ci": list(wilson_interval(val, n)),
            "test_acc": test / n, "test_correct": test, "num_test": n, "test_ci": list(wilson_interval(test, n)),
            "split": "random", "data": "/data/labelled", "run": f"probes/step-{step:06d}"}


@pytest.mark.parametrize(
    ("start", "end", "said"),
    [
        (40, 70, "Pretraining helped: the probe's test accuracy was 40.0% (31–50) at the start and 70.0% (60–78) "
                 "after 500 steps, on the same 100 test videos (random split of /data/labelled); the 95% intervals "
                 "do not overlap."),
        (70, 40, "Pretraining hurt: the probe's test accuracy was 70.0% (60–78) at the start and 40.0% (31–50) after "
                 "500 steps"),
        (50, 58, "The probe's test accuracy was 50.0% (40–60) at the start and 58.0% (48–67) after 500 steps, on the "
                 "same 100 test videos (random split of /data/labelled); the 95% intervals overlap, so these videos "
                 "cannot tell whether pretraining helped."),
    ],
)
def test_the_verdict_puts_start_and_end_side_by_side_and_calls_only_what_the_intervals_show(
    start: int, end: int, said: str
) -> None:
    assert probe_verdict([_probe(0, 50, start), _probe(250, 90, 90), _probe(500, 50, end)]).startswith(said)


def test_without_a_probe_or_with_only_the_start_the_verdict_says_what_was_not_measured() -> None:
    assert probe_verdict([]).startswith("No probe ran (give --probe.data.root with labelled videos)")
    assert probe_verdict([_probe(0, 50, 50)]).startswith("Only the start was probed: test accuracy 50.0% (40–60)")


def test_the_report_holds_the_verdict_the_probes_the_monitors_the_findings_and_the_plots(tmp_path: Path) -> None:
    history = [{"step": s, "loss": 1.0 / s, "lr": 1e-4, "ema_momentum": 0.999, "grad_norm": 1.0, "target_std": 0.7,
                "target_rank": 30.0 - s, "pred_std": 0.2} for s in range(1, 61)]
    probes = [_probe(0, 50, 40), _probe(60, 60, 70)]
    metrics = {"model": "tiny", "verdict": probe_verdict(probes), "num_videos": 8, "dataset": "/data/footage",
               "skipped_videos": 1, "steps": 60, "effective_batch": 8, "epochs": 60.0, "train_time_s": 12.0,
               "precision": "fp32", "best_probe_step": 60, "history": history, "probes": probes,
               "collapse": [{"step": 30, "message": "collapse: target_rank fell to 2 at step 30"}], "stopped": None,
               "notes": ["predictor warm-up: optimizer steps 1-10 train the predictor only; the encoder learns from "
                         "step 11"]}
    plots = write_plots(tmp_path / "plots", metrics, fall_fraction=0.2)
    assert sorted(p.name for p in plots.values()) == ["collapse.png", "loss.png", "probe.png"]
    report = write_pretraining_report(tmp_path / "report.md", plots, metrics).read_text()
    assert report.startswith("# Continued pretraining of tiny\n\nPretraining helped:")
    assert "(1 video left out" in report and "60 optimizer steps of 8 clips (60 epochs)" in report
    assert "\n- predictor warm-up: optimizer steps 1-10 train the predictor only; the encoder learns from step 11\n" \
        in report, "what the run did beyond the defaults"
    assert "| 60 | 60.0% (50–69) | 70.0% (60–78) | 100 / 100 |" in report
    assert "- step 30: collapse: target_rank fell to 2 at step 30" in report
    assert "25 of 60 monitor steps" in report and "| 1 | 1 |" in report and "| 60 | 0.01667 |" in report
    assert "![probe accuracy](plots/probe.png)" in report
