"""The pretext's figure motions replay no demo motion, forwards or backwards."""

import itertools
import random

import numpy as np

from vjepa_tune.synth.actions import CLASS_MOTIONS, MOTIONS
from vjepa_tune.synth.pretext import FIGURE_MOTIONS, PRETEXT_MOTIONS
from vjepa_tune.synth.render import skeleton
from vjepa_tune.synth.specs import Look

DEMO_MOTIONS = {motion for motions in CLASS_MOTIONS.values() for motion in motions}
EVERY_MOTION = {**MOTIONS, **FIGURE_MOTIONS}


def _trajectory(motion: str, params: dict, phases: list[float]) -> np.ndarray:
    look = Look(0.30, 0.035, 0.062, 0.15, 0.14, 0.24, 0.23, 0.095, 0.06, 0.05, 0.0, 0.0, True)
    return np.array(
        [np.stack(list(skeleton(EVERY_MOTION[motion].pose(t, params), look).values())) for t in phases]
    )


def test_no_pretext_motion_replays_a_demo_motion_forwards_or_backwards():
    """Under another name a motion could still be a demo action: compare where the joints go, phase by
    phase."""
    phases = [i / 12 for i in range(13)]
    paths = {
        motion: [_trajectory(motion, EVERY_MOTION[motion].draw_params(random.Random(k)), phases) for k in range(6)]
        for motion in (*PRETEXT_MOTIONS, *sorted(DEMO_MOTIONS))
    }
    for pretext_motion, demo_motion in itertools.product(PRETEXT_MOTIONS, sorted(DEMO_MOTIONS)):
        theirs = paths[demo_motion] + [path[::-1] for path in paths[demo_motion]]
        closest = min(
            np.linalg.norm(a - b, axis=-1).max() for a, b in itertools.product(paths[pretext_motion], theirs)
        )
        # In figure heights: at least 8% of the body (4 px of a 50 px figure) apart somewhere in the motion.
        assert closest > 0.08, (pretext_motion, demo_motion, closest)
