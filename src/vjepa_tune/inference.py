"""Using a finished run: load it, label videos whole or in sliding windows, and score it on a split.

`load_run(RUN_DIR)` rebuilds the run's best model and returns a `Predictor`; `predict` labels whole videos the
way the run evaluated its own (same frames, same centre crop, optionally more clips and crops averaged), and
`predict_windows` turns a long recording into action detection: every window is one clip cut as training cut
its clips, the windows' top labels are merged into segments, and each moment of the video belongs to the
window whose centre is nearest (`window_spans`), so segments never overlap. `evaluate_run` scores the run on
its own validation or test videos (splits.json) or on another data set, writing the metrics of training
(top-1, top-5, mean class accuracy, macro-F1, confusion matrix) and per-video predictions.

The `predict` and `evaluate` commands are registered with the command line at import time; the heavy
libraries are imported where they are used, so registering them costs the command line nothing.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.errors import BadInput

if TYPE_CHECKING:  # torch, torchvision and PyAV load when used: the command line starts without them
    import torch

    from vjepa_tune.evaluation.views import ViewSpec

DEFAULT_TOP_K = 5
DEFAULT_MIN_SCORE = 0.5
EVALUATION_DIR = "evaluation"
_TIME_EPS = 1e-6

Log = Callable[[str], None]


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


# ------------------------------------------------------------------------------------------------ predictor
def collect_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given and every video under each folder (recursively, sorted, hidden files skipped).

    A path that does not exist is kept, so that it is reported with the videos that cannot be read.
    """
    from vjepa_tune.data.sources import VIDEO_EXTENSIONS

    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if not path.is_dir():
            found.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [
                Path(dirpath) / name
                for name in sorted(filenames)
                if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS
            ]
    return found


def _pick_device(device: str | torch.device | None) -> torch.device:
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise BadInput(f"--device {device!r} is not a device (try cpu, cuda or cuda:1): {exc}") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"--device {device}: no CUDA GPU is available here; use --device cpu.")
    return chosen


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    import torch

    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise BadInput(f"--precision {precision!r} is not one of auto, fp32, bf16, fp16.")
    if device.type != "cuda" or precision == "fp32":
        if precision == "fp16":
            raise BadInput("--precision fp16 needs a GPU; use fp32 or bf16 on the CPU.")
        return torch.bfloat16 if precision == "bf16" else None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


