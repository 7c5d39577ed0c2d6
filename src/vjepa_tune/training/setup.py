"""Everything a run needs before its first step: data, splits, model under its strategy, and the input pipeline.

Order matters for honesty: the data set is subsampled and split first (a pure function of the seed and the list of
videos), and only then are the chosen videos probed. An unreadable video is therefore left out of its split and
reported, never replaced by another draw. A resumed run reads its splits back from `splits.json` instead of
recomputing them, so a changed data folder cannot shift a half-finished run.

Nothing here writes to the run folder until `Run.start`: `build_run` checks everything a run needs (the data, the
model's configuration and crop size before any video is probed, then the model itself and the input pipeline), so
input that cannot train fails before a run folder exists.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.data.fingerprints import FileIdentity, file_identities
from vjepa_tune.data.samples import DatasetIndex, Sample, Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import key_seed
from vjepa_tune.text import counted
from vjepa_tune.training import checkpoint as ckpt

Log = Callable[[str], None]


@dataclass
class Run:
    cfg: TrainConfig
    run_dir: Path | None
    """None until `start` gives the run its folder (a resumed run has it from the start)."""
    accelerator: Any
    model: torch.nn.Module
    classes: list[str]
    splits: Splits
    pipeline: Any
    counts: Any
    skipped: dict[str, str] = field(default_factory=dict)
    base_fingerprint: float = 0.0
    experiments_csv: Path | None = None
    train_clip_s: float | None = None
    """The median time one training clip spans (`data.video.typical_clip_s`): the time scale the run learnt at."""

    def start(self, run_dir: Path) -> None:
        """Give the run its folder and write the records that describe it before training: config and splits."""
        from vjepa_tune.data.splits import splits_to_json
        from vjepa_tune.tracking.records import write_config_yaml, write_splits_json

        self.run_dir = run_dir
        if self.accelerator.is_main_process:
            write_config_yaml(run_dir, self.cfg)
            write_splits_json(run_dir, splits_to_json(self.splits, self.classes, _identities(self.splits)))

    def trainable_weights(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        from vjepa_tune.models.strategies import trainable_state_dict

        return {k: v.detach().cpu().clone() for k, v in trainable_state_dict(model).items()}

    def save_best(self, model: torch.nn.Module) -> None:
        if self.accelerator.is_main_process:
            ckpt.save_model(self.run_dir, self.trainable_weights(model), model_meta(self))

    def load_best(self) -> torch.nn.Module:
        """The trained model with the best epoch's weights read back from the run folder (what `predict` and
        `export` load). The frozen weights never changed, so the base model is not built a second time: for a
        randomly initialised ViT-L that took 7 s per run (BENCHMARKS.md, "GPU")."""
        from vjepa_tune.models.strategies import load_trainable_state_dict

        weights, _ = ckpt.load_model_files(self.run_dir)
        load_trainable_state_dict(self.model, weights)
        return self.model.eval()


def model_meta(run: Run) -> dict[str, Any]:
    return {
        "model": run.cfg.model,
        "strategy": run.cfg.strategy,
        "lora": {"rank": run.cfg.lora.rank, "alpha": run.cfg.lora.alpha, "dropout": run.cfg.lora.dropout},
        "classes": run.classes,
        "init_seed": run.cfg.seed,
        "frozen_fingerprint": run.base_fingerprint,
        "crop_size": run.cfg.data.crop_size,
        "frames_per_clip": run.cfg.data.frames_per_clip,
        "train_clip_s": run.train_clip_s,
    }


def frozen_fingerprint(model: torch.nn.Module) -> float:
    frozen = torch.nn.ParameterList([p for p in model.parameters() if not p.requires_grad])
    return ckpt.fingerprint(frozen)


class _LastRandomBuild:
    """The last `random:ARCH` base model built inside `reusing_random_builds`, before any strategy touched it.

    Drawing a ViT-L's 375 M weights takes 9-11 s on a CPU, and `compare` builds the same model from the same seed
    for each strategy; a copy takes under a second. The RNG state after the build is kept too, so that what is
    drawn next (LoRA's A matrices) is the same whether the model was built or copied. Only one model is kept, and
    only while a grid runs (a spare ViT-L is 1.5 GB); checkpoints are not cached (their files may change).
    """

    def __init__(self) -> None:
        self.active = False
        self.clear()

    def clear(self) -> None:
        self.key: tuple | None = None
        self.model: torch.nn.Module | None = None
        self.rng_after: torch.Tensor | None = None

    def keep(self, key: tuple, model: torch.nn.Module, rng_after: torch.Tensor) -> None:
        self.key, self.model, self.rng_after = key, copy.deepcopy(model), rng_after


_last_random_build = _LastRandomBuild()


@contextlib.contextmanager
def reusing_random_builds() -> Iterator[None]:
    """While inside, a `random:ARCH` model built once is copied for the next build of it (same classes, seed)."""
    _last_random_build.active = True
    try:
        yield
    finally:
        _last_random_build.active = False
        _last_random_build.clear()


def build_model(model_spec: str, strategy: str, lora: Any, classes: list[str], seed: int, log: Log,
                gradient_checkpointing: bool = False) -> torch.nn.Module:
    """The base model with the strategy applied; weights it must initialise itself are drawn from the run seed."""
    from vjepa_tune.models.loading import RANDOM_PREFIX, load_model
    from vjepa_tune.models.strategies import apply_strategy

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(key_seed(seed, "init"))
        key = (model_spec, tuple(classes), seed)
        reuse = _last_random_build.active and model_spec.startswith(RANDOM_PREFIX)
        if reuse and _last_random_build.key == key:
            model = copy.deepcopy(_last_random_build.model)
            torch.set_rng_state(_last_random_build.rng_after)
        else:
            model = load_model(model_spec, num_labels=len(classes), id2label=dict(enumerate(classes)), log=log)
            if reuse:
                _last_random_build.keep(key, model, torch.get_rng_state())
        if gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return apply_strategy(model, strategy, lora)  # LoRA's initial A matrices are drawn here too


def load_run_model(run_dir: Path, cfg: TrainConfig | None = None, log: Log = lambda _: None
                   ) -> tuple[torch.nn.Module, TrainConfig, list[str]]:
    """Rebuild a run's best model: base model + strategy + every trained weight."""
    from vjepa_tune.models.strategies import load_trainable_state_dict
    from vjepa_tune.tracking.records import read_config_yaml

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"run folder {run_dir} does not exist.")
    if cfg is None:
        if not (run_dir / "config.yaml").exists():
            raise BadInput(f"{run_dir} is not a vjepa-tune run folder (no config.yaml in it).")
        cfg = read_config_yaml(run_dir / "config.yaml")
    weights, meta = ckpt.load_model_files(run_dir)
    classes = list(meta["classes"])
    model = build_model(meta["model"], meta["strategy"], cfg.lora, classes, meta["init_seed"], log)
    found = frozen_fingerprint(model)
    expected = meta.get("frozen_fingerprint")
    if expected is not None and not _close(found, expected):
        raise BadInput(
            f"the base model {meta['model']!r} does not match the one {run_dir} was trained on "
            f"(frozen-weight fingerprint {found:.6g} != {expected:.6g}); was the checkpoint changed?"
        )
    load_trainable_state_dict(model, weights)
    model.eval()
    return model, cfg, classes


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-4 * max(1.0, abs(a), abs(b))


