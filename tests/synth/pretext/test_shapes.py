"""The shape clips of the pretext task."""

import pytest

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.pretext.shapes import render_shape_clip


def test_an_unknown_shape_motion_is_refused():
    with pytest.raises(BadInput, match="unknown shape motion 'shape_wave'"):
        render_shape_clip("shape_wave", keyed_random(0), 8, 32)
