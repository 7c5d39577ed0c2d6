"""A trained run ready to label videos: `load_run`, `Predictor.predict` and `Predictor.predict_windows`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from vjepa_tune.config import DataConfig, Precision, TrainConfig
from vjepa_tune.data.sources import VIDEO_EXTENSIONS
from vjepa_tune.errors import BadInput
from vjepa_tune.inference.results import (
    DEFAULT_MIN_SCORE,
    Prediction,
    WindowPrediction,
    _check_window,
    merge_segments,
    window_bounds,
)
from vjepa_tune.runs.folder import read_splits, recorded_train_clip_s

if TYPE_CHECKING:  # torch, torchvision and PyAV load when used: the command line starts without them
    import torch

    from vjepa_tune.data.video import VideoInfo
    from vjepa_tune.evaluation.views import ClipRequest, ViewPredictions, ViewSpec


Log = Callable[[str], None]
CutFinder = Callable[[Path, "VideoInfo", Callable[[int], object] | None], list[float]]
"""(video, its probe, a progress callback taking frames done) -> the times of its cuts, in seconds."""


# ------------------------------------------------------------------------------------------------ predictor
def collect_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given and every video under each folder (recursively, sorted, hidden files skipped).

    A path that does not exist is kept, so that it is reported with the videos that cannot be read.
    """
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
        precision: Precision = "auto",
        train_clip_s: float | None = None,
    ) -> None:
        # here, not at the top: the command line starts without torch
        from vjepa_tune.inference.shots import detect_cuts
        from vjepa_tune.models.adapters import unwrap
        from vjepa_tune.models.fast_encoder import fast_encoder
        from vjepa_tune.models.loading import check_crop_size
        from vjepa_tune.training.precision import autocast_dtype, choose_device

        self.device = choose_device(device)
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        self.data = data
        self.run_dir = run_dir
        self.config = config
        """The run's full configuration, when loaded from a run folder."""
        self.train_clip_s = train_clip_s
        """The time one training clip typically spanned (seconds; `Prediction.train_clip_s`), when known."""
        self.crop_size = check_crop_size(model, data.crop_size)
        self._autocast = autocast_dtype(precision, self.device)
        self._encoder = fast_encoder(unwrap(self.model).vjepa2.encoder)
        """The frozen backbone's fast forward (models/fast_encoder.py); None where the backbone has LoRA."""
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.find_cuts: CutFinder = detect_cuts
        """How `predict_windows` finds a video's cuts (`inference.shots.detect_cuts`); any shot detector with its
        signature may replace it."""

    def prepare(self, clips: int) -> None:
        """Compile the backbone's forward when about `clips` clips make that pay (`should_compile`)."""
        # here, not at the top: the command line starts without torch
        from vjepa_tune.models.fast_encoder import should_compile

        if self._encoder is not None and self._compiled is None and should_compile(self.device, clips):
            self._compiled = self._encoder.compiled()

    def run_views(self, requests: Sequence[ClipRequest], spec: ViewSpec, *, infos: dict[Path, VideoInfo] | None = None,
                  batch_size: int, num_workers: int, desc: str, unit: str, progress: bool) -> ViewPredictions:
        """Averaged probabilities of every request's views (`evaluation.views.predict_views`): views leave the
        workers as uint8, and the backbone is compiled first when the job is long enough (`prepare`)."""
        # here, not at the top: the command line starts without torch
        from vjepa_tune.evaluation.views import ViewDataset, predict_views

        dataset = ViewDataset(requests, spec, infos, normalize=False)
        self.prepare(len(requests) * spec.num_clips * spec.views_per_clip)
        return predict_views(self.logits, dataset, batch_size=batch_size, num_workers=num_workers, desc=desc,
                             unit=unit, progress=progress)

    def flip_caveat(self, flip: bool) -> str | None:
        """What to tell someone who asks for mirrored views (`flip`) of a run that never saw any in training."""
        if not flip or self.data.hflip:
            return None
        run = self.run_dir if self.run_dir is not None else "this run"
        return (f"warning: {run} was trained without horizontal flips (--data.hflip false), so its actions may read "
                "differently mirrored; --flip true averages them in anyway.")

    def view_spec(self, num_clips: int = 1, num_crops: int = 1, flip: bool = False) -> ViewSpec:
        """How this run's clips are cut, with `num_clips` temporal clips x `num_crops` spatial crops, each also
        mirrored with `flip`."""
        # here, not at the top: the command line starts without torch
        from vjepa_tune.evaluation.views import ViewSpec

        return ViewSpec.from_data(self.data, self.crop_size, num_clips, num_crops, flip)

    def logits(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Logits (B, classes) as float32 on the CPU for clips (B, T, 3, crop, crop): normalised, or uint8 before
        normalisation (normalised here, on the device)."""
        # here, not at the top: the command line starts without torch
        import torch

        from vjepa_tune.data.transforms import normalize_clips
        from vjepa_tune.models.adapters import classify_features
        from vjepa_tune.training.precision import autocast

        inputs = normalize_clips(pixel_values_videos.to(self.device))
        with torch.no_grad(), autocast(self._autocast, self.device):
            encoder = self._compiled or self._encoder
            if encoder is None:
                out = self.model(pixel_values_videos=inputs).logits
            else:
                out = classify_features(self.model, encoder(inputs))
        return out.float().cpu()

    def predict_frames(self, frames: torch.Tensor) -> Prediction:
        """Label one clip given as decoded frames (T, H, W, 3) uint8, all of them used as the clip."""
        # here, not at the top: the command line starts without torch
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
        flip: bool = False,
        batch_size: int = 8,
        num_workers: int = 0,
        progress: bool = True,
    ) -> Prediction | list[Prediction]:
        """Label whole videos. One file gives one `Prediction` (raising `UnreadableVideo` if it cannot be
        read); a folder or a list gives a list, in which an unreadable video carries its `error`."""
        # here, not at the top: the command line starts without torch
        from vjepa_tune.data.video import frames_needed
        from vjepa_tune.evaluation.views import ClipRequest

        paths, single = _expand(videos)
        infos = _probe_readable(paths)  # their durations, against the training clips' (`Prediction.long_video`)
        result = self.run_views([ClipRequest(p) for p in paths], self.view_spec(num_clips, num_crops, flip),
                                infos=infos, batch_size=batch_size, num_workers=num_workers, desc="predicting",
                                unit="video", progress=progress)
        clip_frames = frames_needed(self.data.frames_per_clip, self.data.sampling, self.data.frame_step)
        predictions = []
        for i, p in enumerate(paths):
            info = infos.get(p) if i in result.probs else None  # a video that was labelled: its length
            predictions.append(Prediction(
                p, self.classes, result.probs.get(i), result.errors.get(i),
                duration_s=info.duration_s if info else None, train_clip_s=self.train_clip_s,
                num_frames=info.num_frames if info else None, clip_frames=clip_frames))
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
        flip: bool = False,
        batch_size: int = 8,
        num_workers: int = 0,
        progress: bool = True,
        cuts: bool = True,
    ) -> Prediction | list[Prediction]:
        """Action detection: label windows of `window_s` seconds every `stride_s` (default: half a window)
        and merge them into segments (see `merge_segments`). Returns as `predict` does.

        With `cuts`, each video longer than one window is first decoded once to find its cuts (`inference.shots`),
        and the windows are laid out shot by shot, so none mixes two scenes.
        """
        # here, not at the top: the command line starts without torch and PyAV
        import torch

        from vjepa_tune.data.video import UnreadableVideo, probe_video
        from vjepa_tune.evaluation.views import ClipRequest

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
                infos[path] = infos.get(path) or probe_video(path)
            except UnreadableVideo as exc:
                errors[n] = exc.reason
        shot_cuts = _find_cuts(self.find_cuts, paths, infos, errors, window_s, progress) if cuts else {}
        for n, path in enumerate(paths):
            if n in errors:
                continue
            duration = infos[path].duration_s
            for start, end, whole in window_bounds(duration, window_s, stride_s, shot_cuts.get(n, [])):
                requests.append(ClipRequest(path, (start, end)))
                owners.append(n)
                flags.append(whole)
        result = self.run_views(requests, self.view_spec(1, num_crops, flip), infos=infos, batch_size=batch_size,
                                num_workers=num_workers, desc="predicting windows", unit="window", progress=progress)
        by_video: dict[int, list[WindowPrediction]] = {}
        for i, (request, n) in enumerate(zip(requests, owners, strict=True)):
            if i in result.errors:
                errors.setdefault(n, result.errors[i])
            else:
                start, end = request.window  # type: ignore[misc]
                whole_video = flags[i] and not shot_cuts.get(n)
                window = WindowPrediction(start, end, result.probs[i], whole_video, flags[i])
                by_video.setdefault(n, []).append(window)
        predictions = []
        for n, path in enumerate(paths):
            if n in errors:
                predictions.append(Prediction(path, self.classes, None, errors[n]))
                continue
            windows, duration, video_cuts = by_video[n], infos[path].duration_s, shot_cuts.get(n, [])
            segments = merge_segments(windows, self.classes, min_score=min_score, min_length_s=min_length_s,
                                      duration_s=duration, cuts=video_cuts)
            mean = torch.stack([w.probs for w in windows]).mean(dim=0)
            predictions.append(Prediction(path, self.classes, mean, None, duration, windows, segments, video_cuts,
                                          train_clip_s=self.train_clip_s))
        return _single_or_list(predictions, single)


def _find_cuts(find: CutFinder, paths: list[Path], infos: dict[Path, VideoInfo], errors: dict[int, str],
               window_s: float, progress: bool) -> dict[int, list[float]]:
    """The cuts of every readable video longer than one window (shorter ones get one window whatever their
    cuts); a video that fails to decode here is reported in `errors`."""
    from vjepa_tune.data.video import UnreadableVideo  # here, not at the top: the command line starts without PyAV

    todo = [n for n, p in enumerate(paths) if n not in errors and infos[p].duration_s > window_s]
    found: dict[int, list[float]] = {}
    total = sum(infos[paths[n]].num_frames for n in todo)
    with tqdm(total=total, desc="finding cuts", unit="frame", disable=None if progress and todo else True,
              leave=False) as bar:
        for n in todo:
            try:
                found[n] = find(paths[n], infos[paths[n]], bar.update)
            except UnreadableVideo as exc:
                errors[n] = exc.reason
    return found


def _probe_readable(paths: Sequence[Path]) -> dict[Path, VideoInfo]:
    """The probe of every video that can be probed; the others are reported with their reason where they are
    read."""
    from vjepa_tune.data.video import UnreadableVideo, probe_video  # here: the command line starts without PyAV

    infos: dict[Path, VideoInfo] = {}
    for path in dict.fromkeys(paths):
        with contextlib.suppress(UnreadableVideo):
            infos[path] = probe_video(path)
    return infos


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
        from vjepa_tune.data.video import UnreadableVideo  # here: the command line starts without PyAV

        raise UnreadableVideo(only.path or Path("?"), only.error)
    return only


def load_run(
    run_dir: str | Path,
    *,
    device: str | torch.device | None = None,
    precision: Precision = "auto",
    log: Log = lambda _: None,
) -> Predictor:
    """Rebuild a finished run's best model for prediction: `load_run(RUN_DIR).predict("video.mp4")`.

    `device` defaults to the GPU when there is one; `precision` auto is bf16 autocast on a GPU that supports
    it and fp32 elsewhere, as in training.
    """
    from vjepa_tune.runs.checkpoint import load_run_model  # here, not at the top: the command line starts without torch

    run_dir = Path(run_dir)
    model, cfg, classes = load_run_model(run_dir, log=log)
    return Predictor(model, classes, cfg.data, run_dir=run_dir, config=cfg, device=device, precision=precision,
                     train_clip_s=train_clip_seconds(run_dir, cfg.data))


MEASURED_TRAIN_VIDEOS = 16
"""For a run that did not record its training clips' duration: how many of its training videos are probed."""


def train_clip_seconds(run_dir: Path, data: DataConfig) -> float | None:
    """The time one of the run's training clips typically spanned: as the run recorded it (model/model.json), or,
    for runs recorded before it was, measured on up to `MEASURED_TRAIN_VIDEOS` of its training videos (splits.json)
    that are still where they were; None when neither is possible."""
    recorded, seconds = recorded_train_clip_s(run_dir)
    if recorded:
        return seconds
    if data.root is None:
        return None
    # here, not at the top: the command line starts without PyAV
    from vjepa_tune.data.video import UnreadableVideo, probe_video, typical_clip_s

    try:
        splits = read_splits(run_dir, Path(data.root).expanduser())
    except (OSError, ValueError, BadInput):
        return None
    present = [s.path for s in splits.train if s.path.is_file()]
    step = max(1, len(present) // MEASURED_TRAIN_VIDEOS)
    infos = []
    for path in present[::step][:MEASURED_TRAIN_VIDEOS]:
        with contextlib.suppress(UnreadableVideo):
            infos.append(probe_video(path))
    return typical_clip_s(infos, data.frames_per_clip, data.sampling, data.frame_step)
