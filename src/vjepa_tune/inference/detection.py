"""Scoring a run as a temporal action detector, as the field scores detectors (`vjepa-tune evaluate --detection`).

The ground truth is an ActivityNet/THUMOS annotation file (`data.annotations`); its videos are found under a folder
by their keys (`annotated_videos`: KEY plus a video extension). Each video is labelled window by window, exactly as
`predict --window` labels it (`Predictor.predict_windows`: windows laid out shot by shot, each moment labelled by
the mean of the windows covering it), with the run's clip length as the window and half of it as the stride unless
told otherwise.

What a detection proposal is here: each segment `predict --window` reports with `--min_score 0`, i.e. every
maximal stretch of one shot whose moments share their top label, with its label and its score, the mean
probability of that label over the stretch (`inference.results.merge_segments`). Nothing is filtered: every moment
of every video lies in exactly one proposal, and every proposal is scored (`evaluation.detection`: AP per class and
mAP at tIoU 0.3 to 0.7 and their mean, THUMOS14's protocol). A classifier has no background class, so idle time is
labelled with some action too: such proposals are false positives, ranked by their (often lower) scores, and a
stretch of idle time with an action's label on either side of it widens that action's proposal.

Beside the mAP, the share of time labelled right (`evaluation.detection.score_time_labels`): every frame's middle
(at the annotation's fps), in all and inside ground-truth actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.config import Precision
from vjepa_tune.data.annotations import DetectionAnnotations, read_annotations
from vjepa_tune.data.overlap import seen_in_training
from vjepa_tune.data.sources import VIDEO_EXTENSIONS
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.detection import (
    DetectionIntervals,
    DetectionResult,
    ScoredSegment,
    TimeLabelling,
    bootstrap_detection_intervals,
    evaluate_detection,
    score_time_labels,
    time_grid,
)
from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.files import write_json_atomic
from vjepa_tune.inference.evaluate import EVALUATE_LOG_FILE, EVALUATION_DIR
from vjepa_tune.inference.predictor import Log, load_run
from vjepa_tune.inference.results import Prediction
from vjepa_tune.runs.folder import training_videos
from vjepa_tune.text import counted, verb
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.records import versions

PROPOSALS = ("each segment of `predict --window --min_score 0`: a maximal stretch of one shot whose moments share "
             "their top label (the mean of the windows covering them), scored by the mean probability of that label "
             "over the stretch")
DETECTIONS_FILE = "detections.json"
"""Every proposal, in the results layout of ActivityNet's evaluation code (`results: {video: [{label, score,
segment}]}`), to score with other tools."""


def annotated_videos(annotations: DetectionAnnotations, root: Path, source: Path) -> dict[str, Path]:
    """The video of each annotation key: ROOT/KEY.EXT for one video extension (any case). A key with no video, or
    with two, is refused, naming up to five of them."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BadInput(f"--data.root {root} is not a folder; give the folder holding the annotated videos.")
    found: dict[str, Path] = {}
    missing, ambiguous = [], []
    for key in annotations.videos:
        folder, stem = (root / key).parent, Path(key).name
        matches = sorted(p for p in folder.glob(f"{_glob_escape(stem)}.*") if p.suffix.lower() in VIDEO_EXTENSIONS
                         and p.stem == stem) if folder.is_dir() else []
        if not matches:
            missing.append(key)
        elif len(matches) > 1:
            ambiguous.append(f"{key} ({', '.join(p.name for p in matches)})")
        else:
            found[key] = matches[0]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BadInput(f"{counted(len(missing), 'annotated video')} of {source} {verb(len(missing), 'has', 'have')} "
                       f"no file under {root} (a key KEY is found as KEY.mp4, KEY.avi, ...): {shown}.")
    if ambiguous:
        raise BadInput(f"several videos under {root} have the name of one annotation key: {', '.join(ambiguous[:5])}; "
                       "keep one per key.")
    return found


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def proposals(prediction: Prediction) -> list[ScoredSegment]:
    """The detection proposals of one window-mode prediction (see `PROPOSALS`)."""
    return [ScoredSegment(s.label, s.start_s, s.end_s, s.score) for s in prediction.segments]


@dataclass
class DetectionEvaluation:
    """What `evaluate_detection_run` measured and where it wrote it."""

    metrics: dict[str, Any]
    result: DetectionResult
    time_labelling: TimeLabelling
    intervals: DetectionIntervals
    """95% bootstrap intervals over videos (mAP, the share of time labelled right)."""
    out_dir: Path

    def summary(self) -> str:
        m = self.metrics
        shares = self.time_labelling
        in_actions = shares.share_right_in_actions
        skipped = f"; {counted(m['skipped_videos'], 'unreadable video')} left out" if m["skipped_videos"] else ""
        result, intervals = self.result, self.intervals
        at_half = result.tiou_thresholds.index(0.5) if 0.5 in result.tiou_thresholds else None
        share = (format_interval(shares.share_right, intervals.share_right)
                 if shares.share_right is not None else "n/a")
        head = (f"detection on {counted(m['num_videos'], 'video')} ({m['annotations']}): mAP "
                f"{format_interval(result.average_map, intervals.average_map)} (average over tIoU 0.3-0.7)"
                + (f", {format_interval(result.map_per_threshold[at_half], intervals.map_per_threshold[at_half])}"
                   " at 0.5" if at_half is not None else "")
                + f"; time labelled right {share}, inside actions {_percent(in_actions)} (95% intervals: bootstrap "
                f"over videos); windows of {m['window_s']:g} s every {m['stride_s']:g} s{skipped}; records in "
                f"{self.out_dir}")
        return head + "\n" + self.result.table()


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


@dataclass(frozen=True)
class VideoResult:
    """What one process found for one video: its proposals and its labels on the time grid, or why it failed."""

    key: str
    proposals: list[ScoredSegment]
    times: list[float]
    labels: list[str | None]
    duration_s: float | None
    error: str | None = None


def evaluate_detection_run(
    run_dir: str | Path,
    annotations: Path,
    videos_root: Path,
    *,
    subset: str | None = None,
    window_s: float | None = None,
    stride_s: float | None = None,
    cuts: bool = True,
    num_crops: int = 1,
    flip: bool = False,
    out_dir: Path | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | None = None,
    precision: Precision = "auto",
    progress: bool = True,
    log: Log = print,
) -> DetectionEvaluation:
    """Score a run as a detector on the annotated videos under `videos_root` (those of `subset` only, when given).

    Writes metrics.json (AP per class and mAP per tIoU, their mean, the share of time labelled right, the settings),
    detections.json (every proposal) and evaluate.log into `out_dir` (default RUN_DIR/evaluation/detection-<file>
    [-<subset>]-w<window>-s<stride>[-flip]). With several processes the videos are shared out.
    """
    # here, not at the top: the command line starts without torch
    from vjepa_tune.training import distributed
    from vjepa_tune.training.precision import make_accelerator

    accelerator = make_accelerator("auto")  # starts the process group under torchrun / accelerate launch
    if device is None and accelerator.num_processes > 1:
        device = str(accelerator.device)
    if not distributed.is_main():
        log, progress = (lambda _: None), False
    run_dir, annotations = Path(run_dir), Path(annotations)
    truth = read_annotations(annotations)
    if subset is not None:
        truth = truth.in_subsets(subset)
        if not truth.videos:
            raise BadInput(f"{annotations} has no video of subset {subset!r}.")
    paths = annotated_videos(truth, Path(videos_root), annotations)
    predictor = load_run(run_dir, device=device, precision=precision)
    unknown = sorted({s.label for v in truth.videos.values() for s in v.segments} - set(predictor.classes))
    if unknown:
        raise BadInput(f"{annotations}: labels {', '.join(map(repr, unknown))} are not among the run's classes "
                       f"({', '.join(predictor.classes)}); a detector can only be scored on classes it knows.")
    if window_s is None:
        window_s = predictor.train_clip_s
        if window_s is None:
            raise BadInput(f"{run_dir} did not record how long its training clips were, and its training videos are "
                           "gone: give --window SECONDS (the time one training clip spanned).")
    stride_s = window_s / 2 if stride_s is None else stride_s
    if caveat := predictor.flip_caveat(flip):
        log(caveat)
    overlap = _overlap(run_dir, list(paths.values()), progress, log)

    keys = list(truth.videos)
    mine = distributed.shard(keys)
    predictions = predictor.predict_windows([paths[k] for k in mine], window_s=window_s, stride_s=stride_s,
                                            min_score=0.0, num_crops=num_crops, flip=flip, batch_size=batch_size,
                                            num_workers=num_workers, progress=progress, cuts=cuts) if mine else []
    local = [_video_result(key, prediction, truth.videos[key].fps)
             for key, prediction in zip(mine, predictions, strict=True)]  # type: ignore[arg-type]
    results = {r.key: r for part in distributed.gather(local) for r in part}
    failed = {key: r.error for key, r in results.items() if r.error is not None}
    for key, reason in failed.items():
        log(f"skipping unreadable video {paths[key]}: {reason}")
    scored = [key for key in keys if key not in failed]
    if not scored:
        raise BadInput(f"none of the {len(keys)} annotated videos could be read; check them with `vjepa-tune data "
                       "check`.")
    for key in scored:
        annotated, found = truth.videos[key].duration_s, results[key].duration_s or 0.0
        if abs(annotated - found) > max(1.0 / truth.videos[key].fps, 0.01 * found):
            log(f"warning: {key}: the annotation says {annotated:g} s, the video lasts {found:g} s")

    ground_truth = truth.ground_truth()
    result = evaluate_detection({k: ground_truth[k] for k in scored}, {k: results[k].proposals for k in scored})
    per_video = {k: score_time_labels(results[k].times, results[k].labels, ground_truth[k]) for k in scored}
    labelling = sum(per_video.values(), TimeLabelling())
    intervals = bootstrap_detection_intervals({k: ground_truth[k] for k in scored},
                                              {k: results[k].proposals for k in scored}, per_video)
    name = f"detection-{annotations.stem}" + (f"-{subset}" if subset else "") + f"-w{window_s:g}-s{stride_s:g}"
    name += ("-flip" if flip else "") + (f"-{num_crops}crops" if num_crops > 1 else "")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / EVALUATION_DIR / name
    metrics = {
        "run_dir": str(run_dir),
        "evaluated_on": "detection",
        "annotations": str(annotations),
        "videos_root": str(videos_root),
        "subset": subset,
        "window_s": window_s,
        "stride_s": stride_s,
        "cuts": cuts,
        "num_crops": num_crops,
        "flip": flip,
        "proposals": PROPOSALS,
        "num_videos": len(scored),
        "skipped_videos": len(failed),
        "skipped": [{"id": key, "path": str(paths[key]), "reason": reason} for key, reason in failed.items()],
        "detection": {**result.as_dict(), "average_map_ci": list(intervals.average_map),
                      "map_ci": {f"{t:g}": list(b) for t, b in zip(result.tiou_thresholds,
                                                                 intervals.map_per_threshold, strict=True)}},
        "time_labelling": {**labelling.as_dict(), "share_right_ci": (list(intervals.share_right)
                                                                     if intervals.share_right else None)},
        "bootstrap": {"over": "videos", "resamples": intervals.resamples, "seed": intervals.seed},
        "overlap": overlap,
        "versions": versions(),
    }
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "metrics.json", metrics)
        write_json_atomic(out_dir / DETECTIONS_FILE, _results_document(run_dir, {k: results[k] for k in scored}))
        keep_console_log(out_dir / EVALUATE_LOG_FILE)
    distributed.barrier()
    return DetectionEvaluation(metrics, result, labelling, intervals, out_dir)


