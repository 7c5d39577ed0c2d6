"""Detection AP and mAP against numbers worked out by hand: the hand cases are the specification.

Notation in the comments: detections ranked by score, T = true positive, F = false positive; after each one,
precision P = TPs so far / detections so far and recall R = TPs so far / ground-truth segments. AP sums, over the
steps of recall, the step times the best precision at that recall or beyond.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.detection import (
    THUMOS14_TIOU_THRESHOLDS,
    ScoredSegment,
    Segment,
    TimeLabelling,
    bootstrap_detection_intervals,
    evaluate_detection,
    interpolated_average_precision,
    score_time_labels,
    temporal_iou,
    time_grid,
)


def gt(label: str, start: float, end: float) -> Segment:
    return Segment(label, start, end)


def det(label: str, start: float, end: float, score: float) -> ScoredSegment:
    return ScoredSegment(label, start, end, score)


# ------------------------------------------------------------------------------------------------ tIoU
def test_temporal_iou_is_intersection_over_union_and_zero_without_overlap() -> None:
    assert temporal_iou(gt("a", 0, 10), gt("a", 5, 15)) == pytest.approx(5 / 15)  # [5,10] over [0,15]
    assert temporal_iou(gt("a", 0, 10), gt("a", 2, 4)) == pytest.approx(2 / 10)  # inside: its length over 10
    assert temporal_iou(gt("a", 0, 10), gt("a", 0, 10)) == 1.0
    assert temporal_iou(gt("a", 0, 10), gt("a", 10, 12)) == 0.0  # touching
    assert temporal_iou(gt("a", 0, 10), gt("a", 30, 40)) == 0.0


def test_a_segment_must_end_after_it_starts_and_a_score_be_finite() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        Segment("a", 5, 5)
    with pytest.raises(ValueError, match="end after it starts"):
        Segment("a", 5, 4)
    with pytest.raises(ValueError, match="finite"):
        ScoredSegment("a", 0, 1, float("nan"))


# ------------------------------------------------------------------------------------------------ interpolation
def test_precision_is_made_monotone_from_the_right_before_summing_over_recall() -> None:
    # T F F T T against 3 segments: P = 1, 1/2, 1/3, 2/4, 3/5; R = 1/3, 1/3, 1/3, 2/3, 1.
    # Best precision at recall >= r: at the 1st T 1, at the 2nd T max(2/4, 3/5) = 0.6, at the 3rd 0.6.
    # AP = 1/3 * 1 + 1/3 * 0.6 + 1/3 * 0.6 = 2.2 / 3 (the raw precisions would give 2.1 / 3).
    precision = [1, 1 / 2, 1 / 3, 2 / 4, 3 / 5]
    recall = [1 / 3, 1 / 3, 1 / 3, 2 / 3, 1]
    assert interpolated_average_precision(precision, recall) == pytest.approx(2.2 / 3)


def test_recall_never_reaching_one_adds_nothing_for_the_missed_part() -> None:
    # One T then nothing against 2 segments: R = 1/2 at P = 1, the other half of recall is never reached.
    assert interpolated_average_precision([1.0], [0.5]) == pytest.approx(0.5)


def test_the_interpolated_ap_goes_through_evaluate_detection() -> None:
    # The ranking T F F T T of the test above, made of segments: 3 ground-truth segments in one video.
    truth = {"v": [gt("a", 0, 10), gt("a", 20, 30), gt("a", 40, 50)]}
    found = {
        "v": [
            det("a", 0, 10, 0.9),  # T
            det("a", 60, 70, 0.8),  # F: overlaps nothing
            det("a", 80, 90, 0.7),  # F
            det("a", 20, 30, 0.6),  # T
            det("a", 40, 50, 0.5),  # T
        ]
    }
    result = evaluate_detection(truth, found)
    assert result.ap_per_class["a"] == pytest.approx((2.2 / 3,) * 5)


# ------------------------------------------------------------------------------------------------ matching
def test_several_detections_on_one_segment_make_one_true_positive_and_the_rest_false() -> None:
    truth = {"v1": [gt("a", 0, 10), gt("a", 20, 30)], "v2": [gt("a", 0, 10)]}
    found = {
        "v1": [
            det("a", 0, 10, 0.9),  # T: tIoU 1 with v1's [0, 10]
            det("a", 0, 9, 0.8),  # F: its best match (tIoU 0.9) is taken, [20, 30] does not overlap
        ],
        "v2": [
            det("a", 50, 60, 0.7),  # F: overlaps nothing
            det("a", 0, 10, 0.6),  # T
        ],
    }
    # T F F T: P = 1, 1/2, 1/3, 2/4; R = 1/3, 1/3, 1/3, 2/3.
    # Best precision at recall >= 1/3: 1; at recall >= 2/3: 1/2. AP = 1/3 * 1 + 1/3 * 1/2 = 0.5 (the last 1/3 of
    # recall is never reached), at every threshold since each match has tIoU 1.
    result = evaluate_detection(truth, found)
    assert result.ap_per_class["a"] == pytest.approx((0.5,) * 5)
    assert result.num_ground_truth == {"a": 3} and result.num_detections == {"a": 4}


def test_a_detection_takes_the_free_segment_of_highest_tiou_not_the_first_listed() -> None:
    truth = {"v": [gt("a", 0, 10), gt("a", 8, 18)]}
    found = {
        "v": [
            # tIoU with [0, 10]: [7, 10] / [0, 17] = 3/17 = 0.18; with [8, 18]: [8, 17] / [7, 18] = 9/11 = 0.82.
            det("a", 7, 17, 0.9),  # T, takes [8, 18]
            # tIoU with [0, 10]: 9/10; with [8, 18]: [8, 9] / [0, 18] = 1/18 = 0.06, below 0.1.
            det("a", 0, 9, 0.8),  # T, takes [0, 10]
        ]
    }
    # At tIoU 0.1 both segments are within reach of the first detection: had it taken [0, 10] (the first listed),
    # the second would be F and AP 0.5. T T: AP = 1.
    result = evaluate_detection(truth, found, tiou_thresholds=(0.1,))
    assert result.ap_per_class["a"] == pytest.approx((1.0,))


def test_a_detection_whose_best_segment_is_taken_falls_back_to_the_next_best_above_the_threshold() -> None:
    truth = {"v": [gt("a", 0, 10), gt("a", 5, 15)]}
    found = {
        "v": [
            det("a", 0, 10, 0.9),  # T with [0, 10]
            # tIoU with [0, 10]: 9/11 but taken; with [5, 15]: [5, 11] / [1, 15] = 6/14 = 0.43.
            det("a", 1, 11, 0.8),
        ]
    }
    # tIoU 0.3 and 0.4: T T, AP 1. From 0.5: T F, P = 1, 1/2, R = 1/2, 1/2: AP = 1/2 * 1 = 0.5.
    result = evaluate_detection(truth, found)
    assert result.ap_per_class["a"] == pytest.approx((1.0, 1.0, 0.5, 0.5, 0.5))


@pytest.mark.parametrize("tenths", [3, 4, 5, 6, 7])
def test_a_tiou_exactly_at_the_threshold_counts_as_a_match(tenths: int) -> None:
    # [0, k] inside [0, 10]: tIoU = k / 10 exactly, equal to the threshold k / 10: a match there and below, a miss
    # above. Each threshold's AP is then 1 (T alone) or 0 (F alone).
    truth = {"v": [gt("a", 0, 10)]}
    found = {"v": [det("a", 0, tenths, 0.9)]}
    result = evaluate_detection(truth, found)
    expected = tuple(1.0 if t <= tenths / 10 else 0.0 for t in THUMOS14_TIOU_THRESHOLDS)
    assert result.ap_per_class["a"] == expected
    assert result.map_at(tenths / 10) == 1.0


def test_a_detection_of_another_class_never_matches() -> None:
    truth = {"v": [gt("a", 0, 10), gt("b", 20, 30)]}
    found = {"v": [det("b", 0, 10, 0.9)]}  # right time, wrong class: F for b, nothing for a
    result = evaluate_detection(truth, found)
    assert result.ap_per_class == {"a": (0.0,) * 5, "b": (0.0,) * 5}


# ------------------------------------------------------------------------------------------------ ties
def test_equal_scores_keep_the_order_they_were_given_in() -> None:
    truth = {"v": [gt("a", 0, 10)]}
    miss, hit = det("a", 50, 60, 0.5), det("a", 0, 10, 0.5)
    # Miss first: F T, P = 0, 1/2, R = 0, 1: AP = 1 * 1/2 = 0.5. Hit first: T F, AP = 1 * 1 = 1.
    assert evaluate_detection(truth, {"v": [miss, hit]}).average_map == pytest.approx(0.5)
    assert evaluate_detection(truth, {"v": [hit, miss]}).average_map == pytest.approx(1.0)


def test_equal_scores_in_different_videos_keep_the_order_of_the_videos() -> None:
    truth = {"v1": [gt("a", 0, 10)], "v2": [gt("a", 0, 10)]}
    # v1's detection hits, v2's misses, all at one score. Videos in the order v2, v1: F T, P = 0, 1/2, R = 0, 1/2:
    # AP = 1/2 * 1/2 = 0.25. In the order v1, v2: T F, P = 1, 1/2, R = 1/2, 1/2: AP = 1/2 * 1 = 0.5.
    hit_in_v1, miss_in_v2 = [det("a", 0, 10, 0.5)], [det("a", 30, 40, 0.5)]
    assert evaluate_detection(truth, {"v2": miss_in_v2, "v1": hit_in_v1}).average_map == pytest.approx(0.25)
    assert evaluate_detection(truth, {"v1": hit_in_v1, "v2": miss_in_v2}).average_map == pytest.approx(0.5)


def test_of_two_detections_with_equal_scores_on_one_segment_the_first_given_takes_it() -> None:
    truth = {"v": [gt("a", 0, 10)]}
    loose, tight = det("a", 0, 8, 0.5), det("a", 0, 10, 0.5)  # tIoU 0.8 and 1
    # At tIoU 0.9 only the tight one can match. Loose first: F T, AP 0.5. Tight first: T F, AP 1.
    assert evaluate_detection(truth, {"v": [loose, tight]}, (0.9,)).average_map == pytest.approx(0.5)
    assert evaluate_detection(truth, {"v": [tight, loose]}, (0.9,)).average_map == pytest.approx(1.0)
    # At tIoU 0.5 both can: the loose one, given first, takes the segment and the tight one is F. T F: AP 1.
    assert evaluate_detection(truth, {"v": [loose, tight]}, (0.5,)).average_map == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ classes and videos
def test_a_class_with_ground_truth_and_no_detection_has_ap_0_and_counts_in_the_mean() -> None:
    truth = {"v": [gt("a", 0, 10), gt("b", 20, 30)]}
    found = {"v": [det("a", 0, 10, 0.9)]}
    # a: T, AP 1; b: nothing, AP 0. mAP = (1 + 0) / 2 = 0.5 at every threshold.
    result = evaluate_detection(truth, found)
    assert result.ap_per_class == {"a": (1.0,) * 5, "b": (0.0,) * 5}
    assert result.map_per_threshold == pytest.approx((0.5,) * 5)
    assert result.num_detections == {"a": 1, "b": 0}


def test_detections_of_a_class_without_ground_truth_are_reported_and_left_out_of_the_mean() -> None:
    truth = {"v": [gt("a", 0, 10)]}
    found = {"v": [det("a", 0, 10, 0.9), det("c", 20, 30, 0.95), det("c", 40, 50, 0.3)]}
    # Only a is scored: T, AP 1, mAP 1. The two c detections have no recall to measure.
    result = evaluate_detection(truth, found)
    assert list(result.ap_per_class) == ["a"]
    assert result.average_map == 1.0
    assert result.unscored_detections == {"c": 2}


def test_detections_in_a_video_without_segments_are_false_positives() -> None:
    truth = {"busy": [gt("a", 0, 10)], "idle": []}
    found = {"idle": [det("a", 0, 10, 0.9)], "busy": [det("a", 0, 10, 0.8)]}
    # Ranked: idle's (F), busy's (T). P = 0, 1/2; R = 0, 1: AP = 1 * 1/2 = 0.5.
    result = evaluate_detection(truth, found)
    assert result.ap_per_class["a"] == pytest.approx((0.5,) * 5)
    assert result.num_videos == 2


def test_a_video_without_segments_or_detections_changes_nothing_but_the_video_count() -> None:
    truth = {"busy": [gt("a", 0, 10), gt("a", 20, 30)]}
    found = {"busy": [det("a", 0, 10, 0.9), det("a", 50, 60, 0.8)]}
    alone = evaluate_detection(truth, found)
    with_idle = evaluate_detection({**truth, "idle": []}, {**found, "idle": []})
    assert with_idle.ap_per_class == alone.ap_per_class
    assert (alone.num_videos, with_idle.num_videos) == (1, 2)


def test_a_ground_truth_segment_of_a_video_without_detections_is_a_miss() -> None:
    truth = {"seen": [gt("a", 0, 10)], "unseen": [gt("a", 0, 10)]}
    # seen: T, P = 1 at R = 1/2; the unseen video's segment is never found: AP = 1/2 * 1 = 0.5.
    result = evaluate_detection(truth, {"seen": [det("a", 0, 10, 0.9)]})
    assert result.average_map == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------ mAP
def test_map_is_the_mean_over_classes_at_each_threshold_and_the_average_their_mean() -> None:
    truth = {"v": [gt("a", 0, 10), gt("b", 0, 10), gt("b", 20, 30)]}
    found = {
        "v": [
            det("a", 0, 6, 0.9),  # tIoU 0.6: T up to 0.6, F at 0.7  -> a: AP 1, 1, 1, 1, 0
            det("b", 0, 10, 0.8),  # tIoU 1: T everywhere
            det("b", 20, 24, 0.7),  # tIoU 0.4: T at 0.3 and 0.4, F from 0.5
        ]
    }
    # b at 0.3 and 0.4: T T, AP 1. From 0.5: T F, P = 1, 1/2, R = 1/2, 1/2: AP 0.5.  -> b: 1, 1, .5, .5, .5
    # mAP: (1+1)/2, (1+1)/2, (1+.5)/2, (1+.5)/2, (0+.5)/2 = 1, 1, .75, .75, .25; average 3.75 / 5 = 0.75.
    result = evaluate_detection(truth, found)
    assert result.ap_per_class["a"] == pytest.approx((1, 1, 1, 1, 0))
    assert result.ap_per_class["b"] == pytest.approx((1, 1, 0.5, 0.5, 0.5))
    assert result.map_per_threshold == pytest.approx((1, 1, 0.75, 0.75, 0.25))
    assert result.average_map == pytest.approx(0.75)
    assert result.tiou_thresholds == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert result.map_at(0.5) == pytest.approx(0.75)
    with pytest.raises(KeyError):
        result.map_at(0.55)


def test_the_result_reads_as_json_with_thresholds_as_keys_and_as_a_table() -> None:
    truth = {"v": [gt("waving", 0, 10), gt("sitting_down", 20, 30)]}
    result = evaluate_detection(truth, {"v": [det("waving", 0, 10, 0.9), det("other", 40, 50, 0.5)]})
    data = json.loads(json.dumps(result.as_dict()))
    assert data["map"] == {"0.3": 0.5, "0.4": 0.5, "0.5": 0.5, "0.6": 0.5, "0.7": 0.5}
    assert data["average_map"] == 0.5
    assert data["ap_per_class"]["waving"]["0.5"] == 1.0 and data["ap_per_class"]["sitting_down"]["0.7"] == 0.0
    assert data["unscored_detections"] == {"other": 1}
    lines = result.table().splitlines()
    assert lines[0].split() == ["class", "tIoU", "0.3", "tIoU", "0.4", "tIoU", "0.5", "tIoU", "0.6", "tIoU", "0.7",
                                "average"]
    assert lines[-1].split() == ["mAP", "50.0", "50.0", "50.0", "50.0", "50.0", "50.0"]
    assert [line.split()[0] for line in lines[1:-1]] == ["sitting_down", "waving"]


# ------------------------------------------------------------------------------------------------ refusals
def test_detections_for_a_video_missing_from_the_ground_truth_are_refused_by_name() -> None:
    with pytest.raises(BadInput, match="'typo'"):
        evaluate_detection({"v": [gt("a", 0, 10)]}, {"typo": [det("a", 0, 10, 0.9)]})


def test_ground_truth_without_any_segment_has_no_map_and_is_refused() -> None:
    with pytest.raises(BadInput, match="no segment"):
        evaluate_detection({"v": [], "w": []}, {"v": [det("a", 0, 10, 0.9)]})


@pytest.mark.parametrize("thresholds", [(), (0.0,), (0.5, 1.5), (-0.1,)])
def test_thresholds_outside_0_to_1_are_refused(thresholds: tuple[float, ...]) -> None:
    with pytest.raises(BadInput, match="tIoU thresholds"):
        evaluate_detection({"v": [gt("a", 0, 10)]}, {}, thresholds)


# ------------------------------------------------------------------------------------------------ cross-check
def _official_style_ap(truth: dict, found: dict, threshold: float) -> float:
    """A second, loop-by-loop rendering of ActivityNet's per-class AP (one class), written independently: segments
    sorted by tIoU, stop at the first below the threshold, skip those taken; then VOC's interpolation by a loop."""
    ranked = sorted(((d.score, v, d) for v, ds in found.items() for d in ds), key=lambda x: -x[0])
    taken = {v: [False] * len(s) for v, s in truth.items()}
    flags = []
    for _, video, d in ranked:
        tp = False
        ious = [temporal_iou(d, g) for g in truth.get(video, [])]
        for j in sorted(range(len(ious)), key=lambda j: -ious[j]):
            if ious[j] < threshold:
                break
            if taken[video][j]:
                continue
            taken[video][j] = tp = True
            break
        flags.append(tp)
    npos = sum(len(s) for s in truth.values())
    tps = np.cumsum(flags)
    prec = [0.0, *(tps / np.arange(1, len(flags) + 1)), 0.0]
    rec = [0.0, *(tps / npos), 1.0]
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    return sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec)) if rec[i] != rec[i - 1])


