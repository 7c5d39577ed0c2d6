"""Synthetic action videos: stick figures doing the guide's four actions, rendered in memory or written as real
video files in the layouts the data readers accept, and the pretext task that pretrained the bundled `tiny` model.

Importing this package imports no torch (`vjepa-tune synth` starts without it) and changes no global state; the
pretext task, which needs torch, is `vjepa_tune.synth.pretext`.
"""

from vjepa_tune.synth.synthetic import (
    LAYOUTS,
    SynthSummary,
    parse_size,
    render_clip,
    render_joined_clips,
    render_sequence,
    synthesize,
    write_video,
)

__all__ = [
    "LAYOUTS",
    "SynthSummary",
    "parse_size",
    "render_clip",
    "render_joined_clips",
    "render_sequence",
    "synthesize",
    "write_video",
]
