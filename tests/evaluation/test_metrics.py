"""Scores checked against numbers worked out by hand, and the confusion files against what they must hold."""

from __future__ import annotations

import csv
import json
import re
import struct

import pytest
import torch

from vjepa_tune.evaluation.metrics import classification_metrics, write_confusion

# Five classes; d is predicted once but never true, e is neither true nor predicted.
NAMES = ["a", "b", "c", "d", "e"]
LABELS = [0, 0, 0, 0, 1, 1, 2, 2]
PREDS = [0, 0, 1, 3, 1, 0, 1, 1]
# rows = true, columns = predicted, worked out from the two lists above:
#   true a -> a, a, b, d;  true b -> b, a;  true c -> b, b
CONFUSION = [
    [2, 1, 0, 1, 0],
    [1, 1, 0, 0, 0],
    [0, 2, 0, 0, 0],
    [0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0],
]


def _logits_for(preds: list[int], num_classes: int) -> torch.Tensor:
    return torch.eye(num_classes)[preds] * 4.0 - 1.0


def test_hand_computed_example() -> None:
    m = classification_metrics(LABELS, _logits_for(PREDS, 5), NAMES)

    assert m["num_samples"] == 8
    assert m["confusion"] == CONFUSION
    assert m["top1"] == pytest.approx(3 / 8)  # a, a, b right
    assert m["top5"] is None  # 5 classes: top-5 would always be 1

    # a: tp 2, 4 true, 3 predicted.  b: tp 1, 2 true, 4 predicted.  c: tp 0, 2 true, never predicted.
    # d: predicted once, never true.  e: absent.  Zero denominators give 0.
    expected = {
        "a": (2 / 3, 2 / 4, 4 / 7, 4),  # F1 = 2tp / (2tp + fp + fn) = 4 / (4 + 1 + 2)
        "b": (1 / 4, 1 / 2, 1 / 3, 2),  # 2 / (2 + 3 + 1)
        "c": (0.0, 0.0, 0.0, 2),
        "d": (0.0, 0.0, 0.0, 0),
        "e": (0.0, 0.0, 0.0, 0),
    }
    for name, (precision, recall, f1, support) in expected.items():
        got = m["per_class"][name]
        assert got["precision"] == pytest.approx(precision), name
        assert got["recall"] == pytest.approx(recall), name
        assert got["f1"] == pytest.approx(f1), name
        assert got["support"] == support, name

    # mean recall over the classes in the labels (a, b, c), not over all five
    assert m["mean_class_acc"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    # mean F1 over classes in labels or predictions (a, b, c, d): e does not count, d counts as 0
    assert m["macro_f1"] == pytest.approx((4 / 7 + 1 / 3 + 0 + 0) / 4)


def test_every_score_carries_its_95_percent_interval_wilson_for_accuracies_bootstrap_for_class_averages() -> None:
    from vjepa_tune.evaluation.statistics import bootstrap_intervals

    m = classification_metrics(LABELS, _logits_for(PREDS, 5), NAMES)
    # 3 of 8 right: p = 0.375, z²/n = 0.480182; centre = (0.375 + 0.240091) / 1.480182 = 0.415551;
    # half = 1.959964 / 1.480182 * sqrt(0.375 * 0.625 / 8 + 3.841459 / 256) = 1.324135 * 0.210483 = 0.278707
    assert m["num_correct"] == 3
    assert m["top1_ci"] == [pytest.approx(0.136844, abs=1e-6), pytest.approx(0.694258, abs=1e-6)]
    assert m["top5"] is None and m["top5_ci"] is None
    # the class averages: the seeded bootstrap over these eight videos, seed 0 unless asked otherwise
    expected = bootstrap_intervals(LABELS, PREDS, 5, seed=0)
    assert m["mean_class_acc_ci"] == list(expected.mean_class_acc)
    assert m["macro_f1_ci"] == list(expected.macro_f1)
    assert m["intervals"] == {"confidence": 0.95, "top1": "wilson", "top5": "wilson", "mean_class_acc": "bootstrap",
                              "macro_f1": "bootstrap", "resamples": 2000, "seed": 0}
    again = classification_metrics(LABELS, _logits_for(PREDS, 5), NAMES, bootstrap_seed=7)
    assert again["mean_class_acc_ci"] == list(bootstrap_intervals(LABELS, PREDS, 5, seed=7).mean_class_acc)
    assert again["intervals"]["seed"] == 7 and again["top1_ci"] == m["top1_ci"]


def test_probabilities_tensor_labels_and_logits_agree_and_result_is_json() -> None:
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    from_logits = classification_metrics(LABELS, logits, NAMES)
    from_probs = classification_metrics(torch.tensor(LABELS), logits.softmax(dim=1), NAMES)
    assert from_logits == from_probs
    assert json.loads(json.dumps(from_logits)) == from_logits


def test_top5_counts_a_hit_anywhere_in_the_five_best() -> None:
    names = [f"k{i}" for i in range(7)]
    # Every row ranks the classes 0 > 1 > ... > 6, so label 0 ranks 1st, 4 ranks 5th, 5 6th and 6 7th.
    logits = -torch.arange(7, dtype=torch.float32).repeat(4, 1)
    m = classification_metrics([0, 4, 5, 6], logits, names)
    assert m["top1"] == pytest.approx(1 / 4)
    assert m["top5"] == pytest.approx(2 / 4)
    # Wilson for 2 of 4: p = 0.5, z²/n = 0.960365; centre 0.5;
    # half = 1.959964 / 1.960365 * sqrt(0.25 / 4 + 0.960365 / 16) = 0.999795 * 0.350033 = 0.349961
    assert m["top5_ci"] == [pytest.approx(0.150039, abs=1e-6), pytest.approx(0.849961, abs=1e-6)]


def test_perfect_predictions_score_one_everywhere() -> None:
    labels = [0, 1, 2, 1]
    m = classification_metrics(labels, _logits_for(labels, 3), ["x", "y", "z"])
    assert m["top1"] == m["mean_class_acc"] == m["macro_f1"] == 1.0
    assert m["confusion"] == [[1, 0, 0], [0, 2, 0], [0, 0, 1]]


@pytest.mark.parametrize(
    ("labels", "scores", "names", "message"),
    [
        ([0, 1], torch.zeros(3, 2), ["a", "b"], "2 labels but 3 rows"),
        ([0, 1], torch.zeros(2, 3), ["a", "b"], "3 columns but there are 2 class names"),
        ([0, 2], torch.zeros(2, 2), ["a", "b"], "label 2 is outside 0..1"),
        ([], torch.zeros(0, 2), ["a", "b"], "no samples"),
        ([0], torch.zeros(2), ["a", "b"], "shape (N, C)"),
        ([0], torch.zeros(1, 2), ["a", "a"], "unique"),
    ],
)
def test_inconsistent_inputs_are_refused(labels, scores, names, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        classification_metrics(labels, scores, names)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_write_confusion_csv_and_png(tmp_path) -> None:
    names = ["sitting, down", "standing_up", "waving", "other", "d", "e"]  # a comma must survive the CSV
    matrix = [row + [0] for row in CONFUSION] + [[0, 0, 0, 0, 0, 3]]
    csv_path, png_path = write_confusion(tmp_path / "eval", matrix, names, stem="test_confusion")

    assert csv_path == tmp_path / "eval" / "test_confusion.csv"
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == names  # header: predicted classes
    assert [r[0] for r in rows[1:]] == names  # first column: true classes
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == matrix

    width, height = _png_size(png_path)
    assert 200 < width < 2000 and 200 < height < 2000


def test_write_confusion_grows_with_classes_and_handles_many(tmp_path) -> None:
    many = 36  # above the annotation limit: no counts drawn, still a readable figure
    names = [f"class_{i:02d}" for i in range(many)]
    matrix = torch.eye(many, dtype=torch.long).mul(3).tolist()
    _, small_png = write_confusion(tmp_path, [[1, 0], [0, 1]], ["yes", "no"], stem="small")
    _, big_png = write_confusion(tmp_path, matrix, names, stem="big")
    small, big = _png_size(small_png), _png_size(big_png)
    assert big[0] > 3 * small[0] and big[1] > 3 * small[1]


def test_write_confusion_refuses_a_matrix_that_does_not_match_the_names(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(3, 3\)"):
        write_confusion(tmp_path, [[1, 0], [0, 1]], ["a", "b", "c"])
    assert not list(tmp_path.iterdir())


def test_the_confusion_heatmap_colours_row_fractions_and_writes_the_counts() -> None:
    import numpy as np

    from vjepa_tune.evaluation.metrics import confusion_figure

    matrix = np.array([[3, 1, 0], [0, 0, 0], [2, 2, 4]])
    ax = confusion_figure(matrix, ["a", "b", "c"]).axes[0]
    (image,) = ax.get_images()
    expected = [[0.75, 0.25, 0.0], [0.0, 0.0, 0.0], [0.25, 0.25, 0.5]]  # each true class's row sums to 1
    assert np.asarray(image.get_array()).tolist() == expected
    assert [t.get_text() for t in ax.texts] == [str(v) for v in matrix.flatten()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"] == [
        t.get_text() for t in ax.get_yticklabels()]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("predicted", "true", "confusion matrix (12 videos)")
