"""The pretext task of the bundled tiny model: disjoint from the demo's actions, truly reversed,
deterministic."""

import itertools
import random

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import keyed_random, seeded_torch_rng
from vjepa_tune.synth import pretext
from vjepa_tune.synth.motions import CLASS_MOTIONS, MOTIONS
from vjepa_tune.synth.pretext import (
    IGNORE,
    PARTS,
    PRETEXT_CLASSES,
    PRETEXT_ID2LABEL,
    PRETEXT_MOTIONS,
    SHAPE_MOTIONS,
    PretextBatches,
    PretextClip,
    difficulty_at,
    ease_figure_spec,
    part_motion,
    part_pose,
    part_targets,
    pretext_example,
    render_pretext_clip,
    transform_clip,
)
from vjepa_tune.synth.synthetic import Look, draw_clip_spec, skeleton

DEMO_MOTIONS = {motion for motions in CLASS_MOTIONS.values() for motion in motions}
LABEL = {c.name: i for i, c in enumerate(PRETEXT_CLASSES)}


def test_pretext_motions_and_the_demo_classes_motions_are_disjoint():
    assert set(PRETEXT_MOTIONS).isdisjoint(DEMO_MOTIONS)
    assert set(SHAPE_MOTIONS).isdisjoint(DEMO_MOTIONS)
    names = {c.name for c in PRETEXT_CLASSES}
    assert names.isdisjoint(DEMO_MOTIONS | set(CLASS_MOTIONS))
    assert {c.source for c in PRETEXT_CLASSES} == set(PRETEXT_MOTIONS) | set(SHAPE_MOTIONS)
    assert all(name in MOTIONS for name in PRETEXT_MOTIONS)  # registered in the motion library


def _trajectory(motion: str, params: dict, phases: list[float]) -> np.ndarray:
    look = Look(0.30, 0.035, 0.062, 0.15, 0.14, 0.24, 0.23, 0.095, 0.06, 0.05, 0.0, 0.0, True)
    return np.array(
        [np.stack(list(skeleton(MOTIONS[motion].pose(t, params), look).values())) for t in phases]
    )


def test_no_pretext_motion_replays_a_demo_motion_forwards_or_backwards():
    """Under another name a motion could still be a demo action: compare where the joints go, phase by
    phase."""
    phases = [i / 12 for i in range(13)]
    paths = {
        motion: [_trajectory(motion, MOTIONS[motion].draw_params(random.Random(k)), phases) for k in range(6)]
        for motion in (*PRETEXT_MOTIONS, *sorted(DEMO_MOTIONS))
    }
    for pretext_motion, demo_motion in itertools.product(PRETEXT_MOTIONS, sorted(DEMO_MOTIONS)):
        theirs = paths[demo_motion] + [path[::-1] for path in paths[demo_motion]]
        closest = min(
            np.linalg.norm(a - b, axis=-1).max() for a, b in itertools.product(paths[pretext_motion], theirs)
        )
        # In figure heights: at least 8% of the body (4 px of a 50 px figure) apart somewhere in the motion.
        assert closest > 0.08, (pretext_motion, demo_motion, closest)


@pytest.mark.parametrize("name", ["kick", "turn_sideways", "shape_fall", "shape_spin"])
def test_a_reversed_class_is_its_forward_clip_played_backwards(name):
    forward = render_pretext_clip(LABEL[name], keyed_random(5), num_frames=8, size=32)
    backward = render_pretext_clip(LABEL[f"{name}_reversed"], keyed_random(5), num_frames=8, size=32)
    np.testing.assert_array_equal(backward.frames, forward.frames[::-1])
    np.testing.assert_array_equal(backward.tracks, forward.tracks[::-1])
    assert not np.array_equal(forward.frames, forward.frames[::-1])  # the motion has a direction in time


