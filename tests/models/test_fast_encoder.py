"""FastEncoder must compute exactly what transformers' VJEPA2Encoder computes, or not be used at all."""

from __future__ import annotations

import pytest
import torch
from transformers import VJEPA2Config, VJEPA2ForVideoClassification

from vjepa_tune.models.fast_encoder import (
    COMPILE_ENV,
    COMPILE_MIN_CLIPS,
    FastEncoder,
    FixedBatch,
    encoder_forward,
    fast_encoder,
    rotate_pairs,
    should_compile,
)
from vjepa_tune.models.loading import build_config
from vjepa_tune.models.strategies import apply_strategy, unwrap


def _model(config: VJEPA2Config, seed: int = 0) -> VJEPA2ForVideoClassification:
    torch.manual_seed(seed)
    return VJEPA2ForVideoClassification(config).eval()


def _head_64() -> VJEPA2Config:
    """ViT-L's head size (64: three rotated sections of 20 and an unrotated tail of 4), small otherwise."""
    config = build_config("tiny", 4)
    config.hidden_size, config.num_attention_heads, config.num_hidden_layers = 128, 2, 2
    config.crop_size = 48
    return config


@pytest.mark.parametrize("make_config", [lambda: build_config("tiny", 4), _head_64], ids=["tiny", "head64"])
def test_fast_encoder_equals_transformers_in_fp32_bf16_autocast_and_bf16_weights(make_config) -> None:
    config = make_config()
    model = _model(config)
    encoder = model.vjepa2.encoder
    fast = fast_encoder(encoder)
    assert isinstance(fast, FastEncoder)
    torch.manual_seed(1)
    clips = torch.randn(3, 16, 3, config.crop_size, config.crop_size)
    with torch.no_grad():
        reference = encoder(pixel_values_videos=clips).last_hidden_state
        torch.testing.assert_close(fast(clips), reference, rtol=0, atol=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = encoder(pixel_values_videos=clips).last_hidden_state
            out = fast(clips)
        assert out.dtype == reference.dtype == torch.bfloat16
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
        half = _model(config).to(torch.bfloat16)
        reference = half.vjepa2.encoder(pixel_values_videos=clips.bfloat16()).last_hidden_state
        torch.testing.assert_close(fast_encoder(half.vjepa2.encoder)(clips.bfloat16()), reference, rtol=0, atol=0)


def test_a_bf16_copy_of_the_weights_is_about_as_accurate_as_autocast() -> None:
    """The store and predict run FastEncoder on a bf16 copy of the weights under bf16 autocast."""
    config = build_config("tiny", 4)
    model = _model(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):  # not bf16-representable, unlike a fresh init's 1 and 0
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    encoder = model.vjepa2.encoder
    fast = fast_encoder(encoder, torch.bfloat16)
    assert fast.dtype == torch.bfloat16 and encoder.layernorm.weight.dtype == torch.float32  # a copy
    clips = torch.randn(2, 16, 3, config.crop_size, config.crop_size)

    def relative(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a.float() - b.float()).norm() / b.float().norm()).item()

    with torch.no_grad():
        exact = encoder(pixel_values_videos=clips).last_hidden_state
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = encoder(pixel_values_videos=clips).last_hidden_state
            out = fast(clips)
    assert out.dtype == torch.bfloat16
    assert relative(out, autocast) > 0  # the layer norms' weights were rounded...
    assert relative(out, exact) < 1.25 * relative(autocast, exact)  # ...costing little next to autocast's own


def test_fast_encoder_follows_the_token_count_of_each_call() -> None:
    """Fewer frames give fewer tokens: the RoPE tables are built per token count, not once for the config."""
    config = build_config("tiny", 4)
    encoder = _model(config).vjepa2.encoder
    fast = fast_encoder(encoder)
    with torch.no_grad():
        for frames in (16, 8):
            clips = torch.randn(2, frames, 3, config.crop_size, config.crop_size)
            torch.testing.assert_close(fast(clips), encoder(pixel_values_videos=clips).last_hidden_state,
                                       rtol=0, atol=0)
    assert sorted(tokens for tokens, _, _ in fast._tables) == [64, 128]


def test_rotate_pairs_turns_each_pair_a_quarter() -> None:
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert rotate_pairs(x).tolist() == [-2.0, 1.0, -4.0, 3.0]


def test_wrapped_backbones_keep_transformers_forward() -> None:
    """LoRA on the backbone wraps its linear layers: the fast path would drop the adapters, so it is refused;
    LoRA on the pooler only leaves the backbone plain."""
    config = build_config("tiny", 4)
    backbone_lora = apply_strategy(_model(config), "backbone_lora")
    assert fast_encoder(unwrap(backbone_lora).vjepa2.encoder) is None
    pooler_lora = apply_strategy(_model(config), "lora")
    assert isinstance(fast_encoder(unwrap(pooler_lora).vjepa2.encoder), FastEncoder)

    encoder = unwrap(backbone_lora).vjepa2.encoder
    forward = encoder_forward(encoder, torch.device("cpu"), clips=10)
    clips = torch.randn(1, 16, 3, config.crop_size, config.crop_size)
    with torch.no_grad():
        torch.testing.assert_close(forward(clips), encoder(pixel_values_videos=clips).last_hidden_state)


def test_compiling_is_chosen_for_long_gpu_jobs_only_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert not should_compile(cpu, 10**9)
    assert not should_compile(gpu, COMPILE_MIN_CLIPS - 1)
    assert should_compile(gpu, COMPILE_MIN_CLIPS)
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert not should_compile(gpu, 10**9)
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert should_compile(cpu, 1)


def test_a_partial_batch_is_padded_to_the_compiled_shape_and_cut_back() -> None:
    seen: list[int] = []

    def forward(videos: torch.Tensor) -> torch.Tensor:
        seen.append(videos.shape[0])
        return videos.flatten(1).sum(dim=1, keepdim=True)

    fixed = FixedBatch(forward)
    full, partial = torch.randn(4, 2, 3), torch.randn(2, 2, 3)
    fixed(full)
    out = fixed(partial)
    assert seen == [4, 4]
    torch.testing.assert_close(out, forward(partial))


def test_the_compiled_forward_computes_what_transformers_computes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced on the CPU (VJEPA_TUNE_COMPILE=1), as a GPU chooses it for long jobs: same features, one shape."""
    monkeypatch.setenv(COMPILE_ENV, "1")
    config = build_config("tiny", 4)
    encoder = _model(config).vjepa2.encoder
    forward = encoder_forward(encoder, torch.device("cpu"), clips=1)
    assert isinstance(forward, FixedBatch)
    with torch.no_grad():
        for batch in (3, 1):
            clips = torch.randn(batch, 16, 3, config.crop_size, config.crop_size)
            torch.testing.assert_close(forward(clips), encoder(pixel_values_videos=clips).last_hidden_state,
                                       rtol=1e-4, atol=1e-4)
    assert forward.batch == 3