def test_random_detections_score_as_a_loop_by_loop_rendering_of_the_official_code() -> None:
    rng = random.Random(0)
    for _ in range(30):
        truth, found = {}, {}
        for v in range(rng.randint(1, 4)):
            starts = sorted(rng.uniform(0, 100) for _ in range(rng.randint(0, 5)))
            truth[f"v{v}"] = [gt("a", s, s + rng.uniform(1, 15)) for s in starts]
            found[f"v{v}"] = []
            for _ in range(rng.randint(0, 12)):
                s = rng.uniform(0, 100)
                found[f"v{v}"].append(det("a", s, s + rng.uniform(0.5, 20), rng.random()))
        if not any(truth.values()):
            continue
        result = evaluate_detection(truth, found)
        for threshold, ap in zip(result.tiou_thresholds, result.ap_per_class["a"], strict=True):
            assert ap == pytest.approx(_official_style_ap(truth, found, threshold))


# ------------------------------------------------------------------------------------------------ time labelling
def test_the_time_grid_holds_the_middles_of_cells_inside_the_video() -> None:
    assert time_grid(1.0, 0.25) == [0.125, 0.375, 0.625, 0.875]
    assert time_grid(1.0, 0.3) == pytest.approx([0.15, 0.45, 0.75])  # a 4th middle, 1.05, is past the end
    frames = time_grid(10.0, 1 / 30)  # 300 frames at 30 fps
    assert len(frames) == 300 and frames[0] == pytest.approx(1 / 60) and frames[-1] == pytest.approx(10 - 1 / 60)
    with pytest.raises(BadInput, match="time step"):
        time_grid(10.0, 0.0)


