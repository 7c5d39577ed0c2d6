"""Parameter counts of a model under a strategy, by part, without touching weight memory.

`model_info` builds the model on the meta device and applies the strategy with real peft adapters,
so its counts are those of training, in about a second even for ViT-g. Totals include the adapters;
peft's frozen duplicate of the classifier (the original kept beside the trainable `modules_to_save`
copy) is not counted, so a total is the size of the model as trained and as exported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vjepa_tune.config import LoraConfig
from vjepa_tune.models.adapters import apply_strategy, unwrap
from vjepa_tune.models.loading import load_model
from vjepa_tune.models.strategies import STRATEGIES, get_strategy, lora_target_regex

PARTS = ("backbone", "pooler", "classifier", "adapters")
_PREFIX_PARTS = (("vjepa2.", "backbone"), ("pooler.", "pooler"), ("classifier.", "classifier"))


@dataclass
class ParamCounts:
    trainable: int
    total: int
    by_part: dict[str, tuple[int, int]]
    """part -> (trainable, total) for backbone (predictor included), pooler, classifier, adapters."""

    @property
    def pct(self) -> float:
        """Trainable share of the total, in percent (13.15 for pooler_and_head on ViT-L)."""
        return 100.0 * self.trainable / self.total if self.total else 0.0


def _part_of(name: str) -> str:
    if "lora_" in name:
        return "adapters"
    for prefix, part in _PREFIX_PARTS:
        if name.startswith(prefix):
            return part
    return "other"


def count_parameters(model: torch.nn.Module) -> ParamCounts:
    """Trainable and total parameters, overall and by part (works on meta-device models)."""
    by_part = {part: [0, 0] for part in PARTS}
    for name, param in unwrap(model).named_parameters():
        if ".original_module." in name:
            continue  # peft's frozen copy of a modules_to_save module: not part of the model as trained
        counts = by_part.setdefault(_part_of(name), [0, 0])
        counts[1] += param.numel()
        if param.requires_grad:
            counts[0] += param.numel()
    return ParamCounts(
        trainable=sum(t for t, _ in by_part.values()),
        total=sum(n for _, n in by_part.values()),
        by_part={part: (t, n) for part, (t, n) in by_part.items()},
    )


def model_info(spec: str, strategy: str, num_labels: int, lora: LoraConfig | None = None) -> dict:
    """What `vjepa-tune info` reports: architecture, strategy and parameter counts (meta device)."""
    s = get_strategy(strategy)
    lora = lora or LoraConfig()
    model = load_model(spec, num_labels=num_labels, id2label=None, meta=True, log=lambda _: None)
    config = model.config
    counts = count_parameters(apply_strategy(model, s, lora))
    return {
        "model": spec,
        "architecture": {
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads,
            "mlp_ratio": config.mlp_ratio,
            "patch_size": config.patch_size,
            "tubelet_size": config.tubelet_size,
            "crop_size": config.crop_size,
            "num_pooler_layers": config.num_pooler_layers,
        },
        "strategy": s.name,
        "strategy_description": s.description,
        "frozen_backbone": s.frozen_backbone,
        "frozen_pooler": s.frozen_pooler,
        "num_labels": num_labels,
        "lora": (
            {
                "rank": lora.rank,
                "alpha": lora.alpha,
                "dropout": lora.dropout,
                "target_modules": lora_target_regex(s),
            }
            if s.uses_lora
            else None
        ),
        "trainable_params": counts.trainable,
        "total_params": counts.total,
        "trainable_pct": counts.pct,
        "by_part": {part: {"trainable": t, "total": n} for part, (t, n) in counts.by_part.items()},
    }


def format_pct(pct: float) -> str:
    """13.15, 0.13; one significant digit for shares too small for two decimals (0.001, 0.0005)."""
    if pct >= 0.01 or pct <= 0:
        return f"{pct:.2f}"
    return f"{pct:.{-math.floor(math.log10(pct))}f}"


def format_info(info: dict) -> str:
    """`model_info` output as a short human-readable report."""
    arch = info["architecture"]
    lines = [
        f"model       {info['model']}: hidden {arch['hidden_size']}, {arch['num_hidden_layers']} layers, "
        f"{arch['num_attention_heads']} heads, patch {arch['patch_size']}, tubelet {arch['tubelet_size']}, "
        f"crop {arch['crop_size']} px, {arch['num_pooler_layers']} pooler self-attention layers",
        f"strategy    {info['strategy']}: trains {info['strategy_description']}",
        f"labels      {info['num_labels']}",
    ]
    if info["lora"]:
        lora = info["lora"]
        lines.append(
            f"LoRA        rank {lora['rank']}, alpha {lora['alpha']:g}, dropout {lora['dropout']:g} on "
            f"{lora['target_modules']}"
        )
    lines += ["", f"{'part':<12}{'trainable':>14}{'total':>16}"]
    for part, counts in info["by_part"].items():
        lines.append(f"{part:<12}{counts['trainable']:>14,}{counts['total']:>16,}")
    lines.append(
        f"{'all':<12}{info['trainable_params']:>14,}{info['total_params']:>16,}"
        f"   ({format_pct(info['trainable_pct'])}% trainable)"
    )
    return "\n".join(lines)


def format_strategies(infos: list[dict]) -> str:
    """Several `model_info` results (one model, several strategies) as one comparison table."""
    width = max([len("strategy"), *(len(i["strategy"]) for i in infos)])
    lines = [f"{'strategy':<{width}}{'trainable':>14}{'total':>16}{'%':>9}"]
    for i in infos:
        lines.append(
            f"{i['strategy']:<{width}}{i['trainable_params']:>14,}{i['total_params']:>16,}"
            f"{format_pct(i['trainable_pct']):>9}"
        )
    return "\n".join(lines)


def all_strategies_info(spec: str, num_labels: int, lora: LoraConfig | None = None) -> list[dict]:
    """`model_info` for every strategy, in the order of STRATEGIES (for `info` without --strategy)."""
    return [model_info(spec, name, num_labels, lora) for name in STRATEGIES]