class Predictor:
    """A trained model with the run's classes and clip settings, ready to label videos.

    Made by `load_run`; usable from Python without the command line:

        run = load_run("runs/lora-20250101-120000")
        result = run.predict("video.mp4")
        result.label, result.score, result.top_k(3), result.probabilities()
    """

    def __init__(
        self,
        model: torch.nn.Module,
        classes: list[str],
        data: DataConfig,
        *,
        run_dir: Path | None = None,
        config: TrainConfig | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ) -> None:
        from vjepa_tune.models.fast_encoder import fast_encoder
        from vjepa_tune.models.loading import check_crop_size
        from vjepa_tune.models.strategies import unwrap

        self.device = _pick_device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.data = data
        self.run_dir = run_dir
        self.config = config
        """The run's full configuration, when loaded from a run folder."""
        self.crop_size = check_crop_size(model, data.crop_size)
        self._autocast = _autocast_dtype(precision, self.device)
        self._encoder = fast_encoder(unwrap(self.model).vjepa2.encoder)
        """The frozen backbone's fast forward (models/fast_encoder.py); None where the backbone has LoRA."""
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None

    def prepare(self, clips: int) -> None:
        """Compile the backbone's forward when about `clips` clips make that pay (`should_compile`); `predict`,
        `predict_windows` and `evaluate_run` call it with their clip count."""
        from vjepa_tune.models.fast_encoder import should_compile

        if self._encoder is not None and self._compiled is None and should_compile(self.device, clips):
            self._compiled = self._encoder.compiled()

    def view_spec(self, num_clips: int = 1, num_crops: int = 1) -> ViewSpec:
        """How this run's clips are cut, with `num_clips` temporal clips x `num_crops` spatial crops."""
        from vjepa_tune.evaluation.views import ViewSpec

        return ViewSpec.from_data(self.data, self.crop_size, num_clips, num_crops)

    def logits(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) as float32 on the CPU for clips (B, T, 3, crop, crop): normalised, or uint8 before
        normalisation (normalised here, on the device)."""
        import torch

        from vjepa_tune.data.transforms import normalize_clips
        from vjepa_tune.models.strategies import classify_features

        inputs = normalize_clips(pixel_values_videos.to(self.device))
        autocast = (torch.autocast(self.device.type, dtype=self._autocast) if self._autocast is not None
                    else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            encoder = self._compiled or self._encoder
            if encoder is None:
                out = self.model(pixel_values_videos=inputs).logits
            else:
                out = classify_features(self.model, encoder(inputs))
        return out.float().cpu()

    def predict_frames(self, frames: torch.Tensor) -> Prediction:
        """Label one clip given as decoded frames (T, H, W, 3) uint8, all of them used as the clip."""
        import torch

        from vjepa_tune.data.transforms import ClipTransform

        clip = ClipTransform(self.crop_size, train=False)(torch.as_tensor(frames))
        probs = torch.softmax(self.logits(clip[None]), dim=-1)[0]
        return Prediction(None, self.classes, probs)

    def predict(
        self,
        videos: str | Path | Sequence[str | Path],
        *,
        num_clips: int = 1,
        num_crops: int = 1,
        batch_size: int = 8,
        num_workers: int = 0,
        progress: bool = True,
    ) -> Prediction | list[Prediction]:
        """Label whole videos. One file gives one `Prediction` (raising `UnreadableVideo` if it cannot be
        read); a folder or a list gives a list, in which an unreadable video carries its `error`."""
        from vjepa_tune.evaluation.views import ClipRequest, ViewDataset, predict_views

        paths, single = _expand(videos)
        requests = [ClipRequest(p) for p in paths]
        dataset = ViewDataset(requests, self.view_spec(num_clips, num_crops), normalize=False)
        self.prepare(len(requests) * num_clips * num_crops)
        result = predict_views(
            self.logits,
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            desc="predicting",
            unit="video",
            progress=progress,
        )
        predictions = [
            Prediction(p, self.classes, result.probs.get(i), result.errors.get(i)) for i, p in enumerate(paths)
        ]
        return _single_or_list(predictions, single)

    def predict_windows(
        self,
        videos: str | Path | Sequence[str | Path],
        *,
        window_s: float,
        stride_s: float | None = None,
        min_score: float = DEFAULT_MIN_SCORE,
        min_length_s: float = 0.0,
        num_crops: int = 1,
        batch_size: int = 8,
        num_workers: int = 0,
        progress: bool = True,
    ) -> Prediction | list[Prediction]:
        """Action detection: label windows of `window_s` seconds every `stride_s` (default: half a window)
        and merge them into segments (see `merge_segments`). Returns as `predict` does."""
        import torch

        from vjepa_tune.data.video import UnreadableVideo, VideoInfo, probe_video
        from vjepa_tune.evaluation.views import ClipRequest, ViewDataset, predict_views

        stride_s = window_s / 2 if stride_s is None else stride_s
        _check_window(window_s, stride_s)
        paths, single = _expand(videos)
        infos: dict[Path, VideoInfo] = {}
        errors: dict[int, str] = {}
        requests: list[ClipRequest] = []
        owners: list[int] = []
        flags: list[bool] = []
        for n, path in enumerate(paths):
            try:
                infos[path] = info = infos.get(path) or probe_video(path)
            except UnreadableVideo as exc:
                errors[n] = exc.reason
                continue
            for start, end, whole in window_bounds(info.duration_s, window_s, stride_s):
                requests.append(ClipRequest(path, (start, end)))
                owners.append(n)
                flags.append(whole)
        dataset = ViewDataset(requests, self.view_spec(1, num_crops), infos, normalize=False)
        self.prepare(len(requests) * num_crops)
        result = predict_views(
            self.logits,
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            desc="predicting windows",
            unit="window",
            progress=progress,
        )
        by_video: dict[int, list[WindowPrediction]] = {}
        for i, (request, n) in enumerate(zip(requests, owners, strict=True)):
            if i in result.errors:
                errors.setdefault(n, result.errors[i])
            else:
                start, end = request.window  # type: ignore[misc]
                by_video.setdefault(n, []).append(WindowPrediction(start, end, result.probs[i], flags[i]))
        predictions = []
        for n, path in enumerate(paths):
            if n in errors:
                predictions.append(Prediction(path, self.classes, None, errors[n]))
                continue
            windows, duration = by_video[n], infos[path].duration_s
            segments = merge_segments(
                windows, self.classes, min_score=min_score, min_length_s=min_length_s, duration_s=duration
            )
            mean = torch.stack([w.probs for w in windows]).mean(dim=0)
            predictions.append(Prediction(path, self.classes, mean, None, duration, windows, segments))
        return _single_or_list(predictions, single)


def _expand(videos: str | Path | Sequence[str | Path]) -> tuple[list[Path], bool]:
    if isinstance(videos, (str, Path)):
        single = not Path(videos).expanduser().is_dir()
        videos = [videos]
    else:
        single = False
    return collect_videos(videos), single


def _single_or_list(predictions: list[Prediction], single: bool) -> Prediction | list[Prediction]:
    if not single:
        return predictions
    only = predictions[0]
    if only.error is not None:
        from vjepa_tune.data.video import UnreadableVideo

        raise UnreadableVideo(only.path or Path("?"), only.error)
    return only


def load_run(
    run_dir: str | Path,
    *,
    device: str | torch.device | None = None,
    precision: str = "auto",
    log: Log = lambda _: None,
) -> Predictor:
    """Rebuild a finished run's best model for prediction: `load_run(RUN_DIR).predict("video.mp4")`.

    `device` defaults to the GPU when there is one; `precision` auto is bf16 autocast on a GPU that supports
    it and fp32 elsewhere, as in training.
    """
    from vjepa_tune.training.setup import load_run_model

    run_dir = Path(run_dir)
    model, cfg, classes = load_run_model(run_dir, log=log)
    return Predictor(model, classes, cfg.data, run_dir=run_dir, config=cfg, device=device, precision=precision)


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class Evaluation:
    metrics: dict[str, Any]
    out_dir: Path

    def summary(self) -> str:
        m = self.metrics
        top5 = f", top-5 {m['top5']:.4f}" if m.get("top5") is not None else ""
        skipped = f"; {m['skipped_videos']} unreadable videos left out" if m["skipped_videos"] else ""
        return (
            f"{m['evaluated_on']} ({m['num_videos']} videos, {m['num_clips']} clips x {m['num_crops']} "
            f"crops): top-1 {m['top1']:.4f}{top5}, mean class acc {m['mean_class_acc']:.4f}, macro-F1 "
            f"{m['macro_f1']:.4f}{skipped}; records in {self.out_dir}"
        )


def _run_split(run_dir: Path, cfg: TrainConfig, split: str, root: Path | None) -> tuple[list[Any], list[str]]:
    from vjepa_tune.data.splits import splits_from_json
    from vjepa_tune.tracking.records import SPLITS_FILE

    if split not in ("train", "val", "test"):
        raise BadInput(f"--split must be val, test or train, got {split!r}.")
    path = run_dir / SPLITS_FILE
    if not path.is_file():
        raise BadInput(f"{run_dir} has no {SPLITS_FILE}: it is not a vjepa-tune run folder, or it is unfinished.")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}") from None
    base = root if root is not None else cfg.data.root
    if base is None:
        raise BadInput(f"{run_dir}/config.yaml names no data.root; pass --split_root DIR, where the data set is.")
    splits = splits_from_json(recorded, Path(base), source=str(path))
    samples = dict(splits.items())[split]
    if not samples:
        raise BadInput(f"the {split} split of {run_dir} holds no videos; choose another --split.")
    if not any(s.path.exists() for s in samples):
        raise BadInput(
            f"none of the {len(samples)} {split} videos of {run_dir} exist under {base} (e.g. "
            f"{samples[0].path}); if the data set moved, pass its new folder with --split_root DIR."
        )
    return samples, list(recorded["classes"])


def _other_dataset(data: DataConfig, classes: list[str], seed: int) -> tuple[list[Any], str]:
    from vjepa_tune.config import validate_data
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.data.sources import read_dataset

    index = read_dataset(validate_data(data), seed=seed)
    unknown = [name for name in index.classes if name not in classes]
    if unknown:
        raise BadInput(
            f"--data.root {index.root}: classes {', '.join(map(repr, unknown[:5]))} are not among the run's "
            f"classes ({', '.join(classes)}); the model can only be scored on classes it was trained on."
        )
    remap = {i: classes.index(name) for i, name in enumerate(index.classes)}
    samples = [Sample(s.path, remap[s.label], s.id, s.group, s.official_split) for s in index.samples]
    if not samples:
        raise BadInput(f"--data.root {index.root}: no videos found to evaluate on.")
    return samples, str(index.root)


def evaluate_run(
    run_dir: str | Path,
    *,
    split: str = "test",
    num_clips: int = 1,
    num_crops: int = 1,
    data: DataConfig | None = None,
    split_root: Path | None = None,
    out_dir: Path | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = True,
    log: Log = print,
) -> Evaluation:
    """Score a run on its own `split` (the videos of its splits.json), or on every video of `data`.

    Writes metrics.json, confusion.csv/png and predictions.csv (one row per video) into `out_dir` (default
    RUN_DIR/evaluation/<split or data set>-<clips>x<crops>).
    """
    import torch

    from vjepa_tune.evaluation.metrics import classification_metrics, write_confusion
    from vjepa_tune.evaluation.views import ClipRequest, ViewDataset, ViewPredictions, predict_views
    from vjepa_tune.tracking.records import versions, write_json_atomic
    from vjepa_tune.training import distributed
    from vjepa_tune.training.loop import make_accelerator

    accelerator = make_accelerator("auto")  # starts the process group under torchrun / accelerate launch
    if device is None and accelerator.num_processes > 1:
        device = accelerator.device
    if not distributed.is_main():
        log, progress = (lambda _: None), False
    run_dir = Path(run_dir)
    predictor = load_run(run_dir, device=device, precision=precision)
    spec = predictor.view_spec(num_clips, num_crops)
    classes = predictor.classes
    seed = predictor.config.seed if predictor.config is not None else 42
    if data is not None:
        samples, source = _other_dataset(data, classes, seed=seed)
        evaluated_on, name = f"data set {source}", Path(source).name or "data"
    else:
        from vjepa_tune.tracking.records import read_config_yaml

        samples, recorded = _run_split(run_dir, read_config_yaml(run_dir / "config.yaml"), split, split_root)
        if recorded != classes:
            raise BadInput(f"{run_dir}: splits.json classes {recorded} differ from the model's {classes}.")
        evaluated_on, name = f"{split} split", split
    out_dir = Path(out_dir) if out_dir is not None else run_dir / EVALUATION_DIR / f"{name}-{num_clips}x{num_crops}"

    mine = distributed.shard(list(range(len(samples))))  # each process a contiguous part; all of it with one
    dataset = ViewDataset([ClipRequest(samples[i].path) for i in mine], spec, normalize=False)
    predictor.prepare(len(mine) * num_clips * num_crops)
    local = predict_views(
        predictor.logits,
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        desc=f"evaluating {name}",
        unit="video",
        progress=progress,
    )
    result = ViewPredictions(probs={}, errors={})
    for probs, errors in distributed.gather(({mine[k]: v.cpu() for k, v in local.probs.items()},
                                             {mine[k]: r for k, r in local.errors.items()})):
        result.probs.update(probs)
        result.errors.update(errors)
    scored = sorted(result.probs)
    if not scored:
        raise BadInput(f"none of the {len(samples)} videos could be read; check them with `vjepa-tune data check`.")
    for i, reason in sorted(result.errors.items()):
        log(f"skipping unreadable video {samples[i].path}: {reason}")
    labels = [samples[i].label for i in scored]
    probs = torch.stack([result.probs[i] for i in scored])
    scores = classification_metrics(labels, probs, classes)
    metrics = {
        "run_dir": str(run_dir),
        "evaluated_on": evaluated_on,
        "split": split if data is None else None,
        "num_clips": num_clips,
        "num_crops": num_crops,
        "num_videos": len(scored),
        "skipped_videos": len(result.errors),
        "skipped": [{"id": samples[i].id, "reason": r} for i, r in sorted(result.errors.items())],
        **scores,
        "versions": versions(),
    }
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "metrics.json", metrics)
        write_confusion(out_dir, scores["confusion"], classes)
        _write_eval_csv(out_dir / "predictions.csv", samples, result.probs, result.errors, classes)
    distributed.barrier()
    return Evaluation(metrics, out_dir)


def _write_eval_csv(
    path: Path,
    samples: Sequence[Any],
    probs: dict[int, torch.Tensor],
    errors: dict[int, str],
    classes: list[str],
) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "path", "label", "predicted", "score", "correct", "error", *(f"p_{c}" for c in classes)])
        for i, sample in enumerate(samples):
            truth = classes[sample.label]
            if i in probs:
                p = probs[i]
                best = int(p.argmax())
                writer.writerow(
                    [
                        sample.id,
                        sample.path,
                        truth,
                        classes[best],
                        f"{float(p[best]):.6f}",
                        int(best == sample.label),
                        "",
                        *(f"{v:.6f}" for v in p.tolist()),
                    ]
                )
            else:
                writer.writerow([sample.id, sample.path, truth, "", "", "", errors.get(i, ""), *([""] * len(classes))])


# ------------------------------------------------------------------------------------------------ outputs
def predictions_json(
    predictions: Sequence[Prediction],
    *,
    top_k: int = DEFAULT_TOP_K,
    run_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    classes = predictions[0].classes if predictions else []
    return {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "classes": classes,
        "settings": settings or {},
        "videos": [p.as_dict(top_k) for p in predictions],
    }


def write_predictions_csv(path: Path, predictions: Sequence[Prediction], top_k: int = DEFAULT_TOP_K) -> Path:
    """One table: a `video` row per video, `window` and `segment` rows in window mode, `error` rows."""
    k = max(1, min(top_k, len(predictions[0].classes))) if predictions else top_k
    header = ["path", "kind", "start_s", "end_s", "label", "score"]
    header += [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "prob")]
    header.append("note")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for p in predictions:
            if p.error is not None:
                writer.writerow([p.path, "error", "", "", "", "", *([""] * (2 * k)), p.error])
                continue
            writer.writerow(
                [
                    p.path,
                    "video",
                    "",
                    _num(p.duration_s),
                    p.label,
                    _num(p.score),
                    *_flat_top_k(p.probs, p.classes, k),
                    "",
                ]
            )
            for w in p.windows:
                best = int(w.probs.argmax())
                note = "the video is shorter than one window: this window covers it" if w.whole_video else ""
                writer.writerow(
                    [
                        p.path,
                        "window",
                        _num(w.start_s),
                        _num(w.end_s),
                        p.classes[best],
                        _num(float(w.probs[best])),
                        *_flat_top_k(w.probs, p.classes, k),
                        note,
                    ]
                )
            for s in p.segments:
                writer.writerow(
                    [
                        p.path,
                        "segment",
                        _num(s.start_s),
                        _num(s.end_s),
                        s.label,
                        _num(s.score),
                        *([""] * (2 * k)),
                        f"{s.num_windows} windows",
                    ]
                )
    return path


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _flat_top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[str]:
    cells: list[str] = []
    for label, p in _top_k(probs, classes, k):
        cells += [label, f"{p:.6f}"]
    return cells + [""] * (2 * k - len(cells))


def plot_timeline(prediction: Prediction, out_png: Path, min_score: float | None = None) -> Path:
    """Class probabilities over time (each window drawn over the time it speaks for) above the segments;
    `min_score`, when given, is drawn as the line a window's top label must reach to join a segment."""
    import torch
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not prediction.windows:
        raise ValueError("plot_timeline needs a window-mode prediction.")
    classes = prediction.classes
    spans = window_spans(prediction.windows, prediction.duration_s)
    probs = torch.stack([w.probs for w in prediction.windows])
    shown = list(range(len(classes))) if len(classes) <= 10 else sorted(set(probs.argmax(dim=1).tolist()))
    colour = {c: f"C{n % 10}" for n, c in enumerate(shown)}
    end = spans[-1][1]

    fig = Figure(figsize=(11, 4.0))
    prob_ax, seg_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for c in shown:
        xs = [t for lo, hi in spans for t in (lo, hi)]
        ys = [float(p) for p in probs[:, c] for _ in range(2)]
        prob_ax.plot(xs, ys, color=colour[c], label=classes[c])
    if min_score is not None:
        prob_ax.axhline(min_score, color="black", linestyle=":", linewidth=1, label="minimum score")
    prob_ax.set(ylabel="probability", ylim=(0, 1.02), xlim=(0, end))
    prob_ax.grid(alpha=0.3)
    prob_ax.legend(fontsize="small", loc="upper right", ncol=min(4, len(shown)))
    name = prediction.path.name if prediction.path is not None else "video"
    prob_ax.set_title(f"{name}: {len(prediction.windows)} windows, {len(prediction.segments)} segments")
    index = {c: i for i, c in enumerate(classes)}
    for s in prediction.segments:
        seg_ax.broken_barh([(s.start_s, s.length_s)], (0, 1), color=colour.get(index[s.label], "grey"))
        seg_ax.text(
            s.start_s + s.length_s / 2,
            0.5,
            f"{s.label}\n{s.score:.2f}",
            ha="center",
            va="center",
            fontsize="x-small",
        )
    seg_ax.set(yticks=[], xlabel="time (s)", ylabel="segments")
    if not prediction.segments:
        seg_ax.legend(handles=[Patch(color="white", label="no segment above the minimum score")], loc="center")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    return out_png


