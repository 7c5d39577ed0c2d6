"""Settings of V-JEPA's pretraining objective: masks, predictor and the target encoder's momentum.

Defaults are the official V-JEPA 2 pretraining configs (FACTS.md, "Continued pretraining"): a short-range set of 8
blocks at spatial scale 0.15 and a long-range set of 2 blocks at 0.7, aspect ratio 0.75-1.5, every block spanning all
time steps; EMA momentum 0.99925 throughout. The attribute docstrings become the command line's --help text.
`check_settings` refuses values no grid could use; whether a mask set fits the model's token grid is
`masks.check_masks`'s question, since only the grid can answer it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vjepa_tune.errors import BadInput


@dataclass
class MaskSetSettings:
    """One mask set: several blocks, each spanning every time step; their union is the target, the rest context."""

    num_blocks: int = 8
    """Blocks per clip (0 turns the set off); their union is what the predictor must predict."""
    spatial_scale: list[float] = field(default_factory=lambda: [0.15, 0.15])
    """Range of one block's area as a fraction of the frame's token grid; one value is drawn per step."""
    aspect_ratio: list[float] = field(default_factory=lambda: [0.75, 1.5])
    """Range of a block's height / width ratio; one value is drawn per step."""


def _long_range() -> MaskSetSettings:
    return MaskSetSettings(num_blocks=2, spatial_scale=[0.7, 0.7], aspect_ratio=[0.75, 1.5])


@dataclass
class MaskSettings:
    """V-JEPA's two mask sets: many small blocks (short-range) and a few large ones (long-range)."""

    short_range: MaskSetSettings = field(default_factory=MaskSetSettings)
    """8 blocks of 15% of the frame each (the official values)."""
    long_range: MaskSetSettings = field(default_factory=_long_range)
    """2 blocks of 70% of the frame each (the official values)."""

    def active(self) -> list[tuple[str, MaskSetSettings]]:
        """The sets in use, by name, in a fixed order (short_range, long_range)."""
        return [(name, s) for name, s in (("short_range", self.short_range), ("long_range", self.long_range))
                if s.num_blocks > 0]


@dataclass
class PredictorSettings:
    """The predictor that maps context features to the target tokens' features."""

    reinit: bool = False
    """Replace the checkpoint's predictor by a new one of the width, depth and heads below."""
    width: int | None = None
    """Hidden size of a new predictor; default the checkpoint's."""
    depth: int | None = None
    """Layers of a new predictor; default the checkpoint's."""
    heads: int | None = None
    """Attention heads of a new predictor; default the checkpoint's (it must divide the width)."""


@dataclass
class EmaSettings:
    """The target encoder: an exponential moving average of the context encoder."""

    start: float = 0.99925
    """Momentum at the first step (closer to 1 = a slower, steadier target)."""
    end: float = 0.99925
    """Momentum at the last step; it moves linearly from start to end over the run."""


def _range_ok(values: list[float], low: float, high: float) -> bool:
    return (len(values) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
            and low < values[0] <= values[1] <= high)


def check_settings(masks: MaskSettings, predictor: PredictorSettings, ema: EmaSettings, prefix: str = "--") -> None:
    """Refuse values no token grid could use, naming the flag (`prefix` + dotted name) and the value."""
    sets = (("short_range", masks.short_range), ("long_range", masks.long_range))
    for name, s in sets:
        flag = f"{prefix}masks.{name}"
        if not (isinstance(s.num_blocks, int) and s.num_blocks >= 0):
            raise BadInput(
                f"{flag}.num_blocks must be a whole number >= 0 (0 turns the set off), got {s.num_blocks!r}."
            )
        if not _range_ok(list(s.spatial_scale), 0.0, 1.0):
            raise BadInput(
                f"{flag}.spatial_scale must be two fractions 0 < min <= max <= 1, got {s.spatial_scale!r}."
            )
        if not _range_ok(list(s.aspect_ratio), 0.0, math.inf):
            raise BadInput(f"{flag}.aspect_ratio must be two ratios 0 < min <= max, got {s.aspect_ratio!r}.")
    if not masks.active():
        raise BadInput(f"{prefix}masks.short_range.num_blocks and {prefix}masks.long_range.num_blocks are both 0: "
                       "at least one mask set must be on.")
    for name in ("width", "depth", "heads"):
        value = getattr(predictor, name)
        if value is not None and not (isinstance(value, int) and value >= 1):
            raise BadInput(f"{prefix}predictor.{name} must be a whole number >= 1, got {value!r}.")
    for name in ("start", "end"):
        value = getattr(ema, name)
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise BadInput(f"{prefix}ema.{name} must be a momentum in [0, 1], got {value!r}.")
