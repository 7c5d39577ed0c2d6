"""What a pretext clip shows besides its class: where a figure's head, hip, hands and feet (or a shape's centre)
are in every frame, which the renderer knows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vjepa_tune.synth.render import clip_poses, skeleton, viewed
from vjepa_tune.synth.specs import STANDING_HEIGHT, ClipSpec

FIGURE_PARTS: tuple[str, ...] = ("head", "hip", "hand_r", "hand_l", "foot_r", "foot_l")
PARTS: tuple[str, ...] = (*FIGURE_PARTS, "shape")
"""The parts the part targets locate: a figure's head, hip, hands and feet, and a shape's centre."""

IGNORE = -100
"""Target of a part that is absent or out of the frame (cross-entropy's default ignore index)."""


@dataclass(frozen=True)
class PretextClip:
    """A rendered pretext clip and where its parts are in every frame."""

    frames: np.ndarray
    """(T, H, W, 3) uint8."""
    tracks: np.ndarray
    """(T, len(PARTS), 2) float32 pixel (x, y) of each part per frame; NaN where the clip has no such part."""


def figure_tracks(spec: ClipSpec) -> np.ndarray:
    """Pixel (x, y) of the figure's parts in every frame, (T, len(PARTS), 2), NaN for the shape slot.

    The same placement as `render.render_spec` (feet on the floor line at the camera's centre, one figure
    height = figure_height / STANDING_HEIGHT of the frame), without the camera shake's pixel or two.
    """
    width, height = spec.size
    cam = spec.camera
    figure_px = cam.figure_height * height / STANDING_HEIGHT
    origin = np.array([cam.center_x * width, cam.floor_y * height])
    flip = np.array([-figure_px if cam.mirror else figure_px, -figure_px])
    tracks = np.full((spec.num_frames, len(PARTS), 2), np.nan, dtype=np.float32)
    for i, pose in enumerate(clip_poses(spec)):
        joints = skeleton(viewed(pose, cam), spec.look)
        for k, part in enumerate(FIGURE_PARTS):
            tracks[i, k] = origin + joints[part] * flip
    return tracks

