"""`vjepa-tune features`: one array of window features per video, for detection tools and for users who want V-JEPA
2 embeddings (`features.extract` in Python).

The recipe reads top to bottom: check the settings and find the videos, load the model (a hub id, a local folder,
`tiny`, `random:*`, a pretraining run's `RUN/model`, or a trained run with its LoRA merged), probe every video and
plan its windows (`data.windows`), decide what is already written (`data.feature_files`), then run the windows
through the frozen model (`training.window_features`: one decoding pass per video, the fast forward, batches,
background writes; several processes split the videos) and record the set in features.json, with ActionFormer's
config and annotation file for `--format actionformer`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.config import FeaturesConfig, validate_features
from vjepa_tune.data.annotations import DetectionAnnotations, read_annotations, write_annotations
from vjepa_tune.data.feature_files import (
    ANNOTATIONS_FILE,
    FORMAT_VERSION,
    NUMPY_DTYPES,
    ActionFormerValues,
    actionformer_config,
    check_set,
    video_key,
    write_actionformer_config,
    write_set,
    write_video_features,
    written_features,
)
from vjepa_tune.data.transforms import ClipTransform, full_frame_clip
from vjepa_tune.data.video import UnreadableVideo, probe_video
from vjepa_tune.data.window_clips import FrameTransform, VideoJob
from vjepa_tune.data.windows import WindowPlan, plan_windows
from vjepa_tune.errors import BadInput
from vjepa_tune.files import BackgroundWrites
from vjepa_tune.inference.predictor import collect_videos
from vjepa_tune.models.build import build_base_model
from vjepa_tune.models.specs import RANDOM_PREFIX
from vjepa_tune.runs.checkpoint import load_merged_run_model
from vjepa_tune.runs.folder import holds_trained_model, run_hf_model_dir
from vjepa_tune.text import counted, verb
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.records import versions
from vjepa_tune.training import distributed
from vjepa_tune.training.precision import autocast_dtype, choose_device, make_accelerator, precision_label
from vjepa_tune.training.store import format_bytes
from vjepa_tune.training.window_features import (
    WindowEncoder,
    check_feature_settings,
    encode_videos,
    feature_shape,
    rows_per_window,
)

Log = Callable[[str], None]
OutputFormat = Literal["plain", "actionformer"]
FEATURES_LOG_FILE = "features.log"


# ------------------------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class FeatureModel:
    """The model features come from, as one plain transformers model, and what the settings take from it."""

    model: VJEPA2ForVideoClassification
    name: str
    """How the set records it: the spec as given, or the resolved folder."""
    kind: Literal["model", "pretraining run", "trained run"]
    frames_per_clip: int
    """Frames a window is sampled to unless --frames_per_clip says otherwise: a trained run's, else the config's."""
    trained_pooler: bool


def load_feature_model(source: str | Path, seed: int = 42, log: Log = lambda _: None) -> FeatureModel:
    """What `MODEL_OR_RUN` names: a folder holding config.json is a Hugging Face model; a run folder whose `model/`
    holds one (a pretraining run) is that model; a run of `train` is its best model with LoRA folded in; anything
    else is a model spec (`tiny`, `random:*`, a hub id), built as `train` builds it with `seed`."""
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        hf_folder = run_hf_model_dir(path)
        if hf_folder is not None:
            model = build_base_model(str(hf_folder), ["feature"], seed, log)
            return FeatureModel(model, str(hf_folder.resolve()), "pretraining run", model.config.frames_per_clip,
                                False)
        if holds_trained_model(path):
            model, cfg, _ = load_merged_run_model(path, log)
            return FeatureModel(model, str(path.resolve()), "trained run", cfg.data.frames_per_clip, True)
        raise BadInput(f"{path} is neither a Hugging Face model folder (no config.json) nor a vjepa-tune run folder "
                       "(no model/config.json of a pretraining run, no model/model.json of a trained run).")
    model = build_base_model(text, ["feature"], seed, log)
    name = str(path.resolve()) if path.is_dir() else text
    if text.startswith(RANDOM_PREFIX):
        name = f"{text} (seed {seed})"
    return FeatureModel(model, name, "model", model.config.frames_per_clip, False)


# ------------------------------------------------------------------------------------------------ videos and windows
@dataclass(frozen=True)
class Skipped:
    video: Path
    reason: str


@dataclass
class Plan:
    """Every video to extract, with its key and windows; the ones that cannot be, with their reasons."""

    jobs: list[VideoJob]
    keys: dict[int, str]
    skipped: list[Skipped] = field(default_factory=list)


def find_videos(inputs: Sequence[str | Path]) -> tuple[list[Path], Path]:
    """The videos named or found under `inputs` (`inference.collect_videos`) and the folder their keys are
    relative to: the common folder of the inputs (an input folder itself when there is one)."""
    if not inputs:
        raise BadInput("give at least one video file or folder.")
    videos = collect_videos(inputs)
    if not videos:
        raise BadInput(f"no video files found in {', '.join(map(str, inputs))}.")
    roots = [Path(p).expanduser().resolve() for p in inputs]
    base = Path(os.path.commonpath([r if r.is_dir() else r.parent for r in roots]))
    return [v.resolve() for v in videos], base


def plan_videos(videos: Sequence[Path], base: Path, cfg: FeaturesConfig, frames_per_clip: int) -> Plan:
    """Probe each video and lay out its windows; a video that cannot be probed, or that has no whole window (without
    --pad_last), is skipped with its reason. Two videos with one key are refused."""
    owners: dict[str, Path] = {}
    for video in videos:
        key = video_key(video, base)
        if key in owners and owners[key] != video:
            raise BadInput(f"{owners[key]} and {video} would both be written as {key}.npy; rename one, or extract "
                           "them into different --out folders.")
        owners[key] = video
    plan = Plan([], {})
    for video in dict.fromkeys(videos):
        try:
            info = probe_video(video)
        except UnreadableVideo as exc:
            plan.skipped.append(Skipped(video, exc.reason))
            continue
        windows = plan_windows(info, window=cfg.window_frames, stride=cfg.stride_frames,
                               frames_per_clip=frames_per_clip, fps=cfg.fps, pad_last=cfg.pad_last)
        if not windows.windows:
            plan.skipped.append(Skipped(video, f"shorter than one window ({windows.grid.num_frames} frames, "
                                               f"--window_frames {cfg.window_frames}); --pad_last gives it one"))
            continue
        index = len(plan.jobs)
        plan.jobs.append(VideoJob(index, video, info, windows))
        plan.keys[index] = video_key(video, base)
    return plan


def row_times(plan: WindowPlan, rows_each: int) -> tuple[list[float], list[float]]:
    """Start and end (seconds) of every row: a window's span, or for `time` pooling its `rows_each` equal parts."""
    starts, ends = [], []
    for window in plan.windows:
        length = window.end_s - window.start_s
        for part in range(rows_each):
            starts.append(round(window.start_s + length * part / rows_each, 6))
            ends.append(round(window.start_s + length * (part + 1) / rows_each, 6))
    return starts, ends