def test_time_labelling_counts_right_moments_in_all_and_inside_actions() -> None:
    truth = [gt("a", 0, 2), gt("b", 2, 3)]
    times = [0.5, 1.5, 2.0, 2.5, 3.0, 3.5]  # 2.0 is b's start; 3.0 is b's end, so background (end excluded)
    predicted = ["a", "b", "b", "b", None, "a"]
    # right: 0.5 a=a yes, 1.5 b!=a no, 2.0 b yes, 2.5 b yes, 3.0 background None yes, 3.5 background "a" no.
    # 4 of 6 right; inside actions (0.5, 1.5, 2.0, 2.5) 3 of 4.
    result = score_time_labels(times, predicted, truth)
    assert result == TimeLabelling(num_times=6, num_right=4, num_action_times=4, num_action_right=3)
    assert result.share_right == pytest.approx(4 / 6) and result.share_right_in_actions == pytest.approx(3 / 4)


def test_where_ground_truth_segments_overlap_either_label_is_right() -> None:
    truth = [gt("a", 0, 4), gt("b", 2, 6)]
    result = score_time_labels([1, 3, 3, 5], ["a", "a", "b", "a"], truth)
    # 1: a yes; 3 (both): a yes, b yes; 5 (b only): a no. 3 of 4.
    assert (result.num_right, result.num_times) == (3, 4)


