"""Rendering a clip spec: poses to joints to pixels, (T, H, W, 3) uint8 frames.

Frames up to 640 px are drawn at twice the size and box-filtered down, which anti-aliases the lines; the figure
stands on the floor line at the camera's centre, one figure height being `figure_height / STANDING_HEIGHT` of the
frame, and the camera shakes by whole pixels of the drawing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vjepa_tune.synth.motions import Pose, blend_poses
from vjepa_tune.synth.specs import RGB, STANDING_HEIGHT, Camera, ClipSpec, Look, Segment


def _segment_poses(segment: Segment, previous: Pose | None) -> list[Pose]:
    motion = segment.motion
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
    motion, params = spec.chair
    seated = motion.pose(motion.seated_phase, params)
    hip = skeleton(viewed(seated, spec.camera), spec.look)["hip"]
    seat_y = hip[1] - spec.look.line * 0.6
    back, front = hip[0] - 0.13, hip[0] + 0.13
    return {
        "seat": np.array([[back, seat_y], [front, seat_y]]),
        "back": np.array([[back, 0.0], [back, seat_y + 0.3]]),
        "front": np.array([[front, 0.0], [front, seat_y]]),
    }


def viewed(pose: Pose, camera: Camera) -> Pose:
    """The pose as the camera sees it: seen from another angle a figure looks wider or narrower."""
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
        _paint_figure(painter, skeleton(viewed(pose, cam), spec.look), spec, spec.look.head * figure_px)
        if scale > 1:
            canvas = canvas.resize((width, height), Image.Resampling.BOX)
        frames[i] = np.asarray(canvas)
    return frames

