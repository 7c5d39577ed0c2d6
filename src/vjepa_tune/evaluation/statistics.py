"""How much a score can be trusted: intervals, paired tests, spread over seeds, and what a test set can detect.

A test set of a few dozen videos moves an accuracy by several points per video, so every figure a table reports
carries its uncertainty, and every difference between strategies comes with a test:

- an accuracy (k of n videos right) gets a Wilson score interval, which stays inside [0, 1] and keeps its
  coverage at 0/n and n/n, where the textbook normal interval collapses to a point;
- mean class accuracy and macro-F1 are not proportions, so they get a percentile bootstrap over videos (seeded,
  a set number of resamples);
- two classifiers scored on the same videos are compared with the exact McNemar test, which uses only the
  videos they disagree on; the same strategies over several training seeds with a paired t-test over seeds;
- `sensitivity_of_test_set` says how large a difference the test set could detect at all, and how many test videos
  a 5-point difference would need.

Accuracies are fractions in [0, 1] throughout, as in metrics.json; the formatters turn them into the percent
form the tables print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
ALPHA = 0.05
POWER = 0.8
TARGET_DIFFERENCE = 0.05
"""The difference `sensitivity_of_test_set` sizes a test set for: 5 accuracy points."""

BOOTSTRAP_CELLS = 4_000_000
"""Resamples are drawn in chunks of at most this many (resample, video) cells, so 10,000 test videos with 2000
resamples stay within a few tens of MB."""


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.96 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    return float(stats.norm.ppf(0.5 + confidence / 2))


# ------------------------------------------------------------------------------------------ intervals
def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval for an accuracy of `correct` out of `total` videos, as fractions.

    With p = k/n and z the two-sided normal quantile (1.96 for 95%):

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)
        interval = [centre - half, centre + half]

    No videos (n = 0) say nothing about the accuracy: the interval is the whole range [0, 1].
    """
    if total < 0 or not 0 <= correct <= max(total, 0):
        raise ValueError(f"need 0 <= correct <= total, got {correct} of {total}.")
    if total == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = correct / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


