"""A strategy applied to a model: what trains, what is saved and reloaded, and the split forwards."""

import copy
import functools

import pytest
import torch
from peft import PeftModel

from vjepa_tune.config import LoraConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import (
    apply_strategy,
    backbone_features,
    classify_features,
    load_trainable_state_dict,
    pooled_features,
    trainable_state_dict,
    unwrap,
)
from vjepa_tune.models.info import count_parameters
from vjepa_tune.models.loading import load_model
from vjepa_tune.models.strategies import STRATEGIES

LABELS = {0: "sitting_down", 1: "standing_up", 2: "waving", 3: "other"}
POOLER_PROJECTIONS = [f"pooler.cross_attention_layer.cross_attn.{p}_proj" for p in "qkv"] + [
    f"pooler.self_attention_layers.{i}.self_attn.{p}_proj" for i in range(3) for p in ("q", "k", "v", "out")
]
ENCODER_ATTENTION = [
    f"vjepa2.encoder.layer.{i}.attention.{p}" for i in range(4) for p in ("query", "key", "value", "proj")
]
HEAD = {"classifier.weight", "classifier.bias"}
SAVED_HEAD = {"classifier.modules_to_save.default.weight", "classifier.modules_to_save.default.bias"}


def adapters(modules: list[str]) -> set[str]:
    return {f"{m}.lora_{ab}.default.weight" for m in modules for ab in "AB"}


def pooler_weights(adapted: list[str]) -> set[str]:
    """Names of all pooler weights of the plain tiny model, as peft renames those of adapted projections."""
    names = set()
    for name, _ in random_tiny().pooler.named_parameters(prefix="pooler"):
        module, leaf = name.rsplit(".", 1)
        names.add(f"{module}.base_layer.{leaf}" if module in adapted else name)
    return names


@functools.cache
def random_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_model("random:tiny", num_labels=4, id2label=LABELS, log=lambda _: None)


def tiny():
    """A fresh copy of one random:tiny model (as if loaded from one checkpoint), cheaper than a new init."""
    return copy.deepcopy(random_tiny())


def prepared(strategy: str, rank: int = 16):
    torch.manual_seed(1)  # LoRA's A matrices draw from the global RNG
    return apply_strategy(tiny(), strategy, LoraConfig(rank=rank, alpha=32, dropout=0.1))


def videos(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 16, 3, 64, 64, generator=torch.Generator().manual_seed(7))


def train_steps(model, steps: int = 2) -> None:
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    x, y = videos(), torch.tensor([0, 3])
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(pixel_values_videos=x).logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def trainable_names(model) -> set[str]:
    return {n for n, p in unwrap(model).named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "strategy, expected, count",
    [
        ("head_only", lambda: HEAD, 516),
        ("pooler_and_head", lambda: HEAD | pooler_weights([]), 777_220),
        ("lora", lambda: SAVED_HEAD | adapters(POOLER_PROJECTIONS), 516 + 15 * 16 * 256),
        (
            "pooler_head_and_lora",
            lambda: SAVED_HEAD | adapters(POOLER_PROJECTIONS) | pooler_weights(POOLER_PROJECTIONS),
            777_220 + 15 * 16 * 256,
        ),
        (
            "backbone_lora",
            lambda: SAVED_HEAD | adapters(POOLER_PROJECTIONS) | adapters(ENCODER_ATTENTION),
            516 + (15 + 16) * 16 * 256,
        ),
    ],
)
def test_exactly_the_strategys_weights_train(strategy, expected, count):
    model = prepared(strategy)
    assert trainable_names(model) == expected()
    assert count_parameters(model).trainable == count
    assert isinstance(model, PeftModel) == STRATEGIES[strategy].uses_lora


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_training_changes_every_trained_weight_and_no_frozen_one(strategy):
    model = prepared(strategy)
    before = {n: p.detach().clone() for n, p in unwrap(model).named_parameters()}
    trained = trainable_names(model)
    train_steps(model)
    after = dict(unwrap(model).named_parameters())
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == trained


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_saved_trainable_weights_reload_into_a_fresh_model(strategy):
    model = prepared(strategy)
    train_steps(model)
    saved = trainable_state_dict(model)
    assert set(saved) == trainable_names(model)
    assert all(t.device.type == "cpu" for t in saved.values())
    fresh = prepared(strategy)  # same frozen weights (as from one checkpoint), untrained head and adapters
    x = videos()
    with torch.no_grad():
        expected = model(pixel_values_videos=x).logits
        assert not torch.allclose(fresh(pixel_values_videos=x).logits, expected)
        load_trainable_state_dict(fresh, saved)
        assert torch.equal(fresh(pixel_values_videos=x).logits, expected)


def test_weights_of_another_strategy_or_rank_are_refused():
    saved = trainable_state_dict(prepared("lora"))
    with pytest.raises(BadInput, match="2 trained weights are missing.*classifier.bias.*another strategy"):
        load_trainable_state_dict(prepared("head_only"), saved)
    with pytest.raises(BadInput, match="another shape.*lora_A"):
        load_trainable_state_dict(prepared("lora", rank=8), saved)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_split_forwards_equal_the_full_forward(strategy):
    model = prepared(strategy)
    train_steps(model, steps=1)  # LoRA B starts at zero: one step makes the adapters count
    x = videos()
    with torch.no_grad():
        full = model(pixel_values_videos=x).logits
        features = backbone_features(model, x)
        pooled = pooled_features(model, features)
        assert features.shape == (2, 8 * 4 * 4, 128) and pooled.shape == (2, 128)
        torch.testing.assert_close(classify_features(model, features), full, rtol=0, atol=1e-5)
        torch.testing.assert_close(classify_features(model, pooled, from_="pooler"), full, rtol=0, atol=1e-5)
        torch.testing.assert_close(classify_features(model, features.bfloat16()), full, rtol=0, atol=0.05)


def test_lora_is_active_in_the_split_forwards():
    model = prepared("backbone_lora")
    train_steps(model, steps=1)
    x = videos()
    with torch.no_grad():
        with_adapters = backbone_features(model, x)
        with model.disable_adapter():
            without = backbone_features(model, x)
    assert not torch.allclose(with_adapters, without)


def test_unknown_strategy_is_bad_input():
    with pytest.raises(
        BadInput, match="'full'.*head_only, pooler_and_head, lora, pooler_head_and_lora, backbone_lora"
    ):
        apply_strategy(tiny(), "full", LoraConfig())


def test_unwrap_finds_the_model_under_peft():
    model = tiny()
    assert unwrap(apply_strategy(model, "lora", LoraConfig())) is model
    assert unwrap(model) is model
