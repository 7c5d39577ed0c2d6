"""Synthetic action videos: procedurally animated stick figures, encoded as real video files.

Every test and the demo need labelled videos that decode like real ones and that a small model can learn,
without a download. This module draws the guide's four classes (sitting_down, standing_up, waving, other) from
the motion library in `motions.py`, varies everything but the action per video (performer proportions and
colours, background, position, scale, camera shake, speed, where in the clip the action happens, mirroring),
and writes them in the layouts the data readers accept: `folder`, `ntu` (NTU RGB+D names, three cameras per
performance), `ucf101` (groups and official split lists) and `list`.

Each video is a pure function of (seed, class, video index): the keyed draws of `vjepa_tune.randomness`, so
the output does not depend on the number of worker processes. `render_clip` and `render_sequence` render in
memory for callers that want frames without files (pretraining on fresh clips, long videos for detection
tests).
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import math
import numbers
import os
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from vjepa_tune.data.video import usable_cpus
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.motions import CLASS_MOTIONS, CLASSES, MOTIONS, Pose, blend_poses
from vjepa_tune.text import counted

LAYOUTS = ("folder", "ntu", "ucf101", "list")
MIN_SIZE = 32
MANIFEST = "synth.json"
GENERATOR_VERSION = 1
"""Bumped whenever the same arguments would draw different videos, so a rerun never mixes two generations."""

NTU_ACTIONS: dict[str, int] = {
    "sit_down": 8,
    "stand_up": 9,
    "wave": 23,
    "clap": 10,
    "jump": 27,
    "stand_idle": 35,
    "squat": 80,
    "raise_both_arms": 95,
    "walk_in_place": 99,
}
"""NTU RGB+D action ids of the motions: A008 sitting down, A009 standing up, A023 hand waving, A010 clapping,
A027 jump up, A035 nod head/bow, A080 squat down, A095 hands up (both hands), A099 running on the spot."""

NTU_PERFORMER_ORDER = (1, 3, 2, 6, 4, 7, 5, 8)
"""Performers in the order performances use them: alternating between the official cross-subject training
(1, 2, 4, 5, 8) and test (3, 6, 7) performers, so even a handful of performances per class puts some on both
sides."""

UCF_CLASS_NAMES: dict[str, str] = {name: "".join(w.capitalize() for w in name.split("_")) for name in CLASSES}
"""sitting_down -> SittingDown, as UCF-101 names its classes."""

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

    motion: str
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
    chair: tuple[str, Mapping[str, float]] | None
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


def _draw_look(rng: random.Random) -> Look:
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


def _draw_backdrop(rng: random.Random) -> Backdrop:
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


def _draw_camera(rng: random.Random, size: tuple[int, int]) -> Camera:
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


def _draw_palette(rng: random.Random, look: Look, backdrop: Backdrop) -> Palette:
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


def _draw_segment(
    motion: str, rng: random.Random, frames: int, blend_in: int = 0, params: Mapping[str, float] | None = None
) -> Segment:
    drawn = MOTIONS[motion].draw_params(rng)
    params = drawn if params is None else params
    start, length = _draw_timing(rng, frames, earliest=blend_in)
    sway = (rng.uniform(0.0, 0.035), rng.uniform(0.02, 0.08), rng.uniform(0, 2 * math.pi))
    return Segment(motion, params, frames, start, length, blend_in, sway)


def _draw_chair(rng: random.Random, segments: Sequence[Segment]) -> tuple[str, Mapping[str, float]] | None:
    """What places the chair: the first seated motion, else in 30% of clips a chair nobody sits on."""
    for segment in segments:
        if MOTIONS[segment.motion].chair:
            return segment.motion, segment.params
    if rng.random() < 0.3:
        return "sit_down", MOTIONS["sit_down"].draw_params(rng)
    return None


def _check_motion(motion: str) -> None:
    if motion not in MOTIONS:
        raise BadInput(f"unknown motion {motion!r}; known motions: {', '.join(sorted(MOTIONS))}.")


def draw_clip_spec(motion: str, rng: random.Random, num_frames: int, size: tuple[int, int]) -> ClipSpec:
    """All random choices of one clip of `motion`, drawn from `rng` alone."""
    _check_motion(motion)
    look = _draw_look(rng)
    backdrop = _draw_backdrop(rng)
    camera = _draw_camera(rng, size)
    palette = _draw_palette(rng, look, backdrop)
    segment = _draw_segment(motion, rng, num_frames)
    chair = _draw_chair(rng, [segment])
    return ClipSpec(size, look, backdrop, camera, palette, (segment,), chair)


def draw_class_spec(class_name: str, rng: random.Random, num_frames: int, size: tuple[int, int]) -> ClipSpec:
    """A clip of one of the guide's classes: a motion drawn from `CLASS_MOTIONS[class_name]`, then a clip."""
    motion = rng.choice(CLASS_MOTIONS[class_name])
    return draw_clip_spec(motion, rng, num_frames, size)


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


