"""Fine-tuning strategies as data: which weights of a V-JEPA 2 classifier train, and where LoRA goes.

A strategy is a small frozen description; `models.adapters.apply_strategy` turns any of them into requires_grad
flags and peft adapters, so adding a strategy is adding one entry to `STRATEGIES` (and its name to
`config.StrategyName`). The table needs no torch: the command line, `compare` and the report read it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass

from vjepa_tune.config import StrategyName, check_strategy


@dataclass(frozen=True)
class Strategy:
    name: StrategyName
    description: str
    train_pooler: bool
    """The pooler's own weights train (all, including the base weights of adapted projections)."""
    pooler_lora: bool
    """LoRA adapters on the 15 pooler attention projections."""
    backbone_lora: bool
    """LoRA adapters on the encoder's attention (query, key, value, proj of every layer)."""

    @property
    def uses_lora(self) -> bool:
        return self.pooler_lora or self.backbone_lora

    @property
    def frozen_backbone(self) -> bool:
        """The encoder's output never changes in training, so it can be computed once and stored."""
        return not self.backbone_lora

    @property
    def frozen_pooler(self) -> bool:
        """Pooler weights frozen and no adapters in it: its output can be stored too."""
        return not self.train_pooler and not self.pooler_lora


STRATEGIES: dict[StrategyName, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "head_only",
            "the classifier only; backbone and pooler frozen",
            train_pooler=False,
            pooler_lora=False,
            backbone_lora=False,
        ),
        Strategy(
            "pooler_and_head",
            "the attentive pooler and the classifier; backbone frozen",
            train_pooler=True,
            pooler_lora=False,
            backbone_lora=False,
        ),
        Strategy(
            "lora",
            "the classifier and LoRA adapters on the 15 pooler attention projections",
            train_pooler=False,
            pooler_lora=True,
            backbone_lora=False,
        ),
        Strategy(
            "pooler_head_and_lora",
            "the pooler (its base weights too), the classifier and LoRA adapters on the pooler "
            "attention projections",
            train_pooler=True,
            pooler_lora=True,
            backbone_lora=False,
        ),
        Strategy(
            "backbone_lora",
            "the classifier and LoRA adapters on the pooler projections and the encoder's "
            "query/key/value/proj",
            train_pooler=False,
            pooler_lora=True,
            backbone_lora=True,
        ),
    )
}

POOLER_LORA_TARGETS = (
    r"pooler\.(cross_attention_layer\.cross_attn\.(q|k|v)_proj"
    r"|self_attention_layers\.\d+\.self_attn\.(q|k|v|out)_proj)"
)
"""The 15 pooler attention projections (the cross-attention has no out_proj)."""
BACKBONE_LORA_TARGETS = r"vjepa2\.encoder\.layer\.\d+\.attention\.(query|key|value|proj)"
"""Encoder attention only: anchored so neither the predictor nor the Conv3d patch embedding match."""


def get_strategy(strategy: Strategy | str) -> Strategy:
    """The strategy itself, or the table's entry for its name (BadInput for a name that is none)."""
    if isinstance(strategy, Strategy):
        return strategy
    return STRATEGIES[check_strategy(strategy)]


def lora_target_regex(strategy: Strategy | str) -> str | None:
    """The peft `target_modules` regex (peft full-matches a string against module names), or None."""
    s = get_strategy(strategy)
    parts = [
        p for p, on in ((POOLER_LORA_TARGETS, s.pooler_lora), (BACKBONE_LORA_TARGETS, s.backbone_lora)) if on
    ]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "|".join(f"(?:{p})" for p in parts)