def test_only_time_asymmetric_motions_get_a_reversed_class():
    reversed_sources = {c.source for c in PRETEXT_CLASSES if c.reversed}
    assert {"jumping_jacks", "arm_circles", "shape_slide", "shape_still"}.isdisjoint(reversed_sources)
    assert {"kick", "punch", "throw", "point", "shape_fall", "shape_bounce", "shape_grow"} <= reversed_sources
    assert PRETEXT_ID2LABEL == {i: c.name for i, c in enumerate(PRETEXT_CLASSES)}


@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_every_class_renders_and_moves_except_the_still_shape(difficulty):
    for label, cls in enumerate(PRETEXT_CLASSES):
        clip = render_pretext_clip(
            label, keyed_random(1, label), num_frames=16, size=32, difficulty=difficulty
        )
        assert clip.frames.shape == (16, 32, 32, 3) and clip.frames.dtype == np.uint8
        assert clip.tracks.shape == (16, len(PARTS), 2)
        change = np.abs(clip.frames[1:].astype(int) - clip.frames[:-1].astype(int)).max(axis=(1, 2, 3))
        if cls.source == "shape_still":
            assert change.max() == 0, cls.name
        else:
            assert change.max() > 40, cls.name


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


def test_part_targets_name_the_token_cell_of_each_part_per_tubelet():
    tracks = torch.full((4, len(PARTS), 2), float("nan"))
    tracks[:, 0] = torch.tensor([5.0, 5.0])  # top-left cell
    tracks[:, 1] = torch.tensor([63.0, 20.0])  # row 1, column 3
    tracks[0, 2], tracks[1, 2] = torch.tensor([10.0, 40.0]), torch.tensor([22.0, 40.0])  # mean x 16: column 1
    tracks[2:, 2] = torch.tensor([40.0, 40.0])
    tracks[:, 3] = torch.tensor([-3.0, 10.0])  # left of the frame
    targets = part_targets(tracks, size=64, patch=16, tubelet=2)
    assert targets.shape == (2, len(PARTS))
    assert targets[:, 0].tolist() == [0, 0] and targets[:, 1].tolist() == [7, 7]
    assert targets[:, 2].tolist() == [9, 10]
    assert (targets[:, 3:] == IGNORE).all()
    motion = part_motion(tracks, size=64, tubelet=2)
    assert motion.shape == (2, len(PARTS), 2)
    assert motion[0, 2].tolist() == [12.0, 0.0] and motion[1, 2].tolist() == [0.0, 0.0]
    assert torch.isnan(motion[:, 3:]).all() and not torch.isnan(motion[:, :3]).any()
    pose = part_pose(tracks, size=64, tubelet=2)  # relative to the hip (part 1) at (63, 20), in frame widths
    assert pose[:, 0].tolist() == [[-58 / 64, -15 / 64]] * 2
    assert pose[0, 2].tolist() == [-47 / 64, 20 / 64] and pose[1, 2].tolist() == [-23 / 64, 20 / 64]
    assert torch.isnan(pose[:, 1]).all(), "the hip is the origin, not a target"
    assert torch.isnan(pose[:, 3:]).all()


def test_part_pose_tells_a_raised_hand_from_a_lowered_one():
    hand = PARTS.index("hand_r")
    clip = render_pretext_clip(LABEL["point"], keyed_random(2), num_frames=16, size=64, difficulty=0.0)
    pose = part_pose(torch.from_numpy(clip.tracks), 64)
    heights = -pose[:, hand, 1]  # up is negative y
    assert heights[-1] > heights[0] + 0.1, "the pointing hand ends higher than it hung"
    assert torch.isnan(pose[:, PARTS.index("shape")]).all()


def test_part_motion_of_a_reversed_clip_is_negated_and_reversed():
    forward = render_pretext_clip(LABEL["kick"], keyed_random(4), num_frames=8, size=64, difficulty=0.0)
    backward = render_pretext_clip(
        LABEL["kick_reversed"], keyed_random(4), num_frames=8, size=64, difficulty=0.0
    )
    ahead = part_motion(torch.from_numpy(forward.tracks), 64)
    back = part_motion(torch.from_numpy(backward.tracks), 64)
    torch.testing.assert_close(back, -ahead.flip(0), equal_nan=True)
    assert ahead.nan_to_num(0).abs().max() > 1.0  # the kick moves the foot by more than a pixel per frame


