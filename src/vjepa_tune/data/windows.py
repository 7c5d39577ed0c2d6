"""Fixed-stride windows over a video, counted in frames, for feature export (`vjepa-tune features`).

Detection tools (ActionFormer, OpenTAD) read one feature per window of `window` frames every `stride` frames and
place row t at frames [t x stride, t x stride + window): in seconds, `(t x feat_stride + 0.5 x num_frames) / fps`
is its centre. So windows here are counted in frames of a regular grid, never in seconds:

- the source's own frames (its presentation order), or, with `fps`, a grid resampled to that rate: grid frame j
  shows the source frame on screen at j / fps (`data.video.frames_at_times`), as a constant-rate re-encode would;
- whole windows start at `range(0, frames - window + 1, stride)`, as VideoMAE v2's detection-feature extractor
  lays them out (795 frames, window 16, stride 4: 195 windows); `pad_last` adds one window ending at the last
  frame when the last whole window stops short of it, and gives a video shorter than one window a single window
  whose positions past its end repeat its last frame (the window keeps its length in time);
- each window is sampled to the model's frames per clip as `uniform` sampling spreads a clip over a video: grid
  position `start + floor((k + 0.5) x window / frames_per_clip)` for k = 0..frames_per_clip-1, so a 16-frame
  window read at 16 frames takes every frame once.

No torch, no decoding: a plan is a pure function of a probe (`VideoInfo`) and the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vjepa_tune.data.video import VideoInfo, frames_at_times
from vjepa_tune.errors import BadInput

_TIME_EPS = 1e-6


@dataclass(frozen=True)
class FrameGrid:
    """The frames windows are counted in: the source's own, or a grid resampled to a fixed rate."""

    fps: float
    """Frames per second of the grid (the source's average rate when not resampled)."""
    source_frames: tuple[int, ...]
    """The source frame (presentation order) shown at each grid frame."""
    times: tuple[float, ...]
    """Start time (seconds) of each grid frame."""
    duration_s: float
    resampled: bool

    @property
    def num_frames(self) -> int:
        return len(self.source_frames)

    def time_at(self, position: int) -> float:
        """The start time of grid frame `position`; the video's end for the position after the last frame."""
        if position < self.num_frames:
            return self.times[max(0, position)]
        return self.duration_s


def frame_grid(info: VideoInfo, fps: float | None = None) -> FrameGrid:
    """The source's frames, or with `fps` the frames of the video resampled to that rate: floor(duration x fps)
    of them (at least one), frame j showing what is on screen at j / fps."""
    if fps is None:
        return FrameGrid(info.fps, tuple(range(info.num_frames)), tuple(info.frame_times), info.duration_s, False)
    if not (math.isfinite(fps) and fps > 0):
        raise BadInput(f"--fps must be a positive number of frames per second, got {fps!r}.")
    count = max(1, math.floor(info.duration_s * fps + _TIME_EPS))
    times = tuple(j / fps for j in range(count))
    return FrameGrid(float(fps), tuple(frames_at_times(info, times)), times, info.duration_s, True)


def window_starts(num_frames: int, window: int, stride: int, pad_last: bool = False) -> list[int]:
    """First grid frame of every window: `range(0, num_frames - window + 1, stride)`, plus with `pad_last` one
    window ending at the last frame (starting at 0 for a video shorter than one window)."""
    check_window_frames(window, stride)
    starts = list(range(0, num_frames - window + 1, stride))
    if pad_last and num_frames > 0:
        last = max(0, num_frames - window)
        if not starts or starts[-1] < last:
            starts.append(last)
    return starts


def check_window_frames(window: int, stride: int) -> None:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise BadInput(f"--window_frames must be a whole number of frames >= 1, got {window!r}.")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise BadInput(f"--stride_frames must be a whole number of frames >= 1, got {stride!r}.")


@dataclass(frozen=True)
class Window:
    """One window of a video: grid frames [start, start + length), the source frames its clip takes, and its span
    in seconds."""

    start: int
    length: int
    frames: tuple[int, ...]
    """Source frame of each of the clip's frames_per_clip frames, in order."""
    start_s: float
    end_s: float


@dataclass(frozen=True)
class WindowPlan:
    """Every window of one video, and the grid they are counted in."""

    grid: FrameGrid
    window: int
    stride: int
    frames_per_clip: int
    pad_last: bool
    windows: tuple[Window, ...]

    @property
    def needed_frames(self) -> int:
        """Source frames that must be decoded: up to the last one any window takes."""
        return max((max(w.frames) for w in self.windows), default=-1) + 1


def clip_positions(window: int, frames_per_clip: int) -> list[int]:
    """Offsets in a window of `window` grid frames of the clip's frames: segment centres, as `uniform` sampling
    spreads a clip over a video."""
    if isinstance(frames_per_clip, bool) or not isinstance(frames_per_clip, int) or frames_per_clip < 1:
        raise BadInput(f"--frames_per_clip must be a whole number >= 1, got {frames_per_clip!r}.")
    return [((2 * k + 1) * window) // (2 * frames_per_clip) for k in range(frames_per_clip)]


def plan_windows(info: VideoInfo, *, window: int, stride: int, frames_per_clip: int, fps: float | None = None,
                 pad_last: bool = False) -> WindowPlan:
    """The windows of one video (see the module docstring); none when it is shorter than one window and
    `pad_last` is off."""
    grid = frame_grid(info, fps)
    offsets = clip_positions(window, frames_per_clip)
    last = grid.num_frames - 1
    windows = []
    for start in window_starts(grid.num_frames, window, stride, pad_last):
        frames = tuple(grid.source_frames[min(start + offset, last)] for offset in offsets)
        windows.append(Window(start, window, frames, grid.time_at(start), grid.time_at(start + window)))
    return WindowPlan(grid, window, stride, frames_per_clip, pad_last, tuple(windows))