def _timeline_paths(predictions: Sequence[Prediction], folder: Path) -> dict[int, Path]:
    used: set[str] = set()
    out = {}
    for i, p in enumerate(predictions):
        if not p.windows or p.path is None:
            continue
        stem, n = p.path.stem, 1
        name = f"{stem}.timeline.png"
        while name in used:
            n += 1
            name = f"{stem}-{n}.timeline.png"
        used.add(name)
        out[i] = folder / name
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _describe(p: Prediction, top_k: int) -> str:
    if p.error is not None:
        return f"{p.path}: cannot be read: {p.error}"
    best = ", ".join(f"{label} {prob:.3f}" for label, prob in p.top_k(top_k))
    if not p.windows:
        return f"{p.path}: {best}"
    if p.windows[0].whole_video:
        lines = [f"{p.path}: {p.duration_s:.2f} s, shorter than one window: one window covers it"]
    else:
        lines = [f"{p.path}: {p.duration_s:.2f} s, {len(p.windows)} windows"]
    for s in p.segments:
        windows = _count(s.num_windows, "window")
        lines.append(f"  {s.start_s:8.2f} - {s.end_s:8.2f} s  {s.label} ({s.score:.3f}, {windows})")
    if not p.segments:
        lines.append("  no segment: no window's top label reached --min_score")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ commands
