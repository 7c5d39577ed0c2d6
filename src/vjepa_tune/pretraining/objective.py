"""V-JEPA's pretraining objective, assembled from transformers' VJEPA2 modules (not a copy of the network).

`VJEPA2Model.forward` encodes every token before it picks the context, which would let the context encoder see the
target; so the context encoder is run by hand: `encoder.embeddings`, then only the context tokens through each
`VJEPA2Layer` with `position_mask` (their RoPE positions), then `encoder.layernorm`. `VJEPA2Predictor` gathers the
context itself from a full-length (clips, tokens, width) tensor and takes one mask per call, so the context output is
scattered back to its positions and each mask set gets its own call. The target encoder, an exponential moving average
of the context encoder, sees the whole clip; its output, layer-normed over the features as V-JEPA's `forward_target`
does, is the target at the target tokens. The loss is V-JEPA's `loss_fn` with `loss_exp` 1: the mean absolute
difference per mask set, averaged over the sets (the official code divides the sum by the number of sets).
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import VJEPA2Config, VJEPA2Model
from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder, VJEPA2Predictor

from vjepa_tune.config import PredictorSettings
from vjepa_tune.errors import BadInput
from vjepa_tune.models.build import enable_activation_checkpointing
from vjepa_tune.pretraining.masks import MaskDraw
from vjepa_tune.randomness import seeded_torch_rng
from vjepa_tune.text import counted, verb

MIN_HEAD_SIZE = 6
"""VJEPA2's RoPE rotates three sections (time, row, column) of 2 * (head size // 3 // 2) dimensions each; below 6
dimensions per head a section is empty and the predictor cannot tell positions apart."""


def gather_tokens(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(clips, len(index[i]), width): each clip's tokens at its own indices."""
    return torch.gather(tokens, 1, index.unsqueeze(-1).expand(-1, -1, tokens.size(-1)))


def scatter_tokens(values: torch.Tensor, index: torch.Tensor, length: int) -> torch.Tensor:
    """(clips, length, width) with `values` at `index` and zeros elsewhere; gradients flow back to `values`."""
    full = values.new_zeros(values.size(0), length, values.size(-1))
    return full.scatter(1, index.unsqueeze(-1).expand(-1, -1, values.size(-1)), values)


