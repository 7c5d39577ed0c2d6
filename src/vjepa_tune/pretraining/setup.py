"""Everything a pretraining run needs before its first step: its videos, the model and objective, the clips.

As for `train` (training/setup.py), everything is checked before a run folder exists, cheap checks first: the videos
are listed, the model's configuration read and its crop and token grid checked against the clips and masks, before
any video is probed; then every video is probed once. An unreadable video, or one shorter than a clip (a clip of it
would repeat frames, and a masked frame repeated unmasked leaks the target), is left out and reported; no readable
video left is bad input. A resumed run reads its videos back from its splits.json, so a changed folder cannot shift a
half-finished run. Labels, where the layout has them, are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.config import DataConfig, PretrainConfig, has_probe, probe_data_flags
from vjepa_tune.data.dataset import ClipDataset
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.video import VideoInfo, frames_needed
from vjepa_tune.errors import BadInput
from vjepa_tune.models.build import build_pretraining_model
from vjepa_tune.models.loading import check_crop_size, model_config
from vjepa_tune.models.specs import RANDOM_PREFIX, TINY
from vjepa_tune.pretraining.masks import TokenGrid, check_masks
from vjepa_tune.pretraining.objective import JepaObjective, prepare_predictor
from vjepa_tune.runs.folder import SPLITS_FILE, read_resumed_splits
from vjepa_tune.text import counted, verb
from vjepa_tune.training.inputs import training_clips

Log = Callable[[str], None]


@dataclass
class PretrainingRun:
    """A pretraining run ready for its first step."""

    cfg: PretrainConfig
    model: VJEPA2ForVideoClassification
    """The model as its checkpoint has it; its `vjepa2` encoder and predictor are what the objective trains."""
    objective: JepaObjective
    grid: TokenGrid
    videos: list[Sample]
    """The readable videos, every one long enough for a clip, in the order they were listed."""
    classes: list[str]
    """The layout's classes (`unlabelled` for a plain folder of videos): recorded, never used."""
    data_format: str
    infos: dict[str, VideoInfo]
    clips: ClipDataset
    """Training clips of `videos`, as `train` cuts and augments them (set the view per epoch)."""
    with_head: bool
    """The source had a pooler: the run's model folder is a `VJEPA2ForVideoClassification`, else a `VJEPA2Model`."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Videos left out before the first step (id -> why)."""
    probe_videos: list[Sample] = field(default_factory=list)
    """The probe's labelled videos as listed (none without `--probe.data.root`)."""
    notes: list[str] = field(default_factory=list)
    """What the set-up said about the model (a new predictor, parts drawn from the seed)."""


MAX_UNIFORM_GAP_S = 1.0
"""With uniform sampling a clip's frames spread over the whole video; further apart than this, consecutive frames of
a clip no longer show one motion, which is what the predictor has to follow."""


def long_video_warning(infos: dict[str, VideoInfo], data: DataConfig) -> str | None:
    """A warning when uniform sampling spreads some videos' clips too thin (long recordings), else None."""
    if data.sampling != "uniform" or not infos:
        return None
    limit_s = MAX_UNIFORM_GAP_S * data.frames_per_clip
    long = [info.duration_s for info in infos.values() if info.duration_s > limit_s]
    if not long:
        return None
    return (f"warning: {counted(len(long), 'video')} of {len(infos)} {verb(len(long), 'lasts', 'last')} over "
            f"{limit_s:.0f} s (the longest {max(long):.0f} s): with --data.sampling uniform, a clip's "
            f"{data.frames_per_clip} frames spread over the whole video, more than {MAX_UNIFORM_GAP_S:g} s apart, "
            "too far for the predictor to follow a motion. For long recordings give --data.sampling random_window "
            "(consecutive frames --data.frame_step apart, a new window every epoch), or cut them into clips.")


def untrained_predictor_on_trained_encoder(model: str, *, new_predictor: bool) -> bool:
    """Whether a trained encoder is about to learn from an untrained predictor: a new one, or the bundled `tiny`'s
    (never trained); a `random:` encoder has nothing to lose to the predictor's first errors."""
    return not model.startswith(RANDOM_PREFIX) and (new_predictor or model == TINY)


