"""The pretext task that pretrains the bundled `tiny` model: name the motion in a fresh synthetic clip and
say where the body parts go.

A small video model trained from scratch on a few hundred labelled clips memorises them; one that has first
learnt what actions are made of generalises. The pretext classes teach exactly those ingredients and share no
motion with the demo's classes (sitting down, standing up, waving and the `other` motions of `synth.actions`):

- stick figures doing other things (kicking, punching, throwing, pointing, turning sideways, putting hands on
  hips, jumping jacks, arm circles), drawn by the same renderer as the demo videos, so the model learns
  body parts and how they move;
- shapes that fall, bounce, grow, spin, slide or keep still, so it learns motion itself, apart from bodies.

Every asymmetric motion comes twice, as played and time-reversed (`kick` and `kick_reversed`: the same clip
with its frames in the opposite order), so only the direction of time tells the pair apart: what a model needs
for sitting down versus standing up. Motions that look the same backwards (jumping jacks, arm circles, a
slide in a random direction, a still shape) come once.

Besides its class, a clip says where its parts are: the tracks of a figure's head, hip, hands and feet (or a
shape's centre) in every frame, which the renderer knows. They become dense targets for every token: which
token holds each part, and how that part moves between the two frames the token sees. That is far more to
learn from per clip than one label, and the direction of motion it asks for is local: the V-JEPA 2 pooler has no
positions and ignores token order, so whatever separates sitting down from standing up must sit in the tokens.

`difficulty` runs the curriculum: 0 draws large, centred, thick figures and shapes on flat backgrounds; 1
keeps the full variety of `synth` videos (small, off-centre, thin figures, textured backgrounds, camera
shake). Every clip is a pure function of its keys (seed, step, index), never of worker count or order.

The figure motions are their own table (`pretext.motions.FIGURE_MOTIONS`), apart from the demo's
(`synth.actions.MOTIONS`): importing the pretext task changes nothing else. It needs torch (its examples are
tensors), which is why `vjepa_tune.synth` does not import it.
"""

from vjepa_tune.synth.pretext.classes import (
    PRETEXT_CLASSES,
    PRETEXT_ID2LABEL,
    PretextClass,
    render_pretext_clip,
)
from vjepa_tune.synth.pretext.examples import (
    PretextBatches,
    PretextExample,
    collate_examples,
    crop_scale_for,
    difficulty_at,
    heldout_example,
    part_motion,
    part_pose,
    part_targets,
    pretext_example,
    transform_clip,
)
from vjepa_tune.synth.pretext.motions import FIGURE_MOTIONS, PRETEXT_MOTIONS
from vjepa_tune.synth.pretext.parts import FIGURE_PARTS, IGNORE, PARTS, PretextClip, figure_tracks
from vjepa_tune.synth.pretext.shapes import SHAPE_MOTIONS, ShapeState, render_shape_clip

__all__ = [
    "FIGURE_MOTIONS",
    "FIGURE_PARTS",
    "IGNORE",
    "PARTS",
    "PRETEXT_CLASSES",
    "PRETEXT_ID2LABEL",
    "PRETEXT_MOTIONS",
    "SHAPE_MOTIONS",
    "PretextBatches",
    "PretextClass",
    "PretextClip",
    "PretextExample",
    "ShapeState",
    "collate_examples",
    "crop_scale_for",
    "difficulty_at",
    "figure_tracks",
    "heldout_example",
    "part_motion",
    "part_pose",
    "part_targets",
    "pretext_example",
    "render_pretext_clip",
    "render_shape_clip",
    "transform_clip",
]
