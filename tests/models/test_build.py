"""Building a run's model: inside a grid a random base model is drawn once and copied, and every copy is the model a
fresh build gives, LoRA's draws included; the base model alone is what the strategy was applied to."""

from __future__ import annotations

import warnings

import torch

from vjepa_tune.config import TrainConfig
from vjepa_tune.models.build import (
    build_base_model,
    build_model,
    enable_activation_checkpointing,
    reusing_random_builds,
)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _build(strategy: str = "pooler_head_and_lora", classes: tuple = ("a", "b"), seed: int = 3) -> torch.nn.Module:
    return build_model("random:tiny", strategy, TrainConfig().lora, list(classes), seed)


def test_inside_a_grid_a_random_model_is_built_once_and_each_copy_equals_a_fresh_build() -> None:
    fresh = _weights(_build())  # outside a grid: built every time, nothing kept
    with reusing_random_builds() as builds:
        first = _build()
        copied = _build()
        assert (builds.built, builds.copied) == (1, 1), "the second build of the grid is a copy"
        assert _same(fresh, _weights(first)) and _same(fresh, _weights(copied))  # LoRA's draws after a copy too
        with torch.no_grad():  # training one run's copy must not leak into the next run's model
            next(copied.parameters()).add_(1.0)
        assert _same(fresh, _weights(_build()))
        other_seed = _weights(_build(seed=4))
        other_classes = _build("head_only", ("a", "b", "c"), 4)
        assert (builds.built, builds.copied) == (3, 2), "a new seed or label set is built, not copied"
        assert not _same(fresh, other_seed) and other_classes.classifier.out_features == 3
    assert builds.model is None, "the spare copy is dropped with the grid"
    _build()
    assert (builds.built, builds.copied) == (3, 2), "after the grid, nothing is copied or kept"


def test_building_leaves_the_callers_random_stream_where_it_was() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    _build()
    assert torch.equal(torch.rand(3), expected)


def test_the_base_model_is_the_model_the_strategy_was_applied_to_frozen() -> None:
    from vjepa_tune.models.adapters import unwrap

    applied = unwrap(_build("lora"))
    base = build_base_model("random:tiny", ["a", "b"], 3)
    assert not any(p.requires_grad for p in base.parameters()) and not base.training
    plain = {k: v for k, v in applied.state_dict().items() if "lora_" not in k and "modules_to_save" not in k}
    names = {k.replace(".base_layer", "").replace(".original_module", ""): v for k, v in plain.items()}
    assert _same(_weights(base), names)


def test_gradient_checkpointing_is_enabled_by_the_current_call_without_a_deprecation_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # transformers 5 warns on the old name
        model = build_model("random:tiny", "backbone_lora", TrainConfig().lora, ["a", "b"], 0,
                            gradient_checkpointing=True)
    layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
    assert layers and all(m.gradient_checkpointing for m in layers)


def test_a_transformers_with_only_the_old_call_still_gets_checkpointing() -> None:
    class OldModel(torch.nn.Module):  # transformers before the rename: only gradient_checkpointing_enable
        def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict) -> None:
            self.asked = gradient_checkpointing_kwargs

    model = OldModel()
    enable_activation_checkpointing(model)
    assert model.asked == {"use_reentrant": False}