def _splits_for(cfg: TrainConfig, index: DatasetIndex, resume_dir: Path | None) -> Splits:
    from vjepa_tune.data.splits import make_splits, splits_from_json

    path = resume_dir / "splits.json" if resume_dir is not None else None
    if path is not None and path.exists():
        import json

        return splits_from_json(json.loads(path.read_text()), index.root)
    return make_splits(index, cfg.data, cfg.seed)


def _drop_unreadable(splits: Splits, infos: dict[str, Any], unreadable: list[tuple[Sample, str]]) -> Splits:
    bad = {s.id for s, _ in unreadable}
    return Splits(
        train=[s for s in splits.train if s.id not in bad],
        val=[s for s in splits.val if s.id not in bad],
        test=[s for s in splits.test if s.id not in bad],
        method=splits.method,
    )


def _identities(splits: Splits) -> dict[str, FileIdentity]:
    """Size and fingerprint of every video of the splits, recorded in splits.json so that a later `evaluate` or
    `predict` recognises copies of them even when the originals are gone (`data.fingerprints`)."""
    chosen = splits.train + splits.val + splits.test
    found = file_identities([s.path for s in chosen], desc="fingerprinting videos")
    return {s.id: identity for s, identity in zip(chosen, found, strict=True) if identity is not None}


