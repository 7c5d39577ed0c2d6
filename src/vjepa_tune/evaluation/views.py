"""Multi-view evaluation: N temporal clips x 1 or 3 spatial crops per video, softmax probabilities averaged.

The unit of prediction is a `ClipRequest`: a whole video, or one time window of it (sliding-window
detection). Its views are cut as training cut its clips (the run's frames per clip, sampling and frame step),
so one clip and one centre crop (`num_clips=1, num_crops=1`) is exactly the clip the training run evaluated
on. More clips spread over the video:

- uniform sampling: clip j of N takes frame k at time (k + (j + 0.5) / N) * duration / frames_per_clip: the
  N clips interleave, each still covering the whole video at the time scale training saw;
- random_window sampling: N windows of `frames_per_clip` frames `frame_step` apart, starting at the centres
  of N equal parts of the room the video leaves (SlowFast / V-JEPA style evenly spaced clips).

Three crops are the start, middle and end of the long side (`data.transforms.spatial_crops`). `flip` adds the
mirror image of every view: a run trained with horizontal flips (the default `--data.hflip`) learnt that a mirrored
clip shows the same action, and averaging the two views helps (BENCHMARKS.md, "Long-video detection"). Every view
goes through the model alone; its softmax probabilities are averaged per request. A video that cannot be decoded is
reported with its reason, never replaced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.transforms import spatial_crops
from vjepa_tune.data.video import (
    SAMPLINGS,
    UnreadableVideo,
    VideoInfo,
    frames_at_times,
    probe_video,
    sample_frame_indices,
    window_frame_indices,
)
from vjepa_tune.errors import BadInput

DECODED_BYTES_PER_CHUNK = 256 * 2**20
"""Windows of one video are decoded together up to this many bytes of RGB frames (1080p: two clips)."""

Forward = Callable[[torch.Tensor], torch.Tensor]
"""Clips (B, T, C, H, W) -> logits (B, num_classes)."""


@dataclass(frozen=True)
class ViewSpec:
    """How the views of one request are cut: the run's clip settings plus the view counts."""

    frames_per_clip: int
    sampling: str
    frame_step: int
    crop_size: int
    num_clips: int = 1
    num_crops: int = 1
    flip: bool = False

    def __post_init__(self) -> None:
        if self.num_clips < 1:
            raise BadInput(f"--num_clips must be a whole number >= 1, got {self.num_clips!r}.")
        if self.num_crops not in (1, 3):
            raise BadInput(f"--num_crops must be 1 or 3, got {self.num_crops!r}.")
        if self.sampling not in SAMPLINGS:
            raise BadInput(f"sampling {self.sampling!r} is not one of {', '.join(SAMPLINGS)}.")
        if self.frames_per_clip < 1 or self.frame_step < 1:
            raise BadInput(
                f"frames per clip and frame step must be >= 1, got {self.frames_per_clip} and {self.frame_step}."
            )

    @property
    def views_per_clip(self) -> int:
        return self.num_crops * (2 if self.flip else 1)

    @classmethod
    def from_data(cls, data: Any, crop_size: int, num_clips: int = 1, num_crops: int = 1, flip: bool = False
                  ) -> ViewSpec:
        """The views of a run whose clips were cut by `data` (a `config.DataConfig`)."""
        return cls(data.frames_per_clip, data.sampling, data.frame_step, crop_size, num_clips, num_crops, flip)


@dataclass(frozen=True)
class ClipRequest:
    """One prediction: a whole video (`window=None`) or the window [start_s, end_s) of it."""

    path: Path
    window: tuple[float, float] | None = None