def class_scores(
    true_positives: np.ndarray, support: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean class accuracy and macro-F1 from per-class counts; the last axis is the class, any leading axes batch.

    The same conventions as `evaluation.metrics.classification_metrics` (scikit-learn's, `zero_division=0`),
    written over counts so that thousands of bootstrap resamples are scored in one array operation: mean class
    accuracy averages recall over the classes present in the labels, macro-F1 averages F1 over the classes present
    in the labels or the predictions. `support` is the number of videos of each class, `predicted` the number
    predicted as it: the confusion matrix's row and column sums, `true_positives` its diagonal.
    """
    tp = np.asarray(true_positives, dtype=np.float64)
    support = np.asarray(support, dtype=np.float64)
    predicted = np.asarray(predicted, dtype=np.float64)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    in_labels = support > 0
    in_either = in_labels | (predicted > 0)
    mean_class_acc = (recall * in_labels).sum(axis=-1) / in_labels.sum(axis=-1)
    macro_f1 = (f1 * in_either).sum(axis=-1) / in_either.sum(axis=-1)
    return mean_class_acc, macro_f1


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals of mean class accuracy and macro-F1 over resamples of the test videos."""

    mean_class_acc: tuple[float, float]
    macro_f1: tuple[float, float]
    resamples: int
    seed: int


def bootstrap_intervals(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    num_classes: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    max_cells: int = BOOTSTRAP_CELLS,
) -> BootstrapIntervals:
    """Percentile bootstrap intervals over videos for mean class accuracy and macro-F1.

    Each resample draws n of the n test videos with replacement and scores them exactly as the full set is scored
    (`class_scores`); the interval is the (1-c)/2 and (1+c)/2 quantiles of the resampled scores. A resample is
    only its per-class counts (its confusion matrix's diagonal and sums), made with three `bincount`s over
    (resample, class) for all resamples of a chunk at once. The same seed gives the same interval (for a given
    numpy version), whatever the chunking (`max_cells` bounds a chunk's memory).
    """
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    p = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} predictions.")
    if y.size == 0:
        raise ValueError("no videos to resample: labels and predictions are empty.")
    for name, values in (("label", y), ("prediction", p)):
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise ValueError(f"{name} {int(bad[0])} is outside 0..{num_classes - 1}.")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}.")
    _z(confidence)  # checks the range

    n = y.size
    correct = (y == p).astype(np.float64)
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, max_cells // max(n, num_classes)))
    mean_class_acc = np.empty(resamples)
    macro_f1 = np.empty(resamples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        # one draw per resample, so the stream (and the result) does not depend on the chunk size
        drawn = np.stack([rng.integers(0, n, size=n) for _ in range(size)])
        offset = (np.arange(size) * num_classes)[:, None]
        cells = size * num_classes
        by_label = (offset + y[drawn]).ravel()
        tp = np.bincount(by_label, weights=correct[drawn].ravel(), minlength=cells)
        support = np.bincount(by_label, minlength=cells)
        predicted = np.bincount((offset + p[drawn]).ravel(), minlength=cells)
        shape = (size, num_classes)
        mca, f1 = class_scores(tp.reshape(shape), support.reshape(shape), predicted.reshape(shape))
        mean_class_acc[start : start + size] = mca
        macro_f1[start : start + size] = f1

    quantiles = [(1 - confidence) / 2, (1 + confidence) / 2]
    mca_low, mca_high = np.quantile(mean_class_acc, quantiles)
    f1_low, f1_high = np.quantile(macro_f1, quantiles)
    return BootstrapIntervals(
        mean_class_acc=(float(mca_low), float(mca_high)),
        macro_f1=(float(f1_low), float(f1_high)),
        resamples=resamples,
        seed=seed,
    )


# ------------------------------------------------------------------------------------------ paired tests
@dataclass(frozen=True)
class McNemar:
    """Two classifiers on the same videos: the videos only one of them gets right, and the exact p-value."""

    only_first: int
    only_second: int
    p_value: float


def mcnemar_p_value(only_first: int, only_second: int) -> float:
    """The exact (binomial) McNemar p-value for b videos only the first gets right and c only the second.

    Under the null hypothesis that both classifiers are equally accurate, each of the b + c discordant videos is
    equally likely to favour either, so b ~ Binomial(b + c, 1/2); the two-sided p-value is
    min(1, 2 P(X <= min(b, c))). Without discordant videos nothing tells the two apart: p = 1.
    """
    if only_first < 0 or only_second < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_first} and {only_second}.")
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(only_first, discordant, 0.5, alternative="two-sided").pvalue)


def mcnemar(first_correct: Sequence[bool] | np.ndarray, second_correct: Sequence[bool] | np.ndarray) -> McNemar:
    """The exact McNemar test for two classifiers from whether each got each video right (same videos, same order)."""
    first = np.asarray(first_correct, dtype=bool).reshape(-1)
    second = np.asarray(second_correct, dtype=bool).reshape(-1)
    if first.shape != second.shape:
        raise ValueError(f"the classifiers were scored on {first.size} and {second.size} videos: not the same ones.")
    only_first = int((first & ~second).sum())
    only_second = int((second & ~first).sum())
    return McNemar(only_first, only_second, mcnemar_p_value(only_first, only_second))


@dataclass(frozen=True)
class PairedSeedTest:
    """A paired t-test over seeds of first - second; `p_value` is None when it cannot be computed, with `reason`."""

    seeds: int
    mean_difference: float
    p_value: float | None
    reason: str | None = None


def paired_seed_test(first: Sequence[float], second: Sequence[float]) -> PairedSeedTest:
    """The paired t-test (scipy's `ttest_rel`) on two strategies' scores over the same seeds, in the same order.

    Pairing by seed removes what a seed does to both strategies alike. It needs at least two seeds, and differences
    that are not all equal (with zero spread the t statistic is undefined).
    """
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} and {b.size} scores: a paired test needs one of each per seed.")
    if a.size == 0:
        raise ValueError("no seeds to compare.")
    differences = a - b
    mean_difference = float(differences.mean())
    if a.size < 2:
        return PairedSeedTest(1, mean_difference, None, "not computable with one seed: it needs two or more")
    if np.allclose(differences, differences[0], rtol=0.0, atol=1e-12):  # k/n fractions carry float noise
        return PairedSeedTest(
            int(a.size), mean_difference, None,
            "not computable: the difference is the same on every seed (no spread to test against)",
        )
    return PairedSeedTest(int(a.size), mean_difference, float(stats.ttest_rel(a, b).pvalue))