def build_run(cfg: TrainConfig, accelerator: Any, *, log: Log = print, resume_dir: Path | None = None,
              splits: Splits | None = None) -> Run:
    """Everything a run needs before its first step, each checked before anything is written (see the module
    docstring); `resume_dir` is the folder of a run being resumed, whose splits are read back."""
    from vjepa_tune.data.probing import probe_samples
    from vjepa_tune.data.sources import read_dataset
    from vjepa_tune.data.video import typical_clip_s
    from vjepa_tune.models.info import count_parameters
    from vjepa_tune.models.loading import check_crop_size, model_config

    index = read_dataset(cfg.data, seed=cfg.seed)
    # The model's configuration is read (and its crop size checked) before the videos are probed, which can take
    # minutes: a model that cannot be loaded, or a crop it cannot take, fails at once.
    check_crop_size(model_config(cfg.model), cfg.data.crop_size)
    classes = index.classes
    resuming = resume_dir is not None
    splits = splits if splits is not None and not resuming else _splits_for(cfg, index, resume_dir)
    log(f"data: {counted(len(index.samples), 'video')} in {counted(len(classes), 'class')} ({index.format}); "
        f"split {splits.method}: "
        f"{len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test")
    chosen = splits.train + splits.val + splits.test
    infos, unreadable = probe_samples(chosen, workers=max(1, cfg.num_workers or 2))
    for sample, reason in unreadable:
        log(f"skipping unreadable video {sample.path}: {reason}")
    splits = _drop_unreadable(splits, infos, unreadable)
    if not splits.train or not splits.val or not splits.test:
        raise BadInput(
            f"after leaving out {counted(len(unreadable), 'unreadable video')} a split is empty "
            f"({len(splits.train)} train / {len(splits.val)} val / {len(splits.test)} test); check the data with "
            "`vjepa-tune data check`."
        )

    model = build_model(cfg.model, cfg.strategy, cfg.lora, classes, cfg.seed, log, cfg.gradient_checkpointing)
    crop = check_crop_size(model, cfg.data.crop_size)
    cfg.data.crop_size = crop
    counts = count_parameters(model)
    log(f"model {cfg.model} with strategy {cfg.strategy}: {counts.trainable:,} of {counts.total:,} parameters "
        f"train ({counts.pct:.3g}%)")

    from vjepa_tune.training.pipelines import make_pipeline

    pipeline = make_pipeline(cfg, model, splits, infos, accelerator, log)
    d = cfg.data
    train_clip_s = typical_clip_s((infos[s.id] for s in splits.train), d.frames_per_clip, d.sampling, d.frame_step)
    return Run(
        cfg=cfg, run_dir=resume_dir, accelerator=accelerator, model=model, classes=classes, splits=splits,
        pipeline=pipeline, counts=counts, skipped={s.id: r for s, r in unreadable},
        base_fingerprint=frozen_fingerprint(model), train_clip_s=train_clip_s,
    )