def _video_result(key: str, prediction: Prediction, fps: float) -> VideoResult:
    if prediction.error is not None or prediction.duration_s is None:
        return VideoResult(key, [], [], [], None, prediction.error or "could not be read")
    times = time_grid(prediction.duration_s, 1.0 / fps)
    return VideoResult(key, proposals(prediction), times, prediction.label_at(times), prediction.duration_s)


def _overlap(run_dir: Path, paths: Sequence[Path], progress: bool, log: Log) -> dict[str, Any] | None:
    """Which of the videos the run saw in training, said in the log and kept in metrics.json (None when the run's
    splits.json cannot be read)."""
    try:
        overlap = seen_in_training(list(paths), training_videos(run_dir), progress=progress)
    except BadInput as exc:
        log(f"overlap: cannot be checked: {exc}")
        return None
    log(overlap.describe("; a score on them is not a held-out score" if overlap.num_seen else ""))
    return overlap.as_dict()


def _results_document(run_dir: Path, results: dict[str, VideoResult]) -> dict[str, Any]:
    return {
        "version": "VERSION 1.3",
        "external_data": {"used": False, "details": f"proposals of the run {run_dir}, labelled window by window"},
        "results": {
            key: [{"label": p.label, "score": p.score, "segment": [round(p.start_s, 4), round(p.end_s, 4)]}
                  for p in result.proposals]
            for key, result in results.items()
        },
    }
