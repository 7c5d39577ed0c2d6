"""The labels of the pretext task: every figure and shape motion, and the time reversal of each asymmetric one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from vjepa_tune.errors import BadInput
from vjepa_tune.synth.pretext.motions import FIGURE_MOTIONS, PRETEXT_MOTIONS
from vjepa_tune.synth.pretext.parts import PretextClip, figure_tracks
from vjepa_tune.synth.pretext.shapes import SHAPE_MOTIONS, render_shape_clip
from vjepa_tune.synth.render import render_spec
from vjepa_tune.synth.specs import draw_clip_spec, ease_figure_spec


@dataclass(frozen=True)
class PretextClass:
    """One label of the pretext task: a figure or shape motion, played forwards or reversed."""

    name: str
    source: str
    """A motion of PRETEXT_MOTIONS or SHAPE_MOTIONS."""
    reversed: bool = False

    @property
    def is_shape(self) -> bool:
        return self.source in SHAPE_MOTIONS


_SYMMETRIC = {"jumping_jacks", "arm_circles", "shape_slide", "shape_still"}
"""Motions whose time reversal is drawn from the same distribution: a reversed class would be unlearnable."""


def _classes() -> list[PretextClass]:
    out = []
    for source in (*PRETEXT_MOTIONS, *SHAPE_MOTIONS):
        out.append(PretextClass(source, source))
        if source not in _SYMMETRIC:
            out.append(PretextClass(f"{source}_reversed", source, reversed=True))
    return out


PRETEXT_CLASSES: list[PretextClass] = _classes()
"""Every pretext label, in label order."""

PRETEXT_ID2LABEL: dict[int, str] = {i: c.name for i, c in enumerate(PRETEXT_CLASSES)}


def render_pretext_clip(
    label: int, rng: random.Random, *, num_frames: int = 16, size: int = 64, difficulty: float = 1.0
) -> PretextClip:
    """A fresh clip of pretext class `label` with its part tracks; a reversed class is the same clip as its
    forward class (same rng state) with the frames, and the tracks, in the opposite order."""
    if not 0 <= label < len(PRETEXT_CLASSES):
        raise BadInput(f"pretext label must be in 0..{len(PRETEXT_CLASSES) - 1}, got {label!r}.")
    if not 0.0 <= difficulty <= 1.0:
        raise BadInput(f"difficulty must be in [0, 1], got {difficulty!r}.")
    cls = PRETEXT_CLASSES[label]
    if cls.is_shape:
        clip = render_shape_clip(cls.source, rng, num_frames, size, difficulty)
    else:
        spec = draw_clip_spec(FIGURE_MOTIONS[cls.source], rng, num_frames, (size, size))
        spec = ease_figure_spec(spec, 1.0 - difficulty, rng)
        clip = PretextClip(render_spec(spec), figure_tracks(spec))
    if cls.reversed:
        return PretextClip(np.ascontiguousarray(clip.frames[::-1]), np.ascontiguousarray(clip.tracks[::-1]))
    return clip

