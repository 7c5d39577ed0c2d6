"""A faster forward pass of a frozen V-JEPA 2 encoder, for the feature store, `predict` and `evaluate`.

transformers' `VJEPA2Encoder` is written to read like the paper. In every attention layer it runs three separate
q, k, v products, rebuilds the RoPE angle tables (sine and cosine per axis, for q and for k) and rotates q and k
through about thirty small kernels over the (batch, heads, tokens, head_dim) tensors. On a GPU those memory-bound
kernels cost a large share of the forward (BENCHMARKS.md, "Fast on GPUs").

`FastEncoder` computes the same function from the same weights:

- q, k and v come from one matrix product (the three weight matrices concatenated once, when it is built);
- the RoPE tables are built once per token count, dtype and device, with transformers' own arithmetic (angles
  rounded to the activation dtype, as the model was trained under bf16 autocast), and q and k are rotated together
  in one expression: `x * cos + rotate_pairs(x) * sin`, the unrotated tail of each head having cos 1 and sin 0;
- the rotated tensors go to `scaled_dot_product_attention` in the layout the product left them in.

It runs under the caller's autocast like transformers' forward, so the same autocast rules apply to the same
operations: on a GPU, bf16 autocast computes the RoPE angles and the rotation in float32 and the layer norms' outputs
in float32, on the CPU it does neither, and FastEncoder follows either. (Running a bf16 copy of the weights with
autocast off would be faster still, BENCHMARKS.md "GPU", but would compute another function: bf16 angles and
layer-norm outputs.)

In eager mode its output equals transformers' (same operations, same rounding; tests/models/test_fast_encoder.py
checks fp32, bf16 weights and bf16 autocast on the CPU, and the autocast rules of a GPU emulated there).

It also returns intermediate layers (`forward(x, layers)`, for `vjepa-tune features --layers`): each normalised
with the encoder's final layer norm, concatenated in the order asked, the layers after the last one asked for not
run; `layer_outputs` computes the same with transformers' own layers for encoders it does not apply to.

It is for frozen inference only: the fused q/k/v weights are a snapshot taken when it is built, so it is built per
extraction or per loaded run, never kept across training steps (a `Predictor` whose model is changed afterwards
must be loaded again). Encoders whose layers are wrapped (LoRA on the backbone) or
are not transformers' own classes keep transformers' forward: `fast_encoder` returns None for them.

`torch.compile` fuses what remains (layer norms, GELU, residual adds, the rotation) into the matrix products'
neighbours, at a one-off cost of tens of seconds per shape; `should_compile` decides from the amount of work
whether that pays (docs/gpu.md, "The fast path").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.vjepa2 import modeling_vjepa2 as hf

from vjepa_tune.errors import BadInput

COMPILE_MIN_CLIPS = 12_000
"""Clips to encode from which compiling pays on a GPU: the one-off cost of compiling divided by what it saves per
clip, as measured for ViT-L on an H200 (BENCHMARKS.md, "GPU", where the figures are). Overridden by
VJEPA_TUNE_COMPILE=1/0."""
COMPILE_ENV = "VJEPA_TUNE_COMPILE"


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...): transformers' RoPE partner of each element."""
    pairs = x.unflatten(-1, (-1, 2))
    first, second = pairs.unbind(dim=-1)
    return torch.stack((-second, first), dim=-1).flatten(-2)


def rope_tables(attention: hf.VJEPA2RopeAttention, tokens: int, dtype: torch.dtype, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin) of shape (tokens, head_dim) for every rotated and unrotated dimension of one head.

    Built exactly as `rotate_queries_or_keys` builds them (in `dtype`, the activation dtype), section by section
    (frame, height, width), then padded with cos 1, sin 0 for the head's unrotated tail.
    """
    head_dim = attention.attention_head_size
    positions = attention.get_position_ids(torch.empty(1, tokens, 1, device=device))
    cos_parts, sin_parts = [], []
    for pos, size in zip(positions, (attention.d_dim, attention.h_dim, attention.w_dim), strict=True):
        omega = torch.arange(size // 2, dtype=dtype, device=device)
        omega /= size / 2.0
        omega = 1.0 / 10000**omega
        freq = pos.unsqueeze(-1) * omega
        cos_parts.append(freq.cos().repeat(1, 2))
        sin_parts.append(freq.sin().repeat(1, 2))
    rest = head_dim - attention.d_dim - attention.h_dim - attention.w_dim
    cos_parts.append(torch.ones(tokens, rest, dtype=dtype, device=device))
    sin_parts.append(torch.zeros(tokens, rest, dtype=dtype, device=device))
    return torch.cat(cos_parts, dim=-1), torch.cat(sin_parts, dim=-1)


def _plain_layer(layer: nn.Module) -> bool:
    """transformers' own layer with plain linear layers, i.e. nothing (LoRA, quantisation) wrapped around them."""
    if type(layer) is not hf.VJEPA2Layer or type(layer.attention) is not hf.VJEPA2RopeAttention:
        return False
    attention, mlp = layer.attention, layer.mlp
    linears = (attention.query, attention.key, attention.value, attention.proj, mlp.fc1, mlp.fc2)
    return all(type(m) is nn.Linear for m in linears) and type(mlp) is hf.VJEPA2MLP