def frame_transform(cfg: FeaturesConfig, crop_size: int) -> FrameTransform:
    """The model's evaluation transform (resize, centre crop), or the whole frame squashed (`--resize full`); uint8,
    normalised on the device."""
    if cfg.resize == "full":
        return partial(full_frame_clip, crop_size=crop_size, normalize=False)
    return ClipTransform(crop_size, train=False, normalize=False)


# ------------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Extraction:
    """Everything an extraction runs with, decided before any video is decoded."""

    cfg: FeaturesConfig
    model: FeatureModel
    frames_per_clip: int
    crop_size: int
    tokens_per_window: int
    tubelet: int
    device: torch.device
    settings: dict[str, object]

    def shape(self, job: VideoJob) -> tuple[int, ...]:
        return feature_shape(self.cfg.pool, len(job.plan.windows), self.frames_per_clip, self.tubelet,
                             self.tokens_per_window, self.channels)

    @property
    def channels(self) -> int:
        return self.model.model.config.hidden_size * len(self.cfg.layers)

    def metadata(self, job: VideoJob, key: str, shape: tuple[int, ...]) -> dict[str, object]:
        """A video's .json: the settings, its frame grid, window and stride in frames and seconds, each row's time."""
        grid = job.plan.grid
        starts, ends = row_times(job.plan, rows_per_window(self.cfg.pool, self.frames_per_clip, self.tubelet))
        return {
            "format": FORMAT_VERSION,
            "video": str(job.path),
            "key": key,
            **self.settings,
            "fps": grid.fps,
            "source_fps": job.info.fps,
            "resampled": grid.resampled,
            "num_frames": grid.num_frames,
            "source_num_frames": job.info.num_frames,
            "duration_s": job.info.duration_s,
            "window_s": self.cfg.window_frames / grid.fps,
            "stride_s": self.cfg.stride_frames / grid.fps,
            "rows": shape[0],
            "shape": list(shape),
            "axes": ["window", "token", "channel"] if self.cfg.pool == "tokens" else ["row", "channel"],
            "row_start_s": starts,
            "row_end_s": ends,
        }


