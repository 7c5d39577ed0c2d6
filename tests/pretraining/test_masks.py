"""V-JEPA's multi-block masks: context and target never meet, counts are equal per step, draws are keyed, and only
settings that cannot work on the model's token grid are refused."""

from __future__ import annotations

import random

import pytest
import torch

from vjepa_tune.config import (
    EmaSettings,
    MaskSetSettings,
    MaskSettings,
    PredictorSettings,
    check_pretraining_settings,
)
from vjepa_tune.errors import BadInput
from vjepa_tune.models.loading import build_config
from vjepa_tune.pretraining.masks import (
    MAX_REDRAWS,
    TokenGrid,
    block_shape,
    check_masks,
    draw_masks,
    reachable_shapes,
)

TINY = TokenGrid(frames=8, height=4, width=4)
VITL = TokenGrid(frames=8, height=16, width=16)


def _only(mask_set: MaskSetSettings) -> MaskSettings:
    return MaskSettings(short_range=mask_set, long_range=MaskSetSettings(num_blocks=0))


def test_the_token_grid_comes_from_the_clip_length_and_the_model_crop_and_patch() -> None:
    assert TokenGrid.of(build_config("tiny", 4), 16) == TINY
    # ViT-L's config says 64 frames; a 16-frame clip has 8 time steps all the same.
    assert TokenGrid.of(build_config("vitl", 4), 16) == VITL
    assert TINY.tokens == 128 and TINY.cells == 16


def test_the_official_mask_sets_fit_tiny_as_one_or_two_token_blocks_and_three_or_four_token_sides() -> None:
    settings = MaskSettings()
    short, long = settings.short_range, settings.long_range
    assert (short.num_blocks, short.spatial_scale, short.aspect_ratio) == (8, [0.15, 0.15], [0.75, 1.5])
    assert (long.num_blocks, long.spatial_scale, long.aspect_ratio) == (2, [0.7, 0.7], [0.75, 1.5])
    # 0.15 of a 4x4 grid is 2.4 tokens: whole tokens of area 2, so blocks of 1x1, 1x2 or 2x1, never empty.
    assert reachable_shapes(short, TINY) == {(1, 1), (1, 2), (2, 1)}
    # 0.7 is 11 tokens: 3x3, 3x4 or 4x3, never the whole 4x4 frame.
    assert reachable_shapes(long, TINY) == {(3, 3), (3, 4), (4, 3)}
    check_masks(settings, TINY)
    check_masks(settings, VITL)


@pytest.mark.parametrize("grid", [TINY, TokenGrid(frames=4, height=6, width=6), VITL], ids=["4x4", "6x6", "16x16"])
def test_the_shapes_the_settings_can_give_are_exactly_those_random_draws_give(grid: TokenGrid) -> None:
    rng = random.Random(0)
    for scale, aspect in (([0.15, 0.15], [0.75, 1.5]), ([0.1, 0.9], [0.3, 3.0]), ([0.02, 0.3], [0.5, 2.0])):
        drawn = {block_shape(grid, rng.uniform(*scale), rng.uniform(*aspect)) for _ in range(20_000)}
        reachable = reachable_shapes(MaskSetSettings(2, scale, aspect), grid)
        assert drawn <= reachable
        if grid.cells <= 36:  # few shapes: every one is drawn (a 16x16 grid has rare ones 20,000 draws miss)
            assert reachable == drawn


@pytest.mark.parametrize("grid", [TINY, VITL], ids=["tiny", "vitl"])
def test_context_never_includes_a_target_token_over_many_draws_of_both_sets(grid: TokenGrid) -> None:
    clip_ids = [f"clip-{i}" for i in range(6)]
    seen_sets = set()
    for step in range(60 if grid is TINY else 10):
        for draw in draw_masks(MaskSettings(), grid, seed=3, step=step, clip_ids=clip_ids):
            seen_sets.add(draw.name)
            assert draw.context.dtype == draw.target.dtype == torch.int64
            for context, target in zip(draw.context.tolist(), draw.target.tolist(), strict=True):
                assert context and target
                assert not set(context) & set(target)
                assert context == sorted(set(context)) and target == sorted(set(target))
                assert 0 <= min(context + target) and max(context + target) < grid.tokens
    assert seen_sets == {"short_range", "long_range"}


def test_every_clip_of_a_step_gets_the_same_counts_cut_from_its_own_masks_and_still_spanning_all_time() -> None:
    clip_ids = [f"clip-{i}" for i in range(8)]
    for step in range(20):
        batch = draw_masks(MaskSettings(), TINY, seed=0, step=step, clip_ids=clip_ids)
        for index, clip_id in enumerate(clip_ids):
            alone = draw_masks(MaskSettings(), TINY, seed=0, step=step, clip_ids=[clip_id])
            for together, solo in zip(batch, alone, strict=True):
                # one (clips, tokens) tensor per set: equal counts; a clip's cut masks are part of its own draw
                assert set(together.context[index].tolist()) <= set(solo.context[0].tolist())
                assert set(together.target[index].tolist()) <= set(solo.target[0].tolist())
                for tokens in (together.context[index], together.target[index]):
                    cells = tokens % TINY.cells
                    times = tokens // TINY.cells
                    assert len(tokens) % TINY.frames == 0
                    for cell in cells.unique():
                        assert sorted(times[cells == cell].tolist()) == list(range(TINY.frames))


