"""Long recordings for detection: one performer in one scene doing several of the guide's actions, with idle
stretches between them as real recordings have, and their ground truth (`synth --long`).

A recording is drawn from one generator keyed by (seed, "long", its index), so adding recordings or writing them
with more processes changes none of the others, and no draw of the other generators is touched:

- the actions follow what a body can do next: standing, the next action is `sitting_down`, `waving` or `other`
  (equally likely); seated, it is `standing_up` (so the four classes come about equally often);
- each action is drawn as a `synth` clip of `frames_per_action` frames draws it (its motion, parameters, speed,
  where the action falls in the clip), and an idle stretch of `idle_s` seconds (uniform between the two) goes
  before it, and after the last one: the performer holds the pose the last action left, swaying a little, and
  eases (at most 8 frames) into the next action's start pose, as `render_sequence` joins segments;
- one chair, placed for the first seated motion, serves every sit and stand (`sit_down` then `stand_up` share
  their parameters, so the performer stands up from where they sat).

The ground truth is every action's own frames, `[action_start, action_stop)` in seconds, labelled with its class
(`other` included, whichever distractor motion it drew); the idle stretches, and the still frames before and after
an action inside its clip, are background and belong to no segment.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass

from vjepa_tune.data.annotations import AnnotatedSegment, AnnotatedVideo
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth.actions import CLASS_MOTIONS, CLASSES, motion_named
from vjepa_tune.synth.clips import RenderedSequence, SequenceSpan, check_size
from vjepa_tune.synth.render import render_spec
from vjepa_tune.synth.specs import (
    ClipSpec,
    Segment,
    draw_backdrop,
    draw_camera,
    draw_chair,
    draw_look,
    draw_palette,
    draw_segment,
    ease_figure_spec,
)

STANDING_NEXT = ("sitting_down", "waving", "other")
MAX_BLEND = 8
"""Frames at most spent easing from one action's last pose into the next one's first."""
LABEL_IDS: dict[str, int] = {name: index for index, name in enumerate(CLASSES)}
"""label_id of each class in the annotation file: its index in the guide's class list."""


@dataclass(frozen=True)
class RecordingPlan:
    """Everything one recording shows, and its actions' frames."""

    spec: ClipSpec
    spans: tuple[SequenceSpan, ...]
    fps: int

    @property
    def num_frames(self) -> int:
        return self.spec.num_frames


def draw_classes(rng: random.Random, count: int) -> list[str]:
    """The recording's actions in order: from standing any of `STANDING_NEXT`, from seated `standing_up`."""
    classes, seated = [], False
    for _ in range(count):
        name = "standing_up" if seated else rng.choice(STANDING_NEXT)
        seated = name == "sitting_down"
        classes.append(name)
    return classes


def check_recording_settings(actions: int, frames_per_action: int, idle_s: Sequence[float], fps: int) -> None:
    if isinstance(actions, bool) or not isinstance(actions, int) or actions < 1:
        raise BadInput(f"--actions must be a whole number >= 1, got {actions!r}.")
    if frames_per_action < 2:
        raise BadInput(f"--frames must be >= 2 frames per action, got {frames_per_action!r}.")
    if len(idle_s) != 2 or not 0 <= idle_s[0] <= idle_s[1]:
        raise BadInput(f"--idle must be two numbers of seconds, shortest and longest, 0 <= min <= max; got "
                       f"{list(idle_s)!r}.")
    if fps < 1:
        raise BadInput(f"--fps must be >= 1, got {fps!r}.")


def plan_recording(seed: int, index: int, *, actions: int, frames_per_action: int, idle_s: Sequence[float],
                   fps: int, size: tuple[int, int], variety: float = 1.0) -> RecordingPlan:
    """Draw recording `index` of `seed` (see the module docstring); rendering it is `render_spec(plan.spec)`."""
    check_recording_settings(actions, frames_per_action, idle_s, fps)
    size = check_size(size, "size")
    rng = keyed_random(seed, "long", index)
    look = draw_look(rng)
    backdrop = draw_backdrop(rng)
    camera = draw_camera(rng, size)
    palette = draw_palette(rng, look, backdrop)
    segments: list[Segment] = []
    names: list[str] = []
    for position, name in enumerate(draw_classes(rng, actions)):
        idle = round(rng.uniform(*idle_s) * fps)
        motion = motion_named(rng.choice(CLASS_MOTIONS[name]))
        seated = [s.params for s in segments if s.motion.chair] if motion.chair else []
        drawn = draw_segment(motion, rng, frames_per_action, params=seated[0] if seated else None)
        blend = min(MAX_BLEND, idle + drawn.action_start) if position else 0
        segments.append(dataclasses.replace(drawn, frames=idle + drawn.frames,
                                            action_start=idle + drawn.action_start, blend_in=blend))
        names.append(name)
    trailing = round(rng.uniform(*idle_s) * fps)
    segments[-1] = dataclasses.replace(segments[-1], frames=segments[-1].frames + trailing)
    chair = draw_chair(rng, segments)
    spec = ClipSpec(size, look, backdrop, camera, palette, tuple(segments), chair)
    spec = ease_figure_spec(spec, 1.0 - variety, rng)
    spans, start = [], 0
    for name, segment in zip(names, segments, strict=True):
        action = start + segment.action_start
        spans.append(SequenceSpan(name, segment.motion.name, start, start + segment.frames, action,
                                  action + segment.action_length))
        start += segment.frames
    return RecordingPlan(spec, tuple(spans), fps)


def render_recording(plan: RecordingPlan) -> RenderedSequence:
    """The recording's frames (T, H, W, 3) uint8 and its spans."""
    return RenderedSequence(render_spec(plan.spec), list(plan.spans))


def recording_annotation(plan: RecordingPlan, subset: str) -> AnnotatedVideo:
    """The recording's entry in the ActivityNet/THUMOS annotation file: every action in seconds, with its class
    and `LABEL_IDS` id; the rest of the time is background."""
    segments = tuple(
        AnnotatedSegment(span.name, LABEL_IDS[span.name], round(span.action_start / plan.fps, 6),
                         round(span.action_stop / plan.fps, 6), {"motion": span.motion})
        for span in plan.spans
    )
    return AnnotatedVideo(subset, round(plan.num_frames / plan.fps, 6), float(plan.fps), segments)


def recording_subset(index: int, count: int) -> str:
    """THUMOS14's practice: `validation` to train a detector on, `test` to score it (the last third, at least one)."""
    tests = max(1, round(count / 3))
    return "test" if index >= count - tests else "validation"
