"""Building a run's model: a copied random base model must be the model a fresh build gives, LoRA draws included."""

from __future__ import annotations

import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.models import loading
from vjepa_tune.training import setup
from vjepa_tune.training.setup import build_model

real_load_model = loading.load_model


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_copied_random_model_equals_a_fresh_build_and_is_never_shared(monkeypatch) -> None:
    lora = TrainConfig().lora
    built = _weights(build_model("random:tiny", "pooler_head_and_lora", lora, ["a", "b"], 3, lambda _: None))
    copied_model = build_model("random:tiny", "pooler_head_and_lora", lora, ["a", "b"], 3, lambda _: None)
    assert setup._last_random_build.key == ("random:tiny", ("a", "b"), 3)
    assert _same(built, _weights(copied_model))  # LoRA's A matrices drawn after a copy are those drawn after a build

    with torch.no_grad():  # training one run's copy must not leak into the next run's model
        next(copied_model.parameters()).add_(1.0)
    assert _same(built, _weights(build_model("random:tiny", "pooler_head_and_lora", lora, ["a", "b"], 3,
                                             lambda _: None)))

    calls = []
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: calls.append(a) or real_load_model(*a, **k))
    other_seed = _weights(build_model("random:tiny", "pooler_head_and_lora", lora, ["a", "b"], 4, lambda _: None))
    other_classes = build_model("random:tiny", "head_only", lora, ["a", "b", "c"], 4, lambda _: None)
    assert len(calls) == 2  # a new seed or label set is built, not copied
    assert not _same(built, other_seed)
    assert other_classes.classifier.out_features == 3
