"""The strategy table: five strategies, what each freezes, and where LoRA goes."""

import re

import torch

from vjepa_tune.config import STRATEGY_NAMES
from vjepa_tune.models.loading import load_model
from vjepa_tune.models.strategies import BACKBONE_LORA_TARGETS, POOLER_LORA_TARGETS, STRATEGIES

POOLER_PROJECTIONS = [f"pooler.cross_attention_layer.cross_attn.{p}_proj" for p in "qkv"] + [
    f"pooler.self_attention_layers.{i}.self_attn.{p}_proj" for i in range(3) for p in ("q", "k", "v", "out")
]
ENCODER_ATTENTION = [
    f"vjepa2.encoder.layer.{i}.attention.{p}" for i in range(4) for p in ("query", "key", "value", "proj")
]


def random_tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return load_model("random:tiny", num_labels=4, id2label=None, log=lambda _: None)


def test_the_table_and_the_config_type_name_the_same_strategies_in_the_same_order():
    """`config.StrategyName` (what the command line and config files accept) and `STRATEGIES` (what each does) are
    written in two places; a strategy added to one only would be refused, or accepted and then unknown."""
    assert tuple(STRATEGIES) == STRATEGY_NAMES
    assert all(name == strategy.name for name, strategy in STRATEGIES.items())


def test_the_strategy_table():
    assert list(STRATEGIES) == [
        "head_only",
        "pooler_and_head",
        "lora",
        "pooler_head_and_lora",
        "backbone_lora",
    ]
    frozen = {name: (s.frozen_backbone, s.frozen_pooler, s.uses_lora) for name, s in STRATEGIES.items()}
    assert frozen == {
        "head_only": (True, True, False),
        "pooler_and_head": (True, False, False),
        "lora": (True, False, True),
        "pooler_head_and_lora": (True, False, True),
        "backbone_lora": (False, False, True),
    }


def test_target_regexes_pick_exactly_the_attention_projections():
    names = [name for name, _ in random_tiny().named_modules()]
    assert [n for n in names if re.fullmatch(POOLER_LORA_TARGETS, n)] == sorted(
        POOLER_PROJECTIONS, key=names.index
    )
    assert [n for n in names if re.fullmatch(BACKBONE_LORA_TARGETS, n)] == ENCODER_ATTENTION
    assert any(n.startswith("vjepa2.predictor.layer.0.attention.") for n in names)  # same names, not matched
    assert "vjepa2.encoder.embeddings.patch_embeddings.proj" in names  # a `proj`, not matched
