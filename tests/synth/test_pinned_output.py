"""The exact output of the generators, pinned by sha256: the raw frames of a few clips and every motion's parameter
draws.

Why this exists: a video is a pure function of its seed, and things depend on that staying true across code changes.
The demo's results for data seed 0 are recorded in BENCHMARKS.md and checked by tests/test_demo.py; a `synth`
folder is resumed only while `GENERATOR_VERSION` says the same arguments still draw the same videos; the bundled
`tiny` checkpoint was pretrained on these pretext clips. A refactor that reorders one random draw, or swaps
`uniform` for `randint`, changes all of that silently; these hashes fail instead. If a change of output is intended,
bump `synth.writing.GENERATOR_VERSION`, rerun the demo and update BENCHMARKS.md, then the hashes here.

The clips are chosen at the easy end (`variety` 0, `difficulty` 0: flat backgrounds), where every pixel comes from
Python's own arithmetic and Pillow's drawing, not from numpy's CPU-dependent vectorised sine; encoded bytes are not
pinned, since they depend on the codec library's version.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth import render_joined_clips
from vjepa_tune.synth.actions import MOTIONS
from vjepa_tune.synth.layouts import plan
from vjepa_tune.synth.pretext import FIGURE_MOTIONS, PRETEXT_CLASSES, render_pretext_clip
from vjepa_tune.synth.render import render_spec


def sha256(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


DEMO_FIRST_VIDEOS = {
    "sitting_down/sitting_down_0000.mp4": "05e40f5aba7333e3a6aebf33924bdc06288fea55083e7b30fa4b67109ef89109",
    "standing_up/standing_up_0000.mp4": "df46cc0da499f837e08a1fb58cf472c5e843dc06811e6c2c0b1394b6c412f0d3",
    "waving/waving_0000.mp4": "43b9dd0e27422cf853e1a2370a1cf6b97693fac228823fbc8085d38151f6d957",
    "other/other_0000.mp4": "01ffc170b9bf91592a4406889749119caeaad78dfc32f0fa2df83e6398c0a322",
}


def test_the_demos_first_video_of_each_class_renders_the_same_frames() -> None:
    """`vjepa-tune demo`'s data for data seed 0: 64 px, 32 frames, variety 0 (`demo.py`)."""
    jobs = plan("folder", 0, 1, (64, 64), 32, variety=0.0)
    assert {job.relpath: sha256(render_spec(job.spec)) for job in jobs} == DEMO_FIRST_VIDEOS


def test_joined_clips_render_the_same_frames() -> None:
    joined = render_joined_clips(["waving", "other", "standing_up"], 8, seed=0, size=(48, 48), variety=0.0)
    assert sha256(joined.frames) == "d55b4ddb2e27f44186a3ab1049f5d11366de95b8a9294d63e6c7929a50b5731d"


@pytest.mark.parametrize(("name", "expected"), [
        ("kick_reversed", "cc99e1aa3312794acbc56a16386afc6254152073048f19f8f07516d0e7fc2be1"),
        ("shape_spin", "29d306c83c428b4d3db3ec6a908d043e3fe3fd7b94b6c83ed548ec8b2dfa11a8"),
    ])
def test_pretext_clips_render_the_same_frames_and_tracks(name: str, expected: str) -> None:
    label = [c.name for c in PRETEXT_CLASSES].index(name)
    clip = render_pretext_clip(label, keyed_random("pinned", name), num_frames=8, size=32, difficulty=0.0)
    assert sha256(clip.frames, clip.tracks) == expected


def test_every_motion_draws_the_same_parameters_from_the_same_generator() -> None:
    """Values, their order, and how much of the generator each motion uses (the draw after them)."""
    draws = []
    for name, motion in sorted({**MOTIONS, **FIGURE_MOTIONS}.items()):
        for key in range(20):
            rng = keyed_random("pinned params", name, key)
            draws.append((name, list(motion.draw_params(rng).items()), rng.random()))
    expected = "9ebc44cf77b490d11e9fd5f511c141e9887b83369eb3e046d515099d2a719903"
    assert hashlib.sha256(repr(draws).encode()).hexdigest() == expected
