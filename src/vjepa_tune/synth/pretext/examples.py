"""Pretext examples as the model trains on them: normalised clip tensors with their class and dense per-token
targets (which token holds each part, how it moves, where it is relative to the hip), in batches keyed by step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from vjepa_tune.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_resize_size
from vjepa_tune.randomness import keyed_random, seeded_torch_rng
from vjepa_tune.synth.pretext.classes import PRETEXT_CLASSES, render_pretext_clip
from vjepa_tune.synth.pretext.parts import IGNORE, PARTS, PretextClip


def _tubelets(tracks: torch.Tensor, tubelet: int) -> torch.Tensor:
    """(T // tubelet, tubelet, P, 2): the frames of each of the model's time steps."""
    steps = tracks.shape[0] // tubelet
    return tracks[: steps * tubelet].reshape(steps, tubelet, *tracks.shape[1:])


def _places(tracks: torch.Tensor, size: int, tubelet: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each part's mean place over each time step's frames, and whether it is in the frame there."""
    mean = _tubelets(tracks, tubelet).mean(dim=1)
    return mean, torch.isfinite(mean).all(-1) & (mean >= 0).all(-1) & (mean < size).all(-1)


def part_targets(tracks: torch.Tensor, size: int, patch: int = 16, tubelet: int = 2) -> torch.Tensor:
    """Which token holds each part at each time step: (T // tubelet, len(PARTS)) cell indices (row-major over
    the size // patch grid, the order of the model's tokens) of the part's mean place over the time step's
    frames; IGNORE where a part is absent or outside the frame. `tracks` are pixel (x, y) per frame,
    (T, len(PARTS), 2)."""
    mean, inside = _places(tracks, size, tubelet)
    grid = size // patch
    cells = torch.floor(mean.nan_to_num(0) / patch).long()
    index = cells[..., 1] * grid + cells[..., 0]
    return torch.where(inside, index, torch.full_like(index, IGNORE))


def part_motion(tracks: torch.Tensor, size: int, tubelet: int = 2) -> torch.Tensor:
    """How far each part moves per frame within each time step, (T // tubelet, len(PARTS), 2) in pixels;
    NaN where `part_targets` ignores the part. It is what one token sees (the model's tubelet spans these
    frames), and its sign is the direction of time."""
    frames = _tubelets(tracks, tubelet)
    motion = (frames[:, -1] - frames[:, 0]) / max(1, tubelet - 1)
    _, inside = _places(tracks, size, tubelet)
    return motion.masked_fill(~inside[..., None], float("nan"))


def part_pose(tracks: torch.Tensor, size: int, tubelet: int = 2) -> torch.Tensor:
    """Where each part is relative to the hip within each time step, (T // tubelet, len(PARTS), 2) in frame
    widths (x right, y down); NaN for the hip itself, for shapes, and where `part_targets` ignores the part
    or the hip.

    The V-JEPA 2 pooler sees its tokens as a bag, without positions, so a raised hand and a lowered one look
    alike to it unless the hand's token itself says where the hand is on the body: this target asks for it.
    """
    mean, inside = _places(tracks, size, tubelet)
    hip = PARTS.index("hip")
    offset = (mean - mean[:, hip : hip + 1]) / size
    valid = inside & inside[:, hip : hip + 1]
    valid[:, hip] = False
    return offset.masked_fill(~valid[..., None], float("nan"))


_NORMALIZE = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def transform_clip(clip: PretextClip, steps: list[v2.Transform]) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply torchvision transforms to the frames and the tracks together; normalise the frames."""
    video = tv_tensors.Video(torch.from_numpy(clip.frames).permute(0, 3, 1, 2))
    size = clip.frames.shape[1:3]
    points = tv_tensors.KeyPoints(torch.from_numpy(clip.tracks), canvas_size=size)
    video, points = v2.Compose([*steps, _NORMALIZE])(video, points)
    return video.as_subclass(torch.Tensor).contiguous(), points.as_subclass(torch.Tensor)


def crop_scale_for(difficulty: float) -> tuple[float, float]:
    """Area range of the random resized crop: none for easy clips, down to 30% of the frame at full
    difficulty, so the features survive the demo's training crops."""
    return (1.0 - 0.7 * difficulty, 1.0)


@dataclass(frozen=True)
class PretextExample:
    clip: torch.Tensor
    """Normalised (T, 3, size, size) float32, as the model takes it."""
    label: int
    parts: torch.Tensor
    """`part_targets` of the clip: (T // tubelet, len(PARTS)) token-cell indices."""
    motion: torch.Tensor
    """`part_motion` of the clip: (T // tubelet, len(PARTS), 2) pixels per frame, NaN where absent."""
    pose: torch.Tensor
    """`part_pose` of the clip: (T // tubelet, len(PARTS), 2) frame widths from the hip, NaN where absent."""


def _example(video: torch.Tensor, label: int, tracks: torch.Tensor, size: int, patch: int) -> PretextExample:
    return PretextExample(
        video, label, part_targets(tracks, size, patch), part_motion(tracks, size), part_pose(tracks, size)
    )


def pretext_example(
    seed: int,
    step: int,
    index: int,
    difficulty: float,
    *,
    num_frames: int = 16,
    size: int = 64,
    patch: int = 16,
) -> PretextExample:
    """Example `index` of training step `step`: a fresh clip, its class and where its parts are.

    Its class, its clip, its own difficulty (uniform up to 1.5x the schedule's, capped at 1) and its crop are
    keyed by (seed, step, index) alone.
    """
    rng = keyed_random(seed, "pretext", step, index)
    label = rng.randrange(len(PRETEXT_CLASSES))
    own = min(1.0, difficulty * rng.uniform(0.0, 1.5))
    clip = render_pretext_clip(label, rng, num_frames=num_frames, size=size, difficulty=own)
    crop = v2.RandomResizedCrop(size, scale=crop_scale_for(own), antialias=True)
    with seeded_torch_rng(seed, "pretext-crop", step, index):
        video, tracks = transform_clip(clip, [crop])
    return _example(video, label, tracks, size, patch)


def heldout_example(
    seed: int, index: int, *, num_frames: int = 16, size: int = 64, patch: int = 16
) -> PretextExample:
    """A fixed evaluation clip at full difficulty, through the evaluation resize and centre crop (the
    demo's test transform); classes in turn."""
    label = index % len(PRETEXT_CLASSES)
    clip = render_pretext_clip(
        label, keyed_random(seed, "pretext-heldout", index), num_frames=num_frames, size=size
    )
    video, tracks = transform_clip(
        clip, [v2.Resize(eval_resize_size(size), antialias=True), v2.CenterCrop(size)]
    )
    return _example(video, label, tracks, size, patch)


def difficulty_at(step: int, easy_steps: int, ramp_steps: int) -> float:
    """The curriculum: all easy (0) for `easy_steps`, then rising to the demo's full variety (1) over
    `ramp_steps`."""
    if step < easy_steps:
        return 0.0
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, (step - easy_steps) / ramp_steps)


class PretextBatches(Dataset):
    """Item s is training batch s, `collate_examples` of its examples; for a DataLoader with
    batch_size=None, whose workers then render batches ahead of the training step."""

    def __init__(
        self,
        seed: int,
        steps: int,
        batch_size: int,
        *,
        easy_steps: int = 0,
        ramp_steps: int = 0,
        num_frames: int = 16,
        size: int = 64,
        patch: int = 16,
    ) -> None:
        self.seed = seed
        self.steps = steps
        self.batch_size = batch_size
        self.easy_steps = easy_steps
        self.ramp_steps = ramp_steps
        self.num_frames = num_frames
        self.size = size
        self.patch = patch

    def __len__(self) -> int:
        return self.steps

    def difficulty(self, step: int) -> float:
        return difficulty_at(step, self.easy_steps, self.ramp_steps)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, ...]:
        difficulty = self.difficulty(step)
        examples = [
            pretext_example(
                self.seed, step, i, difficulty, num_frames=self.num_frames, size=self.size, patch=self.patch
            )
            for i in range(self.batch_size)
        ]
        return collate_examples(examples)


def collate_examples(examples: list[PretextExample]) -> tuple[torch.Tensor, ...]:
    """(clips (B, T, 3, H, W), labels (B,), parts (B, T', P), motion (B, T', P, 2), pose (B, T', P, 2))
    stacked."""
    return (
        torch.stack([e.clip for e in examples]),
        torch.tensor([e.label for e in examples]),
        torch.stack([e.parts for e in examples]),
        torch.stack([e.motion for e in examples]),
        torch.stack([e.pose for e in examples]),
    )
