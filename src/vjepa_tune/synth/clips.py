"""Clips rendered in memory, for callers that want frames without files: one motion (`render_clip`), one long
video of several actions by one performer (`render_sequence`), or an edited video of separate clips joined back to
back (`render_joined_clips`).

Each is a pure function of its seed: the keyed draws of `vjepa_tune.randomness`.
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS, motion_named
from vjepa_tune.synth.motions import Motion
from vjepa_tune.synth.render import render_spec
from vjepa_tune.synth.specs import (
    ClipSpec,
    Segment,
    draw_backdrop,
    draw_camera,
    draw_chair,
    draw_class_spec,
    draw_clip_spec,
    draw_look,
    draw_palette,
    draw_segment,
    ease_figure_spec,
)

MIN_SIZE = 32


def _as_rng(rng_or_seed: random.Random | int) -> random.Random:
    return rng_or_seed if isinstance(rng_or_seed, random.Random) else keyed_random("render", rng_or_seed)


def is_whole(value: object) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_size(size: tuple[int, int], flag: str = "--size") -> tuple[int, int]:
    """(width, height) as ints, refused unless both are even and at least `MIN_SIZE`."""
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(is_whole(v) for v in size):
        raise BadInput(f"{flag} must be a width and a height in pixels, got {size!r}.")
    width, height = size
    if width < MIN_SIZE or height < MIN_SIZE:
        raise BadInput(f"{flag} must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {width}x{height}.")
    if width % 2 or height % 2:
        raise BadInput(
            f"{flag} must have an even width and height (H.264 and MPEG-4 store colour at half resolution), "
            f"got {width}x{height}."
        )
    return int(width), int(height)


def render_clip(
    motion: str | Motion, rng_or_seed: random.Random | int, num_frames: int, size: tuple[int, int] = (96, 96)
) -> np.ndarray:
    """A fresh clip of one motion (a `Motion`, or the name of one of `actions.MOTIONS`) as (T, H, W, 3) uint8
    frames, not encoded; `size` is (width, height)."""
    size = check_size(size, "size")
    if num_frames < 2:
        raise BadInput(f"num_frames must be >= 2, got {num_frames!r}.")
    return render_spec(draw_clip_spec(motion_named(motion), _as_rng(rng_or_seed), num_frames, size))


@dataclass(frozen=True)
class SequenceSpan:
    """One segment of a long video: frames [start, stop), its motion within [action_start, action_stop)."""

    name: str
    motion: str
    start: int
    stop: int
    action_start: int
    action_stop: int


@dataclass
class RenderedSequence:
    """The frames of a long video and the span of each of its segments."""

    frames: np.ndarray
    spans: list[SequenceSpan]

    def frame_labels(self) -> list[str]:
        """The segment name of every frame."""
        return [span.name for span in self.spans for _ in range(span.stop - span.start)]


def render_sequence(
    segments: Sequence[tuple[str, int]], rng_or_seed: random.Random | int, size: tuple[int, int] = (96, 96)
) -> RenderedSequence:
    """One long video of several actions by one performer in one scene: [("sitting_down", 48), ("wave", 40)].

    A name is a class of `CLASS_MOTIONS` (a motion is drawn from it) or a motion of `actions.MOTIONS`. From the
    second segment on, the first frames ease out of the previous segment's last pose: they belong to the segment
    but precede its action.
    """
    size = check_size(size, "size")
    if not segments:
        raise BadInput("render_sequence needs at least one (name, frames) segment.")
    rng = _as_rng(rng_or_seed)
    look = draw_look(rng)
    backdrop = draw_backdrop(rng)
    camera = draw_camera(rng, size)
    palette = draw_palette(rng, look, backdrop)
    drawn: list[Segment] = []
    names: list[str] = []
    for index, (name, frames) in enumerate(segments):
        if frames < 2:
            raise BadInput(f"segment {index} ({name!r}) must be at least 2 frames long, got {frames!r}.")
        motion = motion_named(rng.choice(CLASS_MOTIONS[name]) if name in CLASS_MOTIONS else name)
        blend = min(frames // 4, 8) if index else 0
        seated = [s.params for s in drawn if s.motion.chair] if motion.chair else []
        # One chair, one way of sitting: sit_down then stand_up continue each other's poses.
        drawn.append(draw_segment(motion, rng, frames, blend_in=blend, params=seated[0] if seated else None))
        names.append(name)
    chair = draw_chair(rng, drawn)
    spec = ClipSpec(size, look, backdrop, camera, palette, tuple(drawn), chair)
    spans, start = [], 0
    for name, segment in zip(names, drawn, strict=True):
        action = start + segment.action_start
        spans.append(
            SequenceSpan(
                name, segment.motion.name, start, start + segment.frames, action, action + segment.action_length
            )
        )
        start += segment.frames
    return RenderedSequence(render_spec(spec), spans)


def render_joined_clips(
    classes: Sequence[str], frames_per_clip: int, seed: int, size: tuple[int, int] = (96, 96),
    variety: float = 1.0,
) -> RenderedSequence:
    """Fresh clips of the given classes, each in its own scene and drawn like `synth`'s at `variety`, joined
    back to back: an edited long video with a cut between every two clips, for detection tests."""
    size = check_size(size, "size")
    if not (isinstance(variety, int | float) and 0.0 <= variety <= 1.0):
        raise BadInput(f"variety must be a number from 0 to 1, got {variety!r}.")
    if not classes:
        raise BadInput("render_joined_clips needs at least one class.")
    if frames_per_clip < 2:
        raise BadInput(f"frames_per_clip must be >= 2, got {frames_per_clip!r}.")
    unknown = sorted(set(classes) - set(CLASS_MOTIONS))
    if unknown:
        raise BadInput(f"unknown classes {unknown}; the synthetic classes are {', '.join(CLASS_MOTIONS)}.")
    clips, spans = [], []
    for index, name in enumerate(classes):
        rng = keyed_random(seed, "joined", index)
        spec = ease_figure_spec(draw_class_spec(name, rng, frames_per_clip, size), 1.0 - variety, rng)
        segment = spec.segments[0]
        start = index * frames_per_clip
        action = start + segment.action_start
        spans.append(SequenceSpan(name, segment.motion.name, start, start + frames_per_clip, action,
                                  action + segment.action_length))
        clips.append(render_spec(spec))
    return RenderedSequence(np.concatenate(clips), spans)
