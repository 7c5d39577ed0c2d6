"""The V-JEPA objective is wired right: the context encoder sees only the context, the predictor gets the target
positions, the target encoder moves only by its moving average, and the loss can be learned."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import VJEPA2ForVideoClassification

from vjepa_tune.config import MaskSettings, PredictorSettings
from vjepa_tune.errors import BadInput
from vjepa_tune.models.loading import load_model
from vjepa_tune.pretraining.masks import MaskDraw, TokenGrid, draw_masks
from vjepa_tune.pretraining.monitors import CollapseMonitor, collapse_signals
from vjepa_tune.pretraining.objective import (
    JepaObjective,
    ema_momentum,
    encode_context,
    gather_tokens,
    new_predictor,
    prepare_predictor,
    scatter_tokens,
)

GRID = TokenGrid(frames=8, height=4, width=4)
CLIP_IDS = ["clip-0", "clip-1", "clip-2", "clip-3"]


def _tiny() -> VJEPA2ForVideoClassification:
    return load_model("tiny", num_labels=4, id2label=None, log=lambda _: None)


def _clips(count: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(count, 16, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def _draws(step: int = 0, clip_ids: list[str] = CLIP_IDS) -> list[MaskDraw]:
    return draw_masks(MaskSettings(), GRID, seed=0, step=step, clip_ids=clip_ids)


def _patch_pixels(token: int) -> tuple[slice, slice, slice]:
    """Frames, rows and columns of the pixels behind one token (tubelet 2, patch 16)."""
    t, cell = divmod(token, GRID.cells)
    row, col = divmod(cell, GRID.width)
    return slice(2 * t, 2 * t + 2), slice(16 * row, 16 * row + 16), slice(16 * col, 16 * col + 16)


def test_the_context_encoder_equals_the_full_encoder_when_the_context_is_every_token() -> None:
    encoder = _tiny().vjepa2.encoder
    clips = _clips(2)
    every = torch.arange(GRID.tokens).repeat(2, 1)
    with torch.no_grad():
        ours = encode_context(encoder, encoder.embeddings(clips), every)
        full = encoder(pixel_values_videos=clips).last_hidden_state
    torch.testing.assert_close(ours, full, rtol=1e-5, atol=1e-5)


def test_the_context_encoder_sees_only_the_context_tokens() -> None:
    encoder = _tiny().vjepa2.encoder
    clips = _clips()
    for draw in _draws(step=1):
        with torch.no_grad():
            context_output = encode_context(encoder, encoder.embeddings(clips), draw.context)
            full_output = gather_tokens(encoder(pixel_values_videos=clips).last_hidden_state, draw.context)
            # The full clip's features at the context positions have seen the target: they must differ.
            assert (context_output - full_output).abs().max() > 1e-2
            # Repainting every pixel behind a non-context token changes nothing the context encoder returns.
            repainted = clips.clone()
            for clip, context in enumerate(draw.context.tolist()):
                for token in sorted(set(range(GRID.tokens)) - set(context)):
                    frames, rows, cols = _patch_pixels(token)
                    repainted[clip, frames, :, rows, cols] = torch.randn(2, 3, 16, 16) * 5
            again = encode_context(encoder, encoder.embeddings(repainted), draw.context)
        torch.testing.assert_close(again, context_output, rtol=0, atol=1e-6)
        assert not torch.equal(repainted, clips)


def test_every_encoder_layer_gets_the_context_tokens_at_their_own_rotary_positions() -> None:
    encoder = _tiny().vjepa2.encoder
    clips, (draw, _) = _clips(), _draws(step=4)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    for layer in encoder.layer:
        layer.register_forward_pre_hook(lambda _m, args: calls.append(args))
    with torch.no_grad():
        tokens = encoder.embeddings(clips)
        encode_context(encoder, tokens, draw.context)
    assert len(calls) == len(encoder.layer)
    for hidden, positions in calls:
        assert torch.equal(positions, draw.context)  # not 0..n-1: the tokens keep their place in the clip
        assert hidden.shape == (4, draw.context.size(1), tokens.size(-1))
    torch.testing.assert_close(calls[0][0], gather_tokens(tokens, draw.context), rtol=0, atol=0)


def test_scattering_puts_the_context_at_its_positions_and_zeros_elsewhere() -> None:
    values = torch.randn(2, 3, 5, requires_grad=True)
    index = torch.tensor([[0, 4, 7], [1, 2, 3]])
    full = scatter_tokens(values, index, 8)
    assert full.shape == (2, 8, 5)
    torch.testing.assert_close(gather_tokens(full, index), values, rtol=0, atol=0)
    assert full[0, [1, 2, 3, 5, 6]].abs().sum() == 0 and full[1, [0, 4, 5, 6, 7]].abs().sum() == 0
    full.sum().backward()
    assert torch.equal(values.grad, torch.ones_like(values))


def test_the_predictor_is_given_the_target_positions_and_only_the_context_features() -> None:
    model = _tiny()
    objective = JepaObjective(model.vjepa2)
    calls: list[dict] = []
    objective.predictor.register_forward_pre_hook(lambda _m, _a, kwargs: calls.append(kwargs), with_kwargs=True)
    draws = _draws(step=2)
    objective(_clips(), draws)
    assert len(calls) == len(draws) == 2  # one predictor call per mask set
    for call, draw in zip(calls, draws, strict=True):
        (context,), (target,) = call["context_mask"], call["target_mask"]
        assert torch.equal(context, draw.context) and torch.equal(target, draw.target)
        hidden = call["encoder_hidden_states"]
        assert hidden.shape == (4, GRID.tokens, model.config.hidden_size)
        outside = torch.ones(4, GRID.tokens, dtype=torch.bool)
        outside.scatter_(1, draw.context, False)
        assert hidden[outside].abs().sum() == 0  # no full-clip feature reaches the predictor
        assert hidden[~outside].abs().sum() > 0


def test_the_loss_is_the_l1_between_predictions_and_layer_normed_targets_at_the_target_tokens() -> None:
    objective = JepaObjective(_tiny().vjepa2)
    outputs: list[torch.Tensor] = []
    objective.predictor.register_forward_hook(lambda _m, _a, out: outputs.append(out.last_hidden_state))
    clips, draws = _clips(), _draws(step=3)
    result = objective(clips, draws)
    with torch.no_grad():
        hidden = objective.target_encoder(pixel_values_videos=clips).last_hidden_state
        targets = F.layer_norm(hidden, (hidden.size(-1),))
    per_set = [(p - gather_tokens(targets, d.target)).abs().mean(dim=(1, 2)) for p, d in zip(outputs, draws,
                                                                                          strict=True)]
    torch.testing.assert_close(result.sample_losses, torch.stack(per_set).mean(0))
    torch.testing.assert_close(result.loss, torch.stack(per_set).mean())
    assert set(result.set_losses) == {"short_range", "long_range"}
    torch.testing.assert_close(result.targets, targets)
    assert result.predictions["long_range"].shape == (4, draws[1].target.size(1), 128)


def test_the_target_encoder_gets_no_gradient_and_moves_only_by_the_moving_average() -> None:
    objective = JepaObjective(_tiny().vjepa2).train()
    assert not objective.target_encoder.training
    optimizer = torch.optim.AdamW(objective.trainable_parameters(), lr=1e-3)
    trained = {id(p) for p in objective.trainable_parameters()}
    target = dict(objective.target_encoder.named_parameters())
    assert all(not p.requires_grad and id(p) not in trained for p in target.values())
    before = {name: p.detach().clone() for name, p in target.items()}
    online_before = {name: p.detach().clone() for name, p in objective.context_encoder.named_parameters()}

    objective(_clips(), _draws()).loss.backward()
    assert all(p.grad is None for p in target.values())
    optimizer.step()
    for name, p in target.items():
        assert torch.equal(p, before[name]), name  # the optimizer never touches the target
    online = dict(objective.context_encoder.named_parameters())
    assert any(not torch.equal(online[n], online_before[n]) for n in online)

    objective.update_target(0.9)
    for name, p in target.items():
        torch.testing.assert_close(p, 0.9 * before[name] + 0.1 * online[name], rtol=1e-6, atol=1e-7)
        assert p.data_ptr() != online[name].data_ptr()


def test_in_the_predictors_warm_up_only_the_predictor_gets_gradients_the_same_as_otherwise() -> None:
    objective = JepaObjective(_tiny().vjepa2).train()
    learning = objective(_clips(), _draws())
    learning.loss.backward()
    assert all(p.grad is not None for p in objective.context_encoder.layer.parameters())
    predictor_grads = {n: p.grad.clone() for n, p in objective.predictor.named_parameters() if p.grad is not None}
    objective.zero_grad(set_to_none=True)

    warm_up = objective(_clips(), _draws(), encoder_learns=False)
    assert torch.equal(warm_up.sample_losses.detach(), learning.sample_losses.detach())
    warm_up.loss.backward()
    assert all(p.grad is None for p in objective.context_encoder.parameters())
    assert predictor_grads and {n for n, p in objective.predictor.named_parameters() if p.grad is not None} == set(
        predictor_grads)
    for name, p in objective.predictor.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, predictor_grads[name], rtol=1e-5, atol=1e-7)
    # What a warm-up step sums across processes, clips and hands to AdamW: the predictor's parameters alone.
    assert {id(p) for p in objective.learning_parameters(encoder_learns=False)} == {
        id(p) for p in objective.predictor.parameters() if p.requires_grad}
    assert objective.learning_parameters(encoder_learns=True) == objective.trainable_parameters()


def test_with_the_target_frozen_the_loss_on_four_fixed_clips_falls_by_half_in_a_few_dozen_steps() -> None:
    # Four 8-frame clips of one colour each (a 4x4x4 token grid keeps the test fast): a target that depends on the
    # clip only, which its context reveals.
    colours = torch.tensor([[1.5, -1.0, 0.2], [-1.2, 1.0, 1.4], [0.3, 1.6, -1.5], [-0.8, -1.4, -0.3]])
    clips = colours[:, None, :, None, None].expand(4, 8, 3, 64, 64).contiguous()
    grid = TokenGrid(frames=4, height=4, width=4)
    objective = JepaObjective(_tiny().vjepa2).train()
    frozen = [p.detach().clone() for p in objective.target_encoder.parameters()]
    optimizer = torch.optim.AdamW(objective.trainable_parameters(), lr=2e-3, weight_decay=0.0)
    held_out = draw_masks(MaskSettings(), grid, seed=0, step=10_000, clip_ids=CLIP_IDS)

    def held_out_loss() -> float:
        with torch.no_grad():
            return objective(clips, held_out).loss.item()

    start, steps = held_out_loss(), 30
    for step in range(steps):
        loss = objective(clips, draw_masks(MaskSettings(), grid, seed=0, step=step, clip_ids=CLIP_IDS)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.update_target(ema_momentum(step, steps, 1.0, 1.0))
    assert held_out_loss() <= 0.5 * start
    assert all(torch.equal(p, q) for p, q in zip(objective.target_encoder.parameters(), frozen, strict=True))


def test_gradient_checkpointing_gives_the_same_loss_and_gradients() -> None:
    clips, draws = _clips(2), _draws(clip_ids=CLIP_IDS[:2])
    results = []
    for checkpointing in (False, True):
        objective = JepaObjective(_tiny().vjepa2, gradient_checkpointing=checkpointing).train()
        assert all(layer.gradient_checkpointing == checkpointing for layer in objective.context_encoder.layer)
        loss = objective(clips, draws).loss
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in objective.trainable_parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_the_objective_refuses_masks_drawn_for_another_batch() -> None:
    objective = JepaObjective(_tiny().vjepa2)
    with pytest.raises(ValueError, match="masks for 2 clips, the batch has 4"):
        objective(_clips(), _draws(clip_ids=CLIP_IDS[:2]))


def test_the_momentum_runs_linearly_from_start_to_end_over_the_run() -> None:
    assert ema_momentum(0, 10, 0.99, 1.0) == 0.99
    assert ema_momentum(5, 10, 0.99, 1.0) == pytest.approx(0.995)
    assert ema_momentum(10, 10, 0.99, 1.0) == pytest.approx(1.0)
    assert ema_momentum(12, 10, 0.99, 1.0) == pytest.approx(1.0)
    assert ema_momentum(3, 7, 0.99925, 0.99925) == 0.99925
    with pytest.raises(ValueError):
        ema_momentum(0, 0, 0.99, 1.0)


def test_the_checkpoint_predictor_is_kept_unless_a_new_one_is_asked_for() -> None:
    backbone = _tiny().vjepa2
    kept = backbone.predictor
    assert prepare_predictor(backbone, PredictorSettings(), has_weights=True, seed=0) is None
    assert backbone.predictor is kept
    with pytest.raises(BadInput, match=r"--predictor\.width, --predictor\.depth apply only to a new predictor"):
        prepare_predictor(backbone, PredictorSettings(width=64, depth=2), has_weights=True, seed=0)


def test_a_reinitialised_predictor_has_the_asked_shape_and_the_saved_model_loads_with_plain_transformers(
    tmp_path,
) -> None:
    model = _tiny()
    message = prepare_predictor(model.vjepa2, PredictorSettings(reinit=True, width=64, depth=2, heads=4),
                                has_weights=True, seed=0)
    assert message == "predictor: a new one, 64 wide, 2 layers, 4 heads (replaced as asked)."
    predictor = model.vjepa2.predictor
    assert len(predictor.layer) == 2 and predictor.embeddings.predictor_embeddings.out_features == 64
    assert predictor.layer[0].attention.num_attention_heads == 4
    assert torch.equal(predictor.embeddings.mask_tokens, torch.zeros_like(predictor.embeddings.mask_tokens))
    # the objective runs with it
    JepaObjective(model.vjepa2)(_clips(2), _draws(clip_ids=CLIP_IDS[:2])).loss.backward()
    model.save_pretrained(tmp_path)
    loaded = VJEPA2ForVideoClassification.from_pretrained(tmp_path)
    assert loaded.config.pred_hidden_size == 64 and loaded.config.pred_num_hidden_layers == 2
    for (name, a), (_, b) in zip(model.vjepa2.predictor.state_dict().items(),
                                 loaded.vjepa2.predictor.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_without_predictor_weights_gets_a_new_one_of_its_shape_said_in_the_message() -> None:
    backbone = _tiny().vjepa2
    old = backbone.predictor
    message = prepare_predictor(backbone, PredictorSettings(), has_weights=False, seed=0)
    assert message == "predictor: a new one, 32 wide, 1 layer, 2 heads (the checkpoint has no predictor weights)."
    assert backbone.predictor is not old
    assert backbone.predictor.proj.weight.shape == old.proj.weight.shape


def test_new_predictors_are_keyed_by_the_seed() -> None:
    config = _tiny().config
    a, b, c = new_predictor(config, 0), new_predictor(config, 0), new_predictor(config, 1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.proj.weight, c.proj.weight)


@pytest.mark.parametrize(("width", "heads", "pattern"), [(30, 4, "not a multiple"), (8, 2, "4 dimensions per head")])
def test_a_new_predictor_shape_the_rotary_positions_cannot_use_is_refused(width: int, heads: int, pattern: str) -> None:
    with pytest.raises(BadInput, match=pattern):
        prepare_predictor(_tiny().vjepa2, PredictorSettings(reinit=True, width=width, heads=heads),
                          has_weights=True, seed=0)


def test_constant_clips_give_degenerate_targets_that_trip_the_collapse_warning_at_the_first_check() -> None:
    objective = JepaObjective(_tiny().vjepa2)
    with torch.no_grad():
        result = objective(torch.full((4, 16, 3, 64, 64), 0.3), _draws())
    signals = collapse_signals(result.targets, list(result.predictions.values()))
    findings = CollapseMonitor().check(0, {"loss": result.loss.item(), **signals})
    assert len(findings) == 1 and findings[0].startswith("collapse:")
    assert "nearly identical" in findings[0]
    with torch.no_grad():
        result = objective(_clips(), _draws())
    assert CollapseMonitor().check(0, collapse_signals(result.targets, list(result.predictions.values()))) == []