class FastEncoder(nn.Module):
    """The encoder's forward with fused q/k/v and cached RoPE tables; see the module docstring."""

    def __init__(self, encoder: hf.VJEPA2Encoder):
        super().__init__()
        self.encoder = encoder
        attention = encoder.layer[0].attention
        self.heads = attention.num_attention_heads
        self.head_dim = attention.attention_head_size
        self.scaling = attention.scaling
        embed = encoder.embeddings.patch_embeddings
        self.tubelet, self.patch = embed.tubelet_size, embed.patch_size
        with torch.no_grad():
            weights, biases = [], []
            for layer in encoder.layer:
                a = layer.attention
                weights.append(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
                if a.query.bias is not None:
                    biases.append(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
        self.qkv_weights = weights
        self.qkv_biases: list[torch.Tensor | None] = biases or [None] * len(weights)
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, pixel_values_videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) for a batch of these clips, built under the caller's autocast as transformers builds them
        there (on a GPU, bf16 autocast computes the angles and the rotation in float32), then kept."""
        frames, height, width = pixel_values_videos.shape[1], *pixel_values_videos.shape[-2:]
        tokens = max(1, frames // self.tubelet) * (height // self.patch) * (width // self.patch)
        device = pixel_values_videos.device
        autocast = torch.is_autocast_enabled(device.type)
        # What the q/k/v product returns, which transformers builds its tables in.
        dtype = torch.get_autocast_dtype(device.type) if autocast else self.qkv_weights[0].dtype
        key = (tokens, dtype, device, autocast)
        if key not in self._tables:
            cos, sin = rope_tables(self.encoder.layer[0].attention, tokens, dtype, device)
            # (tokens, 1, 1, head_dim): broadcast over the q/k axis and the heads of a (B, N, 2, H, D) tensor.
            self._tables[key] = (cos[:, None, None, :], sin[:, None, None, :])
        return self._tables[key]

    def forward(self, pixel_values_videos: torch.Tensor, layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """Last hidden state (B, N, D), as `encoder(pixel_values_videos=...).last_hidden_state`; with `layers`
        (indices from 0, `check_layers`), the output of each of those layers normalised with the encoder's final
        layer norm, concatenated in the order given (B, N, D x len(layers))."""
        return self.run(pixel_values_videos, *self.tables(pixel_values_videos), layers)

    def run(self, pixel_values_videos: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
            layers: tuple[int, ...] | None = None) -> torch.Tensor:
        """The forward given its RoPE tables: what `compiled` hands to torch.compile (a dictionary lookup inside
        the compiled code would be guarded on, and the first call's insertion would force a second compilation).
        Layers after the last one asked for are not run."""
        hidden = self.encoder.embeddings(pixel_values_videos)
        batch, tokens, dim = hidden.shape
        kept: dict[int, torch.Tensor] = {}
        last = len(self.encoder.layer) - 1 if layers is None else max(layers)
        for index, (layer, weight, bias) in enumerate(
            zip(self.encoder.layer, self.qkv_weights, self.qkv_biases, strict=True)
        ):
            qkv = F.linear(layer.norm1(hidden), weight, bias).unflatten(-1, (3, self.heads, self.head_dim))
            qk = qkv[:, :, :2]
            qk = qk * cos + rotate_pairs(qk) * sin
            query, key = qk.unbind(dim=2)
            value = qkv[:, :, 2]
            context = F.scaled_dot_product_attention(
                query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scale=self.scaling
            )
            hidden = layer.attention.proj(context.transpose(1, 2).reshape(batch, tokens, dim)) + hidden
            hidden = layer.mlp(layer.norm2(hidden)) + hidden
            if layers is not None and index in layers:
                kept[index] = hidden
            if index == last:
                break
        if layers is None:
            return self.encoder.layernorm(hidden)
        return torch.cat([self.encoder.layernorm(kept[index]) for index in layers], dim=-1)

    def compiled(self, mode: str | None = None, layers: tuple[int, ...] | None = None) -> FixedBatch:
        """This forward (of `layers`, as `forward` takes them) through torch.compile (`mode` as torch.compile
        takes it): one compilation per clip shape, smaller batches padded up."""
        run = torch.compile(self.run, mode=mode, dynamic=False)
        return FixedBatch(lambda videos: run(videos, *self.tables(videos), layers),
                          small=lambda videos: self(videos, layers))


def fast_encoder(encoder: nn.Module) -> FastEncoder | None:
    """A FastEncoder over `encoder`, or None where it would not compute the same function (wrapped layers)."""
    if type(encoder) is not hf.VJEPA2Encoder or not all(_plain_layer(layer) for layer in encoder.layer):
        return None
    return FastEncoder(encoder)


def should_compile(device: torch.device, clips: int) -> bool:
    """Whether compiling the encoder pays for `clips` clips: only on a GPU, only for long jobs, unless overridden."""
    forced = os.environ.get(COMPILE_ENV, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    if forced:
        raise BadInput(f"{COMPILE_ENV}={os.environ[COMPILE_ENV]!r}: use 1 to always compile the backbone, 0 never, "
                       "or leave it unset to compile for jobs of at least "
                       f"{COMPILE_MIN_CLIPS} clips on a GPU.")
    return device.type == "cuda" and clips >= COMPILE_MIN_CLIPS


def encoder_forward(encoder: nn.Module, device: torch.device, clips: int, layers: tuple[int, ...] | None = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fastest forward of a frozen `encoder` on `device` for about `clips` clips: FastEncoder, compiled where
    that pays; else transformers' own forward. With `layers`, the output of those layers as `FastEncoder.forward`
    gives them (`layer_outputs` where there is no fast forward)."""
    fast = fast_encoder(encoder)
    if fast is None:
        if layers is None:
            return lambda videos: encoder(pixel_values_videos=videos).last_hidden_state
        return lambda videos: layer_outputs(encoder, videos, layers)
    if should_compile(device, clips):
        return fast.compiled(layers=layers)
    return fast if layers is None else lambda videos: fast(videos, layers)


def check_layers(layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    """Layer indices as given (-1 the last, as in Python), each made 0..num_layers-1; refused when out of range,
    repeated or empty."""
    if not layers:
        raise BadInput("--layers needs at least one layer index (-1 is the last layer).")
    resolved = []
    for index in layers:
        if isinstance(index, bool) or not isinstance(index, int) or not -num_layers <= index < num_layers:
            raise BadInput(f"--layers {index!r} is not a layer of this encoder, which has {num_layers} "
                           f"(0 to {num_layers - 1}, or -1 for the last).")
        resolved.append(index % num_layers)
    if len(set(resolved)) != len(resolved):
        raise BadInput(f"--layers {list(layers)} names a layer twice.")
    return tuple(resolved)


def layer_outputs(encoder: nn.Module, pixel_values_videos: torch.Tensor, layers: tuple[int, ...]) -> torch.Tensor:
    """transformers' own layers run one by one (its encoder returns no intermediate states), keeping `layers`
    (from `check_layers`), each normalised with the encoder's final layer norm, concatenated in the order given:
    what `FastEncoder.forward(x, layers)` computes, for encoders without a fast forward (wrapped layers)."""
    hidden = encoder.embeddings(pixel_values_videos)
    kept: dict[int, torch.Tensor] = {}
    for index, layer in enumerate(encoder.layer):
        hidden = layer(hidden, None)[0]
        if index in layers:
            kept[index] = hidden
        if index == max(layers):
            break
    return torch.cat([encoder.layernorm(kept[index]) for index in layers], dim=-1)


class FixedBatch:
    """Pads a smaller batch up to the largest seen, so a compiled forward meets one shape and compiles once (the
    last, partial batch of a job would otherwise cost a second compilation as long as the first). A batch under
    half that size goes to `small` (the uncompiled forward) where given, rather than paying for the padding."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor],
                 small: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.forward, self.small, self.batch = forward, small, 0

    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        n = videos.shape[0]
        if self.small is not None and 2 * n < self.batch:
            return self.small(videos)
        self.batch = max(self.batch, n)
        if n < self.batch:
            videos = torch.cat([videos, videos.new_zeros(self.batch - n, *videos.shape[1:])])
        return self.forward(videos)[:n]
