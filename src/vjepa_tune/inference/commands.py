"""The `predict` and `evaluate` commands: their flags, and the calls of `Predictor` and `evaluate_run`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser, Namespace

from vjepa_tune.config import DATA_READING, DataConfig, Precision, data_fields_except, from_plain
from vjepa_tune.data.overlap import seen_in_training
from vjepa_tune.errors import BadInput
from vjepa_tune.inference.evaluate import evaluate_run
from vjepa_tune.inference.outputs import plot_timeline, predictions_json, timeline_paths, write_predictions_csv
from vjepa_tune.inference.predictor import collect_videos, load_run
from vjepa_tune.inference.results import DEFAULT_MIN_SCORE, DEFAULT_TOP_K, Prediction
from vjepa_tune.runs.folder import read_config, training_videos
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import keep_console_log

_CUTS_SHOWN = 8
"""Cut times listed on screen per video; the JSON and CSV outputs list them all."""


def _describe(p: Prediction, top_k: int) -> str:
    if p.error is not None:
        return f"{p.path}: cannot be read: {p.error}"
    best = ", ".join(f"{label} {prob:.3f}" for label, prob in p.top_k(top_k))
    if not p.windows:
        return f"{p.path}: {best}"
    if p.windows[0].whole_video:
        lines = [f"{p.path}: {p.duration_s:.2f} s, shorter than one window: one window covers it"]
    else:
        shown = ", ".join(f"{t:.2f}" for t in p.cuts[:_CUTS_SHOWN])
        more = f" and {len(p.cuts) - _CUTS_SHOWN} more" if len(p.cuts) > _CUTS_SHOWN else ""
        shots = f" in {counted(len(p.cuts) + 1, 'shot')} (cuts at {shown} s{more})" if p.cuts else ""
        lines = [f"{p.path}: {p.duration_s:.2f} s, {counted(len(p.windows), 'window')}{shots}"]
    for s in p.segments:
        windows = counted(s.num_windows, "window")
        lines.append(f"  {s.start_s:8.2f} - {s.end_s:8.2f} s  {s.label} ({s.score:.3f}, {windows})")
    if not p.segments:
        lines.append("  no segment: no moment's top label (the mean of its windows) reached --min_score")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ commands
def _add_running_arguments(p: ArgumentParser) -> None:
    """How `predict` and `evaluate` run the model: batch, decoding processes, device, precision."""
    p.add_argument("--batch_size", type=int, default=8, help="Clips per forward pass.")
    p.add_argument("--num_workers", type=int, default=0, help="Decoding processes.")
    p.add_argument("--device", type=str | None, default=None, help="cpu, cuda, cuda:1 (default: a GPU if any).")
    p.add_argument("--precision", type=Precision, default="auto",
                   help="auto = bf16 autocast on a GPU that supports it, fp32 elsewhere.")


def build_predict(p: ArgumentParser) -> None:
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
        help="A moment joins a segment only when its top label (mean of the windows covering it) has at least "
        "this probability.",
    )
    p.add_argument(
        "--cuts",
        type=bool,
        default=True,
        help="With --window: find the video's cuts first and lay the windows out shot by shot, so that none "
        "mixes two scenes (one extra decoding pass).",
    )
    p.add_argument("--min_length", type=float, default=0.0, help="Drop segments shorter than this (seconds).")
    p.add_argument("--num_clips", type=int, default=1, help="Temporal clips averaged per video (not windows).")
    p.add_argument("--num_crops", type=Literal[1, 3], default=1, help="Spatial crops averaged per clip.")
    _add_flip_argument(p)
    p.add_argument("--out", type=Path | None, default=None,
                   help="Write the predictions to FILE.csv or FILE.json, and the console log to FILE.log beside it.")
    p.add_argument("--plot", type=bool, default=False, help="With --window: a timeline PNG per video.")
    p.add_argument(
        "--plot_dir",
        type=Path | None,
        default=None,
        help="Folder for the timeline PNGs (default: the folder of --out, else the current one).",
    )
    p.add_argument("--json", type=bool, default=False, help="Print the predictions as JSON.")
    _add_exclude_seen_argument(p, "Label only")
    _add_running_arguments(p)


def _add_exclude_seen_argument(p: ArgumentParser, verb: str) -> None:
    p.add_argument(
        "--exclude_seen",
        type=bool,
        default=False,
        help=f"{verb} the videos the run never saw: leave out those its splits.json lists under train or val, "
        "and copies of them (same size and content fingerprint).",
    )


def _seen_in_training(
    run_dir: Path, paths: list[Path], exclude_seen: bool
) -> tuple[list[Path], dict[str, Any] | None]:
    """The videos to predict and the overlap record: which of `paths` the run saw in training, said on stderr."""
    try:
        overlap = seen_in_training(paths, training_videos(run_dir))
    except BadInput as exc:
        if exclude_seen:
            raise BadInput(f"--exclude_seen: {exc}") from None
        print(f"overlap: cannot be checked: {exc}", file=sys.stderr)
        return paths, None
    advice = "; labels of those show what the model memorised, not how it does on new videos"
    if exclude_seen and overlap.num_seen:
        kept = overlap.unseen_paths()
        if not kept:
            raise BadInput(f"--exclude_seen: all {len(paths)} videos were seen in training; none is left to label.")
        advice = f"; --exclude_seen leaves them out and labels the other {len(kept)}"
        paths = kept
    print(overlap.describe(advice), file=sys.stderr)
    return paths, overlap.as_dict(excluded=exclude_seen)


def run_predict(a: Namespace) -> int:
    out = Path(a.out) if a.out is not None else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise BadInput(f"--out {out}: the file name must end in .csv or .json.")
    if a.top_k < 1:
        raise BadInput(f"--top_k must be >= 1, got {a.top_k}.")
    if a.plot and a.window is None:
        raise BadInput("--plot draws a timeline of windows: give --window SECONDS too.")
    if a.stride is not None and a.window is None:
        raise BadInput("--stride needs --window SECONDS.")
    if not a.cuts and a.window is None:
        raise BadInput("--cuts false turns off the cut search of --window: give --window SECONDS too.")
    paths = collect_videos(a.videos)
    if not paths:
        raise BadInput(f"no video files found in {', '.join(a.videos)}.")
    predictor = load_run(a.run_dir, device=a.device, precision=a.precision)
    if caveat := predictor.flip_caveat(a.flip):
        print(caveat, file=sys.stderr)
    paths, overlap = _seen_in_training(Path(a.run_dir), paths, a.exclude_seen)
    common = {"num_crops": a.num_crops, "flip": a.flip, "batch_size": a.batch_size, "num_workers": a.num_workers}
    if a.window is not None:
        predictions = predictor.predict_windows(
            paths,
            window_s=a.window,
            stride_s=a.stride,
            min_score=a.min_score,
            min_length_s=a.min_length,
            cuts=a.cuts,
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
        "cuts": a.cuts if a.window is not None else None,
        "num_clips": a.num_clips,
        "num_crops": a.num_crops,
        "flip": a.flip,
    }
    document = predictions_json(predictions, top_k=a.top_k, run_dir=Path(a.run_dir), settings=settings,
                                overlap=overlap)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".json":
            out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        else:
            write_predictions_csv(out, predictions, a.top_k)
        keep_console_log(out.with_suffix(".log"))  # predictions.csv -> predictions.log; without --out, no log file
    if a.plot:
        folder = Path(a.plot_dir) if a.plot_dir is not None else (out.parent if out is not None else Path.cwd())
        for i, png in timeline_paths(predictions, folder).items():
            plot_timeline(predictions[i], png, a.min_score)
    failed = [p for p in predictions if p.error is not None]
    for p in failed:
        print(f"vjepa-tune predict: cannot read {p.path}: {p.error}", file=sys.stderr)
    for p in predictions:
        for warning in (p.long_video_warning(), p.short_video_warning()):
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
    if a.json:
        print(json.dumps(document, indent=2))
    else:
        for p in predictions:
            if p.error is None:
                print(_describe(p, a.top_k))
        if out is not None:
            print(f"predictions written to {out}")
    if len(failed) == len(predictions):
        raise BadInput("the video could not be read." if len(predictions) == 1
                       else f"none of the {len(predictions)} videos could be read.")
    return 0


def _add_flip_argument(p: ArgumentParser) -> None:
    p.add_argument(
        "--flip",
        type=bool,
        default=False,
        help="Also run the mirror image of every view and average the two: for runs trained with horizontal flips "
        "(--data.hflip, the default), whose actions read the same mirrored.",
    )


_READING_FIELDS = tuple(name for name in DATA_READING if name not in ("group_pattern", "list_groups"))
"""The --data.* flags that say which videos to score (their groups are the run's); clip settings always come from
the run."""


def build_evaluate(p: ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, help="A finished run folder (made by train or compare).")
    p.add_argument("--split", type=Literal["test", "val", "train"], default="test",
                   help="The run's own split to score.")
    p.add_argument("--num_clips", type=int, default=1, help="Temporal clips per video.")
    p.add_argument("--num_crops", type=Literal[1, 3], default=1, help="Spatial crops per clip (1: the centre).")
    _add_flip_argument(p)
    p.add_argument(
        "--split_root",
        type=Path | None,
        default=None,
        help="Where the run's data set is now, if it moved since training.",
    )
    # Another data set to score: which videos and labels (clips are always cut as the run cut them).
    p.add_class_arguments(DataConfig, "data", sub_configs=True, skip=data_fields_except(_READING_FIELDS))
    _add_exclude_seen_argument(p, "Score only")
    p.add_argument(
        "--out",
        type=Path | None,
        default=None,
        help="Folder for the results and evaluate.log (default RUN_DIR/evaluation/<split>-<clips>x<crops>, -flip "
        "added with --flip, -unseen with --exclude_seen).",
    )
    p.add_argument("--json", type=bool, default=False, help="Print the metrics as JSON.")
    _add_detection_arguments(p)
    _add_running_arguments(p)


def _add_detection_arguments(p: ArgumentParser) -> None:
    p.add_argument(
        "--detection",
        type=Path | None,
        default=None,
        help="Score the run as a detector: an ActivityNet/THUMOS annotation JSON whose keys name videos under "
        "--data.root (KEY.mp4, KEY.avi, ...); AP per class and mAP at tIoU 0.3-0.7, and the share of time "
        "labelled right.",
    )
    p.add_argument("--subset", type=str | None, default=None,
                   help="With --detection: only the videos of this subset (e.g. test).")
    p.add_argument("--window", type=float | None, default=None,
                   help="With --detection: window length in seconds (default: the run's training clip).")
    p.add_argument("--stride", type=float | None, default=None,
                   help="With --detection: seconds between window starts (default: half a window).")
    p.add_argument("--cuts", type=bool, default=True,
                   help="With --detection: lay the windows out shot by shot, as predict --window does.")


_DETECTION_ONLY = {"subset": None, "window": None, "stride": None, "cuts": True}
_NOT_WITH_DETECTION = {"split": "test", "num_clips": 1, "split_root": None, "exclude_seen": False}


def run_evaluate(a: Namespace) -> int:
    if a.detection is not None:
        return _run_detection(a)
    given = [f"--{name}" for name, default in _DETECTION_ONLY.items() if getattr(a, name) != default]
    if given:
        raise BadInput(f"{', '.join(given)} describe(s) a detection evaluation: give --detection ANNOTATIONS.json.")
    given = from_plain(DataConfig, a.as_dict().get("data") or {})
    data = None
    if given.root is not None or given.list_file is not None:
        data = read_config(Path(a.run_dir)).data
        for name in _READING_FIELDS:
            setattr(data, name, getattr(given, name))
    evaluation = evaluate_run(
        a.run_dir,
        split=a.split,
        num_clips=a.num_clips,
        num_crops=a.num_crops,
        flip=a.flip,
        data=data,
        split_root=a.split_root,
        exclude_seen=a.exclude_seen,
        out_dir=a.out,
        batch_size=a.batch_size,
        num_workers=a.num_workers,
        device=a.device,
        precision=a.precision,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(evaluation.metrics, indent=2) if a.json else evaluation.summary())
    return 0


def _run_detection(a: Namespace) -> int:
    from vjepa_tune.inference.detection import evaluate_detection_run  # here: the command line starts without numpy

    given = from_plain(DataConfig, a.as_dict().get("data") or {})
    if given.root is None:
        raise BadInput("--detection needs --data.root DIR, the folder holding the annotated videos.")
    others = [f"--data.{name}" for name in _READING_FIELDS if name != "root" and getattr(given, name) !=
              getattr(DataConfig(), name)]
    others += [f"--{name}" for name, default in _NOT_WITH_DETECTION.items() if getattr(a, name) != default]
    if others:
        raise BadInput(f"{', '.join(others)} do(es) not apply to --detection, whose videos are named by the "
                       "annotation keys under --data.root.")
    evaluation = evaluate_detection_run(
        a.run_dir, a.detection, Path(given.root), subset=a.subset, window_s=a.window, stride_s=a.stride,
        cuts=a.cuts, num_crops=a.num_crops, flip=a.flip, out_dir=a.out, batch_size=a.batch_size,
        num_workers=a.num_workers, device=a.device, precision=a.precision,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(json.dumps(evaluation.metrics, indent=2) if a.json else evaluation.summary())
    return 0