def test_training_crop_moves_the_tracks_with_the_frames():
    frames = np.zeros((2, 64, 64, 3), np.uint8)
    frames[:, 40:44, 12:16] = 255  # a bright block whose centre is the tracked point (14, 42)
    tracks = np.full((2, len(PARTS), 2), np.nan, np.float32)
    tracks[:, 0] = (14.0, 42.0)
    crop = v2.RandomResizedCrop(64, scale=(0.4, 0.6), antialias=True)
    with seeded_torch_rng("crop-test"):
        video, moved = transform_clip(PretextClip(frames, tracks), [crop])
    brightest = np.unravel_index(int(video[0].sum(0).argmax()), (64, 64))
    x, y = moved[0, 0].tolist()
    assert abs(brightest[0] - y) <= 3 and abs(brightest[1] - x) <= 3


def test_examples_are_deterministic_for_a_seed_and_differ_across_seeds():
    first = pretext_example(7, step=3, index=1, difficulty=0.5, num_frames=8, size=32)
    again = pretext_example(7, step=3, index=1, difficulty=0.5, num_frames=8, size=32)
    assert first.label == again.label and torch.equal(first.clip, again.clip)
    assert torch.equal(first.parts, again.parts)
    torch.testing.assert_close(first.motion, again.motion, equal_nan=True, rtol=0, atol=0)
    others = [pretext_example(8, step=3, index=i, difficulty=0.5, num_frames=8, size=32) for i in range(2)]
    assert not any(torch.equal(first.clip, other.clip) for other in others)


def test_batches_are_normalised_clips_with_labels_and_part_targets_keyed_by_step():
    batches = PretextBatches(seed=0, steps=4, batch_size=3, easy_steps=1, ramp_steps=2, num_frames=8, size=32)
    clips, labels, parts, motion, pose = batches[1]
    assert clips.shape == (3, 8, 3, 32, 32) and clips.dtype == torch.float32
    assert labels.shape == (3,) and int(labels.min()) >= 0 and int(labels.max()) < len(PRETEXT_CLASSES)
    assert parts.shape == (3, 4, len(PARTS)) and int(parts.max()) < 4
    assert motion.shape == (3, 4, len(PARTS), 2)
    assert torch.equal(torch.isnan(motion).any(-1), parts == IGNORE)
    assert pose.shape == motion.shape and torch.isnan(pose[:, :, PARTS.index("hip")]).all()
    assert clips.min() < -1.0 and clips.max() > 1.0  # ImageNet mean/std normalisation, not [0, 1]
    assert torch.equal(batches[1][0], clips)
    assert [batches.difficulty(s) for s in range(5)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert difficulty_at(10, easy_steps=0, ramp_steps=0) == 1.0


def test_easy_end_of_the_curriculum_centres_and_enlarges_the_figure():
    spec = draw_clip_spec("kick", keyed_random(2), 8, (64, 64))
    easy = ease_figure_spec(spec, 1.0, random.Random(0))
    assert easy.camera.figure_height == pytest.approx(0.8) and easy.camera.center_x == pytest.approx(0.5)
    assert easy.camera.shake == 0 and easy.backdrop.kind == "flat" and easy.look.line > spec.look.line
    assert ease_figure_spec(spec, 0.0, random.Random(0)) == spec


def test_bad_label_or_difficulty_is_bad_input():
    with pytest.raises(BadInput, match="pretext label"):
        render_pretext_clip(len(PRETEXT_CLASSES), keyed_random(0))
    with pytest.raises(BadInput, match="difficulty"):
        render_pretext_clip(0, keyed_random(0), difficulty=1.5)
    with pytest.raises(BadInput, match="shape motion"):
        pretext.render_shape_clip("shape_wave", keyed_random(0), 8, 32)
