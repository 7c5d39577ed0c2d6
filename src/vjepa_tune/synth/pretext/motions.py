"""The stick-figure motions of the pretext task, in their own table: kicking, punching, throwing, pointing,
turning sideways, putting hands on hips, jumping jacks and arm circles, none of them a demo action.

Angles follow `synth.motions`: 0 hangs straight down, positive swings toward the way the figure faces (+x).
"""

from __future__ import annotations

import math

from vjepa_tune.synth.motions import (
    Chance,
    Motion,
    OneOf,
    ParamRanges,
    Params,
    Pose,
    Uniform,
    motion_table,
    smoothstep,
)


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


_KICK: ParamRanges = {
    "kicks": OneOf((1, 1, 2)),
    "height": Uniform(1.1, 1.7),
    "chamber": Uniform(1.2, 1.9),
    "lean": Uniform(0.1, 0.3),
    "guard": Uniform(0.2, 0.8),
    "width": Uniform(0.12, 0.45),
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


_PUNCH: ParamRanges = {
    "punches": OneOf((1, 2, 3)),
    "guard_arm": Uniform(0.3, 0.7),
    "guard_elbow": Uniform(1.7, 2.3),
    "reach": Uniform(1.35, 1.7),
    "stance": Uniform(0.15, 0.35),
    "width": Uniform(0.12, 0.45),
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


_THROW: ParamRanges = {
    "cock": Uniform(2.0, 2.6),
    "release": Uniform(1.4, 2.0),
    "lean": Uniform(0.2, 0.45),
    "step": Uniform(0.25, 0.45),
    "width": Uniform(0.12, 0.45),
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


_POINT: ParamRanges = {
    "angle": Uniform(1.25, 1.85),
    "elbow": Uniform(-0.15, 0.15),
    "lean": Uniform(-0.05, 0.1),
    "width": Uniform(0.15, 1.0),
}


def _point(t: float, p: Params) -> Pose:
    """Raise one straight arm to point at something, and keep pointing."""
    s = smoothstep(t)
    return Pose(
        arm_r=0.08 + s * (p["angle"] - 0.08), elbow_r=s * p["elbow"], torso=s * p["lean"], width=p["width"]
    )


_TURN: ParamRanges = {
    "front": Uniform(0.85, 1.0),
    "side": Uniform(0.08, 0.25),
    "swing": Uniform(0.4, 0.7),
    "step": Uniform(0.5, 0.8),
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


_HANDS_ON_HIPS: ParamRanges = {
    "arm": Uniform(0.6, 0.95),
    "elbow": Uniform(1.8, 2.3),
    "stance": Uniform(0.0, 0.15),
    "width": Uniform(0.7, 1.0),
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


_JUMPING_JACKS: ParamRanges = {
    "cycles": Uniform(1.5, 3.5),
    "arms": Uniform(2.5, 3.0),
    "legs": Uniform(0.25, 0.4),
    "hop": Uniform(0.02, 0.06),
    "width": Uniform(0.75, 1.0),
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


_ARM_CIRCLES: ParamRanges = {
    "circles": OneOf((1, 2, 3)),
    "direction": OneOf((-1.0, 1.0)),
    "both": Chance(0.5),
    "width": Uniform(0.5, 1.0),
}


def _arm_circles(t: float, p: Params) -> Pose:
    """Swing a straight arm (or both, mirrored) round in full circles, either way round."""
    arm = 0.08 + p["direction"] * 2 * math.pi * p["circles"] * smoothstep(t)
    return Pose(arm_r=arm, arm_l=-arm if p["both"] else -0.08, width=p["width"])


FIGURE_MOTIONS = motion_table(
    Motion("kick", _kick, _KICK, "kick one leg forward fast and lower it slowly"),
    Motion("punch", _punch, _PUNCH, "raise the guard, then punch forward fast and pull back slowly"),
    Motion("throw", _throw, _THROW, "wind one arm up behind the head and throw overhand"),
    Motion("point", _point, _POINT, "raise one straight arm to point, and keep pointing"),
    Motion("turn_sideways", _turn_sideways, _TURN, "turn from facing the camera to profile"),
    Motion("hands_on_hips", _hands_on_hips, _HANDS_ON_HIPS, "put both hands on the hips"),
    Motion("jumping_jacks", _jumping_jacks, _JUMPING_JACKS, "jumping jacks: arms up and legs apart"),
    Motion("arm_circles", _arm_circles, _ARM_CIRCLES, "swing straight arms round in full circles"),
)
"""The stick-figure motions of the pretext task, by name (read-only; apart from `synth.actions.MOTIONS`)."""

PRETEXT_MOTIONS: tuple[str, ...] = tuple(FIGURE_MOTIONS)
"""Their names, in label order."""
