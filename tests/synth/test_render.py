"""Rendering a spec: the figure fills half to most of the frame height."""

from __future__ import annotations

import dataclasses

import numpy as np

from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.render import render_spec
from vjepa_tune.synth.specs import draw_class_spec


def test_figures_fill_half_to_most_of_the_frame_height() -> None:
    for key in range(6):
        spec = draw_class_spec("waving", keyed_random("height", key), 2, (96, 96))
        flat = dataclasses.replace(spec.backdrop, kind="flat", floor_color=None)
        spec = dataclasses.replace(
            spec, backdrop=flat, chair=None, camera=dataclasses.replace(spec.camera, shake=0.0)
        )
        first = render_spec(spec)[0].astype(int)
        figure_rows = np.flatnonzero((np.abs(first - flat.color0).sum(axis=2) > 60).any(axis=1))
        height = (figure_rows.max() - figure_rows.min() + 1) / 96
        assert 0.45 <= height <= 0.85, (key, height)