@pytest.mark.parametrize(("keep", "context_frames"), [(0.5, 4), (0.3, 2), (0.01, 1), (1.0, 8)])
def test_max_temporal_keep_ends_the_context_early_and_makes_every_later_token_a_target(
    keep: float, context_frames: int
) -> None:
    # V-JEPA's max_temporal_keep: context from the first max(1, int(8 x keep)) time steps outside the blocks; the
    # blocks at those steps and every token after them are the target, so the set asks for the rest of the clip.
    settings = _only(MaskSetSettings(num_blocks=8, max_temporal_keep=keep))
    clip_ids = [f"clip-{i}" for i in range(6)]
    assert TINY.context_frames(keep) == context_frames
    for step in range(20):
        (draw,) = draw_masks(settings, TINY, seed=0, step=step, clip_ids=clip_ids)
        (spatial,) = draw_masks(_only(MaskSetSettings(num_blocks=8)), TINY, seed=0, step=step, clip_ids=clip_ids)
        for index in range(len(clip_ids)):
            context, target = draw.context[index].tolist(), draw.target[index].tolist()
            assert context and not set(context) & set(target)
            assert context == sorted(set(context)) and target == sorted(set(target))
            assert max(context) < context_frames * TINY.cells
            later = set(range(context_frames * TINY.cells, TINY.tokens))
            assert later <= set(target)
            # up to the context's end the blocks are those the same keys give without the setting
            assert context == [t for t in spatial.context[index].tolist() if t < context_frames * TINY.cells]
            assert set(target) - later == {t for t in spatial.target[index].tolist() if t < context_frames * TINY.cells}


def test_the_official_masks_draw_as_they_always_have_so_older_runs_resume_exactly() -> None:
    # Pinned: a resumed run redraws its masks from the keys, so a change to what the defaults draw breaks resuming
    # runs made before it (these are the draws from before max_temporal_keep existed).
    short, long = draw_masks(MaskSettings(), TINY, seed=0, step=0, clip_ids=["a"])
    assert short.context[0, :6].tolist() == [3, 7, 8, 9, 12, 15]
    assert short.target[0, :10].tolist() == [0, 1, 2, 4, 5, 6, 10, 11, 13, 14]
    assert long.context[0, :4].tolist() == [3, 7, 11, 15]
    assert long.target[0, :12].tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14]
    assert (short.context.size(1), short.target.size(1), long.context.size(1)) == (48, 80, 32)


def test_some_step_cuts_a_clip_to_the_batch_minimum() -> None:
    clip_ids = [f"clip-{i}" for i in range(8)]
    cut = False
    for step in range(20):
        batch = draw_masks(MaskSettings(), TINY, seed=0, step=step, clip_ids=clip_ids)
        solos = [draw_masks(MaskSettings(), TINY, seed=0, step=step, clip_ids=[c]) for c in clip_ids]
        for s, draw in enumerate(batch):
            sizes = [solo[s].target.size(1) for solo in solos]
            assert draw.target.size(1) == min(sizes)
            cut |= max(sizes) > min(sizes)
    assert cut


def test_mask_draws_repeat_with_the_same_keys_and_differ_with_another_seed_step_or_clip() -> None:
    def draw(seed: int, step: int, clip_ids: list[str]) -> list[torch.Tensor]:
        return [torch.cat([d.context.flatten(), d.target.flatten()])
                for d in draw_masks(MaskSettings(), VITL, seed=seed, step=step, clip_ids=clip_ids)]

    reference = draw(1, 5, ["a", "b"])
    assert all(torch.equal(x, y) for x, y in zip(reference, draw(1, 5, ["a", "b"]), strict=True))
    for other in (draw(2, 5, ["a", "b"]), draw(1, 6, ["a", "b"]), draw(1, 5, ["a", "c"])):
        assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(reference, other, strict=True))


def test_slicing_a_step_s_draw_gives_each_micro_batch_its_clips_masks() -> None:
    draws = draw_masks(MaskSettings(), TINY, seed=0, step=4, clip_ids=["a", "b", "c", "d"])
    for draw in draws:
        half = draw.rows(slice(2, 4))
        assert torch.equal(half.context, draw.context[2:4]) and torch.equal(half.target, draw.target[2:4])
        assert half.name == draw.name


