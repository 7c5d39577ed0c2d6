"""Scoring a run on its own validation or test videos, or on another data set (`vjepa-tune evaluate`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vjepa_tune.config import DataConfig, Precision, TrainConfig, validate_data
from vjepa_tune.data.overlap import SEEN_SPLITS, Overlap, seen_in_training
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import splits_from_json
from vjepa_tune.errors import BadInput
from vjepa_tune.evaluation.statistics import format_interval
from vjepa_tune.files import write_json_atomic
from vjepa_tune.inference.predictor import Log, load_run
from vjepa_tune.runs.folder import CONFIG_FILE, SPLITS_FILE, read_config, read_recorded_splits, training_videos
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import keep_console_log
from vjepa_tune.tracking.records import versions

if TYPE_CHECKING:  # torch, torchvision and PyAV load when used: the command line starts without them
    import torch


EVALUATION_DIR = "evaluation"
EVALUATE_LOG_FILE = "evaluate.log"
"""The console of `vjepa-tune evaluate`, warnings included, in the evaluation's folder."""


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass
class Evaluation:
    metrics: dict[str, Any]
    out_dir: Path

    def summary(self) -> str:
        """One line: what was scored, each score with its 95% interval (`87.5% (69–96)`), and where the records are."""
        m = self.metrics

        def scored(key: str) -> str:
            return format_interval(m[key], m.get(f"{key}_ci"))

        top5 = f", top-5 {scored('top5')}" if m.get("top5") is not None else ""
        skipped = f"; {counted(m['skipped_videos'], 'unreadable video')} left out" if m["skipped_videos"] else ""
        mirrored = ", each also mirrored" if m.get("flip") else ""
        return (
            f"{m['evaluated_on']} ({counted(m['num_videos'], 'video')}, {counted(m['num_clips'], 'clip')} x "
            f"{counted(m['num_crops'], 'crop')}"
            f"{mirrored}): top-1 {scored('top1')}{top5}, mean class acc {scored('mean_class_acc')}, macro-F1 "
            f"{scored('macro_f1')} (95% intervals){skipped}{_seen_note(m.get('overlap'))}; records in {self.out_dir}"
        )


def _seen_note(overlap: dict[str, Any] | None) -> str:
    """What the summary says of videos the run saw in training (the overlap line says more)."""
    if not overlap or not overlap["seen"]:
        return ""
    if overlap["excluded"]:
        n = overlap["excluded"]
        return f"; {n} {'video' if n == 1 else 'videos'} seen in training left out"
    verb = "was" if overlap["seen"] == 1 else "were"
    return f"; {overlap['seen']} of the {overlap['videos']} videos {verb} seen in training: not a held-out score"


def _run_split(run_dir: Path, cfg: TrainConfig, split: str, root: Path | None) -> tuple[list[Sample], list[str]]:
    if split not in ("train", "val", "test"):
        raise BadInput(f"--split must be val, test or train, got {split!r}.")
    recorded = read_recorded_splits(run_dir)
    base = root if root is not None else cfg.data.root
    if base is None:
        raise BadInput(f"{run_dir}/{CONFIG_FILE} names no data.root; pass --split_root DIR, where the data set is.")
    splits = splits_from_json(recorded, Path(base), source=str(run_dir / SPLITS_FILE))
    samples = dict(splits.items())[split]
    if not samples:
        raise BadInput(f"the {split} split of {run_dir} holds no videos; choose another --split.")
    if not any(s.path.exists() for s in samples):
        raise BadInput(
            (f"the {split} video of {run_dir} does not exist" if len(samples) == 1 else
             f"none of the {len(samples)} {split} videos of {run_dir} exist")
            + f" under {base} (e.g. {samples[0].path}); if the data set moved, pass its new folder with --split_root "
            "DIR."
        )
    return samples, list(recorded["classes"])


def _leave_out_seen(
    samples: list[Sample],
    run_dir: Path,
    own_split: str | None,
    split_root: Path | None,
    exclude_seen: bool,
    progress: bool,
    log: Log,
) -> tuple[list[Sample], Overlap | None]:
    """Compare the videos to score with the run's training videos, say so, and leave the seen ones out when asked.

    The run's own split is compared with the other sides only (val is not "seen" by scoring val) and the line is
    logged only when some were seen; another data set always gets the line. A run folder without a readable
    splits.json cannot be compared: an error with `exclude_seen`, else said and recorded as null.
    """
    sides = [name for name in SEEN_SPLITS if name != own_split]
    try:
        overlap = seen_in_training([s.path for s in samples], training_videos(run_dir, split_root), sides=sides,
                                   progress=progress)
    except BadInput as exc:
        if exclude_seen:
            raise BadInput(f"--exclude_seen: {exc}") from None
        if own_split is not None:
            raise
        log(f"overlap: cannot be checked: {exc}")
        return samples, None
    if overlap.num_seen or own_split is None:
        log(overlap.describe(_overlap_advice(overlap, exclude_seen)))
    if exclude_seen and overlap.num_seen:
        unseen = set(map(str, overlap.unseen_paths()))
        samples = [s for s in samples if str(s.path) in unseen]
        if not samples:
            raise BadInput(f"--exclude_seen: all {len(overlap.paths)} videos were seen in training; none is left "
                           "to score.")
    return samples, overlap


