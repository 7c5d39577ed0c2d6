"""What one synthetic clip is made of, and drawing it: a performer's look, the scene, the camera, the colours and
the actions in time (`ClipSpec`), every choice drawn from one `random.Random`.

Drawing a spec is cheap and rendering it (`synth.render`) is the work, so layouts plan every video's spec first.
Everything but the action varies per clip: proportions and colours, background, position, scale, camera shake,
speed, where in the clip the action happens, mirroring.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from vjepa_tune.synth.actions import CLASS_MOTIONS, MOTIONS
from vjepa_tune.synth.motions import Motion

RGB = tuple[int, int, int]
STANDING_HEIGHT = 0.93
"""Height of an average figure standing upright, in the units of `Look` (its parts vary by +-10%)."""


# --- what one video is made of ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """A performer: body proportions (in figure heights), line width and colour preferences."""

    torso: float
    neck: float
    head: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    shoulder: float
    hip: float
    line: float
    hue: float
    saturation: float
    head_filled: bool


@dataclass(frozen=True)
class Backdrop:
    """The static scene behind the figure; `light` says which side of mid-grey it is, for contrast."""

    kind: str
    light: bool
    color0: RGB
    color1: RGB
    floor_color: RGB | None
    pattern: str
    angle: float
    frequency: float
    seed: int


@dataclass(frozen=True)
class Camera:
    """Where the figure stands in the frame and how the camera moves. Positions are fractions of the frame."""

    figure_height: float
    center_x: float
    floor_y: float
    mirror: bool
    shake: float
    shake_freqs: tuple[float, float, float, float]
    shake_phases: tuple[float, float, float, float]
    background_shift: float = 0.0
    width_gain: float = 1.0
    width_offset: float = 0.0
    """Seen from another angle a figure looks wider or narrower: width' = width * gain + offset."""


@dataclass(frozen=True)
class Palette:
    figure: RGB
    far_limbs: RGB
    head: RGB
    chair: RGB


@dataclass(frozen=True)
class Segment:
    """One action within a clip: `frames` long, its motion from action_start, action_length long."""

    motion: Motion
    params: Mapping[str, float]
    frames: int
    action_start: int
    action_length: int
    blend_in: int = 0
    """Frames at the start spent easing from the previous segment's last pose."""
    sway: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Idle body sway: amplitude (radians), cycles per frame, phase."""


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip; drawing it is cheap, rendering it is the work."""

    size: tuple[int, int]
    look: Look
    backdrop: Backdrop
    camera: Camera
    palette: Palette
    segments: tuple[Segment, ...]
    chair: tuple[Motion, Mapping[str, float]] | None
    """(motion, params) whose seated pose places the chair; None for no chair."""

    @property
    def num_frames(self) -> int:
        return sum(s.frames for s in self.segments)

# --- drawing a spec -----------------------------------------------------------------------------------------


