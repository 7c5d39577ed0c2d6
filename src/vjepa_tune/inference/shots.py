"""Finding the cuts of an edited video, so that sliding windows never mix two shots.

A window that straddles a cut shows the model half of one scene and half of another, something it never saw in
training: such windows are mostly labelled wrong, far more often than windows inside one shot (BENCHMARKS.md,
"Long-video detection"). `predict --window` therefore lays its windows out shot by shot.

The detector is the content-change test of PySceneDetect's AdaptiveDetector, written against our decoder: every
frame is shrunk to a `THUMB` x `THUMB` RGB thumbnail, and the change into frame i is the mean absolute
difference of its thumbnail from frame i-1's (0-255). Frame i starts a new shot when that change is large in
absolute terms (`MIN_CHANGE`) and large against the changes around it (`MIN_RATIO` times their median, plus
`RATIO_FLOOR` so a still scene's noise does not divide by zero): fast motion raises the neighbours' changes too,
a cut stands alone; the thresholds sit between the ratios that cuts and motion scored on synthetic and real
videos (BENCHMARKS.md, "Long-video detection"). Two cuts closer than `MIN_SHOT_S` keep the stronger one, so a
camera flash (two changes in a row) makes one cut, not two; it is not told apart from a real cut.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from vjepa_tune.data.decoding import iter_thumbnails
from vjepa_tune.data.video import UnreadableVideo, VideoInfo

THUMB = 32
MIN_CHANGE = 12.0
"""Mean absolute change of a thumbnail pixel (0-255) below which no frame starts a shot."""
MIN_RATIO = 3.0
"""How many times the neighbours' median change a cut must reach (PySceneDetect's adaptive threshold)."""
RATIO_FLOOR = 2.0
NEIGHBOURS = 4
"""Changes on each side whose median a frame's change is compared with."""
MIN_SHOT_S = 0.3


def frame_changes(path: str | Path, info: VideoInfo, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """The change into every frame from the one before (index i: frame i; frame 0 gets 0), one decoding pass.

    `progress(n)` is called with the number of frames decoded since its last call.
    """
    changes: list[float] = [0.0]
    previous: np.ndarray | None = None
    with contextlib.closing(iter_thumbnails(path, THUMB)) as thumbnails:  # closes the file when stopped early
        for n, thumb in enumerate(thumbnails, start=1):
            current = thumb.astype(np.float32)
            if previous is not None:
                changes.append(float(np.abs(current - previous).mean()))
            previous = current
            if progress is not None and n % 64 == 0:
                progress(64)
            if n >= info.num_frames:
                break
    if previous is None:
        raise UnreadableVideo(path, "no frame could be decoded")
    if progress is not None:
        progress(len(changes) % 64)
    return np.asarray(changes, dtype=np.float32)


def find_cuts(changes: np.ndarray, frame_times: Sequence[float], duration_s: float) -> list[int]:
    """Positions of the frames that start a new shot, from `frame_changes`; no shot is left shorter than
    `MIN_SHOT_S` at either end of the video."""
    candidates: list[tuple[int, float]] = []
    for i in range(1, len(changes)):
        change = float(changes[i])
        if change < MIN_CHANGE:
            continue
        around = np.concatenate([changes[max(1, i - NEIGHBOURS) : i], changes[i + 1 : i + 1 + NEIGHBOURS]])
        typical = float(np.median(around)) if len(around) else 0.0
        inside = MIN_SHOT_S <= frame_times[i] <= duration_s - MIN_SHOT_S
        if inside and change >= MIN_RATIO * (typical + RATIO_FLOOR):
            candidates.append((i, change))
    cuts: list[tuple[int, float]] = []
    for i, change in candidates:
        if cuts and frame_times[i] - frame_times[cuts[-1][0]] < MIN_SHOT_S:
            if change > cuts[-1][1]:
                cuts[-1] = (i, change)
            continue
        cuts.append((i, change))
    return [i for i, _ in cuts]


def detect_cuts(
    path: str | Path, info: VideoInfo, progress: Callable[[int], None] | None = None
) -> list[float]:
    """The times (seconds) at which a new shot starts, in order; [] for one continuous shot.

    A video that cannot be decoded raises UnreadableVideo, its reason saying that the cut search failed.
    """
    try:
        changes = frame_changes(path, info, progress)
    except UnreadableVideo as exc:
        raise UnreadableVideo(exc.path, f"finding cuts: {exc.reason}") from exc
    return [info.frame_times[i] for i in find_cuts(changes, info.frame_times[: len(changes)], info.duration_s)]
