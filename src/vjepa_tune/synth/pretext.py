"""The pretext task that pretrains the bundled `tiny` model: name the motion in a fresh synthetic clip and
say where the body parts go.

A small video model trained from scratch on a few hundred labelled clips memorises them; one that has first
learnt what actions are made of generalises. The pretext classes teach exactly those ingredients and share no
motion with the demo's classes (sitting down, standing up, waving and the `other` motions of `motions.py`):

- stick figures doing other things (kicking, punching, throwing, pointing, turning sideways, putting hands on
  hips, jumping jacks, arm circles), drawn by the same renderer as the demo videos, so the model learns
  body parts and how they move;
- shapes that fall, bounce, grow, spin, slide or keep still, so it learns motion itself, apart from bodies.

Every asymmetric motion comes twice, as played and time-reversed (`kick` and `kick_reversed`: the same clip
with its frames in the opposite order), so only the direction of time tells the pair apart: what a model needs
for sitting down versus standing up. Motions that look the same backwards (jumping jacks, arm circles, a
slide in a random direction, a still shape) come once.

Besides its class, a clip says where its parts are: the tracks of a figure's head, hip, hands and feet (or a
shape's centre) in every frame, which the renderer knows. They become dense targets for every token: which
token holds each part, and how that part moves between the two frames the token sees. That is far more to
learn from per clip than one label, and the direction of motion it asks for is local: the V-JEPA 2 pooler has no
positions and ignores token order, so whatever separates sitting down from standing up must sit in the tokens.

`difficulty` runs the curriculum: 0 draws large, centred, thick figures and shapes on flat backgrounds; 1
keeps the full variety of `synth` videos (small, off-centre, thin figures, textured backgrounds, camera
shake). Every clip is a pure function of its keys (seed, step, index), never of worker count or order.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from vjepa_tune.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_resize_size
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random, seeded_torch_rng
from vjepa_tune.synth.motions import Motion, Params, Pose, register_motion, smoothstep
from vjepa_tune.synth.synthetic import (
    STANDING_HEIGHT,
    ClipSpec,
    clip_poses,
    draw_clip_spec,
    ease_figure_spec,
    render_spec,
    skeleton,
)

# --- figure motions -----------------------------------------------------------------------------------------
# Angles follow motions.py: 0 hangs straight down, positive swings toward the way the figure faces (+x).


def _strike(u: float, out_end: float = 0.28, hold_end: float = 0.4) -> float:
    """0 -> 1 fast, a short hold, then back to 0 slowly: a strike, whose time reversal is a slow wind-up."""
    if u < out_end:
        return smoothstep(u / out_end)
    if u < hold_end:
        return 1.0
    return 1.0 - smoothstep((u - hold_end) / (1.0 - hold_end))


def _repeat(t: float, count: float) -> float:
    """Phase within the current repetition when t in [0, 1] holds `count` of them."""
    n = max(1, int(count))
    return min(t * n, n - 1e-9) % 1.0


def _draw_kick(rng: random.Random) -> dict[str, float]:
    return {
        "kicks": float(rng.choice([1, 1, 2])),
        "height": rng.uniform(1.1, 1.7),
        "chamber": rng.uniform(1.2, 1.9),
        "lean": rng.uniform(0.1, 0.3),
        "guard": rng.uniform(0.2, 0.8),
        "width": rng.uniform(0.12, 0.45),
    }


def _kick(t: float, p: Params) -> Pose:
    e = _strike(_repeat(t, p["kicks"]))
    thigh = p["height"] * e
    return Pose(
        torso=-p["lean"] * e,
        arm_r=p["guard"] * e + 0.08,
        elbow_r=1.4 * e,
        arm_l=-0.5 * e - 0.08,
        elbow_l=0.6 * e,
        thigh_r=thigh,
        knee_r=p["chamber"] * math.sin(math.pi * e),
        knee_l=0.15 * e,
        width=p["width"],
    )


def _draw_punch(rng: random.Random) -> dict[str, float]:
    return {
        "punches": float(rng.choice([1, 2, 3])),
        "guard_arm": rng.uniform(0.3, 0.7),
        "guard_elbow": rng.uniform(1.7, 2.3),
        "reach": rng.uniform(1.35, 1.7),
        "stance": rng.uniform(0.15, 0.35),
        "width": rng.uniform(0.12, 0.45),
    }


def _punch(t: float, p: Params) -> Pose:
    guard = smoothstep(t / 0.15)
    u = 0.0 if t < 0.2 else (t - 0.2) / 0.8
    count = max(1, int(p["punches"]))
    index = min(int(u * count), count - 1)
    e = _strike(_repeat(u, count)) if t >= 0.2 else 0.0
    arms = []
    for side in (0, 1):
        extend = e if index % 2 == side else 0.0
        arm = 0.08 + guard * (p["guard_arm"] - 0.08) + extend * (p["reach"] - p["guard_arm"])
        arms.append((arm, guard * p["guard_elbow"] * (1.0 - extend)))
    return Pose(
        torso=0.12 * e,
        arm_r=arms[0][0],
        elbow_r=arms[0][1],
        arm_l=arms[1][0],
        elbow_l=arms[1][1],
        thigh_r=-p["stance"] * guard,
        thigh_l=p["stance"] * guard,
        knee_l=0.3 * guard,
        width=p["width"],
    )


def _draw_throw(rng: random.Random) -> dict[str, float]:
    return {
        "cock": rng.uniform(2.0, 2.6),
        "release": rng.uniform(1.4, 2.0),
        "lean": rng.uniform(0.2, 0.45),
        "step": rng.uniform(0.25, 0.45),
        "width": rng.uniform(0.12, 0.45),
    }


def _throw(t: float, p: Params) -> Pose:
    """Slow wind-up behind the head, a fast release forward over the shoulder, a slow follow-through."""
    windup = smoothstep(t / 0.5)
    release = smoothstep((t - 0.5) / 0.15)
    settle = smoothstep((t - 0.65) / 0.35)
    # One turn of the arm the negative way: hanging, back and up (-cock), over the top, forward, hanging.
    forward = 2 * math.pi - p["release"]
    arm = 0.08 - p["cock"] * windup - (forward - p["cock"]) * release - (p["release"] - 0.08) * settle
    elbow = -1.2 * windup * (1.0 - release)
    torso = -0.2 * windup * (1.0 - release) + p["lean"] * release * (1.0 - 0.7 * settle)
    return Pose(
        torso=torso,
        arm_r=arm,
        elbow_r=elbow,
        arm_l=0.6 * windup * (1.0 - settle) + 0.08,
        thigh_l=p["step"] * windup,
        knee_l=0.2 * windup,
        thigh_r=-0.15 * release,
        width=p["width"],
    )


def _draw_point(rng: random.Random) -> dict[str, float]:
    return {
        "angle": rng.uniform(1.25, 1.85),
        "elbow": rng.uniform(-0.15, 0.15),
        "lean": rng.uniform(-0.05, 0.1),
        "width": rng.uniform(0.15, 1.0),
    }


def _point(t: float, p: Params) -> Pose:
    """Raise one straight arm to point at something, and keep pointing."""
    s = smoothstep(t)
    return Pose(
        arm_r=0.08 + s * (p["angle"] - 0.08), elbow_r=s * p["elbow"], torso=s * p["lean"], width=p["width"]
    )


def _draw_turn(rng: random.Random) -> dict[str, float]:
    return {
        "front": rng.uniform(0.85, 1.0),
        "side": rng.uniform(0.08, 0.25),
        "swing": rng.uniform(0.4, 0.7),
        "step": rng.uniform(0.5, 0.8),
    }


def _turn_sideways(t: float, p: Params) -> Pose:
    """Turn from facing the camera to profile, stepping round: shoulders and hips narrow, the arms swing."""
    s = smoothstep(t)
    mid = math.sin(math.pi * s)
    return Pose(
        width=p["front"] + s * (p["side"] - p["front"]),
        arm_r=0.08 + p["swing"] * mid,
        arm_l=-0.08 + 0.5 * p["swing"] * mid,
        thigh_r=p["step"] * mid,
        knee_r=1.4 * p["step"] * mid,
    )


def _draw_hands_on_hips(rng: random.Random) -> dict[str, float]:
    return {
        "arm": rng.uniform(0.6, 0.95),
        "elbow": rng.uniform(1.8, 2.3),
        "stance": rng.uniform(0.0, 0.15),
        "width": rng.uniform(0.7, 1.0),
    }


def _hands_on_hips(t: float, p: Params) -> Pose:
    """Elbows out, hands on the hips, and stay so."""
    s = smoothstep(t)
    arm = 0.08 + s * (p["arm"] - 0.08)
    elbow = -s * p["elbow"]
    return Pose(
        arm_r=arm,
        elbow_r=elbow,
        arm_l=-arm,
        elbow_l=-elbow,
        thigh_r=s * p["stance"],
        thigh_l=-s * p["stance"],
        width=p["width"],
    )


def _draw_jumping_jacks(rng: random.Random) -> dict[str, float]:
    return {
        "cycles": rng.uniform(1.5, 3.5),
        "arms": rng.uniform(2.5, 3.0),
        "legs": rng.uniform(0.25, 0.4),
        "hop": rng.uniform(0.02, 0.06),
        "width": rng.uniform(0.75, 1.0),
    }


def _jumping_jacks(t: float, p: Params) -> Pose:
    """Arms up and legs apart, then together again, in rhythm; the same forwards and backwards."""
    on = smoothstep(t / 0.1) * smoothstep((1.0 - t) / 0.1)
    spread = on * (0.5 - 0.5 * math.cos(2 * math.pi * p["cycles"] * t))
    arm = 0.08 + spread * (p["arms"] - 0.08)
    legs = spread * p["legs"]
    return Pose(
        arm_r=arm,
        arm_l=-arm,
        thigh_r=legs,
        thigh_l=-legs,
        lift=on * p["hop"] * abs(math.sin(2 * math.pi * p["cycles"] * t)),
        width=p["width"],
    )


def _draw_arm_circles(rng: random.Random) -> dict[str, float]:
    return {
        "circles": float(rng.choice([1, 2, 3])),
        "direction": rng.choice([-1.0, 1.0]),
        "both": float(rng.random() < 0.5),
        "width": rng.uniform(0.5, 1.0),
    }


def _arm_circles(t: float, p: Params) -> Pose:
    """Swing a straight arm (or both, mirrored) round in full circles, either way round."""
    arm = 0.08 + p["direction"] * 2 * math.pi * p["circles"] * smoothstep(t)
    return Pose(arm_r=arm, arm_l=-arm if p["both"] else -0.08, width=p["width"])


FIGURE_MOTIONS: tuple[Motion, ...] = (
    Motion("kick", _kick, _draw_kick, "kick one leg forward fast and lower it slowly"),
    Motion("punch", _punch, _draw_punch, "raise the guard, then punch forward fast and pull back slowly"),
    Motion("throw", _throw, _draw_throw, "wind one arm up behind the head and throw overhand"),
    Motion("point", _point, _draw_point, "raise one straight arm to point, and keep pointing"),
    Motion("turn_sideways", _turn_sideways, _draw_turn, "turn from facing the camera to profile"),
    Motion("hands_on_hips", _hands_on_hips, _draw_hands_on_hips, "put both hands on the hips"),
    Motion("jumping_jacks", _jumping_jacks, _draw_jumping_jacks, "jumping jacks: arms up and legs apart"),
    Motion("arm_circles", _arm_circles, _draw_arm_circles, "swing straight arms round in full circles"),
)
for _motion in FIGURE_MOTIONS:
    register_motion(_motion)

PRETEXT_MOTIONS: tuple[str, ...] = tuple(m.name for m in FIGURE_MOTIONS)
"""The stick-figure motions of the pretext task (registered in `motions.MOTIONS`)."""


# --- what a clip shows besides its class ---------------------------------------------------------------------

FIGURE_PARTS: tuple[str, ...] = ("head", "hip", "hand_r", "hand_l", "foot_r", "foot_l")
PARTS: tuple[str, ...] = (*FIGURE_PARTS, "shape")
"""The parts the part targets locate: a figure's head, hip, hands and feet, and a shape's centre."""

IGNORE = -100
"""Target of a part that is absent or out of the frame (cross-entropy's default ignore index)."""


@dataclass(frozen=True)
class PretextClip:
    frames: np.ndarray
    """(T, H, W, 3) uint8."""
    tracks: np.ndarray
    """(T, len(PARTS), 2) float32 pixel (x, y) of each part per frame; NaN where the clip has no such part."""


# --- shapes -------------------------------------------------------------------------------------------------


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


def _gray(level: float) -> tuple[int, int, int]:
    g = int(round(255 * level))
    return (g, g, g)


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


# --- figures with a curriculum ------------------------------------------------------------------------------


def figure_tracks(spec: ClipSpec) -> np.ndarray:
    """Pixel (x, y) of the figure's parts in every frame, (T, len(PARTS), 2), NaN for the shape slot.

    The same placement as `synthetic.render_spec` (feet on the floor line at the camera's centre, one figure
    height = figure_height / STANDING_HEIGHT of the frame), without the camera shake's pixel or two.
    """
    width, height = spec.size
    cam = spec.camera
    figure_px = cam.figure_height * height / STANDING_HEIGHT
    origin = np.array([cam.center_x * width, cam.floor_y * height])
    flip = np.array([-figure_px if cam.mirror else figure_px, -figure_px])
    tracks = np.full((spec.num_frames, len(PARTS), 2), np.nan, dtype=np.float32)
    for i, pose in enumerate(clip_poses(spec)):
        seen = min(1.0, max(0.05, pose.width * cam.width_gain + cam.width_offset))
        joints = skeleton(dataclasses.replace(pose, width=seen), spec.look)
        for k, part in enumerate(FIGURE_PARTS):
            tracks[i, k] = origin + joints[part] * flip
    return tracks


# --- the pretext classes ------------------------------------------------------------------------------------


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
        spec = draw_clip_spec(cls.source, rng, num_frames, (size, size))
        spec = ease_figure_spec(spec, 1.0 - difficulty, rng)
        clip = PretextClip(render_spec(spec), figure_tracks(spec))
    if cls.reversed:
        return PretextClip(np.ascontiguousarray(clip.frames[::-1]), np.ascontiguousarray(clip.tracks[::-1]))
    return clip


def _tubelets(tracks: torch.Tensor, tubelet: int) -> torch.Tensor:
    """(T // tubelet, tubelet, P, 2): the frames of each of the model's time steps."""
    steps = tracks.shape[0] // tubelet
    return tracks[: steps * tubelet].reshape(steps, tubelet, *tracks.shape[1:])


def _places(tracks: torch.Tensor, size: int, tubelet: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each part's mean place over each time step's frames, and whether it is in the frame there."""
    mean = _tubelets(tracks, tubelet).mean(dim=1)
    return mean, torch.isfinite(mean).all(-1) & (mean >= 0).all(-1) & (mean < size).all(-1)


def part_targets(tracks: torch.Tensor, size: int, patch: int = 16, tubelet: int = 2) -> torch.Tensor:
    """Which token holds each part at each time step: (T // tubelet, len(PARTS)) cell indices (row-major over
    the size // patch grid, the order of the model's tokens) of the part's mean place over the time step's
    frames; IGNORE where a part is absent or outside the frame. `tracks` are pixel (x, y) per frame,
    (T, len(PARTS), 2)."""
    mean, inside = _places(tracks, size, tubelet)
    grid = size // patch
    cells = torch.floor(mean.nan_to_num(0) / patch).long()
    index = cells[..., 1] * grid + cells[..., 0]
    return torch.where(inside, index, torch.full_like(index, IGNORE))


def part_motion(tracks: torch.Tensor, size: int, tubelet: int = 2) -> torch.Tensor:
    """How far each part moves per frame within each time step, (T // tubelet, len(PARTS), 2) in pixels;
    NaN where `part_targets` ignores the part. It is what one token sees (the model's tubelet spans these
    frames), and its sign is the direction of time."""
    frames = _tubelets(tracks, tubelet)
    motion = (frames[:, -1] - frames[:, 0]) / max(1, tubelet - 1)
    _, inside = _places(tracks, size, tubelet)
    return motion.masked_fill(~inside[..., None], float("nan"))


def part_pose(tracks: torch.Tensor, size: int, tubelet: int = 2) -> torch.Tensor:
    """Where each part is relative to the hip within each time step, (T // tubelet, len(PARTS), 2) in frame
    widths (x right, y down); NaN for the hip itself, for shapes, and where `part_targets` ignores the part
    or the hip.

    The V-JEPA 2 pooler sees its tokens as a bag, without positions, so a raised hand and a lowered one look
    alike to it unless the hand's token itself says where the hand is on the body: this target asks for it.
    """
    mean, inside = _places(tracks, size, tubelet)
    hip = PARTS.index("hip")
    offset = (mean - mean[:, hip : hip + 1]) / size
    valid = inside & inside[:, hip : hip + 1]
    valid[:, hip] = False
    return offset.masked_fill(~valid[..., None], float("nan"))


_NORMALIZE = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def transform_clip(clip: PretextClip, steps: list[v2.Transform]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply torchvision transforms to the frames and the tracks together; normalise the frames."""
    video = tv_tensors.Video(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))
    size = clip.frames.shape[1:3]
    points = tv_tensors.KeyPoints(torch.from_numpy(clip.tracks), canvas_size=size)
    video, points = v2.Compose([*steps, _NORMALIZE])(video, points)
    return video.as_subclass(torch.Tensor).contiguous(), points.as_subclass(torch.Tensor)


def crop_scale_for(difficulty: float) -> tuple[float, float]:
    """Area range of the random resized crop: none for easy clips, down to 30% of the frame at full
    difficulty, so the features survive the demo's training crops."""
    return (1.0 - 0.7 * difficulty, 1.0)


@dataclass(frozen=True)
class PretextExample:
    clip: torch.Tensor
    """Normalised (T, 3, size, size) float32, as the model takes it."""
    label: int
    parts: torch.Tensor
    """`part_targets` of the clip: (T // tubelet, len(PARTS)) token-cell indices."""
    motion: torch.Tensor
    """`part_motion` of the clip: (T // tubelet, len(PARTS), 2) pixels per frame, NaN where absent."""
    pose: torch.Tensor
    """`part_pose` of the clip: (T // tubelet, len(PARTS), 2) frame widths from the hip, NaN where absent."""


def _example(video: torch.Tensor, label: int, tracks: torch.Tensor, size: int, patch: int) -> PretextExample:
    return PretextExample(
        video, label, part_targets(tracks, size, patch), part_motion(tracks, size), part_pose(tracks, size)
    )


def pretext_example(
    seed: int,
    step: int,
    index: int,
    difficulty: float,
    *,
    num_frames: int = 16,
    size: int = 64,
    patch: int = 16,
) -> PretextExample:
    """Example `index` of training step `step`: a fresh clip, its class and where its parts are.

    Its class, its clip, its own difficulty (uniform up to 1.5x the schedule's, capped at 1) and its crop are
    keyed by (seed, step, index) alone.
    """
    rng = keyed_random(seed, "pretext", step, index)
    label = rng.randrange(len(PRETEXT_CLASSES))
    own = min(1.0, difficulty * rng.uniform(0.0, 1.5))
    clip = render_pretext_clip(label, rng, num_frames=num_frames, size=size, difficulty=own)
    crop = v2.RandomResizedCrop(size, scale=crop_scale_for(own), antialias=True)
    with seeded_torch_rng(seed, "pretext-crop", step, index):
        video, tracks = transform_clip(clip, [crop])
    return _example(video, label, tracks, size, patch)


def heldout_example(
    seed: int, index: int, *, num_frames: int = 16, size: int = 64, patch: int = 16
) -> PretextExample:
    """A fixed evaluation clip at full difficulty, through the evaluation resize and centre crop (the
    demo's test transform); classes in turn."""
    label = index % len(PRETEXT_CLASSES)
    clip = render_pretext_clip(
        label, keyed_random(seed, "pretext-heldout", index), num_frames=num_frames, size=size
    )
    video, tracks = transform_clip(
        clip, [v2.Resize(eval_resize_size(size), antialias=True), v2.CenterCrop(size)]
    )
    return _example(video, label, tracks, size, patch)


def difficulty_at(step: int, easy_steps: int, ramp_steps: int) -> float:
    """The curriculum: all easy (0) for `easy_steps`, then rising to the demo's full variety (1) over
    `ramp_steps`."""
    if step < easy_steps:
        return 0.0
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, (step - easy_steps) / ramp_steps)


class PretextBatches(Dataset):
    """Item s is training batch s, `collate_examples` of its examples; for a DataLoader with
    batch_size=None, whose workers then render batches ahead of the training step."""

    def __init__(
        self,
        seed: int,
        steps: int,
        batch_size: int,
        *,
        easy_steps: int = 0,
        ramp_steps: int = 0,
        num_frames: int = 16,
        size: int = 64,
        patch: int = 16,
    ) -> None:
        self.seed = seed
        self.steps = steps
        self.batch_size = batch_size
        self.easy_steps = easy_steps
        self.ramp_steps = ramp_steps
        self.num_frames = num_frames
        self.size = size
        self.patch = patch

    def __len__(self) -> int:
        return self.steps

    def difficulty(self, step: int) -> float:
        return difficulty_at(step, self.easy_steps, self.ramp_steps)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        difficulty = self.difficulty(step)
        examples = [
            pretext_example(
                self.seed, step, i, difficulty, num_frames=self.num_frames, size=self.size, patch=self.patch
            )
            for i in range(self.batch_size)
        ]
        return collate_examples(examples)


def collate_examples(examples: list[PretextExample]) -> tuple[torch.Tensor, ...]:
    """(clips (B, T, 3, H, W), labels (B,), parts (B, T', P), motion (B, T', P, 2), pose (B, T', P, 2))
    stacked."""
    return (
        torch.stack([e.clip for e in examples]),
        torch.tensor([e.label for e in examples]),
        torch.stack([e.parts for e in examples]),
        torch.stack([e.motion for e in examples]),
        torch.stack([e.pose for e in examples]),
    )
