"""Temporal action detection scored as the field scores it: average precision per class at temporal IoU thresholds.

The computation is ActivityNet's official evaluation (`Evaluation/eval_detection.py`:
`compute_average_precision_detection` with `utils.interpolated_prec_rec`), which ActionFormer copies into its
`libs/utils/metrics.py` and reports THUMOS14 with; on the same inputs, short of the ties below, our numbers are
theirs. For each class and tIoU threshold:

- the class's detections from every video are ranked by score, highest first;
- in that order, each detection takes the ground-truth segment of its video and class, not yet taken at this
  threshold, with the highest tIoU, provided that tIoU is >= the threshold (a tIoU exactly at the threshold counts);
  it is then a true positive, otherwise a false positive. So of several detections on one ground-truth segment
  only the best-scored is a true positive;
- AP is the area under the precision-recall curve made monotone from the right (precision at recall r is the best
  precision at any recall >= r), summed at every recall step: the "all-point" interpolation of VOC 2010 and later.

Where the official code leaves a choice open, this module decides:

- Equal scores keep the order of the input (videos in the order of `detections`, segments in list order): a stable
  sort of -score, as COCO's evaluation does (`np.argsort(-scores, kind='mergesort')`). The official code's
  `argsort()[::-1]` puts equal scores in whatever order numpy's unstable sort leaves, reversed (for 16 or fewer
  detections of a class the later first; beyond that it depends on numpy's version and the CPU), so no fixed rule
  reproduces it, and with tied scores our AP can differ from theirs.
- A detection with equal tIoU to two free ground-truth segments takes the one listed first (the official code's
  reversed argsort takes the later for short lists). Which one it takes only matters to later detections.
- The classes are those of the ground truth, as in the official code: a class with ground truth but no detection
  has AP 0 and counts in the mean; detections of a class without ground truth have no AP (there is no recall to
  measure), are left out of the mean and are reported by count. (The official loader fails on such a label;
  ActionFormer's copy leaves its id unmapped, where it can land on another class's index.)
- A video with no ground-truth segment is evaluated: every detection in it is a false positive. A detection for a
  video absent from the ground truth is refused (the official code counts it as a false positive, which silently
  lowers the score when the two sets of videos differ by mistake).
- Every detection given is scored: no minimum score and no cap per video.

`score_time_labels` gives the older measure beside it: the share of moments labelled right on a time grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vjepa_tune.data.annotations import Segment
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.statistics import CONFIDENCE

THUMOS14_TIOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7)
"""The THUMOS14 protocol: mAP at each of these and their mean. ActivityNet-1.3 uses 0.5, 0.55, ..., 0.95.

Written out rather than ActionFormer's `np.linspace(0.3, 0.7, 5)`, whose second value is 0.39999999999999997: a
tIoU of exactly 2/5 matches at both, only a tIoU within 3e-17 below 0.4 would tell them apart."""


# ------------------------------------------------------------------------------------------------ segments
@dataclass(frozen=True)
class ScoredSegment(Segment):
    """A detected segment with the detector's confidence in it; only the order of scores matters."""

    score: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not math.isfinite(self.score):
            raise ValueError(f"a detection's score must be a finite number, got {self.score!r} for {self}")


def temporal_iou(a: Segment, b: Segment) -> float:
    """Length of the intersection over length of the union; 0 for segments that do not overlap."""
    return float(_tiou_with(a.start_s, a.end_s, np.array([[b.start_s, b.end_s]]))[0])


def _tiou_with(start_s: float, end_s: float, bounds: np.ndarray) -> np.ndarray:
    """tIoU of one segment with each row [start, end] of `bounds`, in the official code's order of operations, so
    that a tIoU on a threshold lands on the same side of it."""
    intersection = (np.minimum(end_s, bounds[:, 1]) - np.maximum(start_s, bounds[:, 0])).clip(0)
    union = (bounds[:, 1] - bounds[:, 0]) + (end_s - start_s) - intersection
    return intersection / union


# ------------------------------------------------------------------------------------------------ average precision
def interpolated_average_precision(
    precision: Sequence[float] | np.ndarray, recall: Sequence[float] | np.ndarray
) -> float:
    """Area under the precision-recall curve made monotone from the right, summed at each step of recall.

    `precision` and `recall` are the values after each detection, ranked by score. Equals ActivityNet's
    `interpolated_prec_rec` ("VOCdevkit from VOC 2011"): recall is padded with 0 and 1, precision with 0 and 0.
    """
    padded_precision = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    padded_recall = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    envelope = np.maximum.accumulate(padded_precision[::-1])[::-1]
    steps = np.flatnonzero(padded_recall[1:] != padded_recall[:-1]) + 1
    return float(np.sum((padded_recall[steps] - padded_recall[steps - 1]) * envelope[steps]))


