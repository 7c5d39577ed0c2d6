"""Building a run: a copied random base model must be the model a fresh build gives, LoRA draws included; the
splits.json it writes records every listed video's identity."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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


def test_a_run_records_the_size_and_fingerprint_of_every_video_it_lists(trained_run: Callable[[str], Path]) -> None:
    from vjepa_tune.data.fingerprints import FINGERPRINT_SCHEME, file_identity
    from vjepa_tune.tracking.records import read_config_yaml

    run = trained_run("head_only")
    recorded = json.loads((run / "splits.json").read_text())
    root = Path(read_config_yaml(run / "config.yaml").data.root)
    assert recorded["version"] == 2 and recorded["fingerprint_scheme"] == FINGERPRINT_SCHEME
    entries = [e for name in ("train", "val", "test") for e in recorded[name]]
    assert len(entries) == 24
    for entry in entries:
        identity = file_identity(root / entry["id"])
        assert (entry["size"], entry["fingerprint"]) == (identity.size, identity.fingerprint), entry["id"]
