"""The motions of the guide's four classes (sitting_down, standing_up, waving, other) and the table that names them.

`standing_up` is `sitting_down` played backwards over the same parameter distribution: a model blind to frame
order sees the same poses in both classes and cannot tell them apart, as with the real NTU A008/A009 pair. The
`other` class draws from NTU-like distractors. Angles follow `synth.motions`.
"""

from __future__ import annotations

import dataclasses
import math

from vjepa_tune.errors import BadInput
from vjepa_tune.synth.motions import (
    Chance,
    Motion,
    OneOf,
    ParamRanges,
    Params,
    Pose,
    Uniform,
    envelope,
    front_pose,
    hump,
    motion_table,
    smoothstep,
)

# --- the four classes' motions ------------------------------------------------------------------------------


_SITTING: ParamRanges = {
    "depth": Uniform(1.35, 1.62),
    "knee_travel": Uniform(0.08, 0.3),
    "lean": Uniform(0.3, 0.75),
    "rest_lean": Uniform(-0.12, 0.15),
    "reach": Uniform(0.1, 0.9),
    "rest_arm": Uniform(0.1, 0.5),
    "rest_elbow": Uniform(0.4, 1.3),
    "stagger": Uniform(0.0, 0.1),
    "width": Uniform(0.12, 0.45),
}


def _sit_down(t: float, p: Params) -> Pose:
    s = smoothstep(t)
    mid = math.sin(math.pi * s)
    thigh = p["depth"] * s
    knee = thigh - p["knee_travel"] * mid
    torso = p["lean"] * mid + p["rest_lean"] * s
    arm = p["reach"] * mid + p["rest_arm"] * s
    elbow = p["rest_elbow"] * s
    return Pose(
        torso=torso,
        head=-0.4 * torso,
        arm_r=arm,
        elbow_r=elbow,
        arm_l=arm - 0.1,
        elbow_l=elbow * 0.9,
        thigh_r=thigh,
        knee_r=knee,
        thigh_l=thigh - p["stagger"],
        knee_l=knee - p["stagger"],
        width=p["width"],
    )


def _stand_up(t: float, p: Params) -> Pose:
    return _sit_down(1.0 - t, p)


_WAVING: ParamRanges = {
    "raise": Uniform(1.9, 2.7),
    "forearm": Uniform(2.7, 3.3),
    "amplitude": Uniform(0.3, 0.6),
    "cycles": Uniform(2.0, 5.0),
    "both": Chance(0.25),
    "width": Uniform(0.7, 1.0),
}


def _wave(t: float, p: Params) -> Pose:
    up = envelope(t, 0.2)
    shaking = smoothstep((t - 0.12) / 0.12) * smoothstep((0.88 - t) / 0.12)
    forearm = up * p["forearm"] + shaking * p["amplitude"] * math.sin(2 * math.pi * p["cycles"] * t)
    arm = up * p["raise"]
    pose = Pose(arm_r=arm, elbow_r=forearm - arm, torso=-0.04 * up, width=p["width"])
    if p["both"]:
        pose = dataclasses.replace(pose, arm_l=-arm, elbow_l=-(forearm - arm))
    return pose


# --- the `other` class: NTU-like distractors ----------------------------------------------------------------


_WALKING: ParamRanges = {
    "cycles": Uniform(2.0, 4.0),
    "knee_lift": Uniform(0.7, 1.3),
    "arm_swing": Uniform(0.3, 0.8),
    "elbow": Uniform(0.3, 1.5),
    "width": Uniform(0.15, 0.6),
}


def _walk_in_place(t: float, p: Params) -> Pose:
    on = envelope(t, 0.12)
    angle = 2 * math.pi * p["cycles"] * t
    right = on * p["knee_lift"] * max(0.0, math.sin(angle))
    left = on * p["knee_lift"] * max(0.0, -math.sin(angle))
    swing = on * p["arm_swing"] * math.sin(angle)
    return Pose(
        torso=0.08 * on,
        arm_r=-swing,
        elbow_r=on * p["elbow"],
        arm_l=swing,
        elbow_l=on * p["elbow"],
        thigh_r=right,
        knee_r=1.5 * right,
        thigh_l=left,
        knee_l=1.5 * left,
        lift=0.015 * on * abs(math.sin(angle)),
        width=p["width"],
    )


_JUMPING: ParamRanges = {
    "jumps": OneOf((1, 1, 2)),
    "height": Uniform(0.08, 0.2),
    "crouch": Uniform(0.6, 1.0),
    "arms_up": Uniform(0.5, 2.6),
    "width": Uniform(0.6, 1.0),
}