def _class_average_precision(
    ground_truth: Mapping[str, Sequence[Segment]],
    detections: Sequence[tuple[str, ScoredSegment]],
    thresholds: np.ndarray,
) -> np.ndarray:
    """AP of one class at each threshold: `ground_truth` holds its segments by video (at least one in all),
    `detections` its (video, detection) pairs."""
    num_ground_truth = sum(len(segments) for segments in ground_truth.values())
    if not detections:
        return np.zeros(len(thresholds))
    bounds = {video: np.array([[s.start_s, s.end_s] for s in segments]) for video, segments in ground_truth.items()}
    taken = {video: np.zeros((len(thresholds), len(segments)), dtype=bool) for video, segments in ground_truth.items()}
    order = np.argsort(-np.array([detection.score for _, detection in detections]), kind="stable")
    true_positive = np.zeros((len(thresholds), len(detections)), dtype=bool)
    every_threshold = np.arange(len(thresholds))
    for rank, index in enumerate(order):
        video, detection = detections[index]
        if video not in bounds:
            continue  # no ground truth of this class in this video: a false positive at every threshold
        tiou = _tiou_with(detection.start_s, detection.end_s, bounds[video])
        free = ~taken[video] & (tiou[None, :] >= thresholds[:, None])
        best = np.where(free, tiou[None, :], -1.0).argmax(axis=1)  # argmax: the first of equal tIoUs
        hit = free[every_threshold, best]
        taken[video][every_threshold[hit], best[hit]] = True
        true_positive[hit, rank] = True
    true_positives = np.cumsum(true_positive, axis=1)
    false_positives = np.cumsum(~true_positive, axis=1)
    recall = true_positives / num_ground_truth
    precision = true_positives / (true_positives + false_positives)
    return np.array([interpolated_average_precision(precision[t], recall[t]) for t in range(len(thresholds))])


@dataclass(frozen=True)
class DetectionResult:
    """AP per class and mAP at each tIoU threshold, and what they were computed from."""

    tiou_thresholds: tuple[float, ...]
    ap_per_class: dict[str, tuple[float, ...]]
    """Class (every class of the ground truth, by name) -> AP at each threshold."""
    map_per_threshold: tuple[float, ...]
    """The mean of `ap_per_class` at each threshold."""
    average_map: float
    """The mean of `map_per_threshold`: THUMOS14's headline figure ("Avg")."""
    num_ground_truth: dict[str, int]
    """Ground-truth segments per class."""
    num_detections: dict[str, int]
    """Detections per class of the ground truth (0 for a class never detected)."""
    unscored_detections: dict[str, int]
    """Detections per class absent from the ground truth: they have no AP and are not in the mean."""
    num_videos: int

    def map_at(self, tiou_threshold: float) -> float:
        """mAP at one of the thresholds evaluated."""
        for threshold, value in zip(self.tiou_thresholds, self.map_per_threshold, strict=True):
            if math.isclose(threshold, tiou_threshold):
                return value
        raise KeyError(f"tIoU {tiou_threshold} was not evaluated; evaluated: {list(self.tiou_thresholds)}")

    def as_dict(self) -> dict[str, object]:
        """JSON-ready, thresholds as keys written like "0.5"."""
        keys = [f"{t:g}" for t in self.tiou_thresholds]
        return {
            "tiou_thresholds": list(self.tiou_thresholds),
            "map": dict(zip(keys, self.map_per_threshold, strict=True)),
            "average_map": self.average_map,
            "ap_per_class": {
                label: dict(zip(keys, values, strict=True)) for label, values in self.ap_per_class.items()
            },
            "num_ground_truth": dict(self.num_ground_truth),
            "num_detections": dict(self.num_detections),
            "unscored_detections": dict(self.unscored_detections),
            "num_videos": self.num_videos,
        }

    def table(self) -> str:
        """A short text table in percent: one row per class, then the mAP row with the average."""
        heads = [f"tIoU {t:g}" for t in self.tiou_thresholds]
        width = max([len("mAP"), *(len(label) for label in self.ap_per_class)])
        lines = [f"{'class':<{width}}  " + "  ".join(f"{h:>8}" for h in heads) + f"  {'average':>8}"]
        for label, values in self.ap_per_class.items():
            cells = "  ".join(f"{100 * v:8.1f}" for v in values)
            lines.append(f"{label:<{width}}  {cells}  {100 * float(np.mean(values)):8.1f}")
        cells = "  ".join(f"{100 * v:8.1f}" for v in self.map_per_threshold)
        lines.append(f"{'mAP':<{width}}  {cells}  {100 * self.average_map:8.1f}")
        return "\n".join(lines)


