"""Long recordings for detection: actions a body can do in turn, idle stretches between them that nobody moves in,
and a ground truth that holds every action and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS
from vjepa_tune.synth.motions import POSE_FIELDS, pose_values
from vjepa_tune.synth.recordings import (
    LABEL_IDS,
    draw_classes,
    plan_recording,
    recording_annotation,
    recording_subset,
    render_recording,
)
from vjepa_tune.synth.render import clip_poses

SETTINGS = {"actions": 10, "frames_per_action": 32, "idle_s": [0.5, 3.0], "fps": 25, "size": (48, 48)}


def test_the_next_action_is_one_the_body_can_do() -> None:
    classes = draw_classes(keyed_random(3), 400)
    for before, after in zip(classes, classes[1:], strict=False):
        assert (after == "standing_up") == (before == "sitting_down"), (before, after)
    counts = {name: classes.count(name) for name in CLASS_MOTIONS}
    assert min(counts.values()) > 0.2 * len(classes), f"the four classes come about equally often: {counts}"


def test_nobody_moves_outside_the_annotated_actions_but_for_the_idle_sway_and_the_easing_between_actions() -> None:
    plan = plan_recording(0, 1, **SETTINGS, variety=0.0)
    poses = clip_poses(plan.spec)
    moving = set()
    for span, segment in zip(plan.spans, plan.spec.segments, strict=True):
        moving.update(range(span.action_start, span.action_stop))
        moving.update(range(span.start, span.start + segment.blend_in))
    still = [i for i in range(1, len(poses)) if i not in moving and i - 1 not in moving]
    assert len(still) > 0.6 * len(poses), "most of a recording is idle"
    torso = POSE_FIELDS.index("torso")

    def limbs(i: int) -> list[float]:
        return [x for k, x in enumerate(pose_values(poses[i])) if k != torso]

    assert all(limbs(i - 1) == limbs(i) for i in still)
    for span in plan.spans:
        assert any(limbs(i) != limbs(i + 1) for i in range(span.action_start, span.action_stop - 1)), span


def test_the_ground_truth_is_every_action_in_seconds_with_its_class() -> None:
    plan = plan_recording(0, 2, **SETTINGS, variety=0.0)
    entry = recording_annotation(plan, "test")
    assert entry.duration_s == pytest.approx(plan.num_frames / 25) and entry.fps == 25.0
    assert [s.label for s in entry.segments] == [span.name for span in plan.spans]
    assert all(s.label_id == LABEL_IDS[s.label] for s in entry.segments)
    for segment, span in zip(entry.segments, plan.spans, strict=True):
        assert (segment.start_s, segment.end_s) == (span.action_start / 25, span.action_stop / 25)
        assert segment.extra["motion"] in CLASS_MOTIONS[segment.label]
    gaps = [b.start_s - a.end_s for a, b in zip(entry.segments, entry.segments[1:], strict=False)]
    assert min(gaps) >= 0.5, "an idle stretch of at least --idle's shortest lies between two actions"


def test_a_recording_depends_only_on_its_seed_and_index_and_keeps_one_scene() -> None:
    a = render_recording(plan_recording(4, 0, **SETTINGS, variety=0.0))
    assert np.array_equal(a.frames, render_recording(plan_recording(4, 0, **SETTINGS, variety=0.0)).frames)
    other = plan_recording(4, 1, **SETTINGS, variety=0.0)
    assert other.spans != plan_recording(4, 0, **SETTINGS, variety=0.0).spans
    plan = plan_recording(4, 0, **SETTINGS, variety=0.0)
    chairs = [s for s in plan.spec.segments if s.motion.chair]
    assert all(s.params == chairs[0].params for s in chairs), "one chair: every sit and stand share it"
    assert [recording_subset(i, 6) for i in range(6)] == ["validation"] * 4 + ["test"] * 2
    assert recording_subset(0, 1) == "test"
    with pytest.raises(BadInput, match="--idle"):
        plan_recording(0, 0, **{**SETTINGS, "idle_s": [2.0, 1.0]})
    with pytest.raises(BadInput, match="--actions"):
        plan_recording(0, 0, **{**SETTINGS, "actions": 0})
