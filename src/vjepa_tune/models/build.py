"""Building the model a run trains: the base model for a spec and the data's classes, then a strategy applied to it.

Weights a run must initialise itself (all of a `random:*` model, a pooler missing from a backbone-only checkpoint, a
classifier for the data's classes, LoRA's initial matrices) are drawn from the generator seeded by
`key_seed(seed, 'init')`, so a run folder recreates them exactly when its model is loaded again (`runs.checkpoint`).

A comparison trains several strategies from the same random model: inside `reusing_random_builds()` a `random:*`
base model is drawn once and copied for the next build with the same spec, classes and seed.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.config import LoraConfig
from vjepa_tune.models.adapters import apply_strategy
from vjepa_tune.models.loading import load_model, load_model_as_is
from vjepa_tune.models.specs import RANDOM_PREFIX
from vjepa_tune.models.strategies import Strategy
from vjepa_tune.randomness import key_seed

Log = Callable[[str], None]


def _silent(_: str) -> None:
    """The log of a build nobody needs to hear about."""


@dataclass
class RandomBuilds:
    """The last `random:ARCH` base model built inside `reusing_random_builds`, before any strategy touched it.

    `compare` builds the same model from the same seed for each strategy, and drawing a large model's weights costs
    far more than copying them (BENCHMARKS.md, "Building the same random model for every strategy of a grid"). The
    RNG state after the build is kept too, so that what is drawn next (LoRA's A matrices) is the same whether the
    model was built or copied. Only one model is kept, and only while a grid runs; checkpoints are never kept (their
    files may change).
    """

    key: tuple[str, tuple[str, ...], int] | None = None
    model: VJEPA2ForVideoClassification | None = None
    rng_after: torch.Tensor | None = None
    built: int = 0
    """Random base models drawn while the grid ran."""
    copied: int = 0
    """Builds served by copying the kept model."""

    def clear(self) -> None:
        self.key, self.model, self.rng_after = None, None, None


_active: contextvars.ContextVar[RandomBuilds | None] = contextvars.ContextVar("random_builds", default=None)


@contextlib.contextmanager
def reusing_random_builds() -> Iterator[RandomBuilds]:
    """While inside, a `random:ARCH` model built once is copied for the next build of it (same classes and seed);
    yields the record of what was built and copied. The spare copy is dropped on leaving."""
    builds = RandomBuilds()
    token = _active.set(builds)
    try:
        yield builds
    finally:
        _active.reset(token)
        builds.clear()


def _base(spec: str, classes: list[str], seed: int, log: Log) -> VJEPA2ForVideoClassification:
    """The base model, drawn from the seeded global generator (the callers fork it); leaves the generator where a
    fresh build leaves it, copy or not."""
    builds = _active.get()
    key = (spec, tuple(classes), seed)
    reuse = builds is not None and spec.startswith(RANDOM_PREFIX)
    torch.manual_seed(key_seed(seed, "init"))
    if reuse and builds.key == key and builds.model is not None and builds.rng_after is not None:
        builds.copied += 1
        torch.set_rng_state(builds.rng_after)
        return copy.deepcopy(builds.model)
    model = load_model(spec, num_labels=len(classes), id2label=dict(enumerate(classes)), log=log)
    if reuse:
        builds.built += 1
        builds.key, builds.model, builds.rng_after = key, copy.deepcopy(model), torch.get_rng_state()
    return model


def enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Recompute each layer's activations in the backward pass instead of keeping them (non-reentrant). transformers
    renamed the call (`gradient_checkpointing_enable` warns from 5.x); older releases, which our floor allows, have
    only the old name."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def build_model(spec: str, strategy: Strategy | str, lora: LoraConfig | None, classes: list[str], seed: int,
                log: Log = _silent, gradient_checkpointing: bool = False) -> torch.nn.Module:
    """The base model with the strategy applied; weights it must initialise itself are drawn from the run seed
    (LoRA's initial A matrices included), without changing the caller's random stream."""
    with torch.random.fork_rng(devices=[]):
        model = _base(spec, classes, seed, log)
        if gradient_checkpointing:
            enable_activation_checkpointing(model)
        return apply_strategy(model, strategy, lora)


def build_base_model(spec: str, classes: list[str], seed: int, log: Log = _silent) -> VJEPA2ForVideoClassification:
    """The base model a run started from, before any strategy (what an adapter goes on), frozen and in eval mode:
    the model `build_model` applies a strategy to, drawn the same way."""
    with torch.random.fork_rng(devices=[]):
        model = _base(spec, classes, seed, log)
    return model.requires_grad_(False).eval()


def build_pretraining_model(spec: str, seed: int, log: Log = _silent
                            ) -> tuple[VJEPA2ForVideoClassification, frozenset[str]]:
    """The model continued pretraining starts from, as its checkpoint has it (`loading.load_model_as_is`), with the
    parts the checkpoint lacked (all of a `random:*` model) drawn from the run seed, as `build_model` draws them:
    a resumed run rebuilds the same weights. Returns the model and the parts its checkpoint lacked."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(key_seed(seed, "init"))
        return load_model_as_is(spec, log=log)
