"""Motions of the synthetic stick figures: poses as functions of phase, and the tables that name them.

A motion maps a phase t in [0, 1] (0 = before the action, 1 = after it) and per-video parameters to a `Pose`
of joint angles; the renderer (`synth.render`) turns poses into pixels. Motions are plain data collected in
read-only tables (`motion_table`): the guide's four classes draw from `synth.actions.MOTIONS`, the pretext task
from its own `synth.pretext.motions.FIGURE_MOTIONS`, and a caller with a motion of its own passes the `Motion`
itself. Nothing registers anywhere, so importing a module changes no other module's table.

Angles are in radians in the image plane, for a figure facing +x (the renderer mirrors whole figures): a limb
angle of 0 hangs straight down and a positive angle swings the limb toward +x. Limbs named `_r` sit on the +x
side when the figure faces the camera, so front-view motions give left limbs negated angles to move them
outward.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

Params = Mapping[str, float]


@dataclass(frozen=True)
class Pose:
    """Joint angles of one frame; the default is standing straight, arms hanging."""

    torso: float = 0.0
    """Lean of the torso from upright; positive tips the neck toward +x."""
    head: float = 0.0
    """Tilt of the head relative to the torso (nodding)."""
    arm_r: float = 0.08
    """Upper arm angle from hanging down."""
    elbow_r: float = 0.0
    """Forearm angle relative to the upper arm."""
    reach_r: float = 1.0
    """Apparent length of the arm (below 1 when it points at the camera)."""
    arm_l: float = -0.08
    elbow_l: float = 0.0
    reach_l: float = 1.0
    thigh_r: float = 0.0
    """Thigh angle from hanging down (pi/2 = horizontal, as when seated)."""
    knee_r: float = 0.0
    """Knee bend: the shin's angle is thigh - knee."""
    thigh_l: float = 0.0
    knee_l: float = 0.0
    lift: float = 0.0
    """Height of the lowest foot above the floor, in figure heights (jumping)."""
    width: float = 1.0
    """Apparent shoulder and hip width: 1 facing the camera, near 0 in profile."""


POSE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Pose))


def pose_values(pose: Pose) -> tuple[float, ...]:
    return tuple(getattr(pose, name) for name in POSE_FIELDS)


def blend_poses(a: Pose, b: Pose, weight: float) -> Pose:
    """The pose `weight` of the way from a to b (for joining segments of a long video)."""
    return Pose(*(x + (y - x) * weight for x, y in zip(pose_values(a), pose_values(b), strict=True)))


@dataclass(frozen=True)
class Uniform:
    """A value drawn uniformly from [low, high] (`random.Random.uniform`)."""

    low: float
    high: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class OneOf:
    """One of `values`, each entry equally likely (`random.Random.choice`; repeat a value to weight it)."""

    values: tuple[float, ...]

    def draw(self, rng: random.Random) -> float:
        return float(rng.choice(self.values))


@dataclass(frozen=True)
class Chance:
    """1.0 with probability `probability`, else 0.0: a yes/no parameter."""

    probability: float

    def draw(self, rng: random.Random) -> float:
        return float(rng.random() < self.probability)


ParamRanges = Mapping[str, Uniform | OneOf | Chance]
"""How each parameter of a motion is drawn, in drawing order: the order is part of the output, since every draw
takes its numbers from the same generator."""


@dataclass(frozen=True)
class Motion:
    """A named movement: `pose(t, params)` for phase t in [0, 1], its parameters drawn per video from `ranges`."""

    name: str
    pose: Callable[[float, Params], Pose]
    ranges: ParamRanges
    description: str
    chair: bool = False
    """The figure sits on a chair during this motion; the renderer draws one under the seated pose."""
    seated_phase: float = 1.0
    """Phase at which the figure rests on the chair (where the chair goes)."""

    def draw_params(self, rng: random.Random) -> dict[str, float]:
        """One video's parameters: each drawn from its range, in the table's order, from `rng`."""
        return {name: draw.draw(rng) for name, draw in self.ranges.items()}

    def poses(self, params: Params, phases: Sequence[float]) -> list[Pose]:
        """The poses of this motion at each phase."""
        return [self.pose(t, params) for t in phases]


def motion_table(*motions: Motion) -> Mapping[str, Motion]:
    """A read-only table of motions by name; a name may appear once."""
    table: dict[str, Motion] = {}
    for motion in motions:
        if motion.name in table:
            raise ValueError(f"motion {motion.name!r} is in the table twice")
        table[motion.name] = motion
    return MappingProxyType(table)


# --- easing helpers -----------------------------------------------------------------------------------------


def smoothstep(x: float) -> float:
    """0 below 0, 1 above 1, an S-curve between: starts and stops without a jolt."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def envelope(t: float, ramp: float) -> float:
    """Rise over [0, ramp], hold, fall over [1 - ramp, 1]: a gesture made and then undone."""
    return smoothstep(t / ramp) * smoothstep((1.0 - t) / ramp)


def hump(u: float, center: float, half_width: float) -> float:
    """A smooth bump of height 1 at `center`, zero beyond `half_width` away."""
    return smoothstep(1.0 - abs(u - center) / half_width)


def front_pose(arm: float, elbow: float = 0.0, reach: float = 1.0, **rest: float) -> Pose:
    """A front-view pose whose arms mirror each other (the left arm's angles negated)."""
    return Pose(arm_r=arm, elbow_r=elbow, reach_r=reach, arm_l=-arm, elbow_l=-elbow, reach_l=reach, **rest)

