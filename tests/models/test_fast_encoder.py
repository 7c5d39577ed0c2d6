"""FastEncoder must compute exactly what transformers' VJEPA2Encoder computes, or not be used at all."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from transformers import VJEPA2Config, VJEPA2ForVideoClassification

from vjepa_tune.errors import BadInput
from vjepa_tune.models.adapters import apply_strategy, unwrap
from vjepa_tune.models.fast_encoder import (
    COMPILE_ENV,
    COMPILE_MIN_CLIPS,
    FastEncoder,
    FixedBatch,
    check_layers,
    encoder_forward,
    fast_encoder,
    layer_outputs,
    rotate_pairs,
    should_compile,
)
from vjepa_tune.models.loading import build_config


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
        half = _model(config).to(torch.bfloat16)  # a model kept in bf16 by its user
        reference = half.vjepa2.encoder(pixel_values_videos=clips.bfloat16()).last_hidden_state
        torch.testing.assert_close(fast_encoder(half.vjepa2.encoder)(clips.bfloat16()), reference, rtol=0, atol=0)


class _GpuAutocastRules(TorchFunctionMode):
    """What CUDA autocast adds to the CPU's: `pow` and `layer_norm` compute in float32 (PyTorch's autocast op
    lists). Under bf16 autocast on a GPU, transformers therefore builds the RoPE angles, and rotates q and k, in
    float32, and its layer norms return float32."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func in (torch.pow, torch.Tensor.pow, torch.Tensor.__rpow__, torch.nn.functional.layer_norm):
            def up(x):  # noqa: ANN001, ANN202
                return x.float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

            args, kwargs = tuple(up(a) for a in args), {k: up(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def test_fast_encoder_follows_the_autocast_rules_of_a_gpu() -> None:
    config = _head_64()
    encoder = _model(config).vjepa2.encoder
    clips = torch.randn(2, 16, 3, config.crop_size, config.crop_size)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        cpu_rules = encoder(pixel_values_videos=clips).last_hidden_state
        with _GpuAutocastRules():
            reference = encoder(pixel_values_videos=clips).last_hidden_state
            out = fast_encoder(encoder)(clips)
    assert reference.dtype == out.dtype == torch.float32  # the last layer norm's output
    assert not torch.equal(reference, cpu_rules.float())  # the rules change the function...
    torch.testing.assert_close(out, reference, rtol=0, atol=0)  # ...and FastEncoder follows them


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
    assert sorted(key[0] for key in fast._tables) == [64, 128]


def test_intermediate_layers_are_each_normalised_with_the_final_norm_and_concatenated_in_the_order_given() -> None:
    config = build_config("tiny", 4)
    encoder = _model(config).vjepa2.encoder
    fast = fast_encoder(encoder)
    torch.manual_seed(2)
    clips = torch.randn(2, 16, 3, config.crop_size, config.crop_size)
    with torch.no_grad():
        hidden = encoder.embeddings(clips)
        by_hand = []
        for layer in encoder.layer:
            hidden = layer(hidden, None)[0]
            by_hand.append(encoder.layernorm(hidden))
        both = fast(clips, (2, 0))
        assert both.shape == (2, hidden.shape[1], 2 * config.hidden_size)
        torch.testing.assert_close(both, torch.cat([by_hand[2], by_hand[0]], dim=-1), rtol=0, atol=0)
        torch.testing.assert_close(fast(clips, (3,)), fast(clips), rtol=0, atol=0)
        torch.testing.assert_close(layer_outputs(encoder, clips, (2, 0)), both, rtol=0, atol=0)
        wrapped = unwrap(apply_strategy(_model(config), "backbone_lora")).vjepa2.encoder
        forward = encoder_forward(wrapped, torch.device("cpu"), clips=10, layers=(2, 0))
        # zero-initialised LoRA changes nothing: transformers' layers run one by one give the same layers
        torch.testing.assert_close(forward(clips), both, rtol=0, atol=0)
    assert check_layers([-1, 0], 4) == (3, 0)
    for bad in ([4], [-5], [1, -3], []):
        with pytest.raises(BadInput, match="--layers"):
            check_layers(bad, 4)


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
    monkeypatch.setenv(COMPILE_ENV, "sometimes")
    with pytest.raises(BadInput, match="VJEPA_TUNE_COMPILE='sometimes'"):
        should_compile(gpu, 1)


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

    eager: list[int] = []
    fixed = FixedBatch(forward, small=lambda videos: eager.append(videos.shape[0]) or forward(videos))
    fixed(full), fixed(partial), fixed(partial[:1])
    assert eager == [1]  # a single clip after a job of 4 is not padded to 4


def test_the_compiled_forward_computes_what_transformers_computes_and_compiles_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forced on the CPU (VJEPA_TUNE_COMPILE=1), as a GPU chooses it for long jobs: same features; one
    compilation for the whole job, its last batch smaller."""
    from torch._dynamo.utils import counters

    monkeypatch.setenv(COMPILE_ENV, "1")
    config = build_config("tiny", 4)
    encoder = _model(config).vjepa2.encoder
    forward = encoder_forward(encoder, torch.device("cpu"), clips=1)
    assert isinstance(forward, FixedBatch)
    torch._dynamo.reset()
    with torch.no_grad():
        for batch in (3, 3, 1):
            clips = torch.randn(batch, 16, 3, config.crop_size, config.crop_size)
            torch.testing.assert_close(forward(clips), encoder(pixel_values_videos=clips).last_hidden_state,
                                       rtol=1e-4, atol=1e-4)
    assert forward.batch == 3
    assert counters["stats"]["unique_graphs"] == 1


def test_the_compiled_forward_keeps_the_layers_asked_for_in_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long job's compiled forward of intermediate layers, its small last batch run uncompiled: the same layers
    either way."""
    monkeypatch.setenv(COMPILE_ENV, "1")
    config = build_config("tiny", 4)
    encoder = _model(config).vjepa2.encoder
    forward = encoder_forward(encoder, torch.device("cpu"), clips=1, layers=(1, 3))
    assert isinstance(forward, FixedBatch)
    torch._dynamo.reset()
    with torch.no_grad():
        for batch in (3, 1):  # 1 is under half the compiled batch: the uncompiled forward takes it
            clips = torch.randn(batch, 16, 3, config.crop_size, config.crop_size)
            torch.testing.assert_close(forward(clips), layer_outputs(encoder, clips, (1, 3)), rtol=1e-4, atol=1e-4)