def _build_predict(p: Any) -> None:
    p.add_argument("run_dir", type=Path, help="A finished run folder (made by train or compare).")
    p.add_argument("videos", type=str, nargs="+", help="Video files and folders (searched recursively).")
    p.add_argument("--top_k", type=int, default=DEFAULT_TOP_K, help="Labels shown per video or window.")
    p.add_argument(
        "--window",
        type=float | None,
        default=None,
        help="Window length in seconds: label a long video window by window (action detection).",
    )
    p.add_argument(
        "--stride",
        type=float | None,
        default=None,
        help="Seconds between window starts (default: half a window).",
    )
    p.add_argument(
        "--min_score",
        type=float,
        default=DEFAULT_MIN_SCORE,
        help="A window joins a segment only when its top label has at least this probability.",
    )
    p.add_argument("--min_length", type=float, default=0.0, help="Drop segments shorter than this (seconds).")
    p.add_argument("--num_clips", type=int, default=1, help="Temporal clips averaged per video (not windows).")
    p.add_argument("--num_crops", type=int, default=1, help="Spatial crops averaged per clip: 1 or 3.")
    p.add_argument("--out", type=Path | None, default=None, help="Write the predictions to FILE.csv or FILE.json.")
    p.add_argument("--plot", type=bool, default=False, help="With --window: a timeline PNG per video.")
    p.add_argument(
        "--plot_dir",
        type=Path | None,
        default=None,
        help="Folder for the timeline PNGs (default: the folder of --out, else the current one).",
    )
    p.add_argument("--json", type=bool, default=False, help="Print the predictions as JSON.")
    p.add_argument("--batch_size", type=int, default=8, help="Clips per forward pass.")
    p.add_argument("--num_workers", type=int, default=0, help="Decoding processes.")
    p.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:1 (default: a GPU if any).")
    p.add_argument("--precision", type=str, default="auto", help="auto, fp32, bf16 or fp16.")