def _readable(videos: list[Sample], cfg: PretrainConfig, log: Log) -> tuple[list[Sample], dict[str, VideoInfo],
                                                                              dict[str, str]]:
    """Probe every video; leave out the unreadable ones and those shorter than a clip, each reported."""
    d = cfg.data
    infos, unreadable = probe_samples(videos, workers=max(1, cfg.num_workers or 2))
    skipped: dict[str, str] = {}
    for sample, reason in unreadable:
        log(f"skipping unreadable video {sample.path}: {reason}")
        skipped[sample.id] = reason
    needed = frames_needed(d.frames_per_clip, d.sampling, d.frame_step)
    for sample in videos:
        info = infos.get(sample.id)
        if info is not None and info.num_frames < needed:
            reason = (f"shorter than a clip: {counted(info.num_frames, 'frame')}, a clip of "
                      f"--data.frames_per_clip {d.frames_per_clip} ({d.sampling} sampling) takes {needed}")
            log(f"skipping video {sample.path}: {reason}")
            skipped[sample.id] = reason
    kept = [s for s in videos if s.id not in skipped]
    if not kept:
        short = sum(1 for r in skipped.values() if r.startswith("shorter"))
        raise BadInput(
            f"no video in {d.root} can be pretrained on: {counted(len(videos), 'video')} listed, "
            f"{len(unreadable)} unreadable, {short} shorter than a clip of {needed} frames; check them with "
            "`vjepa-tune data check`, or lower --data.frames_per_clip."
        )
    return kept, infos, skipped


def build_pretraining(cfg: PretrainConfig, device: torch.device, *, log: Log = print,
                      resume_dir: Path | None = None) -> PretrainingRun:
    """Everything a pretraining run needs before its first step, checked before anything is written (see the module
    docstring). `resume_dir`: the folder of a run being resumed, whose videos are read back."""
    index = read_dataset(cfg.data, seed=cfg.seed, unlabelled=True)
    probe_videos: list[Sample] = []
    if has_probe(cfg):  # the probe's labelled videos are listed now, before a run folder exists
        with probe_data_flags():
            probe_videos = read_dataset(cfg.probe.data, seed=cfg.seed).samples
    config = model_config(cfg.model)
    check_crop_size(config, cfg.data.crop_size)
    grid = TokenGrid.of(config, cfg.data.frames_per_clip)
    check_masks(cfg.masks, grid)
    left_out: dict[str, str] = {}  # a resumed run's videos left out when it started (not in its splits)
    if resume_dir is not None and (resume_dir / SPLITS_FILE).exists():
        splits, left_out = read_resumed_splits(resume_dir, index.root)
        videos = splits.train
    else:
        videos = list(index.samples)
    labels = "" if index.format == "videos" else f"; its labels ({counted(len(index.classes), 'class')}) are ignored"
    log(f"data: {counted(len(videos), 'video')} ({index.format}){labels}; token grid {grid} per clip")
    videos, infos, skipped = _readable(videos, cfg, log)
    skipped = {**left_out, **skipped}

    notes: list[str] = []
    if (spread := long_video_warning({v.id: infos[v.id] for v in videos}, cfg.data)) is not None:
        notes.append(spread)
    model, lacking = build_pretraining_model(cfg.model, cfg.seed, log)
    if "pooler" in lacking:
        notes.append(f"{cfg.model} has no pooler weights: the run's model folder is a VJEPA2Model (encoder and "
                     "predictor), as the checkpoint is")
    elif "classifier" in lacking:
        notes.append(f"{cfg.model} has a pooler but no classifier: the run's model folder keeps a classifier drawn "
                     "from the seed (train replaces it for its classes)")
    predictor = prepare_predictor(model.vjepa2, cfg.predictor, has_weights="predictor" not in lacking, seed=cfg.seed)
    if predictor is not None:
        notes.append(predictor)
    if cfg.predictor.warmup_steps:
        notes.append(f"predictor warm-up: optimizer steps 1-{cfg.predictor.warmup_steps} train the predictor only; "
                     f"the encoder learns from step {cfg.predictor.warmup_steps + 1}")
    elif untrained_predictor_on_trained_encoder(cfg.model, new_predictor=predictor is not None):
        notes.append("note: the predictor is new or was never trained, and --predictor.warmup_steps is 0: until it "
                     "predicts something its errors are noise, and the trained encoder learns from that noise; a "
                     "warm-up of a tenth to a quarter of the run trains the predictor alone first "
                     "(docs/pretraining.md)")
    if cfg.ema.start == 1 and cfg.ema.end == 1:
        notes.append("note: --ema.start 1 and --ema.end 1 hold the target encoder still, and the model folders hold "
                     "the target encoder: they will be the encoder the run started from, whatever the encoder learns")
    for note in notes:
        log(note)
    data = dataclasses.replace(cfg.data, crop_size=check_crop_size(model, cfg.data.crop_size))
    cfg.data = data
    objective = JepaObjective(model.vjepa2, gradient_checkpointing=cfg.gradient_checkpointing)
    trained = sum(p.numel() for p in objective.trainable_parameters())
    log(f"model {cfg.model}: {trained:,} parameters train (encoder and predictor); the target encoder follows them "
        f"by EMA ({cfg.ema.start:g} to {cfg.ema.end:g})")
    return PretrainingRun(
        cfg=cfg, model=model, objective=objective, grid=grid, videos=videos, classes=index.classes,
        data_format=index.format, infos=infos, clips=training_clips(data, cfg.seed, videos, infos),
        with_head="pooler" not in lacking, skipped=skipped, probe_videos=probe_videos, notes=notes,
    )
