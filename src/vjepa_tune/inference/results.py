"""What a run says about a video: class probabilities, sliding windows, and the segments merged from them."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vjepa_tune.errors import BadInput

if TYPE_CHECKING:  # torch, torchvision and PyAV load when used: the command line starts without them
    import torch


DEFAULT_TOP_K = 5
DEFAULT_MIN_SCORE = 0.5
_TIME_EPS = 1e-6


# ------------------------------------------------------------------------------------------------ results
@dataclass
class WindowPrediction:
    """The class probabilities of one window [start_s, end_s) of a video."""

    start_s: float
    end_s: float
    probs: torch.Tensor
    whole_video: bool = False
    """The video is shorter than one window: this single window covers all of it."""


@dataclass(frozen=True)
class DetectedSegment:
    """Consecutive windows with the same top label, each scoring at least the minimum score."""

    label: str
    start_s: float
    end_s: float
    score: float
    """Mean probability of `label` over the segment's windows."""
    num_windows: int

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "start_s": round(self.start_s, 4),
            "end_s": round(self.end_s, 4),
            "score": self.score,
            "num_windows": self.num_windows,
        }


@dataclass
class Prediction:
    """What a run says about one video: class probabilities, or why the video could not be read.

    In window mode `probs` is the mean of the windows' probabilities, and `windows` and `segments` hold the
    detection.
    """

    path: Path | None
    classes: list[str]
    probs: torch.Tensor | None
    error: str | None = None
    duration_s: float | None = None
    windows: list[WindowPrediction] = field(default_factory=list)
    segments: list[DetectedSegment] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.probs is not None

    @property
    def label(self) -> str | None:
        return self.classes[int(self.probs.argmax())] if self.probs is not None else None

    @property
    def score(self) -> float | None:
        return float(self.probs.max()) if self.probs is not None else None

    def top_k(self, k: int = DEFAULT_TOP_K) -> list[tuple[str, float]]:
        """The k most probable labels with their probabilities, best first."""
        return _top_k(self.probs, self.classes, k) if self.probs is not None else []

    def probabilities(self) -> dict[str, float]:
        """Every class with its probability."""
        return dict(zip(self.classes, self.probs.tolist(), strict=True)) if self.probs is not None else {}

    def label_at(self, times: Iterable[float]) -> list[str | None]:
        """The top label of the window that owns each time (window mode; see `window_spans`); None for a
        time outside the video."""
        if not self.windows:
            raise ValueError("label_at needs a window-mode prediction (predict_windows).")
        spans = window_spans(self.windows, self.duration_s)
        starts = [lo for lo, _ in spans]
        labels = [self.classes[int(w.probs.argmax())] for w in self.windows]
        out: list[str | None] = []
        for t in times:
            owner = bisect.bisect_right(starts, t + _TIME_EPS) - 1
            inside = owner >= 0 and t < spans[owner][1]
            out.append(labels[owner] if inside else None)
        return out

    def as_dict(self, top_k: int = DEFAULT_TOP_K) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path) if self.path is not None else None}
        if self.error is not None:
            out["error"] = self.error
            return out
        out.update(
            label=self.label,
            score=self.score,
            top_k=_top_k_dicts(self.probs, self.classes, top_k),
            probs=self.probabilities(),
        )
        if self.duration_s is not None:
            out["duration_s"] = round(self.duration_s, 4)
        if self.windows:
            out["windows"] = [_window_dict(w, self.classes, top_k) for w in self.windows]
            out["segments"] = [s.as_dict() for s in self.segments]
        return out


def _top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[tuple[str, float]]:
    values, indices = probs.topk(max(1, min(k, len(classes))))
    return [(classes[int(i)], float(v)) for v, i in zip(values, indices, strict=True)]


def _top_k_dicts(probs: torch.Tensor, classes: list[str], k: int) -> list[dict[str, Any]]:
    return [{"label": label, "prob": p} for label, p in _top_k(probs, classes, k)]