def prepare(model: str | Path, cfg: FeaturesConfig) -> Extraction:
    """Check the settings, load the model and decide the device; BadInput before any video is decoded."""
    validate_features(cfg)
    device = choose_device(cfg.device)
    compute = autocast_dtype(cfg.precision, device)
    loaded = load_feature_model(model, cfg.seed)  # its log is about a classifier head that features never use
    config = loaded.model.config
    if cfg.pool == "pooler" and not loaded.trained_pooler:
        raise BadInput(f"--pool pooler takes a trained run's attentive pooler (trained on its classes); {model} is a "
                       f"{loaded.kind}, whose pooler was not trained for your task. Pass a run folder of `train`, or "
                       "use --pool mean.")
    frames_per_clip = cfg.frames_per_clip or loaded.frames_per_clip
    crop = int(config.crop_size)
    grid_side = crop // config.patch_size
    layers = list(check_feature_settings(config, cfg.layers, cfg.pool, frames_per_clip))
    settings: dict[str, object] = {
        "model": loaded.name,
        "layers": layers,
        "layer_norm": "the encoder's final layer norm, applied to each layer",
        "pool": cfg.pool,
        "resize": cfg.resize,
        "window_frames": cfg.window_frames,
        "stride_frames": cfg.stride_frames,
        "resample_fps": cfg.fps,
        "pad_last": cfg.pad_last,
        "frames_per_clip": frames_per_clip,
        "crop_size": crop,
        "dtype": cfg.dtype,
        "precision": precision_label(compute),
    }
    return Extraction(cfg, loaded, frames_per_clip, crop,
                      (frames_per_clip // config.tubelet_size) * grid_side * grid_side, config.tubelet_size, device,
                      settings)


# ------------------------------------------------------------------------------------------------ Python
@dataclass
class VideoFeatures:
    """One video's features as `extract` returns them, or why it could not be read."""

    path: Path
    features: np.ndarray | None
    """(rows, channels), or (windows, tokens, channels) for pool `tokens`; None for a video that could not be read."""
    start_s: list[float] = field(default_factory=list)
    """Start of each row, in seconds."""
    end_s: list[float] = field(default_factory=list)
    fps: float | None = None
    """The rate frames were counted at (the source's, or --fps)."""
    error: str | None = None


def extract(
    model: str | Path,
    videos: str | Path | Sequence[str | Path],
    *,
    window_frames: int = 16,
    stride_frames: int = 4,
    fps: float | None = None,
    pad_last: bool = False,
    frames_per_clip: int | None = None,
    resize: Literal["crop", "full"] = "crop",
    pool: Literal["mean", "pooler", "time", "tokens"] = "mean",
    layers: Sequence[int] = (-1,),
    dtype: Literal["fp16", "fp32"] = "fp32",
    batch_size: int = 16,
    num_workers: int = 0,
    device: str | None = None,
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
    seed: int = 42,
    progress: bool = True,
) -> list[VideoFeatures]:
    """Window features of videos, in memory: `extract("tiny", "clips/")[0].features` is a (rows, channels) array.

    `model` is what `vjepa-tune features` takes (a hub id, a local folder, `tiny`, `random:*`, a pretraining or a
    trained run); the settings are its flags (docs/features.md). One `VideoFeatures` per video found, in order; an
    unreadable video, or one shorter than a window, carries its `error`.
    """
    cfg = FeaturesConfig(window_frames=window_frames, stride_frames=stride_frames, fps=fps, pad_last=pad_last,
                         frames_per_clip=frames_per_clip, resize=resize, pool=pool, layers=list(layers),
                         dtype=dtype, batch_size=batch_size, num_workers=num_workers, device=device,
                         precision=precision, seed=seed)
    found, base = find_videos([videos] if isinstance(videos, (str, Path)) else list(videos))
    run = prepare(model, cfg)
    plan = plan_videos(found, base, cfg, run.frames_per_clip)
    results: dict[Path, VideoFeatures] = {s.video: VideoFeatures(s.video, None, error=s.reason) for s in plan.skipped}

    def done(job: VideoJob, rows: np.ndarray | None, error: str | None) -> None:
        starts, ends = row_times(job.plan, rows_per_window(cfg.pool, run.frames_per_clip, run.tubelet))
        results[job.path] = (VideoFeatures(job.path, None, fps=job.plan.grid.fps, error=error) if rows is None else
                             VideoFeatures(job.path, rows, starts, ends, job.plan.grid.fps))

    encoder = WindowEncoder.build(run.model.model, run.device, cfg.precision, cfg.layers, cfg.pool, cfg.dtype,
                                  run.frames_per_clip, sum(len(j.plan.windows) for j in plan.jobs))
    encode_videos(plan.jobs, encoder, frame_transform(cfg, run.crop_size), batch_size=cfg.batch_size,
                  num_workers=cfg.num_workers, done=done, progress=progress)
    return [results[video] for video in dict.fromkeys(found)]


# ------------------------------------------------------------------------------------------------ the command
@dataclass
class FeaturesSummary:
    """What `write_features` wrote."""

    out: Path
    written: int
    already: int
    skipped: list[Skipped]
    rows: int
    elapsed_s: float
    annotations: Path | None = None
    actionformer_config: Path | None = None

    def describe(self) -> str:
        lines = [f"features of {counted(self.written + self.already, 'video')} in {self.out} ({self.written} "
                 f"written now, {self.already} already there; {counted(self.rows, 'row')} written now) in "
                 f"{self.elapsed_s:.1f} s"]
        if self.skipped:
            lines.append(f"{counted(len(self.skipped), 'video')} skipped (listed in features.json)")
        if self.actionformer_config is not None:
            lines.append(f"ActionFormer: config {self.actionformer_config}"
                         + (f", annotations {self.annotations}" if self.annotations else ""))
        return "\n".join(lines)


@contextlib.contextmanager
def output_folder(out: Path) -> Iterator[list[int]]:
    """The output folder for the block; yields a one-item list counting videos written. A folder this call made is
    removed again, with the parents it made, if the block fails before any video was written."""
    made = [p for p in (out, *out.parents) if not p.exists()]
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    written = [0]
    try:
        yield written
    except BaseException:
        if made and not written[0] and distributed.is_main():
            shutil.rmtree(out, ignore_errors=True)
            for parent in made[1:]:
                with contextlib.suppress(OSError):  # only while empty
                    parent.rmdir()
        raise


def write_features(
    model: str | Path,
    videos: Sequence[str | Path],
    out: Path,
    cfg: FeaturesConfig | None = None,
    *,
    output_format: OutputFormat = "plain",
    annotations: Path | None = None,
    progress: bool = True,
    log: Log = print,
) -> FeaturesSummary:
    """Write NAME.npy and NAME.json for every video under `out` (data.feature_files), resuming where a run stopped,
    and features.json for the set; with `output_format="actionformer"` also ActionFormer's config and, given
    `annotations`, the annotation file of the videos written."""
    started = time.perf_counter()
    cfg, out = validate_features(cfg or FeaturesConfig()), Path(out)
    _check_output_format(output_format, annotations, cfg)
    accelerator = make_accelerator(cfg.precision)  # starts the process group under torchrun / accelerate launch
    if cfg.device is None and accelerator.num_processes > 1:
        cfg = replace(cfg, device=str(accelerator.device))
    if not distributed.is_main():
        log, progress = (lambda _: None), False
    found, base = find_videos(videos)
    truth = read_annotations(annotations) if annotations is not None else None
    run = prepare(model, cfg)
    plan = distributed.broadcast(plan_videos(found, base, cfg, run.frames_per_clip) if distributed.is_main() else None)
    if truth is not None and not set(truth.videos) & set(plan.keys.values()):
        raise BadInput(f"no video of {annotations} is among the videos found (annotation keys such as "
                       f"{next(iter(truth.videos), '?')!r}; video keys such as {next(iter(plan.keys.values()), '?')!r}"
                       f": a key is the video's path under {base} without its extension).")
    todo = _still_to_write(out, run, plan, log)

    with output_folder(out) as written:
        failed, counts = _extract_and_write(out, run, plan, distributed.shard(todo), written, progress, log)
        skipped = plan.skipped + failed
        to_write, failed_paths = {job.index for job in todo}, {s.video for s in failed}
        done_before = [job for job in plan.jobs if job.index not in to_write]
        kept = [job for job in plan.jobs if job.index not in to_write or job.path not in failed_paths]
        if not kept:
            raise BadInput(f"no video gave features: {counted(len(skipped), 'video')} skipped, e.g. "
                           f"{skipped[0].video}: {skipped[0].reason}.")
        summary = FeaturesSummary(out, sum(n for n, _ in counts), len(done_before), skipped,
                                  sum(r for _, r in counts), time.perf_counter() - started)
        if distributed.is_main():
            _record_set(out, run, plan, kept, skipped, summary, output_format, truth, annotations, log)
        distributed.barrier()
    return summary


def _check_output_format(output_format: OutputFormat, annotations: Path | None, cfg: FeaturesConfig) -> None:
    if output_format not in ("plain", "actionformer"):
        raise BadInput(f"--format {output_format!r} is not one of plain, actionformer.")
    if annotations is not None and output_format != "actionformer":
        raise BadInput("--annotations writes the annotation file for ActionFormer: give --format actionformer too.")
    if output_format == "actionformer" and cfg.pool not in ("mean", "pooler"):
        raise BadInput(f"--format actionformer needs one row per window (--pool mean or pooler); --pool {cfg.pool} "
                       "gives several.")


def _still_to_write(out: Path, run: Extraction, plan: Plan, log: Log) -> list[VideoJob]:
    """The videos whose files are not complete in `out` yet (other settings there are refused), once the disk is
    known to hold them; said in the log with the skipped videos."""
    check_set(out, run.settings)
    todo = [job for job in plan.jobs
            if not written_features(out, plan.keys[job.index], run.shape(job), run.cfg.dtype, run.settings)]
    need = sum(math.prod(run.shape(job)) for job in todo) * np.dtype(NUMPY_DTYPES[run.cfg.dtype]).itemsize
    free = shutil.disk_usage(_existing_parent(out)).free
    if need > 0.95 * free:
        raise BadInput(f"the features need about {format_bytes(need)} but {out} has {format_bytes(free)} free"
                       + (" (--pool tokens keeps every token; --pool mean or time keeps a fraction)."
                          if run.cfg.pool == "tokens" else "; choose another --out or --dtype fp16."))
    windows = sum(len(job.plan.windows) for job in todo)
    log(f"features: {counted(len(todo), 'video')} to extract ({counted(windows, 'window')}, about "
        f"{format_bytes(need)}) with {run.model.kind} {run.model.name}, {len(plan.jobs) - len(todo)} already in "
        f"{out}, {len(plan.skipped)} skipped")
    for skipped in plan.skipped:
        log(f"skipping {skipped.video}: {skipped.reason}")
    return todo


def _extract_and_write(out: Path, run: Extraction, plan: Plan, mine: list[VideoJob], written: list[int],
                       progress: bool, log: Log) -> tuple[list[Skipped], list[tuple[int, int]]]:
    """This process's videos extracted and written (on background threads); returns the videos that failed on any
    process, and (videos, rows) written by each process."""
    failed: list[Skipped] = []
    rows = 0
    cfg = run.cfg
    encoder = WindowEncoder.build(run.model.model, run.device, cfg.precision, cfg.layers, cfg.pool, cfg.dtype,
                                  run.frames_per_clip, sum(len(job.plan.windows) for job in mine))
    with BackgroundWrites(threads=2, limit=8, name="feature-writer") as writes:

        def done(job: VideoJob, array: np.ndarray | None, error: str | None) -> None:
            nonlocal rows
            if array is None:
                failed.append(Skipped(job.path, error or "could not be read"))
                log(f"skipping {job.path}: {error}")
                return
            key = plan.keys[job.index]
            writes.submit(partial(write_video_features, out, key, array, run.metadata(job, key, tuple(array.shape))))
            written[0] += 1
            rows += array.shape[0]

        encode_videos(mine, encoder, frame_transform(cfg, run.crop_size), batch_size=cfg.batch_size,
                      num_workers=cfg.num_workers, done=done, progress=progress)
    gathered = distributed.gather((failed, written[0], rows))
    if len(gathered) > 1:
        log(f"features: {counted(sum(n for _, n, _ in gathered), 'video')} written by {len(gathered)} processes "
            f"({', '.join(str(n) for _, n, _ in gathered)})")
    return [s for part, _, _ in gathered for s in part], [(n, r) for _, n, r in gathered]


def _record_set(out: Path, run: Extraction, plan: Plan, kept: list[VideoJob], skipped: list[Skipped],
                summary: FeaturesSummary, output_format: OutputFormat, truth: DetectionAnnotations | None,
                annotations: Path | None, log: Log) -> None:
    """features.json, ActionFormer's files for `--format actionformer`, and the console log."""
    values = _actionformer_values(run, kept)
    write_set(out, {
        "format": FORMAT_VERSION, **run.settings,
        "actionformer": values.as_dict() if values is not None else None,
        "num_videos": len(kept),
        "videos": [{"key": plan.keys[job.index], "video": str(job.path), "rows": run.shape(job)[0]} for job in kept],
        "skipped": [{"video": str(s.video), "reason": s.reason} for s in skipped],
        "versions": versions(),
    })
    if output_format == "actionformer" and values is not None:
        summary.annotations, summary.actionformer_config = _write_actionformer(
            out, values, truth, {plan.keys[job.index]: job for job in kept}, annotations, log)
    keep_console_log(out / FEATURES_LOG_FILE)


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _actionformer_values(run: Extraction, jobs: Sequence[VideoJob]) -> ActionFormerValues | None:
    """ActionFormer's config values for these videos: None for poolings that give several rows per window."""
    if run.cfg.pool not in ("mean", "pooler"):
        return None
    rates = {round(job.plan.grid.fps, 6) for job in jobs}
    default_fps = run.cfg.fps if run.cfg.fps is not None else (rates.pop() if len(rates) == 1 else None)
    return ActionFormerValues(run.cfg.stride_frames, run.cfg.window_frames, default_fps, run.channels)


def _write_actionformer(out: Path, values: ActionFormerValues, truth: DetectionAnnotations | None,
                        written: dict[str, VideoJob], source: Path | None, log: Log) -> tuple[Path | None, Path]:
    """The annotation file of the videos written (through `data.annotations`) and the config snippet."""
    annotation_file = None
    label_ids: dict[str, int] = {}
    subsets: list[str] = ["validation", "test"]
    if truth is not None:
        kept = {key: video for key, video in truth.videos.items() if key in written}
        missing = [key for key in truth.videos if key not in written]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            log(f"actionformer: {counted(len(missing), 'annotated video')} of {source} "
                f"{verb(len(missing), 'has', 'have')} no features here, left out of {ANNOTATIONS_FILE}: {shown}")
        for key, video in kept.items():
            rate = written[key].plan.grid.fps
            if values.default_fps is None and abs(video.fps - rate) > 1e-3 * rate:
                log(f"warning: {key}: the annotation's fps {video.fps} is not the rate its features were counted at "
                    f"({rate:g}); ActionFormer places rows with the annotation's. Give --fps to count every video "
                    "at one rate.")
        annotation_file = write_annotations(out / ANNOTATIONS_FILE, DetectionAnnotations(kept, truth.extra))
        chosen = DetectionAnnotations(kept, truth.extra)
        label_ids, subsets = chosen.label_ids(), sorted({video.subset for video in kept.values()})
        if sorted(label_ids.values()) != list(range(len(label_ids))):
            log(f"warning: the label ids of {source} are not 0..{len(label_ids) - 1} ({sorted(label_ids.values())}); "
                "ActionFormer uses each label_id as its class index and trains only on 0..num_classes-1.")
    config = write_actionformer_config(out, actionformer_config(values, out=out, label_ids=label_ids,
                                                                subsets=subsets))
    return annotation_file, config