def _jump(t: float, p: Params) -> Pose:
    jumps = int(p["jumps"])
    u = min(t * jumps, jumps - 1e-9) % 1.0
    crouch = p["crouch"] * max(hump(u, 0.18, 0.18), hump(u, 0.82, 0.16))
    flight = math.sin(math.pi * (u - 0.34) / 0.36) if 0.34 < u < 0.7 else 0.0
    arm = -0.25 * crouch + p["arms_up"] * flight
    return front_pose(
        arm + 0.08,
        elbow=0.2 * flight,
        thigh_r=0.4 * crouch,
        knee_r=1.0 * crouch,
        thigh_l=-0.4 * crouch,
        knee_l=-1.0 * crouch,
        lift=p["height"] * flight,
        width=p["width"],
    )


_RAISING: ParamRanges = {
    "height": Uniform(2.5, 3.05),
    "bend": Uniform(0.0, 0.5),
    "width": Uniform(0.7, 1.0),
}


def _raise_both_arms(t: float, p: Params) -> Pose:
    up = envelope(t, 0.32)
    return front_pose(0.08 + up * p["height"], elbow=up * p["bend"], width=p["width"])


_SQUATTING: ParamRanges = {
    "reps": OneOf((1, 1, 2)),
    "depth": Uniform(1.3, 1.9),
    "shin": Uniform(0.3, 0.7),
    "lean": Uniform(0.3, 0.7),
    "arms": Uniform(0.0, 1.6),
    "width": Uniform(0.12, 0.5),
}


def _squat(t: float, p: Params) -> Pose:
    reps = int(p["reps"])
    u = min(t * reps, reps - 1e-9) % 1.0
    down = envelope(u, 0.35)
    thigh = p["depth"] * down
    knee = thigh - p["shin"] * down
    arm = p["arms"] * down
    return Pose(
        torso=p["lean"] * down,
        head=-0.5 * p["lean"] * down,
        arm_r=arm,
        arm_l=arm - 0.1,
        thigh_r=thigh,
        knee_r=knee,
        thigh_l=thigh - 0.05,
        knee_l=knee - 0.05,
        width=p["width"],
    )


_CLAPPING: ParamRanges = {
    "cycles": Uniform(3.0, 6.0),
    "elbows": Uniform(0.4, 0.6),
    "gap": Uniform(0.3, 0.5),
    "width": Uniform(0.75, 1.0),
}


def _clap(t: float, p: Params) -> Pose:
    """Elbows out, forearms level: the hands meet in front of the chest and swing apart."""
    on = envelope(t, 0.15)
    opening = 0.5 - 0.5 * math.cos(2 * math.pi * p["cycles"] * t)
    arm = 0.08 + on * (p["elbows"] - 0.08 + p["gap"] * opening)
    forearm = -on * (math.pi / 2 + 0.15 - 0.6 * opening)
    return front_pose(arm, elbow=forearm - arm, width=p["width"])


_IDLE: ParamRanges = {
    "nods": Uniform(1.0, 3.0),
    "nod": Uniform(0.2, 0.45),
    "shift": Uniform(0.0, 0.08),
    "width": Uniform(0.2, 1.0),
}


def _stand_idle(t: float, p: Params) -> Pose:
    on = envelope(t, 0.1)
    nod = on * p["nod"] * math.sin(math.pi * p["nods"] * t) ** 2
    shift = p["shift"] * math.sin(2 * math.pi * t)
    return Pose(head=nod, torso=0.3 * shift, thigh_r=shift, thigh_l=shift, width=p["width"])


MOTIONS = motion_table(
    Motion("sit_down", _sit_down, _SITTING, "stand in front of a chair and sit down on it", chair=True),
    Motion("stand_up", _stand_up, _SITTING, "sit_down played backwards", chair=True, seated_phase=0.0),
    Motion("wave", _wave, _WAVING, "raise one or both hands and wave them side to side"),
    Motion("walk_in_place", _walk_in_place, _WALKING, "lift the knees in turn, arms swinging"),
    Motion("jump", _jump, _JUMPING, "crouch and jump up once or twice"),
    Motion("raise_both_arms", _raise_both_arms, _RAISING, "raise both arms overhead, hold, lower"),
    Motion("squat", _squat, _SQUATTING, "squat down and come back up, once or twice"),
    Motion("clap", _clap, _CLAPPING, "clap the hands in front of the chest"),
    Motion("stand_idle", _stand_idle, _IDLE, "stand, shift weight and nod"),
)
"""The motions of the guide's classes, by name (read-only)."""

CLASS_MOTIONS: dict[str, list[str]] = {
    "sitting_down": ["sit_down"],
    "standing_up": ["stand_up"],
    "waving": ["wave"],
    "other": ["walk_in_place", "jump", "raise_both_arms", "squat", "clap", "stand_idle"],
}
"""The guide's four classes and the motions each draws from (one per video, uniformly)."""

CLASSES: list[str] = list(CLASS_MOTIONS)


def motion_named(motion: str | Motion) -> Motion:
    """`motion` itself, or the motion of `MOTIONS` it names; an unknown name is refused."""
    if isinstance(motion, Motion):
        return motion
    if motion not in MOTIONS:
        raise BadInput(f"unknown motion {motion!r}; known motions: {', '.join(sorted(MOTIONS))}.")
    return MOTIONS[motion]
