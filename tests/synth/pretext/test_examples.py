"""Pretext examples: per-token part targets, motion and pose by value; the training crop moves the tracks with the
frames; examples and batches keyed by seed and step."""

import numpy as np
import torch
from torchvision.transforms import v2

from vjepa_tune.randomness import keyed_random, seeded_torch_rng
from vjepa_tune.synth.pretext import (
    IGNORE,
    PARTS,
    PRETEXT_CLASSES,
    PretextBatches,
    PretextClip,
    difficulty_at,
    part_motion,
    part_pose,
    part_targets,
    pretext_example,
    render_pretext_clip,
    transform_clip,
)

LABEL = {c.name: i for i, c in enumerate(PRETEXT_CLASSES)}


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