def _window_dict(window: WindowPrediction, classes: list[str], top_k: int) -> dict[str, Any]:
    best = int(window.probs.argmax())
    return {
        "start_s": round(window.start_s, 4),
        "end_s": round(window.end_s, 4),
        "label": classes[best],
        "score": float(window.probs[best]),
        "top_k": _top_k_dicts(window.probs, classes, top_k),
        "probs": dict(zip(classes, window.probs.tolist(), strict=True)),
        "whole_video": window.whole_video,
    }


# ------------------------------------------------------------------------------------------------ windows
def window_bounds(duration_s: float, window_s: float, stride_s: float) -> list[tuple[float, float, bool]]:
    """(start_s, end_s, whole_video) of every window: one every `stride_s`, plus one ending with the video.

    A video no longer than one window gets a single window covering it, marked `whole_video`.
    """
    _check_window(window_s, stride_s)
    if duration_s <= window_s + _TIME_EPS:
        return [(0.0, duration_s, True)]
    bounds: list[tuple[float, float, bool]] = []
    k = 0
    while k * stride_s + window_s <= duration_s + _TIME_EPS:
        bounds.append((k * stride_s, k * stride_s + window_s, False))
        k += 1
    if bounds[-1][1] < duration_s - _TIME_EPS:
        bounds.append((duration_s - window_s, duration_s, False))
    return bounds


def _check_window(window_s: float, stride_s: float) -> None:
    if not window_s > 0:
        raise BadInput(f"--window must be a positive number of seconds, got {window_s!r}.")
    if not 0 < stride_s <= window_s:
        raise BadInput(
            f"--stride must be a positive number of seconds no longer than --window ({window_s}), got "
            f"{stride_s!r}; a longer stride would leave parts of the video unseen."
        )


def window_spans(windows: Sequence[WindowPrediction], duration_s: float | None = None) -> list[tuple[float, float]]:
    """The part of the video each window speaks for: the times nearer its centre than any other's.

    Windows overlap when the stride is shorter than the window; splitting time at the midpoints between
    window centres gives every moment exactly one window, from 0 to the end of the video.
    """
    if not windows:
        return []
    centres = [(w.start_s + w.end_s) / 2 for w in windows]
    end = duration_s if duration_s is not None else windows[-1].end_s
    cuts = [(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)]
    return list(zip([0.0, *cuts], [*cuts, end], strict=True))


def merge_segments(
    windows: Sequence[WindowPrediction],
    classes: list[str],
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_length_s: float = 0.0,
    duration_s: float | None = None,
) -> list[DetectedSegment]:
    """Join consecutive windows whose top label is the same and scores >= `min_score` into segments.

    A window below `min_score` ends a segment and belongs to none; segments shorter than `min_length_s` are
    dropped. A segment spans the time its windows speak for (`window_spans`).
    """
    if not 0 <= min_score <= 1:
        raise BadInput(f"--min_score must be a probability in [0, 1], got {min_score!r}.")
    if min_length_s < 0:
        raise BadInput(f"--min_length must be >= 0 seconds, got {min_length_s!r}.")
    spans = window_spans(windows, duration_s)
    segments: list[DetectedSegment] = []
    run: list[int] = []

    def close() -> None:
        if run:
            label = int(windows[run[0]].probs.argmax())
            score = sum(float(windows[i].probs[label]) for i in run) / len(run)
            segment = DetectedSegment(classes[label], spans[run[0]][0], spans[run[-1]][1], score, len(run))
            if segment.length_s + _TIME_EPS >= min_length_s:
                segments.append(segment)
            run.clear()

    for i, window in enumerate(windows):
        label = int(window.probs.argmax())
        if float(window.probs[label]) < min_score:
            close()
            continue
        if run and int(windows[run[-1]].probs.argmax()) != label:
            close()
        run.append(i)
    close()
    return segments


