"""Classification scores from model outputs, and the confusion matrix as CSV and PNG.

Written with torch alone (no scikit-learn), so evaluation needs nothing the training run does not already
have. Conventions, chosen to match scikit-learn with `zero_division=0`:

- a ratio whose denominator is 0 (precision of a class never predicted, recall of a class absent from the
  labels) is 0;
- `mean_class_acc` is the mean recall over the classes present in the labels (a class with no test video has
  no accuracy to average);
- `macro_f1` is the mean F1 over the classes present in the labels or the predictions, as
  `sklearn.metrics.f1_score(y, p, average="macro")` does when `labels` is not given: a class neither seen nor
  predicted does not pull the mean down, a class predicted but never seen does (its F1 is 0).

Every score comes with its 95% interval beside it, `K_ci: [low, high]` (`evaluation.statistics`): Wilson for the
accuracies (top-1, top-5), a seeded bootstrap over videos for mean class accuracy and macro-F1.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from vjepa_tune.evaluation.statistics import BOOTSTRAP_RESAMPLES, CONFIDENCE, bootstrap_intervals, wilson_interval
from vjepa_tune.text import counted

MAX_ANNOTATED_CLASSES = 30
"""Above this many classes the heatmap cells are too small for their counts to be read: none are written."""

_CSV_CORNER = "true \\ predicted"


INTERVALS: dict[str, Any] = {"confidence": CONFIDENCE, "top1": "wilson", "top5": "wilson",
                             "mean_class_acc": "bootstrap", "macro_f1": "bootstrap", "resamples": BOOTSTRAP_RESAMPLES}
"""How the `K_ci` intervals are made (Wilson score; percentile bootstrap over videos), recorded beside them as
`intervals` with the bootstrap's seed."""


def classification_metrics(
    labels: Sequence[int] | torch.Tensor,
    probs_or_logits: torch.Tensor,
    class_names: list[str],
    *,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """Top-1, top-5, mean class accuracy, macro-F1 with their 95% intervals, per-class scores and the confusion
    matrix, as plain data.

    Accepts probabilities or logits: every score here depends only on the ranking within each row, which
    softmax keeps. `top5` is None when there are 5 classes or fewer (it would always be 1). `num_correct` is the
    top-1 count the Wilson interval `top1_ci` is made from; `mean_class_acc_ci` and `macro_f1_ci` are percentile
    bootstrap intervals over videos, seeded with `bootstrap_seed`, so the same predictions always get the same
    interval. The result is JSON-ready (Python ints, floats, lists and dicts), so it can go into metrics.json as it
    is.
    """
    scores = torch.as_tensor(probs_or_logits).detach().cpu()
    target = torch.as_tensor(labels).detach().cpu().long().reshape(-1)
    num_classes = len(class_names)
    _check_inputs(target, scores, class_names)

    predicted = scores.argmax(dim=1)
    confusion = torch.bincount(target * num_classes + predicted, minlength=num_classes * num_classes)
    confusion = confusion.reshape(num_classes, num_classes)

    true_positive = confusion.diagonal().double()
    support = confusion.sum(dim=1).double()
    predicted_count = confusion.sum(dim=0).double()
    precision = _safe_divide(true_positive, predicted_count)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)

    in_labels = support > 0
    in_labels_or_predictions = in_labels | (predicted_count > 0)

    total = int(target.numel())
    correct = int((predicted == target).sum())
    top5 = top5_ci = None
    if num_classes > 5:
        top5_indices = scores.topk(5, dim=1).indices
        top5_correct = int((top5_indices == target[:, None]).any(dim=1).sum())
        top5, top5_ci = top5_correct / total, list(wilson_interval(top5_correct, total))
    bootstrap = bootstrap_intervals(target.numpy(), predicted.numpy(), num_classes, seed=bootstrap_seed)

    return {
        "num_samples": total,
        "num_correct": correct,
        "top1": correct / total,
        "top1_ci": list(wilson_interval(correct, total)),
        "top5": top5,
        "top5_ci": top5_ci,
        "mean_class_acc": float(recall[in_labels].mean()),
        "mean_class_acc_ci": list(bootstrap.mean_class_acc),
        "macro_f1": float(f1[in_labels_or_predictions].mean()),
        "macro_f1_ci": list(bootstrap.macro_f1),
        "intervals": {**INTERVALS, "seed": bootstrap_seed},
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "confusion": confusion.tolist(),
    }


