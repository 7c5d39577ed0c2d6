"""Motions and their tables: read-only, each name once, nothing registered anywhere, so importing the generators
or the pretext task changes no table; a motion of one's own is rendered by passing it."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from vjepa_tune.synth import render_clip
from vjepa_tune.synth.motions import Chance, Motion, OneOf, Pose, Uniform, blend_poses, motion_table

LEAN = Motion("lean_sideways", lambda t, p: Pose(torso=p["lean"] * t), {"lean": OneOf((0.5,))}, "lean")


def test_a_motion_table_is_read_only_and_names_each_motion_once() -> None:
    table = motion_table(LEAN)
    assert dict(table) == {"lean_sideways": LEAN}
    with pytest.raises(TypeError):
        table["other"] = LEAN  # type: ignore[index]
    with pytest.raises(ValueError, match="lean_sideways"):
        motion_table(LEAN, LEAN)


def test_each_range_draws_what_its_random_call_draws_and_a_motion_draws_them_in_table_order() -> None:
    ours, theirs = random.Random(5), random.Random(5)
    assert Uniform(0.2, 0.9).draw(ours) == theirs.uniform(0.2, 0.9)
    assert OneOf((1, 1, 2)).draw(ours) == float(theirs.choice((1, 1, 2)))
    assert Chance(0.25).draw(ours) == float(theirs.random() < 0.25)
    motion = Motion("m", lambda t, p: Pose(), {"spread": Uniform(0.0, 1.0), "both": Chance(0.5)}, "m")
    params = motion.draw_params(ours)
    assert list(params) == ["spread", "both"]
    assert params == {"spread": theirs.uniform(0.0, 1.0), "both": float(theirs.random() < 0.5)}
    assert ours.getstate() == theirs.getstate(), "one draw per parameter, nothing more"
    assert all(type(v) is float for v in params.values())


def test_a_motion_of_ones_own_is_rendered_by_passing_it() -> None:
    frames = render_clip(LEAN, 0, 4, (32, 32))
    assert frames.shape == (4, 32, 32, 3)
    assert len({f.tobytes() for f in frames}) > 1, "the figure leans"
    assert LEAN.poses({"lean": 0.5}, [0.0, 1.0]) == [Pose(torso=0.0), Pose(torso=0.5)]


def test_blending_two_poses_moves_every_joint_the_same_fraction_of_the_way() -> None:
    a, b = Pose(torso=0.2, arm_r=1.0, lift=0.0), Pose(torso=0.6, arm_r=0.0, lift=0.1)
    assert blend_poses(a, b, 0.0) == a and blend_poses(a, b, 1.0) == b
    half = blend_poses(a, b, 0.5)
    assert half.torso == pytest.approx(0.4) and half.arm_r == pytest.approx(0.5) and half.lift == pytest.approx(0.05)


def test_importing_the_generators_and_the_pretext_task_changes_no_motion_table() -> None:
    """The pretext module used to register its motions in the demo's table on import; now nothing does."""
    code = (
        "import json\n"
        "from vjepa_tune.synth.actions import MOTIONS\n"
        "before = {n: m.description for n, m in MOTIONS.items()}\n"
        "import vjepa_tune.synth, vjepa_tune.synth.pretext\n"
        "from vjepa_tune.synth.pretext import FIGURE_MOTIONS\n"
        "after = {n: m.description for n, m in MOTIONS.items()}\n"
        "print(json.dumps([before, after, sorted(FIGURE_MOTIONS)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after, pretext = json.loads(result.stdout)
    assert after == before
    assert sorted(before) == ["clap", "jump", "raise_both_arms", "sit_down", "squat", "stand_idle", "stand_up",
                              "walk_in_place", "wave"]
    assert pretext and not set(pretext) & set(after)