def _run_predict(a: Any) -> int:
    out = Path(a.out) if a.out is not None else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise BadInput(f"--out {out}: the file name must end in .csv or .json.")
    if a.top_k < 1:
        raise BadInput(f"--top_k must be >= 1, got {a.top_k}.")
    if a.plot and a.window is None:
        raise BadInput("--plot draws a timeline of windows: give --window SECONDS too.")
    if a.stride is not None and a.window is None:
        raise BadInput("--stride needs --window SECONDS.")
    paths = collect_videos(a.videos)
    if not paths:
        raise BadInput(f"no video files found in {', '.join(a.videos)}.")
    predictor = load_run(a.run_dir, device=a.device, precision=a.precision)
    common = {"num_crops": a.num_crops, "batch_size": a.batch_size, "num_workers": a.num_workers}
    if a.window is not None:
        predictions = predictor.predict_windows(
            paths,
            window_s=a.window,
            stride_s=a.stride,
            min_score=a.min_score,
            min_length_s=a.min_length,
            **common,
        )
    else:
        predictions = predictor.predict(paths, num_clips=a.num_clips, **common)
    assert isinstance(predictions, list)
    stride = a.stride if a.stride is not None or a.window is None else a.window / 2
    settings = {
        "top_k": a.top_k,
        "window_s": a.window,
        "stride_s": stride,
        "min_score": a.min_score,
        "min_length_s": a.min_length,
        "num_clips": a.num_clips,
        "num_crops": a.num_crops,
    }
    document = predictions_json(predictions, top_k=a.top_k, run_dir=Path(a.run_dir), settings=settings)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        else:
            write_predictions_csv(out, predictions, a.top_k)
    if a.plot:
        folder = Path(a.plot_dir) if a.plot_dir is not None else (out.parent if out is not None else Path.cwd())
        for i, png in _timeline_paths(predictions, folder).items():
            plot_timeline(predictions[i], png, a.min_score)
    failed = [p for p in predictions if p.error is not None]
    for p in failed:
        print(f"vjepa-tune predict: cannot read {p.path}: {p.error}", file=sys.stderr)
    if a.json:
        print(json.dumps(document, indent=2))
    else:
        for p in predictions:
            if p.error is None:
                print(_describe(p, a.top_k))
        if out is not None:
            print(f"predictions written to {out}")
    if len(failed) == len(predictions):
        raise BadInput(f"none of the {len(predictions)} videos could be read.")
    return 0