def _check_inputs(target: torch.Tensor, scores: torch.Tensor, class_names: list[str]) -> None:
    """Shape and range errors here are bugs in the caller, so they raise ValueError rather than BadInput."""
    if scores.ndim != 2:
        raise ValueError(f"probs_or_logits must have shape (N, C), got {tuple(scores.shape)}.")
    if scores.shape[0] != target.numel():
        raise ValueError(f"{target.numel()} labels but {scores.shape[0]} rows of scores.")
    if target.numel() == 0:
        raise ValueError("no samples to score: labels and probs_or_logits are empty.")
    if scores.shape[1] != len(class_names):
        raise ValueError(
            f"scores have {scores.shape[1]} columns but there are {len(class_names)} class names."
        )
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {class_names!r}.")
    bad = target[(target < 0) | (target >= len(class_names))]
    if bad.numel():
        raise ValueError(f"label {int(bad[0])} is outside 0..{len(class_names) - 1}.")


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """numerator / denominator, with 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return torch.where(denominator > 0, numerator / denominator, torch.zeros_like(numerator))


def write_confusion(
    out_dir: Path, confusion: Sequence[Sequence[int]], class_names: list[str], stem: str = "confusion"
) -> tuple[Path, Path]:
    """Write `<stem>.csv` (rows = true class, columns = predicted) and a `<stem>.png` heatmap; return both.

    Cell colours show the fraction of each true class (row-normalised), so rare classes stay readable next to
    common ones; the numbers written in the cells are raw counts.
    """
    matrix = np.asarray(confusion, dtype=np.int64)
    num_classes = len(class_names)
    if matrix.shape != (num_classes, num_classes):
        raise ValueError(f"confusion has shape {matrix.shape}, expected ({num_classes}, {num_classes}).")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}.csv"
    png_path = out_dir / f"{stem}.png"

    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow([_CSV_CORNER, *class_names])
        for name, row in zip(class_names, matrix.tolist(), strict=True):
            writer.writerow([name, *row])

    confusion_figure(matrix, class_names).savefig(png_path, dpi=100, bbox_inches="tight")
    return csv_path, png_path


def confusion_figure(matrix: np.ndarray, class_names: list[str]) -> Figure:
    """The figure of `write_confusion`: a heatmap sized by the class count, about half an inch per class, capped so
    174 classes still fit."""
    num_classes = len(class_names)
    side = min(3.0 + 0.45 * num_classes, 36.0)
    cell_points = side * 72.0 * 0.75 / num_classes  # the axes take about three quarters of the figure
    label_size = float(np.clip(0.6 * cell_points, 4.0, 10.0))
    row_totals = matrix.sum(axis=1, keepdims=True)
    fractions = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)

    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(num_classes)
    crowded = num_classes > 4 or max(len(name) for name in class_names) > 8
    rotation = {"rotation": 60, "ha": "right", "rotation_mode": "anchor"} if crowded else {}
    ax.set_xticks(ticks, labels=class_names, fontsize=label_size, **rotation)
    ax.set_yticks(ticks, labels=class_names, fontsize=label_size)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({counted(int(matrix.sum()), 'video')})")

    if num_classes <= MAX_ANNOTATED_CLASSES:
        count_size = float(np.clip(200.0 / num_classes, 6.0, 12.0))
        for i in range(num_classes):
            for j in range(num_classes):
                colour = "white" if fractions[i, j] > 0.5 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize=count_size)
    return fig
