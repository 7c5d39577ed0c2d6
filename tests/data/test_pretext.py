"""The pretext task of the bundled tiny model: disjoint from the demo's actions, truly reversed,
deterministic."""

import itertools
import random

import numpy as np
import pytest
import torch

from vjepa_tune.data import pretext
from vjepa_tune.data.motions import CLASS_MOTIONS, MOTIONS
from vjepa_tune.data.pretext import (
    PRETEXT_CLASSES,
    PRETEXT_ID2LABEL,
    PRETEXT_MOTIONS,
    SHAPE_MOTIONS,
    PretextBatches,
    ease_figure_spec,
    pretext_example,
    render_pretext_clip,
)
from vjepa_tune.data.synthetic import Look, draw_clip_spec, skeleton
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random

DEMO_MOTIONS = {motion for motions in CLASS_MOTIONS.values() for motion in motions}
LABEL = {c.name: i for i, c in enumerate(PRETEXT_CLASSES)}


def test_pretext_motions_and_the_demo_classes_motions_are_disjoint():
    assert set(PRETEXT_MOTIONS).isdisjoint(DEMO_MOTIONS)
    assert set(SHAPE_MOTIONS).isdisjoint(DEMO_MOTIONS)
    names = {c.name for c in PRETEXT_CLASSES}
    assert names.isdisjoint(DEMO_MOTIONS | set(CLASS_MOTIONS))
    assert {c.source for c in PRETEXT_CLASSES} == set(PRETEXT_MOTIONS) | set(SHAPE_MOTIONS)
    assert all(name in MOTIONS for name in PRETEXT_MOTIONS)  # registered in the motion library


def _trajectory(motion: str, params: dict, phases: list[float]) -> np.ndarray:
    look = Look(0.30, 0.035, 0.062, 0.15, 0.14, 0.24, 0.23, 0.095, 0.06, 0.05, 0.0, 0.0, True)
    return np.array(
        [np.stack(list(skeleton(MOTIONS[motion].pose(t, params), look).values())) for t in phases]
    )


def test_no_pretext_motion_replays_a_demo_motion_forwards_or_backwards():
    """Under another name a motion could still be a demo action: compare where the joints go, phase by
    phase."""
    phases = [i / 12 for i in range(13)]
    paths = {
        motion: [_trajectory(motion, MOTIONS[motion].draw_params(random.Random(k)), phases) for k in range(6)]
        for motion in (*PRETEXT_MOTIONS, *sorted(DEMO_MOTIONS))
    }
    for pretext_motion, demo_motion in itertools.product(PRETEXT_MOTIONS, sorted(DEMO_MOTIONS)):
        theirs = paths[demo_motion] + [path[::-1] for path in paths[demo_motion]]
        closest = min(
            np.linalg.norm(a - b, axis=-1).max() for a, b in itertools.product(paths[pretext_motion], theirs)
        )
        # In figure heights: at least 8% of the body (4 px of a 50 px figure) apart somewhere in the motion.
        assert closest > 0.08, (pretext_motion, demo_motion, closest)


@pytest.mark.parametrize("name", ["kick", "turn_sideways", "shape_fall", "shape_spin"])
def test_a_reversed_class_is_its_forward_clip_played_backwards(name):
    forward = render_pretext_clip(LABEL[name], keyed_random(5), num_frames=8, size=32)
    backward = render_pretext_clip(LABEL[f"{name}_reversed"], keyed_random(5), num_frames=8, size=32)
    np.testing.assert_array_equal(backward, forward[::-1])
    assert not np.array_equal(forward, forward[::-1])  # the motion has a direction in time


def test_only_time_asymmetric_motions_get_a_reversed_class():
    reversed_sources = {c.source for c in PRETEXT_CLASSES if c.reversed}
    assert {"jumping_jacks", "arm_circles", "shape_slide", "shape_still"}.isdisjoint(reversed_sources)
    assert {"kick", "punch", "throw", "point", "shape_fall", "shape_bounce", "shape_grow"} <= reversed_sources
    assert PRETEXT_ID2LABEL == {i: c.name for i, c in enumerate(PRETEXT_CLASSES)}


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_every_class_renders_and_moves_except_the_still_shape(difficulty):
    for label, cls in enumerate(PRETEXT_CLASSES):
        frames = render_pretext_clip(
            label, keyed_random(1, label), num_frames=16, size=32, difficulty=difficulty
        )
        assert frames.shape == (16, 32, 32, 3) and frames.dtype == np.uint8
        change = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).max(axis=(1, 2, 3))
        if cls.source == "shape_still":
            assert change.max() == 0, cls.name
        else:
            assert change.max() > 40, cls.name


def test_examples_are_deterministic_for_a_seed_and_differ_across_seeds():
    clip, label = pretext_example(7, step=3, index=1, difficulty=0.5, num_frames=8, size=32)
    again, label_again = pretext_example(7, step=3, index=1, difficulty=0.5, num_frames=8, size=32)
    assert label == label_again and torch.equal(clip, again)
    other = [pretext_example(8, step=3, index=i, difficulty=0.5, num_frames=8, size=32) for i in range(2)]
    assert not any(torch.equal(clip, c) for c, _ in other)


def test_batches_are_normalised_clips_keyed_by_step():
    batches = PretextBatches(seed=0, steps=4, batch_size=3, ramp_steps=2, num_frames=8, size=32)
    clips, labels = batches[1]
    assert clips.shape == (3, 8, 3, 32, 32) and clips.dtype == torch.float32
    assert labels.shape == (3,) and int(labels.min()) >= 0 and int(labels.max()) < len(PRETEXT_CLASSES)
    assert clips.min() < -1.0 and clips.max() > 1.0  # ImageNet mean/std normalisation, not [0, 1]
    assert torch.equal(batches[1][0], clips)
    assert [batches.difficulty(s) for s in range(4)] == [0.0, 0.5, 1.0, 1.0]


def test_easy_end_of_the_curriculum_centres_and_enlarges_the_figure():
    spec = draw_clip_spec("kick", keyed_random(2), 8, (64, 64))
    easy = ease_figure_spec(spec, 1.0, random.Random(0))
    assert easy.camera.figure_height == pytest.approx(0.8) and easy.camera.center_x == pytest.approx(0.5)
    assert easy.camera.shake == 0 and easy.backdrop.kind == "flat" and easy.look.line > spec.look.line
    assert ease_figure_spec(spec, 0.0, random.Random(0)) == spec


def test_bad_label_or_difficulty_is_bad_input():
    with pytest.raises(BadInput, match="pretext label"):
        render_pretext_clip(len(PRETEXT_CLASSES), keyed_random(0))
    with pytest.raises(BadInput, match="difficulty"):
        render_pretext_clip(0, keyed_random(0), difficulty=1.5)
    with pytest.raises(BadInput, match="shape motion"):
        pretext.render_shape_clip("shape_wave", keyed_random(0), 8, 32)