def _build_evaluate(p: Any) -> None:
    p.add_argument("run_dir", type=Path, help="A finished run folder (made by train or compare).")
    p.add_argument("--split", type=str, default="test", help="The run's own split to score: val, test or train.")
    p.add_argument("--num_clips", type=int, default=1, help="Temporal clips per video.")
    p.add_argument("--num_crops", type=int, default=1, help="Spatial crops per clip: 1 (centre) or 3.")
    p.add_argument(
        "--split_root",
        type=Path | None,
        default=None,
        help="Where the run's data set is now, if it moved since training.",
    )
    p.add_class_arguments(DataConfig, "data", sub_configs=True)
    p.add_argument(
        "--out",
        type=Path | None,
        default=None,
        help="Folder for the results (default RUN_DIR/evaluation/<split>-<clips>x<crops>).",
    )
    p.add_argument("--json", type=bool, default=False, help="Print the metrics as JSON.")
    p.add_argument("--batch_size", type=int, default=8, help="Clips per forward pass.")
    p.add_argument("--num_workers", type=int, default=0, help="Decoding processes.")
    p.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:1 (default: a GPU if any).")
    p.add_argument("--precision", type=str, default="auto", help="auto, fp32, bf16 or fp16.")


_READING_FIELDS = ("root", "format", "list_file", "task", "protocol", "fold")
"""The --data.* flags that say which videos to score; clip settings always come from the run."""