def test_time_labelling_of_several_videos_adds_up_to_the_share_over_all_their_time() -> None:
    one = score_time_labels([0.5, 1.5], ["a", "a"], [gt("a", 0, 1)])  # 1 of 2 right, 1 of 1 in actions
    two = score_time_labels([0.5, 1.5, 2.5, 3.5], ["a"] * 4, [gt("a", 0, 4)])  # 4 of 4
    total = sum([one, two], TimeLabelling())
    # Pooled: (1 + 4) / (2 + 4) = 5/6, not the mean of the shares (1/2 + 1) / 2 = 3/4.
    assert total.share_right == pytest.approx(5 / 6)
    assert total.share_right_in_actions == 1.0
    assert TimeLabelling().share_right is None
    assert score_time_labels([0.5], [None], []).share_right_in_actions is None
    assert total.as_dict()["num_times"] == 6


# ------------------------------------------------------------------------------------------------ intervals
def test_the_map_interval_is_the_bootstrap_over_videos_computed_by_hand() -> None:
    """Video a: its one segment found exactly (AP 1 alone); video b: its segment missed (AP 0 alone); both: AP 0.5.
    Drawn with replacement, {a, a} (1/4), {a, b} (1/2) and {b, b} (1/4): the 2.5% and 97.5% quantiles are 0 and 1."""
    truth = {"a": [Segment("x", 0.0, 1.0)], "b": [Segment("x", 0.0, 1.0)]}
    found = {"a": [ScoredSegment("x", 0.0, 1.0, 0.9)], "b": []}
    labelling = {"a": TimeLabelling(4, 4, 4, 4), "b": TimeLabelling(4, 0, 4, 0)}
    intervals = bootstrap_detection_intervals(truth, found, labelling, resamples=400, seed=3)
    assert evaluate_detection(truth, found).average_map == 0.5
    assert intervals.average_map == (0.0, 1.0) and intervals.map_per_threshold == ((0.0, 1.0),) * 5
    assert intervals.share_right == (0.0, 1.0) and intervals.resamples == 400
    again = bootstrap_detection_intervals(truth, found, labelling, resamples=400, seed=3)
    assert again == intervals, "the same seed, the same intervals"


def test_a_perfect_detector_has_a_point_interval_and_resamples_without_segments_are_left_out() -> None:
    truth = {"a": [Segment("x", 0.0, 1.0)], "empty": []}
    found = {"a": [ScoredSegment("x", 0.0, 1.0, 0.9)]}
    intervals = bootstrap_detection_intervals(truth, found, resamples=200, seed=0)
    assert intervals.average_map == (1.0, 1.0) and intervals.share_right is None
    assert 130 < intervals.resamples < 170, "about a quarter of the draws are {empty, empty}: no AP"