def _luminance(rgb: Sequence[float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _color(
    rng: random.Random, lo: float, hi: float, hue: float | None = None, sat: float | None = None
) -> RGB:
    """A colour whose luminance lies in [lo, hi] (0-1), of the given hue/saturation where they allow it."""
    target = rng.uniform(lo, hi)
    h = rng.random() if hue is None else hue
    s = rng.uniform(0.0, 0.75) if sat is None else sat
    for _ in range(12):
        rgb = colorsys.hsv_to_rgb(h, s, 1.0)
        value = target / max(_luminance(rgb), 1e-6)
        if value <= 1.0:
            return tuple(int(round(255 * c * value)) for c in rgb)  # type: ignore[return-value]
        s *= 0.6
    g = int(round(255 * target))
    return (g, g, g)


def draw_look(rng: random.Random) -> Look:
    """A performer: proportions within 10% of the average, line width, colour and head style."""
    def vary(x: float) -> float:
        return x * rng.uniform(0.9, 1.1)

    return Look(
        torso=vary(0.30),
        neck=vary(0.035),
        head=vary(0.062),
        upper_arm=vary(0.15),
        forearm=vary(0.14),
        thigh=vary(0.24),
        shin=vary(0.23),
        shoulder=vary(0.095),
        hip=vary(0.06),
        line=rng.uniform(0.035, 0.06),
        hue=rng.random(),
        saturation=rng.uniform(0.0, 0.8),
        head_filled=rng.random() < 0.7,
    )


def draw_backdrop(rng: random.Random) -> Backdrop:
    """A light or dark scene: flat, a gradient, noise or a texture, with a floor in 60% of them."""
    light = rng.random() < 0.5
    lo, hi = (0.55, 0.95) if light else (0.05, 0.4)
    kind = rng.choice(["flat", "gradient", "noise", "texture"])
    color0 = _color(rng, lo, hi)
    spread = 0.25 if kind == "texture" else 0.35
    lum0 = _luminance(color0) / 255
    color1 = _color(rng, max(lo, lum0 - spread), min(hi, lum0 + spread))
    floor_color = _color(rng, lo, hi) if rng.random() < 0.6 else None
    return Backdrop(
        kind=kind,
        light=light,
        color0=color0,
        color1=color1,
        floor_color=floor_color,
        pattern=rng.choice(["stripes", "checker", "grid"]),
        angle=rng.uniform(0, math.pi),
        frequency=rng.uniform(3.0, 12.0),
        seed=rng.getrandbits(32),
    )


def draw_camera(rng: random.Random, size: tuple[int, int]) -> Camera:
    """Where the figure stands and how large it is (the whole figure inside the frame), mirroring and shake."""
    width, height = size
    figure_height = rng.uniform(0.5, 0.75)
    half_figure = 0.45 * figure_height * height / width
    margin = min(0.45, half_figure + 0.04)
    return Camera(
        figure_height=figure_height,
        center_x=rng.uniform(margin, 1.0 - margin),
        floor_y=rng.uniform(0.86, 0.95),
        mirror=rng.random() < 0.5,
        shake=0.0 if rng.random() < 0.4 else rng.uniform(0.004, 0.02),
        shake_freqs=tuple(rng.uniform(0.02, 0.15) for _ in range(4)),  # type: ignore[arg-type]
        shake_phases=tuple(rng.uniform(0, 2 * math.pi) for _ in range(4)),  # type: ignore[arg-type]
    )


def draw_palette(rng: random.Random, look: Look, backdrop: Backdrop) -> Palette:
    """Colours that stand out from the backdrop: the figure in the performer's hue, far limbs shaded toward the
    background, a chair a step away from it."""
    lo, hi = (0.02, 0.3) if backdrop.light else (0.7, 1.0)
    figure = _color(rng, lo, hi, hue=look.hue, sat=look.saturation)
    bg = np.array(backdrop.color0, dtype=float)
    far = tuple(int(round(c)) for c in 0.75 * np.array(figure) + 0.25 * bg)
    head = figure if rng.random() < 0.6 else _color(rng, lo, hi)
    lum = _luminance(backdrop.color0) / 255
    toward = -1 if backdrop.light else 1
    chair_lum = min(0.95, max(0.05, lum + toward * rng.uniform(0.2, 0.35)))
    chair = _color(rng, chair_lum, chair_lum)
    return Palette(figure=figure, far_limbs=far, head=head, chair=chair)  # type: ignore[arg-type]


def _draw_timing(rng: random.Random, frames: int, earliest: int = 0) -> tuple[int, int]:
    """(start, length) of the action: a random sub-span with idle before and after, its length set by a speed.

    Start and end idle have the same distribution, so a clip and its time reversal are equally likely.
    """
    room = frames - earliest
    if room <= 2:
        return earliest, max(1, room)
    speed = rng.uniform(0.75, 1.35)
    fraction = min(1.0, max(0.35, 0.62 / speed * rng.uniform(0.9, 1.1)))
    length = min(room, max(2, round(fraction * room)))
    return rng.randint(earliest, frames - length), length


def draw_segment(
    motion: Motion, rng: random.Random, frames: int, blend_in: int = 0, params: Mapping[str, float] | None = None
) -> Segment:
    """One action of `frames` frames: the motion's parameters (drawn even when `params` are given, so the draws
    that follow do not depend on it), when it happens, and the idle sway around it."""
    drawn = motion.draw_params(rng)
    params = drawn if params is None else params
    start, length = _draw_timing(rng, frames, earliest=blend_in)
    sway = (rng.uniform(0.0, 0.035), rng.uniform(0.02, 0.08), rng.uniform(0, 2 * math.pi))
    return Segment(motion, params, frames, start, length, blend_in, sway)


def draw_chair(rng: random.Random, segments: Sequence[Segment]) -> tuple[Motion, Mapping[str, float]] | None:
    """What places the chair: the first seated motion, else in 30% of clips a chair nobody sits on."""
    for segment in segments:
        if segment.motion.chair:
            return segment.motion, segment.params
    if rng.random() < 0.3:
        sit_down = MOTIONS["sit_down"]
        return sit_down, sit_down.draw_params(rng)
    return None


def draw_clip_spec(motion: Motion, rng: random.Random, num_frames: int, size: tuple[int, int]) -> ClipSpec:
    """All random choices of one clip of `motion`, drawn from `rng` alone."""
    look = draw_look(rng)
    backdrop = draw_backdrop(rng)
    camera = draw_camera(rng, size)
    palette = draw_palette(rng, look, backdrop)
    segment = draw_segment(motion, rng, num_frames)
    chair = draw_chair(rng, [segment])
    return ClipSpec(size, look, backdrop, camera, palette, (segment,), chair)


def draw_class_spec(class_name: str, rng: random.Random, num_frames: int, size: tuple[int, int]) -> ClipSpec:
    """A clip of one of the guide's classes: a motion drawn from `CLASS_MOTIONS[class_name]`, then a clip."""
    motion = rng.choice(CLASS_MOTIONS[class_name])
    return draw_clip_spec(MOTIONS[motion], rng, num_frames, size)


def ease_figure_spec(spec: ClipSpec, easy: float, rng: random.Random) -> ClipSpec:
    """Move a drawn figure clip `easy` of the way toward a large, centred, thick figure on a flat background
    with a still camera (easy = 0 leaves it as drawn)."""
    if easy <= 0:
        return spec
    cam, look = spec.camera, spec.look

    def toward(value: float, target: float) -> float:
        return value + (target - value) * easy

    camera = dataclasses.replace(
        cam,
        figure_height=toward(cam.figure_height, 0.8),
        center_x=toward(cam.center_x, 0.5),
        floor_y=toward(cam.floor_y, 0.93),
        shake=cam.shake * (1 - easy),
    )
    look = dataclasses.replace(look, line=toward(look.line, 0.085))
    backdrop = spec.backdrop
    if rng.random() < easy:
        backdrop = dataclasses.replace(backdrop, kind="flat", floor_color=None)
    return dataclasses.replace(spec, camera=camera, look=look, backdrop=backdrop)

