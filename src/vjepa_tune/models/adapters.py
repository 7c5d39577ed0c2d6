"""A strategy applied to a V-JEPA 2 classifier, and working with the result.

`apply_strategy` sets requires_grad flags and adds peft adapters as a `models.strategies.Strategy` says;
`trainable_state_dict` / `load_trainable_state_dict` save and restore exactly the weights that train. The split
forwards (`backbone_features`, `pooled_features`, `classify_features`) let the feature store run the frozen part once
and keep its output: they compute exactly what `model(pixel_values_videos).logits` computes, in the same three steps.
"""

from __future__ import annotations

import warnings
from typing import Literal

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import PeftModel, get_peft_model
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.config import LoraConfig
from vjepa_tune.errors import BadInput
from vjepa_tune.models.strategies import Strategy, get_strategy, lora_target_regex


def unwrap(model: torch.nn.Module) -> VJEPA2ForVideoClassification:
    """The VJEPA2ForVideoClassification under peft, DistributedDataParallel or torch.compile wrappers."""
    seen = model
    while not isinstance(seen, VJEPA2ForVideoClassification):
        if isinstance(seen, PeftModel):
            seen = seen.get_base_model()
        elif isinstance(seen, torch.nn.parallel.DistributedDataParallel):
            seen = seen.module
        elif hasattr(seen, "_orig_mod"):
            seen = seen._orig_mod
        else:
            raise TypeError(
                f"expected a VJEPA2ForVideoClassification (possibly wrapped), got {type(model).__name__}"
            )
    return seen


def apply_strategy(
    model: VJEPA2ForVideoClassification, strategy: Strategy | str, lora: LoraConfig | None = None
) -> torch.nn.Module:
    """Set what trains; returns the model itself, or a peft wrapper around it for LoRA strategies.

    The model keeps its train/eval mode and must not carry adapters yet. The classifier goes into
    peft's `modules_to_save`, so the trained head is part of what is saved. peft freezes every
    non-adapter weight; where the strategy trains the pooler, its base weights are made trainable
    again afterwards (peft cannot both adapt the pooler's projections and save it whole).
    """
    s = get_strategy(strategy)
    if not isinstance(model, VJEPA2ForVideoClassification):
        raise TypeError(
            f"apply_strategy needs a plain VJEPA2ForVideoClassification, got {type(model).__name__}"
        )
    was_training = model.training
    model.requires_grad_(False)
    model.classifier.requires_grad_(True)
    if s.train_pooler:
        model.pooler.requires_grad_(True)
    targets = lora_target_regex(s)
    if targets is None:
        return model
    lora = lora or LoraConfig()
    peft_config = PeftLoraConfig(
        target_modules=targets,
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        modules_to_save=["classifier"],
    )
    with warnings.catch_warnings():
        # peft calls a transformers method that transformers 5 deprecated; nothing for us to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        wrapped = get_peft_model(model, peft_config)
    if s.train_pooler:
        unwrap(wrapped).pooler.requires_grad_(True)
    # peft creates its layers in training mode even inside an eval-mode model: restore one mode.
    return wrapped.train(was_training)


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight that trains (adapters, classifier, pooler where it trains), detached CPU copies.

    Keys are names within the unwrapped model (e.g. `classifier.modules_to_save.default.weight`), so
    they load back into a fresh model given the same strategy, wrapped by peft or not.
    """
    return {
        name: param.detach().to("cpu", copy=True)
        for name, param in unwrap(model).named_parameters()
        if param.requires_grad
    }


def _examples(names: set[str], count: int = 3) -> str:
    shown = sorted(names)[:count]
    return ", ".join(shown) + (", ..." if len(names) > count else "")


def load_trainable_state_dict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load `trainable_state_dict` output into a model prepared with the same strategy.

    Every trained weight is required, so a reload never leaves a random head or pooler behind.
    """
    params = {name: p for name, p in unwrap(model).named_parameters() if p.requires_grad}
    missing = set(params) - set(state_dict)
    unexpected = set(state_dict) - set(params)
    if missing or unexpected:
        details = []
        if missing:
            details.append(f"{len(missing)} trained weights are missing ({_examples(missing)})")
        if unexpected:
            details.append(
                f"{len(unexpected)} are not trained by this model's strategy ({_examples(unexpected)})"
            )
        raise BadInput(
            f"the saved weights do not fit this model: {'; '.join(details)}. They were saved with "
            "another strategy, LoRA rank or model; load them with the strategy and --lora settings of "
            "the run that saved them."
        )
    wrong_shape = {n for n, p in params.items() if tuple(state_dict[n].shape) != tuple(p.shape)}
    if wrong_shape:
        name = sorted(wrong_shape)[0]
        raise BadInput(
            f"the saved weights do not fit this model: {len(wrong_shape)} have another shape, e.g. "
            f"{name} is {tuple(state_dict[name].shape)} saved but {tuple(params[name].shape)} here "
            "(another model, label count or LoRA rank)."
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state_dict[name])


def backbone_features(model: torch.nn.Module, pixel_values_videos: torch.Tensor) -> torch.Tensor:
    """The encoder output (B, N, D) the pooler receives: the classifier skips the predictor, as done here."""
    return unwrap(model).vjepa2.encoder(pixel_values_videos=pixel_values_videos).last_hidden_state


def pooled_features(model: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The attentive pooler's output (B, D), as the classifier receives it."""
    pooler = unwrap(model).pooler
    return pooler(features.to(pooler.query_tokens.dtype))


def classify_features(
    model: torch.nn.Module, features: torch.Tensor, from_: Literal["backbone", "pooler"] = "backbone"
) -> torch.Tensor:
    """Logits from stored features: backbone features (B, N, D) or pooled features (B, D)."""
    if from_ == "backbone":
        features = pooled_features(model, features)
    elif from_ != "pooler":
        raise ValueError(f"from_ must be 'backbone' or 'pooler', got {from_!r}")
    classifier = unwrap(model).classifier
    return classifier(features.to(next(classifier.parameters()).dtype))
