"""The pretext classes: disjoint from the demo's actions, truly reversed, only where time has a direction; every
class renders and moves; the easy end of the curriculum; bad labels refused."""

import random

import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS, MOTIONS
from vjepa_tune.synth.pretext import (
    FIGURE_MOTIONS,
    PARTS,
    PRETEXT_CLASSES,
    PRETEXT_ID2LABEL,
    PRETEXT_MOTIONS,
    SHAPE_MOTIONS,
    render_pretext_clip,
)
from vjepa_tune.synth.specs import draw_clip_spec, ease_figure_spec

DEMO_MOTIONS = {motion for motions in CLASS_MOTIONS.values() for motion in motions}
LABEL = {c.name: i for i, c in enumerate(PRETEXT_CLASSES)}


def test_pretext_motions_and_the_demo_classes_motions_are_disjoint():
    assert set(PRETEXT_MOTIONS).isdisjoint(DEMO_MOTIONS)
    assert set(SHAPE_MOTIONS).isdisjoint(DEMO_MOTIONS)
    names = {c.name for c in PRETEXT_CLASSES}
    assert names.isdisjoint(DEMO_MOTIONS | set(CLASS_MOTIONS))
    assert {c.source for c in PRETEXT_CLASSES} == set(PRETEXT_MOTIONS) | set(SHAPE_MOTIONS)
    assert tuple(FIGURE_MOTIONS) == PRETEXT_MOTIONS and not set(FIGURE_MOTIONS) & set(MOTIONS)  # a table apart


@pytest.mark.parametrize("name", ["kick", "turn_sideways", "shape_fall", "shape_spin"])
def test_a_reversed_class_is_its_forward_clip_played_backwards(name):
    forward = render_pretext_clip(LABEL[name], keyed_random(5), num_frames=8, size=32)
    backward = render_pretext_clip(LABEL[f"{name}_reversed"], keyed_random(5), num_frames=8, size=32)
    np.testing.assert_array_equal(backward.frames, forward.frames[::-1])
    np.testing.assert_array_equal(backward.tracks, forward.tracks[::-1])
    assert not np.array_equal(forward.frames, forward.frames[::-1])  # the motion has a direction in time


def test_only_time_asymmetric_motions_get_a_reversed_class():
    reversed_sources = {c.source for c in PRETEXT_CLASSES if c.reversed}
    assert {"jumping_jacks", "arm_circles", "shape_slide", "shape_still"}.isdisjoint(reversed_sources)
    assert {"kick", "punch", "throw", "point", "shape_fall", "shape_bounce", "shape_grow"} <= reversed_sources
    assert PRETEXT_ID2LABEL == {i: c.name for i, c in enumerate(PRETEXT_CLASSES)}


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_every_class_renders_and_moves_except_the_still_shape(difficulty):
    for label, cls in enumerate(PRETEXT_CLASSES):
        clip = render_pretext_clip(
            label, keyed_random(1, label), num_frames=16, size=32, difficulty=difficulty
        )
        assert clip.frames.shape == (16, 32, 32, 3) and clip.frames.dtype == np.uint8
        assert clip.tracks.shape == (16, len(PARTS), 2)
        change = np.abs(clip.frames[1:].astype(int) - clip.frames[:-1].astype(int)).max(axis=(1, 2, 3))
        if cls.source == "shape_still":
            assert change.max() == 0, cls.name
        else:
            assert change.max() > 40, cls.name


def test_easy_end_of_the_curriculum_centres_and_enlarges_the_figure():
    spec = draw_clip_spec(FIGURE_MOTIONS["kick"], keyed_random(2), 8, (64, 64))
    easy = ease_figure_spec(spec, 1.0, random.Random(0))
    assert easy.camera.figure_height == pytest.approx(0.8) and easy.camera.center_x == pytest.approx(0.5)
    assert easy.camera.shake == 0 and easy.backdrop.kind == "flat" and easy.look.line > spec.look.line
    assert ease_figure_spec(spec, 0.0, random.Random(0)) == spec


def test_bad_label_or_difficulty_is_bad_input():
    with pytest.raises(BadInput, match="pretext label"):
        render_pretext_clip(len(PRETEXT_CLASSES), keyed_random(0))
    with pytest.raises(BadInput, match="difficulty"):
        render_pretext_clip(0, keyed_random(0), difficulty=1.5)