def _run_evaluate(a: Any) -> int:
    from vjepa_tune.config import from_plain
    from vjepa_tune.tracking.records import read_config_yaml

    plain = a.as_dict() if hasattr(a, "as_dict") else dict(vars(a))
    given = from_plain(DataConfig, plain.get("data") or {})
    data = None
    if given.root is not None or given.list_file is not None:
        run_dir = Path(a.run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise BadInput(f"{run_dir} is not a vjepa-tune run folder (no config.yaml in it).")
        data = read_config_yaml(run_dir / "config.yaml").data
        for name in _READING_FIELDS:
            setattr(data, name, getattr(given, name))
    evaluation = evaluate_run(
        a.run_dir,
        split=a.split,
        num_clips=a.num_clips,
        num_crops=a.num_crops,
        data=data,
        split_root=a.split_root,
        out_dir=a.out,
        batch_size=a.batch_size,
        num_workers=a.num_workers,
        device=a.device,
        precision=a.precision,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(evaluation.metrics, indent=2) if a.json else evaluation.summary())
    return 0


def _register() -> None:
    from vjepa_tune.cli import Command, register

    register(
        Command(
            "predict",
            "Label videos with a trained run, whole or window by window.",
            _build_predict,
            _run_predict,
        )
    )
    register(
        Command(
            "evaluate",
            "Score a trained run on its validation or test split, or on another data set.",
            _build_evaluate,
            _run_evaluate,
        )
    )


_register()