def _overlap_advice(overlap: Overlap, exclude_seen: bool) -> str:
    if exclude_seen:
        return f"; --exclude_seen leaves them out and scores the other {len(overlap.paths) - overlap.num_seen}"
    return "; a score on them is not a held-out score (--exclude_seen scores only the others)"


def _other_dataset(data: DataConfig, classes: list[str], seed: int) -> tuple[list[Sample], str]:
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
    flip: bool = False,
    data: DataConfig | None = None,
    split_root: Path | None = None,
    exclude_seen: bool = False,
    out_dir: Path | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | None = None,
    precision: Precision = "auto",
    progress: bool = True,
    log: Log = print,
) -> Evaluation:
    """Score a run on its own `split` (the videos of its splits.json), or on every video of `data`.

    Every scored video is compared with the run's training and validation videos (`data.overlap`): the overlap
    is logged (for the run's own split only when some are found) and kept in metrics.json; `exclude_seen` scores only
    the videos the run never saw.

    Writes metrics.json, confusion.csv/png and predictions.csv (one row per video) into `out_dir` (default
    RUN_DIR/evaluation/<split or data set>-<clips>x<crops>, with "-flip" when every view is mirrored too and
    "-unseen" with `exclude_seen`).
    """
    # here, not at the top: the command line starts without torch
    import torch

    from vjepa_tune.evaluation.metrics import classification_metrics, write_confusion
    from vjepa_tune.evaluation.views import ClipRequest, ViewPredictions
    from vjepa_tune.training import distributed
    from vjepa_tune.training.precision import make_accelerator

    accelerator = make_accelerator("auto")  # starts the process group under torchrun / accelerate launch
    if device is None and accelerator.num_processes > 1:
        device = accelerator.device
    if not distributed.is_main():
        log, progress = (lambda _: None), False
    run_dir = Path(run_dir)
    predictor = load_run(run_dir, device=device, precision=precision)
    spec = predictor.view_spec(num_clips, num_crops, flip)
    if caveat := predictor.flip_caveat(flip):
        log(caveat)
    classes = predictor.classes
    seed = predictor.config.seed if predictor.config is not None else 42
    if data is not None:
        samples, source = _other_dataset(data, classes, seed=seed)
        evaluated_on, name = f"data set {source}", Path(source).name or "data"
    else:
        samples, recorded = _run_split(run_dir, read_config(run_dir), split, split_root)
        if recorded != classes:
            raise BadInput(f"{run_dir}: splits.json classes {recorded} differ from the model's {classes}.")
        evaluated_on, name = f"{split} split", split
    samples, overlap = _leave_out_seen(samples, run_dir, split if data is None else None, split_root, exclude_seen,
                                       progress, log)
    seen_as = {} if overlap is None else {
        str(p): v.split for p, v in zip(overlap.paths, overlap.seen, strict=True) if v is not None
    }
    views = f"{name}-{num_clips}x{num_crops}" + ("-flip" if flip else "") + ("-unseen" if exclude_seen else "")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / EVALUATION_DIR / views

    mine = distributed.shard(list(range(len(samples))))  # each process a contiguous part; all of it with one
    local = predictor.run_views([ClipRequest(samples[i].path) for i in mine], spec, batch_size=batch_size,
                                num_workers=num_workers, desc=f"evaluating {name}", unit="video", progress=progress)
    result = ViewPredictions(probs={}, errors={})
    for probs, errors in distributed.gather(({mine[k]: v.cpu() for k, v in local.probs.items()},
                                             {mine[k]: r for k, r in local.errors.items()})):
        result.probs.update(probs)
        result.errors.update(errors)
    scored = sorted(result.probs)
    if not scored:
        raise BadInput(
            ("the video could not be read; check it" if len(samples) == 1 else
             f"none of the {len(samples)} videos could be read; check them")
            + " with `vjepa-tune data check`."
        )
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
        "flip": flip,
        "num_videos": len(scored),
        "skipped_videos": len(result.errors),
        "skipped": [{"id": samples[i].id, "reason": r} for i, r in sorted(result.errors.items())],
        "overlap": overlap.as_dict(excluded=exclude_seen) if overlap is not None else None,
        **scores,
        "versions": versions(),
    }
    if distributed.is_main():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "metrics.json", metrics)
        write_confusion(out_dir, scores["confusion"], classes)
        _write_eval_csv(out_dir / "predictions.csv", samples, result.probs, result.errors, classes, seen_as)
        keep_console_log(out_dir / EVALUATE_LOG_FILE)
    distributed.barrier()
    return Evaluation(metrics, out_dir)


def _write_eval_csv(
    path: Path,
    samples: Sequence[Sample],
    probs: dict[int, torch.Tensor],
    errors: dict[int, str],
    classes: list[str],
    seen_as: dict[str, str],
) -> None:
    """One row per video; `seen` says where the run saw it (train or val), empty for a video it never saw."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(
            ["id", "path", "label", "predicted", "score", "correct", "error", "seen", *(f"p_{c}" for c in classes)]
        )
        for i, sample in enumerate(samples):
            truth = classes[sample.label]
            seen = seen_as.get(str(sample.path), "")
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
                        seen,
                        *(f"{v:.6f}" for v in p.tolist()),
                    ]
                )
            else:
                writer.writerow(
                    [sample.id, sample.path, truth, "", "", "", errors.get(i, ""), seen, *([""] * len(classes))]
                )