def mean_and_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample standard deviation (ddof=1) over seeds; the deviation is None for one value."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("no values to average.")
    sd = float(array.std(ddof=1)) if array.size > 1 else None
    return float(array.mean()), sd


# ------------------------------------------------------------------------------------------ test set size
def detectable_difference(accuracy: float, num_videos: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest difference between two accuracies that `num_videos` test videos detect with this power.

    The normal approximation for two independent proportions, both with the variance of the observed level p:

        d = (z[1-alpha/2] + z[power]) * sqrt(2 p (1-p) / n)

    (2.80 * sqrt(2p(1-p)/n) for alpha 0.05 and power 0.8). Capped at 1, a difference as large as the scale.
    """
    _check_level(accuracy, alpha, power)
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}.")
    z_sum = _z(1 - alpha) + float(stats.norm.ppf(power))
    return min(1.0, z_sum * math.sqrt(2 * accuracy * (1 - accuracy) / num_videos))


def videos_needed(
    accuracy: float, difference: float = TARGET_DIFFERENCE, alpha: float = ALPHA, power: float = POWER
) -> int:
    """The number of test videos at which `detectable_difference` falls to `difference`, rounded up:

        n = (z[1-alpha/2] + z[power])² * 2 p (1-p) / d²
    """
    _check_level(accuracy, alpha, power)
    if not 0 < difference <= 1:
        raise ValueError(f"difference must be in (0, 1], got {difference}.")
    z_sum = _z(1 - alpha) + float(stats.norm.ppf(power))
    # a hair below the exact quotient, so that a float error does not round a whole number up by one video
    return max(1, math.ceil(z_sum**2 * 2 * accuracy * (1 - accuracy) / difference**2 - 1e-9))


def _check_level(accuracy: float, alpha: float, power: float) -> None:
    if not 0 < accuracy < 1:
        raise ValueError(f"accuracy must be strictly between 0 and 1, got {accuracy}.")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}.")


@dataclass(frozen=True)
class Sensitivity:
    """What a test set of `num_videos` can tell apart at the accuracy level `accuracy`."""

    num_videos: int
    accuracy: float
    detectable_difference: float
    difference: float
    videos_for_difference: int


def sensitivity_of_test_set(
    correct: int,
    num_videos: int,
    difference: float = TARGET_DIFFERENCE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Sensitivity:
    """`detectable_difference` and `videos_needed` at the observed accuracy `correct / num_videos`.

    An observed 0 or 100% has no variance to work with (every difference would look detectable); the level is then
    taken half a video from the edge, 0.5/n or 1 - 0.5/n.
    """
    if num_videos < 1 or not 0 <= correct <= num_videos:
        raise ValueError(f"need 0 <= correct <= num_videos and num_videos >= 1, got {correct} of {num_videos}.")
    level = min(max(correct / num_videos, 0.5 / num_videos), 1 - 0.5 / num_videos)
    return Sensitivity(
        num_videos=num_videos,
        accuracy=level,
        detectable_difference=detectable_difference(level, num_videos, alpha, power),
        difference=difference,
        videos_for_difference=videos_needed(level, difference, alpha, power),
    )


# ------------------------------------------------------------------------------------------ table text
def _whole_percent(fraction: float) -> int:
    """Rounded half up, as people round (Python's round() rounds 12.5 to 12)."""
    return math.floor(100 * fraction + 0.5 + 1e-9)


def format_interval(value: float, interval: Sequence[float] | None) -> str:
    """`87.5% (69–96)`: the figure in percent with one decimal, its interval in whole percent, an en dash between.

    Without an interval (an older metrics.json), only the figure.
    """
    text = f"{100 * value:.1f}%"
    if interval is None:
        return text
    low, high = interval
    return f"{text} ({_whole_percent(low)}–{_whole_percent(high)})"


def format_mean_sd(values: Sequence[float]) -> str:
    """`85.0 ± 2.9%`: mean ± sample standard deviation over seeds, in percent with one decimal; one value alone."""
    mean, sd = mean_and_sd(values)
    if sd is None:
        return f"{100 * mean:.1f}%"
    return f"{100 * mean:.1f} ± {100 * sd:.1f}%"