# --- poses to joints to pixels ------------------------------------------------------------------------------


def _segment_poses(segment: Segment, previous: Pose | None) -> list[Pose]:
    motion = MOTIONS[segment.motion]
    poses = []
    last = max(1, segment.action_length - 1)
    amplitude, frequency, phase = segment.sway
    for i in range(segment.frames):
        t = min(1.0, max(0.0, (i - segment.action_start) / last))
        pose = motion.pose(t, segment.params)
        if previous is not None and i < segment.blend_in:
            pose = blend_poses(previous, pose, (i + 1) / (segment.blend_in + 1))
        if amplitude:
            pose = dataclasses.replace(
                pose, torso=pose.torso + amplitude * math.sin(2 * math.pi * frequency * i + phase)
            )
        poses.append(pose)
    return poses


def clip_poses(spec: ClipSpec) -> list[Pose]:
    """The pose of every frame, segments joined, before the camera's view is applied."""
    poses: list[Pose] = []
    for segment in spec.segments:
        poses.extend(_segment_poses(segment, poses[-1] if poses else None))
    return poses


def _polar(angle: float, length: float) -> np.ndarray:
    """A limb vector (y up) at `angle` from pointing straight down."""
    return np.array([math.sin(angle) * length, -math.cos(angle) * length])


def skeleton(pose: Pose, look: Look) -> dict[str, np.ndarray]:
    """Joint positions in figure heights, y up, the lowest foot on the floor (y = 0) under x = 0.

    Feet anchor the figure: sitting moves the hips back over planted feet; a jump lifts all by `pose.lift`.
    """
    width = min(1.0, max(0.05, pose.width))
    up = np.array([math.sin(pose.torso), math.cos(pose.torso)])
    across = np.array([math.cos(pose.torso), -math.sin(pose.torso)])
    hip = np.zeros(2)
    shoulders = hip + up * look.torso
    neck = shoulders + up * look.neck
    head_dir = np.array([math.sin(pose.torso + pose.head), math.cos(pose.torso + pose.head)])
    j: dict[str, np.ndarray] = {
        "hip": hip,
        "shoulders": shoulders,
        "neck": neck,
        "head": neck + head_dir * look.head,
    }
    for side, sign in (("r", 1.0), ("l", -1.0)):
        arm, elbow, reach = (getattr(pose, f"{k}_{side}") for k in ("arm", "elbow", "reach"))
        thigh, knee = getattr(pose, f"thigh_{side}"), getattr(pose, f"knee_{side}")
        j[f"shoulder_{side}"] = shoulders + across * sign * look.shoulder * width
        j[f"elbow_{side}"] = j[f"shoulder_{side}"] + _polar(arm, look.upper_arm * reach)
        j[f"hand_{side}"] = j[f"elbow_{side}"] + _polar(arm + elbow, look.forearm * reach)
        j[f"hip_{side}"] = hip + across * sign * look.hip * width
        j[f"knee_{side}"] = j[f"hip_{side}"] + _polar(thigh, look.thigh)
        j[f"foot_{side}"] = j[f"knee_{side}"] + _polar(thigh - knee, look.shin)
    lowest = min(j[k][1] for k in ("foot_r", "foot_l", "knee_r", "knee_l"))
    foot_low = min(j["foot_r"][1], j["foot_l"][1])
    weights = [math.exp(-30.0 * (j[f][1] - foot_low)) for f in ("foot_r", "foot_l")]
    anchor_x = (weights[0] * j["foot_r"][0] + weights[1] * j["foot_l"][0]) / sum(weights)
    offset = np.array([-anchor_x, -lowest + pose.lift])
    return {k: v + offset for k, v in j.items()}


def _chair_points(spec: ClipSpec) -> dict[str, np.ndarray] | None:
    """Seat, back and front leg of the chair, placed under the hips of the seated pose that defines it."""
    if spec.chair is None:
        return None
    name, params = spec.chair
    seated = MOTIONS[name].pose(MOTIONS[name].seated_phase, params)
    hip = skeleton(_viewed(seated, spec.camera), spec.look)["hip"]
    seat_y = hip[1] - spec.look.line * 0.6
    back, front = hip[0] - 0.13, hip[0] + 0.13
    return {
        "seat": np.array([[back, seat_y], [front, seat_y]]),
        "back": np.array([[back, 0.0], [back, seat_y + 0.3]]),
        "front": np.array([[front, 0.0], [front, seat_y]]),
    }


def _viewed(pose: Pose, camera: Camera) -> Pose:
    width = min(1.0, max(0.05, pose.width * camera.width_gain + camera.width_offset))
    return dataclasses.replace(pose, width=width)


