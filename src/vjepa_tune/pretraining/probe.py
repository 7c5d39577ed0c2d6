"""The downstream probe of a pretraining run: a short `train` run on the current target encoder's frozen features.

V-JEPA evaluates the target encoder, so that is what is probed: the recipe writes it as a Hugging Face folder and
this module runs the `train` recipe on it with the probe's strategy (`head_only` or `pooler_and_head`), data and
hyperparameters, through the feature store. Every probe of a run uses the same seed, so the same splits, the same
augmentations and the same initial head: only the encoder differs. The store lives in the run's probes/ folder and
is cleared after each probe, since its features are of an encoder that is gone the next step.

A probe records its validation accuracy (what picks the best checkpoint) and its test accuracy, each with the number
of videos it was scored on and a 95% Wilson interval, and the split they come from.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vjepa_tune.config import PretrainConfig, probe_train_config
from vjepa_tune.data.overlap import seen_in_training
from vjepa_tune.data.samples import Sample
from vjepa_tune.evaluation.statistics import wilson_interval
from vjepa_tune.runs.folder import MODEL_DIR, PROBES_DIR, training_videos
from vjepa_tune.text import counted
from vjepa_tune.tracking.console_log import ConsoleLog
from vjepa_tune.tracking.records import EXPERIMENTS_FILE
from vjepa_tune.training import distributed
from vjepa_tune.training.recipe import train

Log = Callable[[str], None]
FEATURES_DIR = "features"
"""The probes' feature store, under the run's probes/ folder while a probe runs."""


@dataclass(frozen=True)
class ProbeResult:
    """One probe: the encoder after `step` optimizer steps, scored on the probe data's validation and test split."""

    step: int
    val_acc: float
    val_correct: int
    num_val: int
    test_acc: float
    test_correct: int
    num_test: int
    split: str
    """How the probe data was split (random, group, official:...)."""
    data: str
    """The probe's data set (`--probe.data.root`)."""
    run: str
    """The probe's `train` run folder, relative to the pretraining run."""

    @property
    def val_ci(self) -> tuple[float, float]:
        return wilson_interval(self.val_correct, self.num_val)

    @property
    def test_ci(self) -> tuple[float, float]:
        return wilson_interval(self.test_correct, self.num_test)

    def record(self) -> dict[str, Any]:
        """The entry of metrics.json's `probes`, intervals included."""
        return {**asdict(self), "val_ci": list(self.val_ci), "test_ci": list(self.test_ci)}


def run_probe(cfg: PretrainConfig, encoder_dir: Path, run_dir: Path, folder: Path, step: int, log: Log
              ) -> ProbeResult:
    """Train and score the probe on the encoder in `encoder_dir` (a Hugging Face folder); its records go to
    `folder` (a probe killed before it finished is run again from scratch), its features to a store cleared after.
    """
    probes = run_dir / PROBES_DIR
    if distributed.is_main() and folder.exists():
        shutil.rmtree(folder)
    distributed.barrier()
    train_cfg = probe_train_config(cfg, probes, model=str(encoder_dir), store_dir=probes / FEATURES_DIR)
    try:
        with ConsoleLog():  # the probe's own part of the console, kept in its train.log
            result = train(train_cfg, log=lambda line: log(f"  probe: {line}"), run_dir=folder,
                           experiments_csv=probes / EXPERIMENTS_FILE)
    finally:
        distributed.barrier()
        if distributed.is_main() and (probes / FEATURES_DIR).exists():
            shutil.rmtree(probes / FEATURES_DIR)
    if distributed.is_main() and (folder / MODEL_DIR).exists():
        shutil.rmtree(folder / MODEL_DIR)  # the head of an encoder the run has moved on from; its scores are kept
    metrics = result.metrics
    confusion = metrics["test"].get("confusion") or []
    return ProbeResult(
        step=step,
        val_acc=float(metrics["best_val_acc"]),
        val_correct=round(float(metrics["best_val_acc"]) * metrics["num_val"]),
        num_val=int(metrics["num_val"]),
        test_acc=float(metrics["test_acc"]),
        test_correct=sum(confusion[i][i] for i in range(len(confusion))),
        num_test=sum(map(sum, confusion)),
        split=str(metrics.get("split_method")),
        data=str(cfg.probe.data.root or cfg.probe.data.list_file),
        run=folder.relative_to(run_dir).as_posix(),
    )


def probe_overlap_warning(probe_videos: Sequence[Sample], run_dir: Path) -> str | None:
    """A warning line when some of the probe's labelled videos (`probe_videos`, as listed) are pretraining videos,
    else None: the probe would then score videos the encoder was pretrained on.

    Compared as `evaluate` compares with a run's training videos (`data.overlap`): by path, as a copy under another
    path (size and fingerprint, against the fingerprints the run's splits.json recorded), or as the source of the
    `data prepare` copy the run pretrains on.
    """
    overlap = seen_in_training([s.path for s in probe_videos], training_videos(run_dir), sides=("train",),
                               progress=False)
    if not overlap.num_seen:
        return None
    paths, copies, sources = (overlap.seen_by(how) for how in ("path", "content", "source"))
    how = [text for text in (
        f"{paths} by path" if paths else "",
        f"{counted(copies, 'copy', 'copies')} under another path" if copies else "",
        (f"{sources} {'is the source' if sources == 1 else 'are the sources'} of the prepared copies pretrained on"
         if sources else ""),
    ) if text]
    return (f"warning: {overlap.num_seen} of the probe's {counted(len(probe_videos), 'video')} "
            f"{'is a pretraining video' if overlap.num_seen == 1 else 'are pretraining videos'} "
            f"({', '.join(how)}); the probe then scores videos the encoder was pretrained on. Keep the two sets "
            "apart.")
