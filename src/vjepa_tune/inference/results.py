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

LONG_VIDEO_RATIO = 4.0
"""A video labelled whole is "long" when it lasts more than this many times the run's typical training clip
(`Prediction.train_clip_s`): one clip of frames_per_clip frames then stands for far more action than any clip the
run learnt from, and its label can look confident while describing little of the video."""


# ------------------------------------------------------------------------------------------------ results
@dataclass
class WindowPrediction:
    """The class probabilities of one window [start_s, end_s) of a video."""

    start_s: float
    end_s: float
    probs: torch.Tensor
    whole_video: bool = False
    """The video is shorter than one window: this single window covers all of it."""
    whole_shot: bool = False
    """The window's shot (the video between two cuts) is shorter than one window: this window covers that shot."""


@dataclass(frozen=True)
class DetectedSegment:
    """A stretch of one shot whose moments all have the same top label, scoring at least the minimum score
    (see `time_slices`)."""

    label: str
    start_s: float
    end_s: float
    score: float
    """Mean probability of `label` over the segment's time."""
    num_windows: int
    """Windows that cover some of the segment."""

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

    In window mode `probs` is the mean of the windows' probabilities, and `windows`, `segments` and `cuts` (the
    times where a new shot starts) hold the detection.
    """

    path: Path | None
    classes: list[str]
    probs: torch.Tensor | None
    error: str | None = None
    duration_s: float | None = None
    windows: list[WindowPrediction] = field(default_factory=list)
    segments: list[DetectedSegment] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)
    train_clip_s: float | None = None
    """The time one of the run's training clips typically spans (the median over its training videos; None when
    the run did not record it and its training videos are gone)."""
    num_frames: int | None = None
    """The video's frames (None when it was not read)."""
    clip_frames: int | None = None
    """The frames one of the run's clips takes (`data.video.frames_needed`): a video with fewer repeats frames."""

    @property
    def short_video(self) -> bool:
        """Labelled from a clip that repeats frames: the video has fewer frames than one of the run's clips takes."""
        return self.num_frames is not None and self.clip_frames is not None and self.num_frames < self.clip_frames

    def short_video_warning(self) -> str | None:
        """What to tell someone about a `short_video`, naming it; None for any other prediction."""
        if not self.short_video:
            return None
        return (f"{self.path} has {self.num_frames} frames, fewer than the {self.clip_frames} a clip of this run "
                "takes: its clip repeats frames, so its label comes from less motion than the run learnt from.")

    @property
    def long_video(self) -> bool:
        """Labelled whole from one clip although it lasts more than `LONG_VIDEO_RATIO` training clips."""
        return (
            not self.windows
            and self.duration_s is not None
            and bool(self.train_clip_s)
            and self.duration_s > LONG_VIDEO_RATIO * self.train_clip_s  # type: ignore[operator]
        )

    def long_video_warning(self) -> str | None:
        """What to tell someone about a `long_video`, naming it; None for any other prediction."""
        if not self.long_video:
            return None
        clip = self.train_clip_s or 0.0
        return (
            f"{self.path} lasts {self.duration_s:.1f} s, {self.duration_s / clip:.0f}x the run's training clips "
            f"(typically {clip:.2f} s): its label comes from one clip that cannot describe it all, however confident "
            f"it looks. Label it window by window instead: --window {clip:.3g}."
        )

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
        """The top label at each time (window mode; see `time_slices`); None for a time outside the video."""
        if not self.windows:
            raise ValueError("label_at needs a window-mode prediction (predict_windows).")
        slices = time_slices(self.windows, self.duration_s, self.cuts)
        starts = [piece.start_s for piece in slices]
        out: list[str | None] = []
        for t in times:
            n = bisect.bisect_right(starts, t + _TIME_EPS) - 1
            inside = n >= 0 and t < slices[n].end_s
            out.append(self.classes[int(slices[n].probs.argmax())] if inside else None)
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
        out["train_clip_s"] = round(self.train_clip_s, 4) if self.train_clip_s is not None else None
        out["long_video"] = self.long_video
        out["short_video"] = self.short_video
        if self.windows:
            out["windows"] = [_window_dict(w, self.classes, top_k) for w in self.windows]
            out["segments"] = [s.as_dict() for s in self.segments]
            out["cuts"] = [round(t, 4) for t in self.cuts]
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
        "whole_shot": window.whole_shot,
    }


# ------------------------------------------------------------------------------------------------ windows
def shot_bounds(duration_s: float, cuts: Sequence[float] = ()) -> list[tuple[float, float]]:
    """(start_s, end_s) of every shot: the video split at `cuts` (times where a new shot starts); cuts at the
    ends or within float noise of another make no empty shot."""
    edges = [0.0]
    for t in sorted(cuts):
        if t - edges[-1] > _TIME_EPS and t < duration_s - _TIME_EPS:
            edges.append(t)
    edges.append(duration_s)
    return list(zip(edges, edges[1:], strict=False))