def encode_context(encoder: VJEPA2Encoder, tokens: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The context encoder: only the context tokens (of the patch embeddings `tokens`) through every layer, at their
    own RoPE positions, then the final norm. Layers checkpoint themselves when gradient checkpointing is on."""
    hidden = gather_tokens(tokens, context)
    for layer in encoder.layer:
        hidden = layer(hidden, context)[0]  # positional, as gradient checkpointing requires
    return encoder.layernorm(hidden)


@torch.no_grad()
def encode_targets(target_encoder: VJEPA2Encoder, pixel_values: torch.Tensor) -> torch.Tensor:
    """(clips, tokens, width): the target encoder's output on the whole clip, layer-normed over the features."""
    hidden = target_encoder(pixel_values_videos=pixel_values).last_hidden_state
    return F.layer_norm(hidden, (hidden.size(-1),))


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = momentum * target + (1 - momentum) * online, parameter by parameter; momentum 1 leaves the target
    untouched (even where the online weights are no longer finite)."""
    if momentum == 1.0:
        return
    targets = dict(target.named_parameters())
    onlines = dict(online.named_parameters())
    if targets.keys() != onlines.keys():
        raise ValueError("the target and online encoders do not have the same parameters")
    names = list(targets)
    target_params = [targets[n] for n in names]
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, [onlines[n].detach() for n in names], alpha=1.0 - momentum)


def ema_momentum(step: int, total_steps: int, start: float, end: float) -> float:
    """The momentum of the update after optimizer step `step` (0-based) of `total_steps`: linear from `start`, as
    V-JEPA's momentum scheduler (which would reach `end` one step after the last)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    return start + (end - start) * min(max(step, 0), total_steps) / total_steps


@dataclass
class ObjectiveOutput:
    """One forward pass of the objective."""

    loss: torch.Tensor
    """Scalar: the mean of `sample_losses`."""
    sample_losses: torch.Tensor
    """(clips,): each clip's loss, the mean over mask sets of its mean |prediction - target| (for exact
    accumulation: sum them and divide by the step's clip count)."""
    set_losses: dict[str, torch.Tensor]
    """Detached (clips,) losses per mask set, by set name."""
    targets: torch.Tensor
    """Detached (clips, tokens, width): the layer-normed target features of every token (for the monitors)."""
    predictions: dict[str, torch.Tensor]
    """Detached (clips, target tokens, width) predictor outputs per mask set (for the monitors)."""


class JepaObjective(nn.Module):
    """Context encoder (the backbone's own encoder, trained), predictor (the backbone's, trained) and target encoder
    (a frozen copy that moves only by `update_target`).

    Install the predictor first (`prepare_predictor`). The context encoder and predictor are the backbone's modules,
    so training them trains the model that is saved; the target encoder is a separate copy.
    """

    def __init__(self, backbone: VJEPA2Model, *, gradient_checkpointing: bool = False) -> None:
        super().__init__()
        if gradient_checkpointing:
            enable_activation_checkpointing(backbone)
        self.context_encoder: VJEPA2Encoder = backbone.encoder
        self.predictor: VJEPA2Predictor = backbone.predictor
        self.target_encoder: VJEPA2Encoder = copy.deepcopy(backbone.encoder)
        self.target_encoder.requires_grad_(False)
        self.target_encoder.eval()

    def train(self, mode: bool = True) -> JepaObjective:
        """Train the context encoder and predictor; the target encoder stays in eval mode (deterministic targets)."""
        super().train(mode)
        self.target_encoder.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates: the context encoder's and the predictor's parameters, never the target's."""
        return [p for p in (*self.context_encoder.parameters(), *self.predictor.parameters()) if p.requires_grad]

    def learning_parameters(self, encoder_learns: bool) -> list[nn.Parameter]:
        """What learns in a step: every trainable parameter, or the predictor's alone in its warm-up."""
        if encoder_learns:
            return self.trainable_parameters()
        return [p for p in self.predictor.parameters() if p.requires_grad]

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """Move the target encoder towards the context encoder; call after each optimizer step."""
        ema_update(self.target_encoder, self.context_encoder, momentum)

    def forward(self, pixel_values: torch.Tensor, draws: list[MaskDraw], *, encoder_learns: bool = True
                ) -> ObjectiveOutput:
        """Loss of normalised clips (clips, frames, channels, height, width) under one mask draw per set. With
        `encoder_learns` False (the predictor's warm-up) the context encoder runs without gradients: only the
        predictor learns, at the cost of a forward."""
        for draw in draws:
            if draw.context.size(0) != pixel_values.size(0) or draw.target.size(0) != pixel_values.size(0):
                raise ValueError(f"mask set {draw.name} has masks for {draw.context.size(0)} clips, "
                                 f"the batch has {pixel_values.size(0)}")
        targets = encode_targets(self.target_encoder, pixel_values)
        encoder_grad = contextlib.nullcontext() if encoder_learns else torch.no_grad()
        with encoder_grad:
            tokens = self.context_encoder.embeddings(pixel_values)
        set_losses: dict[str, torch.Tensor] = {}
        predictions: dict[str, torch.Tensor] = {}
        for draw in draws:
            context = draw.context.to(tokens.device)
            target = draw.target.to(tokens.device)
            with encoder_grad:
                encoded = encode_context(self.context_encoder, tokens, context)
            predicted = self.predictor(
                encoder_hidden_states=scatter_tokens(encoded, context, tokens.size(1)),
                context_mask=[context],
                target_mask=[target],
            ).last_hidden_state
            wanted = gather_tokens(targets, target)
            set_losses[draw.name] = (predicted.float() - wanted.float()).abs().mean(dim=(1, 2))
            predictions[draw.name] = predicted.detach()
        sample_losses = torch.stack(list(set_losses.values())).mean(dim=0)
        return ObjectiveOutput(
            loss=sample_losses.mean(),
            sample_losses=sample_losses,
            set_losses={name: value.detach() for name, value in set_losses.items()},
            targets=targets,
            predictions=predictions,
        )


def new_predictor(config: VJEPA2Config, seed: int) -> VJEPA2Predictor:
    """A predictor of the config's pred_* shape, initialised as V-JEPA's predictor is (truncated normal weights,
    zero biases, zero mask tokens, output projections scaled down by sqrt(2 x layer)), keyed by the seed."""
    with seeded_torch_rng(seed, "init", "predictor"):
        predictor = VJEPA2Predictor(config)
        for module in predictor.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=config.initializer_range)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        mask_tokens = predictor.embeddings.mask_tokens
        with torch.no_grad():
            if config.pred_zero_init_mask_tokens:
                mask_tokens.zero_()
            else:
                nn.init.trunc_normal_(mask_tokens, std=config.initializer_range)
            for depth, layer in enumerate(predictor.layer, start=1):
                layer.attention.proj.weight.div_(math.sqrt(2.0 * depth))
                layer.mlp.fc2.weight.div_(math.sqrt(2.0 * depth))
    return predictor


def prepare_predictor(
    backbone: VJEPA2Model,
    settings: PredictorSettings,
    *,
    has_weights: bool,
    seed: int,
    prefix: str = "--",
) -> str | None:
    """Install the predictor a run trains: the checkpoint's, or a new one with `settings.reinit` or when the
    checkpoint had no predictor weights (`has_weights` False). The backbone's config is updated to the new shape,
    so the saved model loads as it is. Returns a sentence for the log when the predictor is new, else None."""
    shape = {"width": settings.width, "depth": settings.depth, "heads": settings.heads}
    if has_weights and not settings.reinit:
        given = [f"{prefix}predictor.{name}" for name, value in shape.items() if value is not None]
        if given:
            them = "it" if len(given) == 1 else "them"
            raise BadInput(f"{', '.join(given)} {verb(len(given), 'applies', 'apply')} only to a new predictor: add "
                           f"{prefix}predictor.reinit to replace the checkpoint's predictor, or leave {them} unset to "
                           "train it as it is.")
        return None
    config = backbone.config
    width = settings.width or config.pred_hidden_size
    depth = settings.depth or config.pred_num_hidden_layers
    heads = settings.heads or config.pred_num_attention_heads
    if width % heads:
        raise BadInput(f"{prefix}predictor.width {width} is not a multiple of {prefix}predictor.heads {heads}.")
    if width // heads < MIN_HEAD_SIZE:
        raise BadInput(
            f"{prefix}predictor.width {width} over {heads} heads leaves {width // heads} dimensions per head; "
            f"VJEPA2's rotary positions need at least {MIN_HEAD_SIZE}: raise the width or lower the heads."
        )
    config.pred_hidden_size, config.pred_num_hidden_layers, config.pred_num_attention_heads = width, depth, heads
    reference = backbone.encoder.layernorm.weight
    backbone.predictor = new_predictor(config, seed).to(device=reference.device, dtype=reference.dtype)
    reason = "replaced as asked" if has_weights else "the checkpoint has no predictor weights"
    return f"predictor: a new one, {width} wide, {counted(depth, 'layer')}, {counted(heads, 'head')} ({reason})."
