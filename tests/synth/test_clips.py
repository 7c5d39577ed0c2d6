"""Clips in memory: a pure function of the seed; long sequences of actions by one performer with their spans;
separate clips joined back to back."""

from __future__ import annotations

import random

import numpy as np
import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.synth import render_clip, render_joined_clips, render_sequence
from vjepa_tune.synth.actions import CLASS_MOTIONS


def test_render_clip_is_a_pure_function_of_its_seed() -> None:
    a = render_clip("jump", 11, 5, (48, 32))
    assert a.shape == (5, 32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_clip("jump", 11, 5, (48, 32)))
    assert np.array_equal(
        render_clip("jump", random.Random(7), 5, (48, 32)), render_clip("jump", random.Random(7), 5, (48, 32))
    )
    assert not np.array_equal(a, render_clip("jump", 12, 5, (48, 32)))


def test_render_sequence_joins_segments_and_reports_their_spans() -> None:
    seq = render_sequence([("sitting_down", 12), ("standing_up", 10), ("wave", 8)], 4, (48, 48))
    assert seq.frames.shape == (30, 48, 48, 3)
    assert [(s.name, s.start, s.stop) for s in seq.spans] == [
        ("sitting_down", 0, 12),
        ("standing_up", 12, 22),
        ("wave", 22, 30),
    ]
    assert [s.motion for s in seq.spans] == ["sit_down", "stand_up", "wave"]
    for span in seq.spans:
        assert span.start <= span.action_start < span.action_stop <= span.stop
    assert seq.spans[1].action_start > seq.spans[1].start, "the blend from the last pose precedes the action"
    assert seq.frame_labels()[11:13] == ["sitting_down", "standing_up"]
    with pytest.raises(BadInput, match="no_such_motion"):
        render_sequence([("no_such_motion", 4)], 0, (32, 32))


def test_joined_clips_are_separate_scenes_back_to_back() -> None:
    joined = render_joined_clips(["waving", "other", "waving"], 10, seed=3, size=(48, 48), variety=0.0)
    assert joined.frames.shape == (30, 48, 48, 3)
    assert [(s.name, s.start, s.stop) for s in joined.spans] == [("waving", 0, 10), ("other", 10, 20),
                                                                 ("waving", 20, 30)]
    assert joined.spans[0].motion == "wave" and joined.spans[1].motion in CLASS_MOTIONS["other"]
    assert joined.frame_labels() == ["waving"] * 10 + ["other"] * 10 + ["waving"] * 10
    first, third = joined.frames[:10], joined.frames[20:]
    assert not np.array_equal(first, third), "two clips of one class are two draws"
    again = render_joined_clips(["waving", "other", "waving"], 10, seed=3, size=(48, 48), variety=0.0)
    assert np.array_equal(again.frames, joined.frames)
    with pytest.raises(BadInput, match="jumping"):
        render_joined_clips(["jumping"], 10, seed=0)
    with pytest.raises(BadInput, match="variety"):
        render_joined_clips(["waving"], 10, seed=0, variety=-3)