def clip_indices(info: VideoInfo, spec: ViewSpec) -> list[list[int]]:
    """Frame positions of the `spec.num_clips` temporal clips of a whole video (see the module docstring)."""
    n, count = spec.frames_per_clip, spec.num_clips
    if count == 1:
        return [sample_frame_indices(info, n, spec.sampling, spec.frame_step)]
    if spec.sampling == "uniform":
        step = info.duration_s / n
        return [frames_at_times(info, ((k + (j + 0.5) / count) * step for k in range(n))) for j in range(count)]
    span = (n - 1) * spec.frame_step + 1
    room = max(0, info.num_frames - span)
    last = info.num_frames - 1
    starts = [((2 * j + 1) * room) // (2 * count) for j in range(count)]
    return [[min(start + k * spec.frame_step, last) for k in range(n)] for start in starts]


def window_indices(info: VideoInfo, start_s: float, end_s: float, spec: ViewSpec) -> list[int]:
    """Frame positions of the clip of one window, cut as a training clip is cut from a whole video.

    uniform: `frames_per_clip` frames spread over the window; random_window: `frames_per_clip` frames
    `frame_step` apart, centred in the frames the window shows (its last frame repeated when it shows fewer).
    """
    if spec.sampling == "uniform":
        return window_frame_indices(info, start_s, end_s, spec.frames_per_clip)
    first = frames_at_times(info, [start_s])[0]
    shown = [i for i in range(first, info.num_frames) if info.frame_times[i] < end_s - 1e-9] or [first]
    offsets = sample_frame_indices(len(shown), spec.frames_per_clip, "random_window", spec.frame_step)
    return [shown[0] + o for o in offsets]


def request_indices(info: VideoInfo, request: ClipRequest, spec: ViewSpec) -> list[list[int]]:
    """The temporal clips of a request: N clips of a whole video, or the one clip of a window."""
    if request.window is None:
        return clip_indices(info, spec)
    return [window_indices(info, *request.window, spec)]


def views_of_frames(
    frames: torch.Tensor,
    clips: Sequence[Sequence[int]],
    spec: ViewSpec,
    positions: dict[int, int] | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Normalised views (clips x crops [x 2 with `spec.flip`: each crop, then its mirror image], T, 3, crop, crop)
    from decoded frames (uint8 before normalisation with `normalize=False`).

    `frames` holds the decoded frames in the order of `positions` (frame position -> row); without it,
    row i is frame position i.
    """
    views: list[torch.Tensor] = []
    for clip in clips:
        rows = [positions[i] for i in clip] if positions is not None else list(clip)
        for crop in spatial_crops(frames[rows], spec.crop_size, spec.num_crops, normalize):
            views += [crop, crop.flip(-1)] if spec.flip else [crop]
    return torch.stack(views)


def read_views(request: ClipRequest, spec: ViewSpec, info: VideoInfo | None = None) -> torch.Tensor:
    """Decode the frames of one request once and cut its views; raises UnreadableVideo."""
    info = info if info is not None else probe_video(request.path)
    clips = request_indices(info, request, spec)
    needed = sorted({i for clip in clips for i in clip})
    frames = read_frames(request.path, needed, info)
    return views_of_frames(frames, clips, spec, {frame: row for row, frame in enumerate(needed)})


@dataclass
class _Chunk:
    """Consecutive requests on one video, decoded together so a long video is read once per chunk."""

    path: Path
    requests: list[int]


class ViewDataset(Dataset):
    """The views of many requests; an item is a chunk of requests on one video, decoded in one pass.

    Items are dicts: `views` (all views, T, 3, crop, crop), `requests` (request indices) and `counts`
    (views per request); or, for a video that cannot be read, `requests` and `error` (the reason).
    """

    def __init__(
        self,
        requests: Sequence[ClipRequest],
        spec: ViewSpec,
        infos: dict[Path, VideoInfo] | None = None,
        chunk_size: int = 16,
        normalize: bool = True,
    ) -> None:
        self.requests = list(requests)
        self.normalize = normalize
        """False: views stay uint8 (a quarter of the bytes out of the DataLoader workers); the forward function
        normalises them (`data.transforms.normalize_clips`), as `Predictor.logits` does."""
        self.spec = spec
        self.infos = dict(infos or {})
        self.chunks: list[_Chunk] = []
        for index, request in enumerate(self.requests):
            last = self.chunks[-1] if self.chunks else None
            fits = (
                last is not None
                and last.path == request.path
                and request.window is not None
                and len(last.requests) < self._chunk_limit(request.path, chunk_size)
            )
            if fits:
                last.requests.append(index)
            else:
                self.chunks.append(_Chunk(request.path, [index]))

    def _chunk_limit(self, path: Path, chunk_size: int) -> int:
        """Windows decoded together, so their decoded frames stay within `DECODED_BYTES_PER_CHUNK`."""
        info = self.infos.get(path)
        if info is None:
            return 1
        clip_bytes = self.spec.frames_per_clip * info.width * info.height * 3
        return max(1, min(chunk_size, DECODED_BYTES_PER_CHUNK // max(1, clip_bytes)))

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, item: int) -> dict[str, Any]:
        chunk = self.chunks[item]
        try:
            info = self.infos.get(chunk.path) or probe_video(chunk.path)
            clips = [request_indices(info, self.requests[i], self.spec) for i in chunk.requests]
            needed = sorted({f for per_request in clips for clip in per_request for f in clip})
            frames = read_frames(chunk.path, needed, info)
        except UnreadableVideo as exc:
            return {"requests": chunk.requests, "error": exc.reason}
        positions = {frame: row for row, frame in enumerate(needed)}
        views = [views_of_frames(frames, per_request, self.spec, positions, self.normalize) for per_request in clips]
        return {"requests": chunk.requests, "views": torch.cat(views), "counts": [len(v) for v in views]}


def _first(batch: list[dict[str, Any]]) -> dict[str, Any]:
    return batch[0]


@dataclass
class ViewPredictions:
    """Averaged probabilities per request index, and the reason for each request that could not be read."""

    probs: dict[int, torch.Tensor]
    errors: dict[int, str]


def predict_views(
    forward: Forward,
    dataset: ViewDataset,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    desc: str = "predicting",
    unit: str = "clip",
    progress: bool = True,
) -> ViewPredictions:
    """Run every view through `forward` in batches of `batch_size` clips and average softmax per request.

    A batch mixes views of several requests; the result does not depend on `batch_size` beyond float rounding.
    """
    if batch_size < 1:
        raise BadInput(f"--batch_size must be >= 1, got {batch_size!r}.")
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    errors: dict[int, str] = {}
    pending: list[torch.Tensor] = []
    owners: list[int] = []

    def flush(all_of_it: bool) -> None:
        while owners and (all_of_it or len(owners) >= batch_size):
            clips = torch.cat(pending) if len(pending) > 1 else pending[0]
            take = min(batch_size, len(owners))
            probs = torch.softmax(forward(clips[:take]).float(), dim=-1).cpu()
            for owner, p in zip(owners[:take], probs, strict=True):
                sums[owner] = sums[owner] + p if owner in sums else p.clone()
                counts[owner] = counts.get(owner, 0) + 1
            rest = clips[take:]
            pending[:] = [rest] if len(rest) else []
            del owners[:take]

    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=_first)
    with tqdm(
        total=len(dataset.requests), desc=desc, unit=unit, disable=None if progress else True, leave=False
    ) as bar:
        for item in loader:
            if "error" in item:
                errors.update({index: item["error"] for index in item["requests"]})
            else:
                pending.append(item["views"])
                for index, count in zip(item["requests"], item["counts"], strict=True):
                    owners += [index] * count
                flush(all_of_it=False)
            bar.update(len(item["requests"]))
        flush(all_of_it=True)
    return ViewPredictions({i: sums[i] / counts[i] for i in sorted(sums)}, errors)
