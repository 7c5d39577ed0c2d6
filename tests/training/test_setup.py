"""Building a run's model: a copied random base model must be the model a fresh build gives, LoRA draws included."""

from __future__ import annotations

import pytest
import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.models import loading
from vjepa_tune.training import setup
from vjepa_tune.training.setup import build_model, reusing_random_builds

real_load_model = loading.load_model


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every real build (`load_model` call), from a clean slate."""
    calls: list[tuple] = []
    monkeypatch.setattr(setup, "_last_random_build", setup._LastRandomBuild())
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: calls.append(a) or real_load_model(*a, **k))
    return calls


def test_inside_a_grid_a_random_model_is_built_once_and_each_copy_equals_a_fresh_build(builds: list[tuple]) -> None:
    lora = TrainConfig().lora

    def build(strategy: str = "pooler_head_and_lora", classes: tuple = ("a", "b"), seed: int = 3) -> torch.nn.Module:
        return build_model("random:tiny", strategy, lora, list(classes), seed, lambda _: None)

    fresh = _weights(build())  # outside a grid: built every time, nothing kept
    assert len(builds) == 1 and setup._last_random_build.model is None
    with reusing_random_builds():
        first = build()
        copied = build()
        assert len(builds) == 2, "the second build of the grid is a copy"
        assert _same(fresh, _weights(first)) and _same(fresh, _weights(copied))  # LoRA's draws after a copy too
        with torch.no_grad():  # training one run's copy must not leak into the next run's model
            next(copied.parameters()).add_(1.0)
        assert _same(fresh, _weights(build()))
        other_seed = _weights(build(seed=4))
        other_classes = build("head_only", ("a", "b", "c"), 4)
        assert len(builds) == 4, "a new seed or label set is built, not copied"
        assert not _same(fresh, other_seed) and other_classes.classifier.out_features == 3
    assert setup._last_random_build.model is None, "the spare copy is dropped with the grid"
    build()
    assert len(builds) == 5