def _background(spec: ClipSpec, scale: int, margin: int) -> np.ndarray:
    """The scene at `scale` times the output size plus `margin` pixels each side (room for camera shake)."""
    width, height = spec.size
    b = spec.backdrop
    rows = height * scale + 2 * margin
    cols = width * scale + 2 * margin
    y = (np.arange(rows, dtype=np.float32) - margin) / (height * scale)
    x = (np.arange(cols, dtype=np.float32) - margin - width * scale / 2) / (
        height * scale
    ) + spec.camera.background_shift
    xx, yy = np.meshgrid(x, y)
    c0 = np.array(b.color0, dtype=np.float32)
    c1 = np.array(b.color1, dtype=np.float32)
    along = xx * math.cos(b.angle) + yy * math.sin(b.angle)
    noise = np.random.default_rng(b.seed)
    if b.kind == "flat":
        mix = np.zeros_like(xx)
    elif b.kind == "gradient":
        mix = np.clip(0.5 + along * 0.9, 0.0, 1.0)
    elif b.kind == "noise":
        mix = np.zeros_like(xx)
        for _ in range(6):
            fx, fy = noise.uniform(-4, 4, size=2)
            mix += np.sin(2 * math.pi * (fx * xx + fy * yy) + noise.uniform(0, 2 * math.pi))
        mix = (mix - mix.min()) / max(float(np.ptp(mix)), 1e-6)
    else:
        across = -xx * math.sin(b.angle) + yy * math.cos(b.angle)
        wave_a = np.sin(2 * math.pi * b.frequency * along)
        wave_b = np.sin(2 * math.pi * b.frequency * across)
        if b.pattern == "stripes":
            mix = np.clip(wave_a * 3, -1, 1) * 0.5 + 0.5
        elif b.pattern == "checker":
            mix = (np.sign(wave_a) * np.sign(wave_b) > 0).astype(np.float32)
        else:
            mix = ((np.abs(wave_a) < 0.2) | (np.abs(wave_b) < 0.2)).astype(np.float32)
    image = c0 + (c1 - c0) * mix[..., None]
    if b.floor_color is not None:
        floor_row = margin + int(round(spec.camera.floor_y * height * scale))
        shade = np.linspace(1.0, 0.85, max(1, rows - floor_row), dtype=np.float32)[:, None, None]
        image[floor_row:] = np.array(b.floor_color, dtype=np.float32) * shade
    if b.kind in ("noise", "texture"):
        image += noise.normal(0.0, 6.0, size=(rows, cols, 1)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _shake(camera: Camera, frame: int, pixels: float) -> tuple[int, int]:
    f, p = camera.shake_freqs, camera.shake_phases
    dx = 0.6 * math.sin(2 * math.pi * f[0] * frame + p[0]) + 0.4 * math.sin(2 * math.pi * f[1] * frame + p[1])
    dy = 0.6 * math.sin(2 * math.pi * f[2] * frame + p[2]) + 0.4 * math.sin(2 * math.pi * f[3] * frame + p[3])
    return int(round(dx * pixels)), int(round(dy * pixels))


_LIMBS = (("shoulder", "elbow", "hand"), ("hip", "knee", "foot"))


@dataclass
class _Painter:
    """Draws figure-height coordinates (y up, feet at 0) onto one frame's canvas."""

    draw: ImageDraw.ImageDraw
    origin: np.ndarray
    flip: np.ndarray
    line: int

    def at(self, point: np.ndarray) -> tuple[float, float]:
        x, y = self.origin + point * self.flip
        return float(x), float(y)

    def stroke(self, points: Sequence[np.ndarray], color: RGB) -> None:
        """A thick polyline with round joints and round ends."""
        xy = [self.at(p) for p in points]
        self.draw.line(xy, fill=color, width=self.line, joint="curve")
        r = self.line / 2
        for x, y in (xy[0], xy[-1]):
            self.draw.ellipse((x - r, y - r, x + r, y + r), fill=color)

    def head(self, center: np.ndarray, radius: float, color: RGB, filled: bool) -> None:
        x, y = self.at(center)
        box = (x - radius, y - radius, x + radius, y + radius)
        if filled:
            self.draw.ellipse(box, fill=color)
        else:
            self.draw.ellipse(box, outline=color, width=max(1, self.line * 3 // 4))


def _paint_figure(painter: _Painter, joints: dict[str, np.ndarray], spec: ClipSpec, head_px: float) -> None:
    """Far limbs first (in a shade toward the background), then hips, torso, shoulders, near limbs, head."""
    pal = spec.palette
    for a, b, c in _LIMBS:
        painter.stroke([joints[f"{a}_l"], joints[f"{b}_l"], joints[f"{c}_l"]], pal.far_limbs)
    painter.stroke([joints["hip_l"], joints["hip_r"]], pal.figure)
    painter.stroke([joints["hip"], joints["neck"]], pal.figure)
    painter.stroke([joints["shoulder_l"], joints["shoulder_r"]], pal.figure)
    for a, b, c in _LIMBS:
        painter.stroke([joints[f"{a}_r"], joints[f"{b}_r"], joints[f"{c}_r"]], pal.figure)
    painter.head(joints["head"], head_px, pal.head, spec.look.head_filled)


def render_spec(spec: ClipSpec) -> np.ndarray:
    """The clip's frames as a (T, H, W, 3) uint8 array.

    Frames up to 640 px are drawn at twice the size and box-filtered down, which anti-aliases the lines.
    """
    width, height = spec.size
    scale = 2 if max(width, height) <= 640 else 1
    cam = spec.camera
    shake_px = cam.shake * height * scale
    margin = int(math.ceil(shake_px)) + 1
    background = _background(spec, scale, margin)
    figure_px = cam.figure_height * height * scale / STANDING_HEIGHT
    line = max(1, int(round(spec.look.line * figure_px)))
    origin = np.array([cam.center_x * width * scale, cam.floor_y * height * scale])
    flip = np.array([-figure_px if cam.mirror else figure_px, -figure_px])
    chair = _chair_points(spec)
    frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
    for i, pose in enumerate(clip_poses(spec)):
        dx, dy = _shake(cam, i, shake_px) if shake_px else (0, 0)
        top, left = margin + dy, margin + dx
        crop = background[top : top + height * scale, left : left + width * scale]
        canvas = Image.fromarray(np.ascontiguousarray(crop))
        painter = _Painter(ImageDraw.Draw(canvas), origin + (dx, dy), flip, line)
        if chair is not None:
            for part in chair.values():
                painter.stroke(list(part), spec.palette.chair)
        _paint_figure(painter, skeleton(_viewed(pose, cam), spec.look), spec, spec.look.head * figure_px)
        if scale > 1:
            canvas = canvas.resize((width, height), Image.Resampling.BOX)
        frames[i] = np.asarray(canvas)
    return frames


# --- in-memory rendering for other modules ------------------------------------------------------------------


def _as_rng(rng_or_seed: random.Random | int) -> random.Random:
    return rng_or_seed if isinstance(rng_or_seed, random.Random) else keyed_random("render", rng_or_seed)


def _check_size(size: tuple[int, int], flag: str = "--size") -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_whole(v) for v in size):
        raise BadInput(f"{flag} must be a width and a height in pixels, got {size!r}.")
    width, height = size
    if width < MIN_SIZE or height < MIN_SIZE:
        raise BadInput(f"{flag} must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {width}x{height}.")
    if width % 2 or height % 2:
        raise BadInput(
            f"{flag} must have an even width and height (H.264 and MPEG-4 store colour at half resolution), "
            f"got {width}x{height}."
        )
    return int(width), int(height)


def render_clip(
    motion: str, rng_or_seed: random.Random | int, num_frames: int, size: tuple[int, int] = (96, 96)
) -> np.ndarray:
    """A fresh clip of one motion as (T, H, W, 3) uint8 frames, not encoded; `size` is (width, height)."""
    size = _check_size(size, "size")
    if num_frames < 2:
        raise BadInput(f"num_frames must be >= 2, got {num_frames!r}.")
    return render_spec(draw_clip_spec(motion, _as_rng(rng_or_seed), num_frames, size))


@dataclass(frozen=True)
class SequenceSpan:
    """One segment of a long video: frames [start, stop), its motion within [action_start, action_stop)."""

    name: str
    motion: str
    start: int
    stop: int
    action_start: int
    action_stop: int


@dataclass
class RenderedSequence:
    frames: np.ndarray
    spans: list[SequenceSpan]

    def frame_labels(self) -> list[str]:
        """The segment name of every frame."""
        return [span.name for span in self.spans for _ in range(span.stop - span.start)]


def render_sequence(
    segments: Sequence[tuple[str, int]], rng_or_seed: random.Random | int, size: tuple[int, int] = (96, 96)
) -> RenderedSequence:
    """One long video of several actions by one performer in one scene: [("sitting_down", 48), ("wave", 40)].

    A name is a class of `CLASS_MOTIONS` (a motion is drawn from it) or a motion. From the second segment on,
    the first frames ease out of the previous segment's last pose: they belong to the segment but precede its
    action.
    """
    size = _check_size(size, "size")
    if not segments:
        raise BadInput("render_sequence needs at least one (name, frames) segment.")
    rng = _as_rng(rng_or_seed)
    look = _draw_look(rng)
    backdrop = _draw_backdrop(rng)
    camera = _draw_camera(rng, size)
    palette = _draw_palette(rng, look, backdrop)
    drawn: list[Segment] = []
    names: list[str] = []
    for index, (name, frames) in enumerate(segments):
        if frames < 2:
            raise BadInput(f"segment {index} ({name!r}) must be at least 2 frames long, got {frames!r}.")
        motion = rng.choice(CLASS_MOTIONS[name]) if name in CLASS_MOTIONS else name
        _check_motion(motion)
        blend = min(frames // 4, 8) if index else 0
        seated = [s.params for s in drawn if MOTIONS[s.motion].chair] if MOTIONS[motion].chair else []
        # One chair, one way of sitting: sit_down then stand_up continue each other's poses.
        drawn.append(_draw_segment(motion, rng, frames, blend_in=blend, params=seated[0] if seated else None))
        names.append(name)
    chair = _draw_chair(rng, drawn)
    spec = ClipSpec(size, look, backdrop, camera, palette, tuple(drawn), chair)
    spans, start = [], 0
    for name, segment in zip(names, drawn, strict=True):
        action = start + segment.action_start
        spans.append(
            SequenceSpan(
                name, segment.motion, start, start + segment.frames, action, action + segment.action_length
            )
        )
        start += segment.frames
    return RenderedSequence(render_spec(spec), spans)


def render_joined_clips(
    classes: Sequence[str], frames_per_clip: int, seed: int, size: tuple[int, int] = (96, 96),
    variety: float = 1.0,
) -> RenderedSequence:
    """Fresh clips of the given classes, each in its own scene and drawn like `synth`'s at `variety`, joined
    back to back: an edited long video with a cut between every two clips, for detection tests."""
    size = _check_size(size, "size")
    if not (isinstance(variety, int | float) and 0.0 <= variety <= 1.0):
        raise BadInput(f"variety must be a number from 0 to 1, got {variety!r}.")
    if not classes:
        raise BadInput("render_joined_clips needs at least one class.")
    if frames_per_clip < 2:
        raise BadInput(f"frames_per_clip must be >= 2, got {frames_per_clip!r}.")
    unknown = sorted(set(classes) - set(CLASS_MOTIONS))
    if unknown:
        raise BadInput(f"unknown classes {unknown}; the synthetic classes are {', '.join(CLASS_MOTIONS)}.")
    clips, spans = [], []
    for index, name in enumerate(classes):
        rng = keyed_random(seed, "joined", index)
        spec = ease_figure_spec(draw_class_spec(name, rng, frames_per_clip, size), 1.0 - variety, rng)
        segment = spec.segments[0]
        start = index * frames_per_clip
        action = start + segment.action_start
        spans.append(SequenceSpan(name, segment.motion, start, start + frames_per_clip, action,
                                  action + segment.action_length))
        clips.append(render_spec(spec))
    return RenderedSequence(np.concatenate(clips), spans)


# --- encoding -----------------------------------------------------------------------------------------------

_CONTAINERS = {
    ".mp4": ("mp4", "libx264"),
    ".mov": ("mov", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".avi": ("avi", "mpeg4"),
}


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as PyAV expects, shape (H * 3 / 2, W).

    Done here rather than by FFmpeg's swscale so that the bytes written depend on the frames alone, not on the
    machine's SIMD paths or the buffers' alignment.
    """
    rgb = frame.astype(np.float32)
    height, width = frame.shape[:2]
    y = 16.0 + rgb @ np.array([0.256788, 0.504129, 0.097906], dtype=np.float32)
    quad = (rgb[0::2, 0::2] + rgb[1::2, 0::2] + rgb[0::2, 1::2] + rgb[1::2, 1::2]) * 0.25
    u = 128.0 + quad @ np.array([-0.148223, -0.290993, 0.439216], dtype=np.float32)
    v = 128.0 + quad @ np.array([0.439216, -0.367788, -0.071427], dtype=np.float32)
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(height * 3 // 2, width)


def write_video(path: Path | str, frames: np.ndarray, fps: int, codec: str | None = None) -> None:
    """Encode (T, H, W, 3) uint8 frames; the file appears whole or not at all (written aside, then renamed).

    The codec follows the extension: .mp4/.mov/.mkv -> H.264 (libx264), .avi -> MPEG-4 part 2 tagged XVID with
    B-frames, as UCF-101's files are. Encoding runs on one thread, so the bytes do not depend on the machine.
    """
    path = Path(path)
    if path.suffix.lower() not in _CONTAINERS:
        raise BadInput(f"cannot write video {path}: extension must be one of {', '.join(_CONTAINERS)}.")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    container_format, default_codec = _CONTAINERS[path.suffix.lower()]
    codec = codec or default_codec
    height, width = frames.shape[1:3]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with av.open(str(tmp), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.time_base = Fraction(1, fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            context = stream.codec_context
            context.thread_count = 1
            if codec == "libx264":
                # x264's macroblock-tree rate control reads uninitialised memory at some small widths (96 px
                # among them): with it on, the same frames encode to different bytes from run to run.
                stream.options = {"crf": "18", "preset": "veryfast", "x264-params": "mbtree=0"}
            elif codec == "mpeg4":
                context.qscale = True
                context.global_quality = 3 * 118  # qscale 3 in FFmpeg's lambda units (FF_QP2LAMBDA = 118)
                context.max_b_frames = 2
                context.codec_tag = "XVID"
            for index, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frame), format="yuv420p")
                picture.pts = index
                picture.time_base = Fraction(1, fps)
                for packet in stream.encode(picture):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, lines: list[str], newline: str = "\n") -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes("".join(line + newline for line in lines).encode("utf-8"))
    os.replace(tmp, path)


# --- layouts ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    relpath: str
    class_name: str
    spec: ClipSpec


def _index_width(count: int) -> int:
    return max(4, len(str(count - 1)))


def _plan_folder(seed: int, n: int, size: tuple[int, int], frames: int, folder: str | None) -> list[_Job]:
    jobs = []
    digits = _index_width(n)
    for cls in CLASSES:
        for i in range(n):
            spec = draw_class_spec(cls, keyed_random(seed, cls, i), frames, size)
            name = f"{cls}_{i:0{digits}d}.mp4"
            jobs.append(_Job(f"{folder or cls}/{name}", cls, spec))
    return jobs


def _camera_variant(base: Camera, rng: random.Random, index: int, size: tuple[int, int]) -> Camera:
    """How one of a setup's cameras sees the stage: camera 1 head-on, 2 and 3 from either side."""
    if index == 1:
        gain, offset = 1.0, 0.0
    else:
        gain, offset = rng.uniform(0.6, 0.8), rng.uniform(0.1, 0.2)
    figure_height = base.figure_height * rng.uniform(0.85, 1.1)
    half = 0.45 * figure_height * size[1] / size[0] + 0.04
    center = min(1 - half, max(half, base.center_x + rng.uniform(-0.08, 0.08))) if half < 0.5 else 0.5
    return dataclasses.replace(
        base,
        figure_height=figure_height,
        center_x=center,
        floor_y=min(0.96, max(0.84, base.floor_y + rng.uniform(-0.03, 0.03))),
        shake=0.0 if rng.random() < 0.5 else rng.uniform(0.003, 0.012),
        shake_phases=tuple(rng.uniform(0, 2 * math.pi) for _ in range(4)),  # type: ignore[arg-type]
        background_shift=rng.uniform(-0.3, 0.3),
        width_gain=gain,
        width_offset=offset,
    )


def _plan_ntu(seed: int, n: int, size: tuple[int, int], frames: int) -> list[_Job]:
    """Performances filmed by three cameras at once; setup, performer and replication make names unique."""
    jobs = []
    performers = len(NTU_PERFORMER_ORDER)
    for cls in CLASSES:
        for k in range(math.ceil(n / 3)):
            performer = NTU_PERFORMER_ORDER[k % performers]
            replication = (k // performers) % 2 + 1
            setup = k // (2 * performers) + 1
            rng = keyed_random(seed, "ntu", cls, k)
            motion = rng.choice(CLASS_MOTIONS[cls])
            look = _draw_look(keyed_random(seed, "ntu-performer", performer))
            setup_rng = keyed_random(seed, "ntu-setup", setup)
            backdrop = _draw_backdrop(setup_rng)
            stage = _draw_camera(setup_rng, size)
            stage = dataclasses.replace(stage, mirror=rng.random() < 0.5)
            palette = _draw_palette(keyed_random(seed, "ntu-palette", performer, setup), look, backdrop)
            segment = _draw_segment(motion, rng, frames)
            chair = _draw_chair(rng, [segment])
            for camera in range(1, 4):
                if 3 * k + camera > n:
                    break
                view = _camera_variant(
                    stage, keyed_random(seed, "ntu-camera", setup, camera, cls, k), camera, size
                )
                spec = ClipSpec(size, look, backdrop, view, palette, (segment,), chair)
                action = NTU_ACTIONS[motion]
                name = f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}_rgb.avi"
                jobs.append(_Job(f"nturgb+d_rgb/{name}", cls, spec))
    return jobs


def _ucf_groups(n: int) -> list[int]:
    """Clips per group: up to 4 (UCF-101 has 4-7), at least 3 groups wherever there are 3 clips, and no more
    than 99 groups of 99 clips, as the two-digit names allow."""
    per_group = max(1, min(4, n // 3), math.ceil(n / 99))
    sizes = [per_group] * (n // per_group)
    if n % per_group:
        sizes.append(n % per_group)
    return sizes


def ucf_test_groups(num_groups: int, fold: int) -> set[int]:
    """The groups that fold 1-3 tests: its third of them, as UCF-101's folds test g01-07, g08-14, g15-21."""
    return {g for g in range(1, num_groups + 1) if (g - 1) * 3 // num_groups == fold - 1}


def _plan_ucf101(seed: int, n: int, size: tuple[int, int], frames: int) -> list[_Job]:
    """Groups of clips sharing a performer, scene and camera, as clips cut from one source video."""
    jobs = []
    for cls in CLASSES:
        ucf = UCF_CLASS_NAMES[cls]
        for g, count in enumerate(_ucf_groups(n), start=1):
            group_rng = keyed_random(seed, "ucf", cls, "group", g)
            look = _draw_look(group_rng)
            backdrop = _draw_backdrop(group_rng)
            stage = _draw_camera(group_rng, size)
            palette = _draw_palette(group_rng, look, backdrop)
            for c in range(1, count + 1):
                rng = keyed_random(seed, "ucf", cls, g, c)
                motion = rng.choice(CLASS_MOTIONS[cls])
                segment = _draw_segment(motion, rng, frames)
                camera = dataclasses.replace(
                    stage,
                    center_x=min(0.9, max(0.1, stage.center_x + rng.uniform(-0.04, 0.04))),
                    figure_height=stage.figure_height * rng.uniform(0.95, 1.05),
                    shake=0.0 if rng.random() < 0.4 else rng.uniform(0.004, 0.02),
                )
                spec = ClipSpec(
                    size, look, backdrop, camera, palette, (segment,), _draw_chair(rng, [segment])
                )
                jobs.append(_Job(f"UCF-101/{ucf}/v_{ucf}_g{g:02d}_c{c:02d}.avi", cls, spec))
    return jobs


def _ucf_split_files(out_dir: Path, jobs: list[_Job]) -> None:
    """classInd.txt and the three official train/test lists, CRLF line ends as in the real download."""
    names = sorted(UCF_CLASS_NAMES.values(), key=str.lower)
    label = {name: i for i, name in enumerate(names, start=1)}
    lists = out_dir / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    _write_text(lists / "classInd.txt", [f"{label[name]} {name}" for name in names], "\r\n")
    groups_of: dict[str, int] = {}
    for job in jobs:
        ucf = UCF_CLASS_NAMES[job.class_name]
        groups_of[ucf] = max(groups_of.get(ucf, 0), int(job.relpath.rsplit("_g", 1)[1][:2]))
    for fold in (1, 2, 3):
        train, test = [], []
        for job in jobs:
            ucf = UCF_CLASS_NAMES[job.class_name]
            rel = job.relpath.removeprefix("UCF-101/")
            group = int(rel.rsplit("_g", 1)[1][:2])
            if group in ucf_test_groups(groups_of[ucf], fold):
                test.append(rel)
            else:
                train.append(f"{rel} {label[ucf]}")
        _write_text(lists / f"trainlist0{fold}.txt", train, "\r\n")
        _write_text(lists / f"testlist0{fold}.txt", test, "\r\n")


def _plan_layout(layout: str, seed: int, n: int, size: tuple[int, int], frames: int) -> list[_Job]:
    if layout == "folder":
        return _plan_folder(seed, n, size, frames, None)
    if layout == "list":
        return _plan_folder(seed, n, size, frames, "videos")
    if layout == "ntu":
        return _plan_ntu(seed, n, size, frames)
    return _plan_ucf101(seed, n, size, frames)


def _plan(layout: str, seed: int, n: int, size: tuple[int, int], frames: int, variety: float = 1.0) -> list[_Job]:
    """Every video's spec; below full `variety` each is eased by its own keyed draw, so variety 1 leaves the
    specs exactly as drawn and a lower variety changes how the videos look, never what happens in them."""
    jobs = _plan_layout(layout, seed, n, size, frames)
    if variety >= 1.0:
        return jobs
    return [
        dataclasses.replace(
            job, spec=ease_figure_spec(job.spec, 1.0 - variety, keyed_random(seed, job.relpath, "ease"))
        )
        for job in jobs
    ]


# --- the entry point ----------------------------------------------------------------------------------------


@dataclass
class SynthSummary:
    """What `synthesize` made, and the flags that read it back."""

    out_dir: Path
    layout: str
    root: Path
    """The folder to pass as --data.root."""
    num_files: int
    written: int
    skipped: int
    per_class: dict[str, int]
    elapsed_s: float
    list_file: Path | None = None
    """The list file to pass as --data.list_file (layout list)."""

    def describe(self) -> str:
        """Two lines for the command line: what was written, and the flags that read it."""
        counts = ", ".join(f"{name} {count}" for name, count in self.per_class.items())
        return (
            f"{counted(self.num_files, 'video')} in {self.out_dir} (layout {self.layout}; {self.written} written, "
            f"{self.skipped} already there) in {self.elapsed_s:.1f} s: {counts}.\n"
            f"Read them with: {' '.join(self.data_flags())}"
        )

    def data_flags(self) -> list[str]:
        """Command-line flags that point a reader at these videos."""
        flags = ["--data.root", str(self.root), "--data.format", self.layout]
        if self.list_file is not None:
            flags += ["--data.list_file", str(self.list_file)]
        return flags


def parse_size(text: str) -> tuple[int, int]:
    """'96' -> (96, 96); '320x240' -> (320, 240) as (width, height)."""
    parts = str(text).strip().lower().split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise BadInput(f"--size must be PIXELS or WIDTHxHEIGHT (e.g. 96 or 320x240), got {text!r}.")
    values = [int(p) for p in parts]
    return _check_size((values[0], values[-1]))


def _is_whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_whole(flag: str, value: object, minimum: int) -> int:
    if not _is_whole(value) or value < minimum:  # type: ignore[operator]
        raise BadInput(f"{flag} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)  # type: ignore[call-overload]


def _render_and_write(out_dir: Path, job: _Job, fps: int) -> str:
    path = out_dir / job.relpath
    write_video(path, render_spec(job.spec), fps)
    return job.relpath


def _claim_out_dir(out_dir: Path, manifest: dict[str, object]) -> None:
    """Refuse to mix two generations in one folder, or to write into a folder synth did not make."""
    record = out_dir / MANIFEST
    if record.exists():
        try:
            previous = json.loads(record.read_text())
        except (OSError, ValueError) as err:
            raise BadInput(
                f"{record} is not a readable synth record ({err}); delete it or choose another OUT_DIR."
            ) from err
        if previous != manifest:
            changed = sorted(
                k for k in manifest.keys() | previous.keys() if previous.get(k) != manifest.get(k)
            )
            raise BadInput(
                f"{out_dir} holds videos synthesized with other settings ({', '.join(changed)} differ; "
                f"before: { {k: previous.get(k) for k in changed} }); use an empty OUT_DIR or the same "
                "arguments."
            )
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"OUT_DIR {out_dir} is a file; give a folder to write the videos into.")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInput(f"{out_dir} is not empty and was not made by synth; choose an empty or new OUT_DIR.")
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(record, [json.dumps(manifest, indent=2)])


def synthesize(
    out_dir: Path,
    *,
    layout: str = "folder",
    videos_per_class: int = 50,
    size: tuple[int, int] | str = (96, 96),
    frames: int = 32,
    fps: int = 25,
    seed: int = 0,
    variety: float = 1.0,
    workers: int | None = None,
    progress: bool = True,
) -> SynthSummary:
    """Write `videos_per_class` stick-figure videos of each class in `layout`; files already there are kept.

    `size` is (width, height) or text for `parse_size`. `variety` 1 draws the full visual variety (small,
    off-centre, thin figures, textured backgrounds, camera shake); 0 moves every video to a large, centred,
    thick figure on a flat background with a still camera (`ease_figure_spec`); the motions are the same.
    `workers` processes render and encode (default: one
    per CPU; 0 or 1 = in this process); the output does not depend on it.
    """
    started = time.perf_counter()
    if layout not in LAYOUTS:
        raise BadInput(f"--layout {layout!r} is not a layout; choose one of {', '.join(LAYOUTS)}.")
    _check_whole("--videos_per_class", videos_per_class, 1)
    if layout == "ucf101" and videos_per_class > 99 * 99:
        raise BadInput(
            f"--videos_per_class {videos_per_class} is too many for --layout ucf101: its names allow 99 "
            "groups of 99 clips (9801) per class."
        )
    _check_whole("--frames", frames, 2)
    _check_whole("--fps", fps, 1)
    if not _is_whole(seed):
        raise BadInput(f"--seed must be a whole number, got {seed!r}.")
    size = parse_size(size) if isinstance(size, str) else _check_size(size)
    if workers is not None:
        _check_whole("--workers", workers, 0)
    if not (isinstance(variety, int | float) and 0.0 <= variety <= 1.0):
        raise BadInput(f"--variety must be a number from 0 to 1, got {variety!r}.")
    out_dir = Path(out_dir)
    manifest = {
        "generator": GENERATOR_VERSION,
        "layout": layout,
        "videos_per_class": videos_per_class,
        "size": list(size),
        "frames": frames,
        "fps": fps,
        "seed": seed,
    }
    if variety < 1.0:  # recorded only when used, so folders written before the option still match
        manifest["variety"] = variety
    _claim_out_dir(out_dir, manifest)
    jobs = _plan(layout, seed, videos_per_class, size, frames, variety)
    todo = [job for job in jobs if not (out_dir / job.relpath).exists()]
    for folder in {(out_dir / job.relpath).parent for job in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    _run_jobs(out_dir, todo, fps, workers, progress)

    list_file = None
    if layout == "list":
        list_file = out_dir / "list.txt"
        _write_text(list_file, [f"{job.relpath} {job.class_name}" for job in jobs])
    elif layout == "ucf101":
        _ucf_split_files(out_dir, jobs)
    per_class = {cls: sum(job.class_name == cls for job in jobs) for cls in CLASSES}
    return SynthSummary(
        out_dir=out_dir,
        layout=layout,
        root=out_dir,
        num_files=len(jobs),
        written=len(todo),
        skipped=len(jobs) - len(todo),
        per_class=per_class,
        elapsed_s=time.perf_counter() - started,
        list_file=list_file,
    )


def _run_jobs(out_dir: Path, jobs: list[_Job], fps: int, workers: int | None, progress: bool) -> None:
    count = min(len(jobs), usable_cpus() if workers is None else workers)
    bar = tqdm(total=len(jobs), unit="video", desc="synth", disable=None if progress else True)
    try:
        if count <= 1:
            for job in jobs:
                _render_and_write(out_dir, job, fps)
                bar.update()
            return
        with ProcessPoolExecutor(max_workers=count) as pool:
            for _ in pool.map(_render_and_write, [out_dir] * len(jobs), jobs, [fps] * len(jobs), chunksize=1):
                bar.update()
    finally:
        bar.close()
