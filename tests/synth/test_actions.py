"""The guide's classes' motions: standing up is sitting down reversed pose for pose, and no motion belongs to
two classes."""

from __future__ import annotations

import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS, CLASSES, MOTIONS, motion_named
from vjepa_tune.synth.render import skeleton
from vjepa_tune.synth.specs import draw_look


@pytest.mark.parametrize("key", range(5))
def test_standing_up_is_sitting_down_reversed_pose_for_pose(key: int) -> None:
    sit, stand = MOTIONS["sit_down"], MOTIONS["stand_up"]
    params = sit.draw_params(keyed_random("pose-test", key))
    assert stand.draw_params(keyed_random("pose-test", key)) == params, "same parameter distribution"
    phases = [i / 32 for i in range(33)]
    sitting = sit.poses(params, phases)
    standing = stand.poses(params, phases)
    assert standing == sitting[::-1]
    look = draw_look(keyed_random("look", key))
    hips = [skeleton(p, look)["hip"][1] for p in sitting]
    assert hips[-1] < hips[0] - 0.15, "sitting down lowers the hips onto the chair"
    assert sit.chair and stand.chair and stand.seated_phase == 1 - sit.seated_phase


def test_class_motions_are_in_the_table_and_disjoint() -> None:
    assert list(CLASS_MOTIONS) == CLASSES == ["sitting_down", "standing_up", "waving", "other"]
    names = [m for motions in CLASS_MOTIONS.values() for m in motions]
    assert len(names) == len(set(names)), "no motion belongs to two classes"
    assert set(names) <= set(MOTIONS)
    assert len(CLASS_MOTIONS["other"]) >= 5


def test_a_motion_is_passed_or_named_and_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    assert motion_named("wave") is MOTIONS["wave"]
    assert motion_named(MOTIONS["clap"]) is MOTIONS["clap"]
    with pytest.raises(BadInput, match=r"unknown motion 'kick'; known motions: clap, jump, .*wave\."):
        motion_named("kick")  # a pretext motion is not one of the demo's