def window_bounds(
    duration_s: float, window_s: float, stride_s: float, cuts: Sequence[float] = ()
) -> list[tuple[float, float, bool]]:
    """(start_s, end_s, whole) of every window, shot by shot so that no window spans a cut: in each shot one
    window every `stride_s` from its start, plus one ending with the shot.

    A shot (or a video without cuts) no longer than one window gets a single window covering it, `whole`.
    """
    _check_window(window_s, stride_s)
    bounds: list[tuple[float, float, bool]] = []
    for shot_start, shot_end in shot_bounds(duration_s, cuts):
        length = shot_end - shot_start
        if length <= window_s + _TIME_EPS:
            bounds.append((shot_start, shot_end, True))
            continue
        k = 0
        while k * stride_s + window_s <= length + _TIME_EPS:
            bounds.append((shot_start + k * stride_s, shot_start + k * stride_s + window_s, False))
            k += 1
        if bounds[-1][1] < shot_end - _TIME_EPS:
            bounds.append((shot_end - window_s, shot_end, False))
    return bounds


def _check_window(window_s: float, stride_s: float) -> None:
    if not window_s > 0:
        raise BadInput(f"--window must be a positive number of seconds, got {window_s!r}.")
    if not 0 < stride_s <= window_s:
        raise BadInput(
            f"--stride must be a positive number of seconds no longer than --window ({window_s}), got "
            f"{stride_s!r}; a longer stride would leave parts of the video unseen."
        )


@dataclass(frozen=True)
class TimeSlice:
    """A stretch of video that the same windows cover, with the mean of their probabilities."""

    start_s: float
    end_s: float
    probs: torch.Tensor
    windows: tuple[int, ...]
    """Indices of the windows covering it."""


def time_slices(
    windows: Sequence[WindowPrediction], duration_s: float | None = None, cuts: Sequence[float] = ()
) -> list[TimeSlice]:
    """The video cut at every window edge and every cut; each piece gets the mean probabilities of the windows
    that cover it.

    Windows overlap when the stride is shorter than the window, so every moment is seen by several; averaging
    them labels a moment by all the context around it, not by one window's (on videos of joined clips, laid
    out shot by shot, more of the video is labelled right than by the nearest window alone: BENCHMARKS.md,
    "Long-video detection"). A piece that no window covers (windows given by hand with gaps) takes the nearest
    window's probabilities.
    """
    import torch  # here, not at the top: the command line starts without torch

    if not windows:
        return []
    end = duration_s if duration_s is not None else max(w.end_s for w in windows)
    edges: list[float] = []
    for t in sorted({0.0, end, *cuts, *(t for w in windows for t in (w.start_s, w.end_s))}):
        if 0 <= t <= end and (not edges or t - edges[-1] > _TIME_EPS):  # float noise makes no sliver
            edges.append(t)
    edges[-1] = end
    order = sorted(range(len(windows)), key=lambda i: windows[i].start_s)
    starts = [windows[i].start_s for i in order]
    longest = max(w.end_s - w.start_s for w in windows)
    slices = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        k = bisect.bisect_right(starts, lo + _TIME_EPS)
        covering = []
        while k > 0 and starts[k - 1] >= lo - longest - _TIME_EPS:
            k -= 1
            if windows[order[k]].end_s >= hi - _TIME_EPS:
                covering.append(order[k])
        if covering:
            covering.sort()
            probs = torch.stack([windows[i].probs for i in covering]).mean(dim=0)
            slices.append(TimeSlice(lo, hi, probs, tuple(covering)))
            continue
        middle = (lo + hi) / 2  # a gap: each half goes to the window nearest to it
        for a, b in ((lo, middle), (middle, hi)):
            nearest = min(range(len(windows)), key=lambda i: _distance(windows[i], (a + b) / 2))
            slices.append(TimeSlice(a, b, windows[nearest].probs, (nearest,)))
    return slices


def _distance(window: WindowPrediction, t: float) -> float:
    return max(window.start_s - t, t - window.end_s, 0.0)


def merge_segments(
    windows: Sequence[WindowPrediction],
    classes: list[str],
    *,
    min_score: float = DEFAULT_MIN_SCORE,
    min_length_s: float = 0.0,
    duration_s: float | None = None,
    cuts: Sequence[float] = (),
) -> list[DetectedSegment]:
    """Join consecutive moments (`time_slices`) of one shot whose top label is the same and scores >=
    `min_score` into segments.

    A moment below `min_score` ends a segment and belongs to none, and so does a cut; segments shorter than
    `min_length_s` are dropped.
    """
    if not 0 <= min_score <= 1:
        raise BadInput(f"--min_score must be a probability in [0, 1], got {min_score!r}.")
    if min_length_s < 0:
        raise BadInput(f"--min_length must be >= 0 seconds, got {min_length_s!r}.")
    cut_times = sorted(cuts)
    segments: list[DetectedSegment] = []
    run: list[TimeSlice] = []

    def close() -> None:
        if run:
            label = int(run[0].probs.argmax())
            length = run[-1].end_s - run[0].start_s
            score = sum(float(piece.probs[label]) * (piece.end_s - piece.start_s) for piece in run) / length
            covering = {i for piece in run for i in piece.windows}
            segment = DetectedSegment(classes[label], run[0].start_s, run[-1].end_s, score, len(covering))
            if segment.length_s + _TIME_EPS >= min_length_s:
                segments.append(segment)
            run.clear()

    for piece in time_slices(windows, duration_s, cuts):
        label = int(piece.probs.argmax())
        if float(piece.probs[label]) < min_score:
            close()
            continue
        n = bisect.bisect_left(cut_times, piece.start_s - _TIME_EPS)
        at_cut = n < len(cut_times) and cut_times[n] <= piece.start_s + _TIME_EPS
        if run and (at_cut or int(run[-1].probs.argmax()) != label):
            close()
        run.append(piece)
    close()
    return segments
