"""V-JEPA's multi-block masks on the model's token grid, drawn with keyed randomness.

A mask set places `num_blocks` blocks on the frame's token grid; every block spans all time steps, so a mask is a
set of spatial cells repeated over the clip's T' = frames / tubelet steps. The union of the blocks is the target
(what the predictor must predict), the rest is the context (what the context encoder sees). With
`max_temporal_keep` below 1 (V-JEPA's setting of that name) the context stops after the first
`max(1, int(T' x max_temporal_keep))` time steps and every later token joins the target: the set then asks for the
rest of the clip from its beginning.

As in V-JEPA's collator (`_MaskGenerator`): one block shape is drawn per step and mask set, shared by every clip of
the step (area `int(cells x scale)` tokens, height `round(sqrt(area x aspect))`, width `round(sqrt(area / aspect))`);
each clip then places its blocks; a placement that leaves no context is redrawn (bounded here, where the official
loop is not); and every clip's context and target are cut to the step's smallest counts, since the predictor takes
one (clips, tokens) index tensor per call. Two things differ, on purpose:

- Draws are keyed (seed, mask set, step, clip id) instead of streamed from each DataLoader worker's generator, so
  a clip's masks do not depend on workers, processes or batch order, and a resumed run draws the same masks.
- Cutting to the step's smallest count drops whole spatial cells (a keyed random choice), so what is left still
  spans every time step of the context. The official collator keeps the first indices, which are time-major: it
  drops the last time steps' tokens, so a clip's context could stop short of where the setting ends it.

Counts are the minimum over the clips passed in: draw once for a whole optimizer step (every process knows the
step's clip ids) and slice with `MaskDraw.rows`, and the masks do not depend on how the step is cut into
micro-batches or processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import VJEPA2Config

from vjepa_tune.config import MaskSetSettings, MaskSettings
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random

MAX_REDRAWS = 100
"""Placements tried per clip before a draw is given up as impossible in practice (the official loop never stops)."""


@dataclass(frozen=True)
class TokenGrid:
    """The model's tokens for one clip: T' time steps of a height x width grid, indexed t*H*W + row*W + col
    (the order of VJEPA2's patch embedding and of its RoPE positions)."""

    frames: int
    height: int
    width: int

    @classmethod
    def of(cls, config: VJEPA2Config, frames_per_clip: int) -> TokenGrid:
        """The grid of a clip of `frames_per_clip` frames; the config's own frames_per_clip is not what the data
        feeds (ViT-L's says 64, clips are usually 16 frames)."""
        side = config.crop_size // config.patch_size
        return cls(frames=frames_per_clip // config.tubelet_size, height=side, width=side)

    @property
    def cells(self) -> int:
        """Spatial positions per time step."""
        return self.height * self.width

    @property
    def tokens(self) -> int:
        return self.frames * self.cells

    def context_frames(self, max_temporal_keep: float) -> int:
        """Time steps the context may come from, as V-JEPA's collator counts them (at least one)."""
        return max(1, int(self.frames * max_temporal_keep))

    def __str__(self) -> str:
        return f"{self.frames}x{self.height}x{self.width}"


@dataclass(frozen=True)
class MaskDraw:
    """One mask set's masks for a batch of clips: sorted token indices, the same count for every clip."""

    name: str
    context: torch.Tensor
    """(clips, context tokens) int64."""
    target: torch.Tensor
    """(clips, target tokens) int64; never shares a token with the same clip's context."""

    def rows(self, index: slice | torch.Tensor) -> MaskDraw:
        """The masks of some of the clips (a micro-batch or a process's shard of the step)."""
        return MaskDraw(self.name, self.context[index], self.target[index])

    def to(self, device: torch.device | str) -> MaskDraw:
        return MaskDraw(self.name, self.context.to(device), self.target.to(device))


def block_shape(grid: TokenGrid, scale: float, aspect_ratio: float) -> tuple[int, int]:
    """(rows, columns) of a block covering `scale` of the frame at `aspect_ratio` (height / width), as V-JEPA's
    `_sample_block_size` rounds it: whole tokens of area rounded down, sides rounded to nearest, capped at the grid."""
    area = int(grid.cells * scale)
    rows = int(round(math.sqrt(area * aspect_ratio)))
    cols = int(round(math.sqrt(area / aspect_ratio)))
    return min(rows, grid.height), min(cols, grid.width)


def reachable_shapes(mask_set: MaskSetSettings, grid: TokenGrid) -> set[tuple[int, int]]:
    """Every block shape a draw of the set's scale and aspect-ratio ranges can give on this grid.

    Exact up to ties of rounding (draws of probability zero): the shape changes only where the area crosses a
    whole token or a side crosses a half, so evaluating every interval between those points covers all shapes.
    """
    s_low, s_high = mask_set.spatial_scale
    a_low, a_high = mask_set.aspect_ratio
    shapes: set[tuple[int, int]] = set()
    for area in range(int(grid.cells * s_low), int(grid.cells * s_high) + 1):
        points = {a_low, a_high}
        for k in range(max(grid.height, grid.width) + 1) if area > 0 else ():
            points |= {p for p in ((k + 0.5) ** 2 / area, area / (k + 0.5) ** 2) if a_low < p < a_high}
        ordered = sorted(points)
        probes = ordered + [(a + b) / 2 for a, b in zip(ordered, ordered[1:], strict=False)]
        for aspect in probes:
            rows = min(int(round(math.sqrt(area * aspect))), grid.height)
            cols = min(int(round(math.sqrt(area / aspect))), grid.width)
            shapes.add((rows, cols))
    return shapes


def check_masks(settings: MaskSettings, grid: TokenGrid, prefix: str = "--") -> None:
    """Refuse a mask set only when some draw of it leaves an empty target (a block of no tokens) or a context that
    no placement can make non-empty (one block covers the whole frame), naming the setting and the grid."""
    for name, mask_set in settings.active():
        _check_set(name, mask_set, grid, prefix)


def _check_set(name: str, mask_set: MaskSetSettings, grid: TokenGrid, prefix: str) -> None:
    flag = f"{prefix}masks.{name}"
    shapes = reachable_shapes(mask_set, grid)
    s_low, s_high = mask_set.spatial_scale
    if any(rows == 0 or cols == 0 for rows, cols in shapes):
        if int(grid.cells * s_low) == 0:
            raise BadInput(
                f"{flag}.spatial_scale {s_low:g} is less than one token of the model's {grid.height}x{grid.width} "
                f"token grid ({grid.cells * s_low:.2f} tokens), so a block can be empty and leave nothing to "
                f"predict; use at least {1 / grid.cells:.4g}."
            )
        raise BadInput(
            f"{flag}.aspect_ratio {list(mask_set.aspect_ratio)} rounds blocks of "
            f"{int(grid.cells * s_low)} tokens (spatial_scale {s_low:g} of the {grid.height}x{grid.width} token "
            "grid) to zero rows or columns, leaving nothing to predict; narrow the aspect ratio towards 1 or "
            "raise the spatial_scale."
        )
    if (grid.height, grid.width) in shapes:
        raise BadInput(
            f"{flag}.spatial_scale {s_high:g} gives blocks that cover the whole {grid.height}x{grid.width} token "
            f"grid at some aspect ratios in {list(mask_set.aspect_ratio)}, leaving no context to predict from; "
            "lower it."
        )


def _shape_of_step(mask_set: MaskSetSettings, grid: TokenGrid, seed: int, name: str, step: int) -> tuple[int, int]:
    rng = keyed_random(seed, "mask-shape", name, step)
    s_low, s_high = mask_set.spatial_scale
    a_low, a_high = mask_set.aspect_ratio
    scale = s_low + rng.random() * (s_high - s_low)
    aspect = a_low + rng.random() * (a_high - a_low)
    return block_shape(grid, scale, aspect)


def _place_blocks(mask_set: MaskSetSettings, grid: TokenGrid, shape: tuple[int, int], rng: random.Random,
                  what: str) -> set[int]:
    """The target cells of one clip: the union of its blocks, redrawn while it covers the whole frame."""
    rows, cols = shape
    for _ in range(MAX_REDRAWS):
        covered: set[int] = set()
        for _ in range(mask_set.num_blocks):
            top = rng.randrange(grid.height - rows + 1)
            left = rng.randrange(grid.width - cols + 1)
            covered.update(r * grid.width + c for r in range(top, top + rows) for c in range(left, left + cols))
        if len(covered) < grid.cells:
            return covered
    raise BadInput(
        f"{what}: {MAX_REDRAWS} placements in a row of {mask_set.num_blocks} blocks of {rows}x{cols} tokens covered "
        f"the whole {grid.height}x{grid.width} token grid, leaving no context; lower its spatial_scale or num_blocks."
    )


def _keep(cells: list[int], count: int, rng: random.Random) -> list[int]:
    """`count` of a clip's sorted cells, a keyed random choice when there are more."""
    return cells if len(cells) == count else sorted(rng.sample(cells, count))


def _over_time(cells: list[list[int]], grid: TokenGrid, frames: int) -> torch.Tensor:
    """Each clip's cells at each of the first `frames` time steps, as sorted token indices."""
    spatial = torch.tensor(cells, dtype=torch.int64).reshape(len(cells), 1, -1)
    offsets = (torch.arange(frames, dtype=torch.int64) * grid.cells).reshape(1, -1, 1)
    return (spatial + offsets).reshape(len(cells), -1)


def _after(grid: TokenGrid, frames: int, clips: int) -> torch.Tensor:
    """Every token after the first `frames` time steps, for each clip: the target's part beyond the context."""
    return torch.arange(frames * grid.cells, grid.tokens, dtype=torch.int64).expand(clips, -1)


def draw_masks(
    settings: MaskSettings,
    grid: TokenGrid,
    *,
    seed: int,
    step: int,
    clip_ids: Sequence[str],
    prefix: str = "--",
) -> list[MaskDraw]:
    """One `MaskDraw` per active mask set for the clips of one optimizer step (pass the whole step's clip ids).

    Keys: the block shape by (seed, set, step), each clip's placement and cut by (seed, set, step, clip id).
    """
    if not clip_ids:
        raise ValueError("draw_masks needs at least one clip id")
    draws = []
    for name, mask_set in settings.active():
        shape = _shape_of_step(mask_set, grid, seed, name, step)
        if 0 in shape or shape == (grid.height, grid.width):
            _check_set(name, mask_set, grid, prefix)  # names the setting at fault
        rngs = [keyed_random(seed, "mask", name, step, clip_id) for clip_id in clip_ids]
        what = f"{prefix}masks.{name} at step {step}"
        targets = [sorted(_place_blocks(mask_set, grid, shape, rng, what)) for rng in rngs]
        contexts = [sorted(set(range(grid.cells)).difference(t)) for t in targets]
        n_target = min(len(t) for t in targets)
        n_context = min(len(c) for c in contexts)
        targets = [_keep(t, n_target, rng) for t, rng in zip(targets, rngs, strict=True)]
        contexts = [_keep(c, n_context, rng) for c, rng in zip(contexts, rngs, strict=True)]
        kept = grid.context_frames(mask_set.max_temporal_keep)
        target = torch.cat([_over_time(targets, grid, kept), _after(grid, kept, len(clip_ids))], dim=1)
        draws.append(MaskDraw(name, context=_over_time(contexts, grid, kept), target=target))
    return draws
