"""Intervals, paired tests and test-set sizes checked against values worked out by hand (the arithmetic is in the
comments; z = 1.959964 for 95%, z = 0.841621 for power 0.8), and the table text against the exact strings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa_tune.evaluation import statistics
from vjepa_tune.evaluation.metrics import classification_metrics
from vjepa_tune.evaluation.statistics import (
    bootstrap_intervals,
    class_scores,
    detectable_difference,
    format_interval,
    format_mean_sd,
    mcnemar,
    mcnemar_p_value,
    mean_and_sd,
    paired_seed_test,
    sensitivity_of_test_set,
    videos_needed,
    wilson_interval,
)


# ------------------------------------------------------------------------------------------ Wilson
def test_wilson_interval_of_21_of_24_matches_the_hand_computation() -> None:
    # p = 0.875, z² = 3.841459, z²/n = 0.160061
    # centre = (0.875 + 3.841459/48) / 1.160061 = 0.9550304 / 1.160061 = 0.8232589
    # half   = 1.959964 / 1.160061 * sqrt(0.875 * 0.125 / 24 + 3.841459 / 2304)
    #        = 1.689535 * sqrt(0.00455729 + 0.00166730) = 1.689535 * 0.0788961 = 0.1332978
    # -> [0.689961, 0.956557]
    low, high = wilson_interval(21, 24)
    assert low == pytest.approx(0.689961, abs=1e-6)
    assert high == pytest.approx(0.956557, abs=1e-6)


def test_wilson_interval_at_zero_and_all_correct_ends_exactly_at_the_edge() -> None:
    # 0/10: z²/n = 0.3841459; centre = (3.841459/20) / 1.3841459 = 0.138767;
    # half = 1.959964 / 1.3841459 * sqrt(3.841459/400) = 1.416009 * 0.0979982 = 0.138767 -> [0, 0.277533]
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.277533, abs=1e-6))
    # 10/10 mirrors 0/10: [1 - 0.277533, 1]
    assert wilson_interval(10, 10) == (pytest.approx(0.722467, abs=1e-6), 1.0)


def test_wilson_interval_without_videos_is_the_whole_range() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_widens_with_the_confidence_level() -> None:
    low95, high95 = wilson_interval(21, 24)
    low99, high99 = wilson_interval(21, 24, confidence=0.99)
    assert low99 < low95 and high99 > high95


@pytest.mark.parametrize(("correct", "total"), [(5, 4), (-1, 4), (0, -1)])
def test_wilson_interval_refuses_impossible_counts(correct: int, total: int) -> None:
    with pytest.raises(ValueError, match="correct"):
        wilson_interval(correct, total)


# ------------------------------------------------------------------------------------------ bootstrap
# Four classes, 24 videos: 21 right, and class 3 is predicted twice but never true.
LABELS = [0] * 6 + [1] * 6 + [2] * 12
PREDS = [0] * 5 + [3] + [1] * 5 + [3] + [2] * 11 + [1]


def _point(labels: list[int], preds: list[int], num_classes: int) -> dict:
    return classification_metrics(labels, torch.eye(num_classes)[preds], [str(c) for c in range(num_classes)])


def test_class_scores_from_counts_agree_with_classification_metrics() -> None:
    rng = np.random.default_rng(3)
    for num_classes, n in [(4, 24), (7, 50), (12, 15)]:
        labels = rng.integers(0, num_classes, n)
        preds = np.where(rng.random(n) < 0.6, labels, rng.integers(0, num_classes, n))
        correct = labels == preds
        tp = np.bincount(labels[correct], minlength=num_classes)
        support = np.bincount(labels, minlength=num_classes)
        predicted = np.bincount(preds, minlength=num_classes)
        mca, f1 = class_scores(tp, support, predicted)
        expected = _point(labels.tolist(), preds.tolist(), num_classes)
        assert float(mca) == pytest.approx(expected["mean_class_acc"], abs=1e-12)
        assert float(f1) == pytest.approx(expected["macro_f1"], abs=1e-12)


def test_bootstrap_is_deterministic_for_its_seed_and_changes_with_it() -> None:
    first = bootstrap_intervals(LABELS, PREDS, 4, resamples=500, seed=7)
    again = bootstrap_intervals(LABELS, PREDS, 4, resamples=500, seed=7)
    other = bootstrap_intervals(LABELS, PREDS, 4, resamples=500, seed=8)
    assert first == again
    assert (first.mean_class_acc, first.macro_f1) != (other.mean_class_acc, other.macro_f1)
    assert (first.resamples, first.seed) == (500, 7)


def test_bootstrap_result_does_not_depend_on_how_resamples_are_chunked() -> None:
    whole = bootstrap_intervals(LABELS, PREDS, 4, resamples=300, seed=1)
    assert bootstrap_intervals(LABELS, PREDS, 4, resamples=300, seed=1, max_cells=24 * 7) == whole  # chunks of 7


def test_bootstrap_intervals_contain_the_point_estimates() -> None:
    point = _point(LABELS, PREDS, 4)
    # recall: 5/6, 5/6, 11/12 -> mean class acc 0.861111; macro-F1 over the 4 classes seen or predicted
    assert point["mean_class_acc"] == pytest.approx((5 / 6 + 5 / 6 + 11 / 12) / 3)
    result = bootstrap_intervals(LABELS, PREDS, 4)
    for name in ("mean_class_acc", "macro_f1"):
        low, high = getattr(result, name)
        assert 0.0 <= low < point[name] < high <= 1.0


def test_bootstrap_of_two_videos_spans_everything_the_resamples_can_score() -> None:
    # video 0 (class 0) right, video 1 (class 1) wrong. A resample holds {0, 0} with probability 1/4 (mean class
    # acc 1), {1, 1} with 1/4 (0) or one of each with 1/2 (0.5): the 2.5% and 97.5% quantiles are 0 and 1.
    result = bootstrap_intervals([0, 1], [0, 0], 2, resamples=2000, seed=0)
    assert result.mean_class_acc == (0.0, 1.0)


def test_bootstrap_of_a_perfect_classifier_is_a_point_at_one() -> None:
    result = bootstrap_intervals(LABELS, LABELS, 4, resamples=200)
    assert result.mean_class_acc == (1.0, 1.0) and result.macro_f1 == (1.0, 1.0)


def test_bootstrap_narrows_with_more_test_videos() -> None:
    small = bootstrap_intervals(LABELS, PREDS, 4, resamples=500)
    large = bootstrap_intervals(LABELS * 10, PREDS * 10, 4, resamples=500)
    assert np.diff(large.mean_class_acc)[0] < np.diff(small.mean_class_acc)[0] / 2


def test_bootstrap_refuses_mismatched_or_out_of_range_inputs() -> None:
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        bootstrap_intervals([0, 1, 1], [0, 1], 2)
    with pytest.raises(ValueError, match="prediction 2 is outside 0..1"):
        bootstrap_intervals([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_intervals([], [], 2)


# ------------------------------------------------------------------------------------------ McNemar
def test_mcnemar_on_a_small_table_matches_the_binomial_by_hand() -> None:
    # 10 videos both right, 2 both wrong, 1 only the first right, 7 only the second right.
    # b = 1, c = 7: P(X <= 1 | n=8, 1/2) = (1 + 8) / 256; two-sided p = 18/256 = 0.0703125
    first = [True] * 10 + [False] * 2 + [True] + [False] * 7
    second = [True] * 10 + [False] * 2 + [False] + [True] * 7
    assert mcnemar(first, second) == statistics.McNemar(only_first=1, only_second=7, p_value=pytest.approx(18 / 256))
    # b = 0, c = 6: 2 * (1/2)^6 = 0.03125, whichever classifier is named first
    assert mcnemar_p_value(0, 6) == pytest.approx(1 / 32)
    assert mcnemar_p_value(6, 0) == pytest.approx(1 / 32)


def test_mcnemar_without_disagreements_or_with_balanced_ones_is_one() -> None:
    assert mcnemar([True, False, True], [True, False, True]).p_value == 1.0
    assert mcnemar_p_value(0, 0) == 1.0
    assert mcnemar_p_value(3, 3) == 1.0  # 2 * P(X <= 3 | 6) = 2 * 42/64 > 1, capped


def test_mcnemar_refuses_classifiers_scored_on_different_videos() -> None:
    with pytest.raises(ValueError, match="not the same ones"):
        mcnemar([True, False], [True])


# ------------------------------------------------------------------------------------------ seeds
def test_paired_seed_test_matches_the_t_distribution_with_two_degrees_of_freedom() -> None:
    # differences 0.05, 0.05, 0.10: mean 0.066667, sd 0.028868, se = sd/sqrt(3) = 0.016667, t = 4.0, df = 2;
    # for df = 2 the two-sided p is 1 - t / sqrt(2 + t²) = 1 - 4/sqrt(18) = 0.0571910
    result = paired_seed_test([0.80, 0.85, 0.90], [0.75, 0.80, 0.80])
    assert result.seeds == 3
    assert result.mean_difference == pytest.approx(0.2 / 3)
    assert result.p_value == pytest.approx(1 - 4 / 18**0.5, abs=1e-9)
    assert result.reason is None


def test_paired_seed_test_with_one_seed_says_it_cannot_be_computed() -> None:
    result = paired_seed_test([0.8], [0.7])
    assert result.p_value is None and "one seed" in result.reason
    assert result.mean_difference == pytest.approx(0.1)


def test_paired_seed_test_with_the_same_difference_on_every_seed_says_so() -> None:
    result = paired_seed_test([0.8, 0.9], [0.7, 0.8])  # both 0.1 apart, up to float noise
    assert result.p_value is None and "same on every seed" in result.reason


def test_paired_seed_test_refuses_unpaired_scores() -> None:
    with pytest.raises(ValueError, match="one of each per seed"):
        paired_seed_test([0.8, 0.9], [0.7])


def test_mean_and_sample_sd_over_seeds() -> None:
    # mean 0.85; deviations -0.05, 0, 0.05: sum of squares 0.005 / (3 - 1) = 0.0025 -> sd 0.05
    mean, sd = mean_and_sd([0.80, 0.85, 0.90])
    assert mean == pytest.approx(0.85) and sd == pytest.approx(0.05)
    assert mean_and_sd([0.7]) == (0.7, None)


# ------------------------------------------------------------------------------------------ test set size
def test_detectable_difference_and_videos_needed_at_21_of_24() -> None:
    # 2p(1-p) = 2 * 0.875 * 0.125 = 0.21875; z sum = 1.959964 + 0.841621 = 2.801585
    # d = 2.801585 * sqrt(0.21875 / 24) = 2.801585 * 0.0954703 = 0.267468 (about 27 points)
    assert detectable_difference(0.875, 24) == pytest.approx(0.267468, abs=1e-6)
    # n = 2.801585² * 0.21875 / 0.05² = 7.848879 * 87.5 = 686.78 -> 687 videos
    assert videos_needed(0.875, 0.05) == 687
    sensitivity = sensitivity_of_test_set(21, 24)
    assert sensitivity.accuracy == 0.875
    assert sensitivity.detectable_difference == pytest.approx(0.267468, abs=1e-6)
    assert (sensitivity.difference, sensitivity.videos_for_difference) == (0.05, 687)


def test_sensitivity_at_a_perfect_score_uses_the_level_half_a_video_from_the_edge() -> None:
    # 24/24 -> p = 1 - 0.5/24 = 0.979167; 2p(1-p) = 0.0407986
    # d = 2.801585 * sqrt(0.0407986 / 24) = 2.801585 * 0.0412303 = 0.115510
    # n = 7.848879 * 0.0407986 / 0.0025 = 128.09 -> 129
    sensitivity = sensitivity_of_test_set(24, 24)
    assert sensitivity.accuracy == pytest.approx(1 - 0.5 / 24)
    assert sensitivity.detectable_difference == pytest.approx(0.115510, abs=1e-6)
    assert sensitivity.videos_for_difference == 129


def test_detectable_difference_is_capped_at_the_whole_scale() -> None:
    # p = 0.5, n = 2: 2.801585 * sqrt(0.5 / 2) = 1.40 -> 1
    assert detectable_difference(0.5, 2) == 1.0


def test_sensitivity_refuses_an_empty_test_set() -> None:
    with pytest.raises(ValueError, match="num_videos"):
        sensitivity_of_test_set(0, 0)


# ------------------------------------------------------------------------------------------ table text
def test_format_interval_writes_the_tables_exact_form() -> None:
    assert format_interval(21 / 24, wilson_interval(21, 24)) == "87.5% (69–96)"
    assert format_interval(0.0, wilson_interval(0, 10)) == "0.0% (0–28)"
    assert format_interval(1.0, (0.722467, 1.0)) == "100.0% (72–100)"
    assert format_interval(0.5, [0.125, 0.875]) == "50.0% (13–88)"  # halves round up, as people round
    assert format_interval(0.5, [0.145, 0.855]) == "50.0% (15–86)"  # 0.145 * 100 is 14.4999... in floats
    assert format_interval(0.875, None) == "87.5%"


def test_format_mean_sd_uses_the_plus_minus_sign() -> None:
    assert format_mean_sd([0.80, 0.85, 0.90]) == "85.0 ± 5.0%"
    assert format_mean_sd([0.8333, 0.875, 0.9167]) == "87.5 ± 4.2%"
    assert format_mean_sd([0.8]) == "80.0%"
