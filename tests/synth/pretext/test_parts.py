"""Where a pretext clip's parts are: the tracks lie on the drawn figure."""

import numpy as np
import pytest

from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.pretext import PARTS, PRETEXT_CLASSES, render_pretext_clip

LABEL = {c.name: i for i, c in enumerate(PRETEXT_CLASSES)}


@pytest.mark.parametrize("motion", ["kick", "throw", "jumping_jacks"])
def test_figure_tracks_lie_on_the_drawn_figure(motion):
    """Hip, hands and feet are line ends or joints of the drawing: their pixels are not the flat background."""
    clip = render_pretext_clip(LABEL[motion], keyed_random(3), num_frames=8, size=64, difficulty=0.0)
    background = clip.frames[0, 0, 0].astype(int)
    for frame, tracks in zip(clip.frames, clip.tracks, strict=True):
        for part in ("hip", "hand_r", "hand_l", "foot_r", "foot_l"):
            x, y = np.clip(np.round(tracks[PARTS.index(part)]).astype(int), 0, 63)
            assert np.abs(frame[y, x].astype(int) - background).max() > 30, (part, x, y)
        assert np.isnan(tracks[PARTS.index("shape")]).all()