def evaluate_detection(
    ground_truth: Mapping[str, Sequence[Segment]],
    detections: Mapping[str, Sequence[ScoredSegment]],
    tiou_thresholds: Sequence[float] = THUMOS14_TIOU_THRESHOLDS,
) -> DetectionResult:
    """AP per class and mAP at each threshold of `detections` (video -> its detections) against `ground_truth`
    (video -> its segments; every video evaluated, those without segments too). See the module docstring."""
    thresholds = _checked_thresholds(tiou_thresholds)
    unknown = [video for video in detections if video not in ground_truth]
    if unknown:
        shown = ", ".join(repr(v) for v in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise BadInput(f"detections for {len(unknown)} video(s) absent from the ground truth: {shown}.")

    truth_by_class: dict[str, dict[str, list[Segment]]] = {}
    for video, segments in ground_truth.items():
        for segment in segments:
            truth_by_class.setdefault(segment.label, {}).setdefault(video, []).append(segment)
    if not truth_by_class:
        raise BadInput(f"the ground truth of {len(ground_truth)} video(s) has no segment: there is no AP to measure.")
    detections_by_class: dict[str, list[tuple[str, ScoredSegment]]] = {}
    for video, found in detections.items():
        for detection in found:
            detections_by_class.setdefault(detection.label, []).append((video, detection))

    classes = sorted(truth_by_class)
    ap = {
        label: _class_average_precision(truth_by_class[label], detections_by_class.get(label, []), thresholds)
        for label in classes
    }
    map_per_threshold = np.mean(np.stack([ap[label] for label in classes]), axis=0)
    return DetectionResult(
        tiou_thresholds=tuple(float(t) for t in thresholds),
        ap_per_class={label: tuple(float(v) for v in ap[label]) for label in classes},
        map_per_threshold=tuple(float(v) for v in map_per_threshold),
        average_map=float(np.mean(map_per_threshold)),
        num_ground_truth={label: sum(map(len, truth_by_class[label].values())) for label in classes},
        num_detections={label: len(detections_by_class.get(label, [])) for label in classes},
        unscored_detections={
            label: len(found) for label, found in sorted(detections_by_class.items()) if label not in truth_by_class
        },
        num_videos=len(ground_truth),
    )


def _checked_thresholds(tiou_thresholds: Sequence[float]) -> np.ndarray:
    thresholds = np.asarray(list(tiou_thresholds), dtype=np.float64)
    if thresholds.ndim != 1 or len(thresholds) == 0 or not np.all((thresholds > 0) & (thresholds <= 1)):
        raise BadInput(f"tIoU thresholds must be one or more numbers in (0, 1], got {list(tiou_thresholds)!r}.")
    return thresholds


# ------------------------------------------------------------------------------------------------ time labelling
def time_grid(duration_s: float, step_s: float) -> list[float]:
    """The centres of consecutive `step_s`-long cells from 0 that fall inside the video: with `step_s` = 1 / fps,
    the times of its frames' middles."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise BadInput(f"a duration must be a positive number of seconds, got {duration_s!r}.")
    if not (math.isfinite(step_s) and step_s > 0):
        raise BadInput(f"a time step must be a positive number of seconds, got {step_s!r}.")
    times = ((i + 0.5) * step_s for i in range(math.ceil(duration_s / step_s) + 1))
    return [t for t in times if t < duration_s]


@dataclass(frozen=True)
class TimeLabelling:
    """How many moments of a time grid were labelled right: in all, and inside ground-truth actions.

    Counts rather than shares, so that results of several videos add up (`sum(results, TimeLabelling())`) to the
    share over all their time, every moment weighing the same.
    """

    num_times: int = 0
    num_right: int = 0
    num_action_times: int = 0
    """Moments inside a ground-truth segment (the rest is background)."""
    num_action_right: int = 0

    @property
    def share_right(self) -> float | None:
        """Share of all moments labelled right; a background moment is right when labelled None."""
        return self.num_right / self.num_times if self.num_times else None

    @property
    def share_right_in_actions(self) -> float | None:
        """Share of the moments inside ground-truth actions labelled right: a model without a background class
        cannot be right on background, and this figure leaves it out."""
        return self.num_action_right / self.num_action_times if self.num_action_times else None

    def __add__(self, other: TimeLabelling) -> TimeLabelling:
        return TimeLabelling(
            self.num_times + other.num_times,
            self.num_right + other.num_right,
            self.num_action_times + other.num_action_times,
            self.num_action_right + other.num_action_right,
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "share_right": self.share_right,
            "share_right_in_actions": self.share_right_in_actions,
            "num_times": self.num_times,
            "num_action_times": self.num_action_times,
        }


def score_time_labels(
    times: Sequence[float], predicted: Sequence[str | None], ground_truth: Iterable[Segment]
) -> TimeLabelling:
    """Compare the label given at each time (None: background) with the ground truth of the same video.

    A time inside a segment [start_s, end_s) is right when labelled with that segment's label (with any one of
    them where ground-truth segments overlap); a time inside none is background, right when labelled None.
    """
    if len(times) != len(predicted):
        raise ValueError(f"{len(times)} times but {len(predicted)} predicted labels")
    segments = list(ground_truth)
    if not times:
        return TimeLabelling()
    grid = np.asarray(times, dtype=np.float64)
    truth: list[set[str]] = [set() for _ in range(len(grid))]
    for segment in segments:
        for i in np.flatnonzero((grid >= segment.start_s) & (grid < segment.end_s)):
            truth[i].add(segment.label)
    right = [(label in labels) if labels else label is None for label, labels in zip(predicted, truth, strict=True)]
    in_action = [bool(labels) for labels in truth]
    return TimeLabelling(
        num_times=len(grid),
        num_right=sum(right),
        num_action_times=sum(in_action),
        num_action_right=sum(r and a for r, a in zip(right, in_action, strict=True)),
    )


# ------------------------------------------------------------------------------------------------ intervals
DETECTION_RESAMPLES = 1000
"""Bootstrap resamples for the detection figures' intervals (each one a whole mAP evaluation)."""


