"""Collapse monitors: the signals by hand, and a detector that speaks on collapse and stays quiet otherwise."""

from __future__ import annotations

import json
import math

import pytest
import torch

from vjepa_tune.pretraining.monitors import (
    CollapseMonitor,
    CollapseRules,
    collapse_signals,
    effective_rank,
    feature_std,
)


def _normal_run(steps: int = 300, seed: int = 0) -> list[tuple[int, dict[str, float]]]:
    """A healthy run: the loss falls with noise, the feature signals drift down gently; signals every 10 steps."""
    gen = torch.Generator().manual_seed(seed)
    run = []
    for step in range(steps):
        signals = {"loss": 0.3 + 0.5 * math.exp(-step / 100) * (1 + 0.1 * torch.randn(1, generator=gen).item())}
        if step % 10 == 0:
            fade = 1 - 0.3 * step / steps
            signals |= {"target_std": 0.8 * fade, "target_rank": 30 * fade, "pred_std": 0.7 * fade}
        run.append((step, signals))
    return run


def _advises(finding: str) -> None:
    assert finding.startswith("collapse: ")
    assert "lower learning rate" in finding and "higher EMA momentum" in finding and "more varied data" in finding


def test_effective_rank_by_hand() -> None:
    # singular values 3 and 1: p = (3/4, 1/4), rank = exp(-(3/4 ln 3/4 + 1/4 ln 1/4)) = 1.7548...
    assert effective_rank(torch.tensor([[3.0, 0.0], [0.0, 1.0]])) == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-6)
    assert effective_rank(torch.tensor([[3.0, 0.0], [0.0, 1.0]])) == pytest.approx(1.7548, abs=1e-4)
    assert effective_rank(torch.eye(5) * 2) == pytest.approx(5.0, rel=1e-6)
    assert effective_rank(torch.ones(7, 4)) == pytest.approx(1.0, abs=1e-5)  # identical rows: one direction
    assert effective_rank(torch.zeros(3, 4)) == 0.0
    # (clips, tokens, width) is read as rows of features, and a row cap keeps rows from every clip
    features = torch.eye(6).reshape(2, 3, 6)
    assert effective_rank(features) == pytest.approx(6.0, rel=1e-6)
    assert effective_rank(features, max_rows=2) == pytest.approx(2.0, rel=1e-6)


def test_feature_std_is_the_mean_over_dimensions_of_each_dimension_s_spread() -> None:
    # dimension 0 takes 0 and 2 (std 1), dimension 1 takes 0 and 4 (std 2): mean 1.5
    assert feature_std(torch.tensor([[[0.0, 0.0], [2.0, 4.0]]])) == pytest.approx(1.5)
    assert feature_std(torch.ones(3, 5, 8)) == 0.0


def test_collapse_signals_name_the_three_spreads() -> None:
    targets = torch.randn(2, 10, 8, generator=torch.Generator().manual_seed(0))
    predictions = [targets[:, :3] * 2, targets[:, 3:5] * 2]
    signals = collapse_signals(targets, predictions)
    assert signals == {
        "target_std": pytest.approx(feature_std(targets)),
        "target_rank": pytest.approx(effective_rank(targets)),
        "pred_std": pytest.approx(feature_std(torch.cat([targets[:, :3], targets[:, 3:5]], dim=1) * 2)),
    }


def test_degenerate_features_trip_collapse_at_the_first_check() -> None:
    gen = torch.Generator().manual_seed(0)
    same = torch.randn(1, 1, 64, generator=gen).expand(4, 128, 64) + 1e-3 * torch.randn(4, 128, 64, generator=gen)
    signals = collapse_signals(same, [same[:, :10]])
    assert signals["target_std"] < 0.01 and signals["target_rank"] < 1.5
    findings = CollapseMonitor().check(0, {"loss": 0.5, **signals})
    assert len(findings) == 1
    _advises(findings[0])
    assert "nearly identical across tokens and clips from the start" in findings[0]


def test_a_normal_run_stays_quiet() -> None:
    monitor = CollapseMonitor()
    assert [f for step, signals in _normal_run() for f in monitor.check(step, signals)] == []


def test_a_loss_spike_trips_collapse_once_while_it_lasts_and_again_when_it_returns() -> None:
    monitor = CollapseMonitor()
    for step, signals in _normal_run():
        monitor.check(step, signals)
    median = sorted(monitor.losses)[len(monitor.losses) // 2]
    (finding,) = monitor.check(300, {"loss": 4 * median})
    _advises(finding)
    assert "spiked" in finding and "step 300" in finding
    assert monitor.check(301, {"loss": 4 * median}) == []  # the same spike is not reported twice
    for step in range(302, 312):
        assert monitor.check(step, {"loss": median}) == []
    assert len(monitor.check(312, {"loss": 5 * median})) == 1


def test_no_spike_is_looked_for_in_the_first_steps() -> None:
    monitor = CollapseMonitor(CollapseRules(spike_history=10))
    assert [f for step, loss in enumerate([1.0, 0.2, 0.9, 5.0]) for f in monitor.check(step, {"loss": loss})] == []


def test_a_signal_that_falls_far_below_its_start_trips_collapse() -> None:
    monitor = CollapseMonitor()
    assert monitor.check(0, {"target_std": 0.8, "target_rank": 30.0, "pred_std": 0.7}) == []
    assert monitor.check(100, {"target_std": 0.7, "target_rank": 12.0, "pred_std": 0.6}) == []
    (finding,) = monitor.check(200, {"target_std": 0.7, "target_rank": 4.0, "pred_std": 0.6})
    _advises(finding)
    assert finding.startswith("collapse: target_rank fell to 4 at step 200") and "30 at step 0" in finding
    assert monitor.check(300, {"target_std": 0.7, "target_rank": 3.0, "pred_std": 0.6}) == []


def test_non_finite_values_are_left_to_the_caller() -> None:
    monitor = CollapseMonitor()
    for step, signals in _normal_run(50):
        monitor.check(step, signals)
    assert monitor.check(50, {"loss": math.nan, "target_std": math.inf}) == []


def test_a_resumed_monitor_finds_what_the_uninterrupted_one_finds() -> None:
    run = _normal_run() + [(300, {"loss": 3.0, "target_rank": 2.0})]
    whole = CollapseMonitor()
    expected = [f for step, signals in run for f in whole.check(step, signals)]
    assert len(expected) == 2
    first = CollapseMonitor()
    for step, signals in run[:150]:
        first.check(step, signals)
    resumed = CollapseMonitor()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # plain data for a checkpoint
    assert [f for step, signals in run[150:] for f in resumed.check(step, signals)] == expected


def test_the_prediction_spread_is_measured_against_its_value_after_the_warm_up_not_its_first() -> None:
    signals = {"target_std": 0.7, "target_rank": 30.0}
    monitor = CollapseMonitor(settle_steps=60)
    assert monitor.check(1, {**signals, "pred_std": 0.07}) == []
    assert monitor.check(50, {**signals, "pred_std": 0.01}) == [], "a predictor learning the mean is no collapse"
    assert monitor.check(100, {**signals, "pred_std": 0.02}) == []
    (finding,) = monitor.check(200, {**signals, "pred_std": 0.003})
    assert finding.startswith("collapse: pred_std fell to 0.003 at step 200") and "0.02 at step 100" in finding
    unsettled = CollapseMonitor()
    unsettled.check(1, {**signals, "pred_std": 0.07})
    assert unsettled.check(50, {**signals, "pred_std": 0.01})[0].startswith("collapse: pred_std fell")
