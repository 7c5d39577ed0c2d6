"""Synthetic action videos: stick figures doing the guide's four actions, rendered in memory or written as real
video files in the layouts the data readers accept, and the pretext task that pretrained the bundled `tiny` model.

    motions      Pose, Motion, motion tables, easing          actions   the guide's classes and their motions
    specs        what one clip is made of, drawn from a seed   render    clip specs to frames
    clips        clips, sequences and joined clips in memory   encoding  frames to video files
    layouts      folder/ntu/ucf101/list plans and side files   writing   `synthesize`: a data set on disk
    recordings   long videos of actions with idle stretches between them, and their ground truth (`synth --long`)
    pretext/     the pretext task of the bundled tiny model (needs torch)

Importing this package imports no torch (`vjepa-tune synth` starts without it) and changes no global state; the
pretext task is `vjepa_tune.synth.pretext`.
"""

from vjepa_tune.synth.clips import render_clip, render_joined_clips, render_sequence
from vjepa_tune.synth.encoding import write_video
from vjepa_tune.synth.layouts import LAYOUTS
from vjepa_tune.synth.writing import LongSynthSummary, SynthSummary, parse_size, synthesize, synthesize_long

__all__ = [
    "LAYOUTS",
    "LongSynthSummary",
    "SynthSummary",
    "parse_size",
    "render_clip",
    "render_joined_clips",
    "render_sequence",
    "synthesize",
    "synthesize_long",
    "write_video",
]