@dataclass(frozen=True)
class DetectionIntervals:
    """95% percentile-bootstrap intervals over videos: the same figures computed on videos drawn with replacement
    (a video's segments and detections move together, so the dependence within a video is kept)."""

    average_map: tuple[float, float]
    map_per_threshold: tuple[tuple[float, float], ...]
    share_right: tuple[float, float] | None
    resamples: int
    """Resamples that held at least one ground-truth segment (the others have no AP and are left out)."""
    seed: int


def bootstrap_detection_intervals(
    ground_truth: Mapping[str, Sequence[Segment]],
    detections: Mapping[str, Sequence[ScoredSegment]],
    labelling: Mapping[str, TimeLabelling] | None = None,
    tiou_thresholds: Sequence[float] = THUMOS14_TIOU_THRESHOLDS,
    *,
    resamples: int = DETECTION_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> DetectionIntervals:
    """Intervals for `evaluate_detection`'s mAP (average and per threshold) and, given each video's
    `TimeLabelling`, for the share of time labelled right. The same seed gives the same intervals."""
    videos = list(ground_truth)
    rng = np.random.default_rng(seed)
    maps: list[tuple[float, ...]] = []
    averages: list[float] = []
    shares: list[float] = []
    for _ in range(resamples):
        drawn = [videos[i] for i in rng.integers(0, len(videos), size=len(videos))]
        if labelling is not None:
            total = sum((labelling[video] for video in drawn), TimeLabelling())
            if total.share_right is not None:
                shares.append(total.share_right)
        truth = {f"{video}#{k}": ground_truth[video] for k, video in enumerate(drawn)}
        if not any(truth.values()):
            continue
        found = {f"{video}#{k}": detections.get(video, ()) for k, video in enumerate(drawn)}
        result = evaluate_detection(truth, found, tiou_thresholds)
        maps.append(result.map_per_threshold)
        averages.append(result.average_map)
    if not averages:
        raise BadInput("no resample of the videos holds a ground-truth segment: there is no mAP to bound.")
    quantiles = [(1 - confidence) / 2, (1 + confidence) / 2]

    def bounds(values: Sequence[float]) -> tuple[float, float]:
        low, high = np.quantile(np.asarray(values), quantiles)
        return float(low), float(high)

    return DetectionIntervals(
        average_map=bounds(averages),
        map_per_threshold=tuple(bounds(column) for column in zip(*maps, strict=True)),
        share_right=bounds(shares) if shares else None,
        resamples=len(averages),
        seed=seed,
    )
