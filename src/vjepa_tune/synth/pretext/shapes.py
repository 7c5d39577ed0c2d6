"""The shape clips of the pretext task: a shape that falls, bounces, grows, spins, slides or keeps still over a
background, so that a model learns motion itself, apart from bodies.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vjepa_tune.errors import BadInput
from vjepa_tune.synth.motions import smoothstep
from vjepa_tune.synth.pretext.parts import PARTS, PretextClip


@dataclass(frozen=True)
class ShapeState:
    """Where a shape is in one frame: centre (fractions of the frame, y down), size (fraction) and angle."""

    x: float
    y: float
    size: float
    angle: float


ShapeMotion = Callable[[float, Mapping[str, float]], ShapeState]


def _draw_shape_params(rng: random.Random, size: float) -> dict[str, float]:
    """Start position, size and the extents every shape motion may use; a motion reads the ones it needs."""
    margin = 0.1 + size / 2
    return {
        "x": rng.uniform(margin, 1 - margin),
        "y": rng.uniform(margin, 1 - margin),
        "size": size,
        "angle": rng.uniform(0, 2 * math.pi),
        "top": rng.uniform(0.08 + size / 2, 0.35),
        "floor": rng.uniform(0.72, 0.92 - size / 2),
        "grow": rng.uniform(1.8, 2.8),
        "turns": rng.uniform(0.35, 0.9),
        "bounces": float(rng.choice([2, 3, 4])),
        "dx": rng.uniform(0.25, 0.6) * rng.choice([-1.0, 1.0]),
        "dy": rng.uniform(-0.25, 0.25),
    }


def _fall(t: float, p: Mapping[str, float]) -> ShapeState:
    """Dropped from rest: accelerates down under gravity onto the floor and stays there."""
    return ShapeState(p["x"], p["top"] + (p["floor"] - p["top"]) * t * t, p["size"], p["angle"])


def _bounce(t: float, p: Mapping[str, float]) -> ShapeState:
    """Bounces along the floor, each bounce lower than the one before, drifting sideways."""
    n = p["bounces"]
    u = t * n
    k = min(int(u), int(n) - 1)
    within = u - k
    height = (p["floor"] - p["top"]) * 0.55**k
    y = p["floor"] - height * 4 * within * (1 - within)
    x = p["x"] + 0.5 * p["dx"] * (t - 0.5)
    return ShapeState(min(0.95, max(0.05, x)), y, p["size"], p["angle"])


def _grow(t: float, p: Mapping[str, float]) -> ShapeState:
    s = smoothstep(t)
    return ShapeState(
        0.5 + 0.5 * (p["x"] - 0.5),
        0.5 + 0.5 * (p["y"] - 0.5),
        p["size"] * (1 + (p["grow"] - 1) * s),
        p["angle"],
    )


def _spin(t: float, p: Mapping[str, float]) -> ShapeState:
    """Turns clockwise on the screen (its reversal turns anticlockwise)."""
    return ShapeState(p["x"], p["y"], p["size"] * 1.3, p["angle"] + 2 * math.pi * p["turns"] * smoothstep(t))


def _slide(t: float, p: Mapping[str, float]) -> ShapeState:
    """Glides at an even speed in a random direction: its reversal is another slide."""
    x = min(0.92, max(0.08, p["x"] + p["dx"] * (t - 0.5)))
    y = min(0.92, max(0.08, p["y"] + p["dy"] * (t - 0.5)))
    return ShapeState(x, y, p["size"], p["angle"])


def _still(t: float, p: Mapping[str, float]) -> ShapeState:
    return ShapeState(p["x"], p["y"], p["size"], p["angle"])


SHAPE_MOTIONS: dict[str, ShapeMotion] = {
    "shape_fall": _fall,
    "shape_bounce": _bounce,
    "shape_grow": _grow,
    "shape_spin": _spin,
    "shape_slide": _slide,
    "shape_still": _still,
}
"""Shape motions as functions of phase t in [0, 1] (0 = before the motion, 1 = after it)."""

_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "triangle": [(0.0, -0.6), (0.5, 0.4), (-0.5, 0.4)],
    "arrow": [(-0.5, -0.15), (0.1, -0.15), (0.1, -0.4), (0.5, 0.0), (0.1, 0.4), (0.1, 0.15), (-0.5, 0.15)],
    "bar": [(-0.5, -0.2), (0.5, -0.2), (0.5, 0.2), (-0.5, 0.2)],
    "ell": [(-0.4, -0.5), (-0.1, -0.5), (-0.1, 0.2), (0.4, 0.2), (0.4, 0.5), (-0.4, 0.5)],
}
"""Unit outlines (y down) without rotational symmetry, which could hide a turn; circles join the others."""

def _tint(rng: random.Random, level: float) -> tuple[int, int, int]:
    """A colour near luminance `level`, of random hue."""
    hue = [rng.uniform(-0.25, 0.25) for _ in range(3)]
    return tuple(int(round(255 * min(1.0, max(0.0, level + h * 0.6)))) for h in hue)  # type: ignore[return-value]


def _shape_background(rng: random.Random, size: int, light: bool, difficulty: float) -> np.ndarray:
    """Flat for easy clips; gradients, stripes and noise join as the difficulty rises."""
    lo, hi = (0.55, 0.95) if light else (0.05, 0.4)
    c0 = np.array(_tint(rng, rng.uniform(lo, hi)), dtype=np.float32)
    c1 = np.array(_tint(rng, rng.uniform(lo, hi)), dtype=np.float32)
    kind = "flat" if rng.random() > difficulty else rng.choice(["gradient", "stripes", "noise"])
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    if kind == "flat":
        mix = np.zeros_like(x)
    elif kind == "gradient":
        mix = np.clip(along, 0, 1)
    elif kind == "stripes":
        mix = (np.sin(2 * math.pi * rng.uniform(3, 10) * along) > 0).astype(np.float32)
    else:
        noise = np.random.default_rng(rng.getrandbits(32))
        mix = np.clip(noise.normal(0.5, 0.25, size=(size // 8 + 1, size // 8 + 1)), 0, 1)
        mix = np.kron(mix, np.ones((8, 8), dtype=np.float32))[:size, :size]
    image = c0 + (c1 - c0) * mix[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _timing(rng: random.Random, frames: int) -> tuple[int, int]:
    """(start, length) of the motion; idle before and after are equally likely, so reversal changes nothing
    but the direction of time."""
    length = min(frames, max(2, round(rng.uniform(0.4, 0.85) * frames)))
    return rng.randint(0, frames - length), length


def _phases(rng: random.Random, frames: int) -> list[float]:
    start, length = _timing(rng, frames)
    last = max(1, length - 1)
    return [min(1.0, max(0.0, (i - start) / last)) for i in range(frames)]


def render_shape_clip(
    motion: str, rng: random.Random, num_frames: int, size: int, difficulty: float = 1.0
) -> PretextClip:
    """One shape doing `motion` over a background (drawn at 2x, box-filtered down), with its centre's track."""
    if motion not in SHAPE_MOTIONS:
        raise BadInput(f"unknown shape motion {motion!r}; known: {', '.join(SHAPE_MOTIONS)}.")
    easy = 1.0 - difficulty
    outline = rng.choice([*_OUTLINES, "circle"]) if motion != "shape_spin" else rng.choice(list(_OUTLINES))
    shape_size = rng.uniform(0.16, 0.3) * (1 + 0.4 * easy)
    params = _draw_shape_params(rng, shape_size)
    light = rng.random() < 0.5
    scale = 2
    background = _shape_background(rng, size * scale, light, difficulty)
    color = _tint(rng, rng.uniform(0.0, 0.3) if light else rng.uniform(0.7, 1.0))
    distractors = [
        (
            rng.uniform(0.1, 0.9),
            rng.uniform(0.1, 0.9),
            rng.uniform(0.06, 0.15),
            _tint(rng, rng.uniform(0.2, 0.8)),
        )
        for _ in range(rng.choice([0, 1, 2]) if rng.random() < difficulty else 0)
    ]
    mirror = rng.random() < 0.5 and motion != "shape_spin"
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    tracks = np.full((num_frames, len(PARTS), 2), np.nan, dtype=np.float32)
    px = size * scale
    for i, t in enumerate(_phases(rng, num_frames)):
        canvas = Image.fromarray(background.copy())
        draw = ImageDraw.Draw(canvas)
        for dx, dy, ds, dc in distractors:
            r = ds * px / 2
            draw.rectangle((dx * px - r, dy * px - r, dx * px + r, dy * px + r), fill=dc)
        state = SHAPE_MOTIONS[motion](t, params)
        cx = (1 - state.x if mirror else state.x) * px
        cy = state.y * px
        r = state.size * px
        if outline == "circle":
            draw.ellipse((cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2), fill=color)
        else:
            c, s = math.cos(state.angle), math.sin(state.angle)
            points = [(cx + r * (u * c - v * s), cy + r * (u * s + v * c)) for u, v in _OUTLINES[outline]]
            draw.polygon(points, fill=color)
        frames[i] = np.asarray(canvas.resize((size, size), Image.Resampling.BOX))
        tracks[i, PARTS.index("shape")] = (cx / scale, cy / scale)
    return PretextClip(frames, tracks)