def test_a_placement_that_leaves_no_context_is_redrawn() -> None:
    # Two 2x1 or 1x2 blocks on a 2x2 grid cover it whole about half the time; no clip may end up without context.
    grid = TokenGrid(frames=2, height=2, width=2)
    settings = _only(MaskSetSettings(num_blocks=2, spatial_scale=[0.5, 0.5], aspect_ratio=[0.75, 1.5]))
    check_masks(settings, grid)
    clip_ids = [f"clip-{i}" for i in range(50)]
    for step in range(4):
        (draw,) = draw_masks(settings, grid, seed=0, step=step, clip_ids=clip_ids)
        assert draw.context.size(1) >= grid.frames
        for context, target in zip(draw.context.tolist(), draw.target.tolist(), strict=True):
            assert not set(context) & set(target)


def test_a_set_whose_blocks_always_cover_the_frame_stops_after_bounded_redraws_naming_it() -> None:
    # No single 1x1 block covers a 2x2 grid (so the settings pass), but 60 of them leave nothing uncovered in practice.
    grid = TokenGrid(frames=2, height=2, width=2)
    settings = _only(MaskSetSettings(num_blocks=60, spatial_scale=[0.25, 0.25], aspect_ratio=[1.0, 1.0]))
    check_masks(settings, grid)
    with pytest.raises(BadInput, match=rf"--masks\.short_range.*{MAX_REDRAWS} placements.*num_blocks"):
        draw_masks(settings, grid, seed=0, step=0, clip_ids=["a"])


def test_a_scale_below_one_token_is_refused_naming_the_setting_and_one_token_is_accepted() -> None:
    tiny_block = _only(MaskSetSettings(num_blocks=8, spatial_scale=[0.05, 0.15]))
    with pytest.raises(BadInput, match=r"--masks\.short_range\.spatial_scale 0\.05 .*4x4 token grid.*0\.0625"):
        check_masks(tiny_block, TINY)
    check_masks(_only(MaskSetSettings(num_blocks=8, spatial_scale=[0.0625, 0.0625])), TINY)
    # At ViT-L's 16x16 grid 0.05 is 12 tokens: fine.
    check_masks(tiny_block, VITL)


def test_an_aspect_ratio_that_rounds_blocks_to_no_rows_is_refused_naming_the_setting() -> None:
    thin = _only(MaskSetSettings(num_blocks=8, spatial_scale=[0.15, 0.15], aspect_ratio=[0.1, 0.2]))
    with pytest.raises(BadInput, match=r"--masks\.short_range\.aspect_ratio"):
        check_masks(thin, TINY)


def test_a_block_that_can_cover_the_whole_frame_is_refused_and_the_largest_that_cannot_is_accepted() -> None:
    def long_range(scale: float) -> MaskSettings:
        return MaskSettings(long_range=MaskSetSettings(num_blocks=2, spatial_scale=[scale, scale]))

    # 12 tokens: a 4x4 side pair needs aspect >= 1.02 and <= 0.98 at once, impossible.
    check_masks(long_range(0.75), TINY)
    # 13 tokens: aspect ratios 0.94-1.06 give a 4x4 block, the whole frame, leaving no context.
    with pytest.raises(BadInput, match=r"--masks\.long_range\.spatial_scale 0\.8125 .*whole 4x4"):
        check_masks(long_range(0.8125), TINY)
    with pytest.raises(BadInput, match=r"--pretrain\.masks\.long_range\.spatial_scale 1 "):
        check_masks(long_range(1.0), TINY, prefix="--pretrain.")


def test_settings_no_grid_could_use_are_refused_naming_the_flag() -> None:
    def check(masks: MaskSettings = None, predictor: PredictorSettings = None, ema: EmaSettings = None) -> None:
        check_pretraining_settings(masks or MaskSettings(), predictor or PredictorSettings(), ema or EmaSettings())

    check()
    with pytest.raises(BadInput, match=r"--masks\.short_range\.num_blocks"):
        check(MaskSettings(short_range=MaskSetSettings(num_blocks=-1)))
    with pytest.raises(BadInput, match=r"--masks\.long_range\.spatial_scale"):
        check(MaskSettings(long_range=MaskSetSettings(spatial_scale=[0.7, 0.5])))
    with pytest.raises(BadInput, match=r"--masks\.short_range\.aspect_ratio"):
        check(MaskSettings(short_range=MaskSetSettings(aspect_ratio=[0.0, 1.0])))
    for keep in (0.0, 1.5, True):
        with pytest.raises(BadInput, match=rf"--masks\.long_range\.max_temporal_keep .*got {keep}"):
            check(MaskSettings(long_range=MaskSetSettings(max_temporal_keep=keep)))
    with pytest.raises(BadInput, match=r"both 0"):
        check(MaskSettings(short_range=MaskSetSettings(num_blocks=0), long_range=MaskSetSettings(num_blocks=0)))
    with pytest.raises(BadInput, match=r"--predictor\.depth"):
        check(predictor=PredictorSettings(reinit=True, depth=0))
    with pytest.raises(BadInput, match=r"--ema\.end"):
        check(ema=EmaSettings(end=1.5))


def test_a_set_turned_off_draws_nothing() -> None:
    settings = MaskSettings(short_range=MaskSetSettings(num_blocks=0))
    assert [d.name for d in draw_masks(settings, TINY, seed=0, step=0, clip_ids=["a"])] == ["long_range"]
