"""Drawing a clip's spec: the action takes a random sub-span with idle equally likely before and after."""

from __future__ import annotations

import numpy as np

from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.specs import draw_class_spec


def test_actions_take_a_random_sub_span_with_idle_equally_likely_before_and_after() -> None:
    before, after, lengths = [], [], set()
    for key in range(300):
        segment = draw_class_spec("sitting_down", keyed_random("timing", key), 32, (32, 32)).segments[0]
        before.append(segment.action_start)
        after.append(32 - segment.action_start - segment.action_length)
        lengths.add(segment.action_length)
    assert min(before) == min(after) == 0 and min(before + after) >= 0
    assert max(before) >= 8 and max(after) >= 8
    assert abs(np.mean(before) - np.mean(after)) < 1.0, "so standing_up clips are sitting_down clips reversed"
    assert len(lengths) >= 8, "speed varies"
