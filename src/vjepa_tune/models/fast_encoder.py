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
- the rotated tensors go to `scaled_dot_product_attention` in the layout the product left them in;
- under bf16 (or fp16) autocast, the store and `predict` give it a copy of the weights in that dtype and it runs
  in that dtype with autocast off: layer norms then hand bf16 straight to the next product, where autocast writes
  float32 and casts it again (transformers' forward: 138 clips/s under autocast, 171 in bf16 weights, on an H200).

In eager mode its output equals transformers' (same operations, same rounding; tests/models/test_fast_encoder.py
checks fp32 and bf16); with weights copied to bf16 it differs by the rounding of the layer norms' own weights.

It is for frozen inference only: the weights are a snapshot taken when it is built, so it is built per extraction
or per loaded run, never kept across training steps. Encoders whose layers are wrapped (LoRA on the backbone) or
are not transformers' own classes keep transformers' forward: `fast_encoder` returns None for them.

`torch.compile` fuses what remains (layer norms, GELU, residual adds, the rotation) into the matrix products'
neighbours, at a one-off cost of tens of seconds per shape; `should_compile` decides from the amount of work
whether that pays (docs/gpu.md, "The fast path").
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.vjepa2 import modeling_vjepa2 as hf

COMPILE_MIN_CLIPS = 12_000
"""Clips to encode from which compiling pays on a GPU: its one-off cost over what it saves per clip. Measured for
ViT-L on an H200 (BENCHMARKS.md, "GPU"): 27.9 s to compile, 6.10 -> 3.69 ms per clip at batch 32, so it pays
from about 11,600 clips. Overridden by VJEPA_TUNE_COMPILE=1/0."""
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

    def __init__(self, encoder: hf.VJEPA2Encoder, dtype: torch.dtype | None = None):
        super().__init__()
        if dtype is not None and dtype != encoder.layernorm.weight.dtype:
            encoder = copy.deepcopy(encoder).to(dtype)
        self.encoder = encoder
        self.dtype = encoder.layernorm.weight.dtype
        self.own_precision = dtype is not None
        """Run in the weights' dtype with any caller's autocast switched off: autocast would still write every
        layer norm's output in float32 and cast it back for the next product."""
        attention = encoder.layer[0].attention
        self.heads = attention.num_attention_heads
        self.head_dim = attention.attention_head_size
        self.scaling = attention.scaling
        with torch.no_grad():
            weights, biases = [], []
            for layer in encoder.layer:
                a = layer.attention
                weights.append(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
                if a.query.bias is not None:
                    biases.append(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
        self.qkv_weights = weights
        self.qkv_biases: list[torch.Tensor | None] = biases or [None] * len(weights)
        self._tables: dict[tuple[int, torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(self, tokens: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (tokens, dtype, device)
        if key not in self._tables:
            cos, sin = rope_tables(self.encoder.layer[0].attention, tokens, dtype, device)
            # (tokens, 1, 1, head_dim): broadcast over the q/k axis and the heads of a (B, N, 2, H, D) tensor.
            self._tables[key] = (cos[:, None, None, :], sin[:, None, None, :])
        return self._tables[key]

    def forward(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Last hidden state (B, N, D), as `encoder(pixel_values_videos=...).last_hidden_state`."""
        if self.own_precision:
            with torch.autocast(pixel_values_videos.device.type, enabled=False):
                return self._forward(pixel_values_videos.to(self.dtype))
        return self._forward(pixel_values_videos)

    def _forward(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.embeddings(pixel_values_videos)
        batch, tokens, dim = hidden.shape
        for layer, weight, bias in zip(self.encoder.layer, self.qkv_weights, self.qkv_biases, strict=True):
            qkv = F.linear(layer.norm1(hidden), weight, bias).unflatten(-1, (3, self.heads, self.head_dim))
            cos, sin = self.tables(tokens, qkv.dtype, qkv.device)
            qk = qkv[:, :, :2]
            qk = qk * cos + rotate_pairs(qk) * sin
            query, key = qk.unbind(dim=2)
            value = qkv[:, :, 2]
            context = F.scaled_dot_product_attention(
                query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), scale=self.scaling
            )
            hidden = layer.attention.proj(context.transpose(1, 2).reshape(batch, tokens, dim)) + hidden
            hidden = layer.mlp(layer.norm2(hidden)) + hidden
        return self.encoder.layernorm(hidden)


def fast_encoder(encoder: nn.Module, dtype: torch.dtype | None = None) -> FastEncoder | None:
    """A FastEncoder over `encoder` (over a copy of it in `dtype`, where given and different), or None where it
    would not compute the same function (wrapped layers)."""
    if type(encoder) is not hf.VJEPA2Encoder or not all(_plain_layer(layer) for layer in encoder.layer):
        return None
    return FastEncoder(encoder, dtype)


def should_compile(device: torch.device, clips: int) -> bool:
    """Whether compiling the encoder pays for `clips` clips: only on a GPU, only for long jobs, unless overridden."""
    forced = os.environ.get(COMPILE_ENV, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    return device.type == "cuda" and clips >= COMPILE_MIN_CLIPS


def encoder_forward(encoder: nn.Module, device: torch.device, clips: int, dtype: torch.dtype | None = None
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fastest forward of a frozen `encoder` on `device` for about `clips` clips: FastEncoder (with weights in
    `dtype`, the autocast dtype it will run under), compiled where that pays; else transformers' own forward."""
    fast = fast_encoder(encoder, dtype)
    if fast is None:
        return lambda videos: encoder(pixel_values_videos=videos).last_hidden_state
    if should_compile(device, clips):
        return FixedBatch(torch.compile(fast, dynamic=False))
    return fast


class FixedBatch:
    """Pads a smaller batch up to the largest seen, so a compiled forward meets one shape and compiles once (the
    last, partial batch of a job would otherwise cost a second compilation as long as the first)."""

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor]):
        self.forward, self.batch = forward, 0

    def __call__(self, videos: torch.Tensor) -> torch.Tensor:
        n = videos.shape[0]
        self.batch = max(self.batch, n)
        if n < self.batch:
            videos = torch.cat([videos, videos.new_zeros(self.batch - n, *videos.shape[1:])])
        return self.forward(videos)[:n]
