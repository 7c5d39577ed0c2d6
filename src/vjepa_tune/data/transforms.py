"""Turning decoded frames into model input: one random draw per clip, keyed so any process repeats it.

Frames are wrapped as a `tv_tensors.Video`, so torchvision's v2 transforms draw their parameters once and
apply them to every frame of the clip. v2 draws from the global torch generator; `seeded_torch_rng(*key)`
seeds it per clip and restores it afterwards, so a clip's augmentation depends on its key only, never on
workers or call order.

Evaluation matches `VJEPA2VideoProcessor` (FACTS.md): resize the short side to int(crop * 256 / 224), centre
crop, scale to [0, 1], ImageNet mean and std.
"""

from __future__ import annotations

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import seeded_torch_rng

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_resize_size(crop_size: int) -> int:
    """Short side before the evaluation centre crop (292 for 256), as the reference processor does it."""
    return int(crop_size * 256 / 224)


def _as_video(frames: torch.Tensor) -> tv_tensors.Video:
    """(T, H, W, 3) uint8 frames as a (T, 3, H, W) video."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ValueError(
            f"expected uint8 frames of shape (T, H, W, 3), got {tuple(frames.shape)} {frames.dtype}"
        )
    return tv_tensors.Video(frames.permute(0, 3, 1, 2))


_NORMALIZE = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def _plain(video: torch.Tensor) -> torch.Tensor:
    return video.as_subclass(torch.Tensor).contiguous()


def normalize_clips(clips: torch.Tensor) -> torch.Tensor:
    """Clips (..., 3, H, W) as the model's float32 input: uint8 ones (from a transform with `normalize=False`)
    normalised with the transform's own last step, on whatever device they are (on the CPU, the same values);
    float ones, already normalised, unchanged."""
    return _NORMALIZE(clips) if clips.dtype == torch.uint8 else clips


class ClipTransform:
    """Frames (T, H, W, 3) uint8 -> normalised float32 (T, 3, crop_size, crop_size).

    train: RandomResizedCrop (area in `crop_scale`), horizontal flip, optional colour jitter (brightness,
    contrast and saturation = strength, hue = strength / 4), then normalisation and optional random erasing
    (probability `random_erasing`, erased pixels set to 0 = the mean colour), all drawn once per clip. eval:
    the reference resize + centre crop. Videos smaller than the crop are scaled up.

    `normalize=False` stops before normalisation and returns uint8: a quarter of the bytes to move from DataLoader
    workers (12.6 MB -> 3.1 MB per ViT-L clip), normalised where the clips are used (`normalize_clips`). Random
    erasing works on normalised values, so it needs `normalize=True`.
    """

    def __init__(
        self,
        crop_size: int,
        train: bool,
        *,
        hflip: bool = True,
        color_jitter: float = 0.0,
        random_erasing: float = 0.0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        normalize: bool = True,
    ) -> None:
        if not normalize and random_erasing > 0:
            raise ValueError("random erasing works on normalised clips: it needs normalize=True")
        if crop_size < 1:
            raise BadInput(f"--data.crop_size must be a positive number of pixels, got {crop_size!r}.")
        if color_jitter < 0:
            raise BadInput(f"--data.color_jitter must be >= 0, got {color_jitter!r}.")
        if not 0 <= random_erasing <= 1:
            raise BadInput(f"--data.random_erasing must be a probability in [0, 1], got {random_erasing!r}.")
        low, high = crop_scale
        if not 0 < low <= high <= 1:
            raise BadInput(
                f"--data.crop_scale must be two fractions 0 < low <= high <= 1, got {list(crop_scale)!r}."
            )
        self.crop_size = crop_size
        self.train = train
        self.hflip = hflip
        self.color_jitter = color_jitter
        self.random_erasing = random_erasing
        self.crop_scale = (float(low), float(high))
        self.normalize = normalize
        normalizing = [_NORMALIZE] if normalize else []
        if train:
            steps: list[v2.Transform] = [
                v2.RandomResizedCrop(crop_size, scale=self.crop_scale, antialias=True)
            ]
            if hflip:
                steps.append(v2.RandomHorizontalFlip())
            if color_jitter > 0:
                s = color_jitter
                steps.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(s / 4, 0.5)))
            steps += normalizing
            if random_erasing > 0:
                steps.append(v2.RandomErasing(p=random_erasing, value=0))
        else:
            steps = [
                v2.Resize(eval_resize_size(crop_size), antialias=True),
                v2.CenterCrop(crop_size),
                *normalizing,
            ]
        self._pipeline = v2.Compose(steps)

    def __call__(self, frames: torch.Tensor, key: tuple = ()) -> torch.Tensor:
        """Transform one clip; `key` (e.g. (seed, sample id, view, 'transform')) fixes every random draw."""
        video = _as_video(frames)
        if not self.train:
            return _plain(self._pipeline(video))
        if not key:
            raise ValueError(
                "a training transform needs a key, or every clip would get the same augmentation"
            )
        with seeded_torch_rng(*key):
            return _plain(self._pipeline(video))

    def unnormalized(self) -> ClipTransform | None:
        """The same transform returning uint8 (see `normalize`), or None where random erasing needs floats."""
        if self.random_erasing > 0:
            return None
        return ClipTransform(self.crop_size, self.train, hflip=self.hflip, color_jitter=self.color_jitter,
                             crop_scale=self.crop_scale, normalize=False)

    def describe(self) -> dict[str, object]:
        """Every setting that shapes the output, e.g. for a feature-store key."""
        return {
            "crop_size": self.crop_size,
            "train": self.train,
            "hflip": self.hflip,
            "color_jitter": self.color_jitter,
            "random_erasing": self.random_erasing,
            "crop_scale": list(self.crop_scale),
            "normalize": self.normalize,
        }

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"ClipTransform({settings})"


def spatial_crops(frames: torch.Tensor, crop_size: int, num_crops: int, normalize: bool = True) -> list[torch.Tensor]:
    """Evaluation views of one clip, each normalised float32 (T, 3, crop_size, crop_size), or uint8 before
    normalisation with `normalize=False` (`normalize_clips` finishes them).

    1 crop: the evaluation transform (reference resize + centre crop). 3 crops (the SlowFast / V-JEPA
    convention): resize the short side to crop_size, then take the start, middle and end of the long side
    (left, centre, right for landscape video; top, middle, bottom for portrait).
    """
    if num_crops == 1:
        return [ClipTransform(crop_size, train=False, normalize=normalize)(frames)]
    if num_crops != 3:
        raise BadInput(f"--num_crops must be 1 or 3, got {num_crops!r}.")
    video = F.resize(_as_video(frames), [crop_size], antialias=True)
    height, width = video.shape[-2:]
    crops = []
    spare_h, spare_w = height - crop_size, width - crop_size
    # Start, middle (rounded as CenterCrop rounds it) and end; the short axis has no spare pixels.
    for top, left in ((0, 0), (int(round(spare_h / 2.0)), int(round(spare_w / 2.0))), (spare_h, spare_w)):
        crop = F.crop(video, top, left, crop_size, crop_size)
        crops.append(_plain(_NORMALIZE(crop) if normalize else crop))
    return crops


def full_frame_clip(frames: torch.Tensor, crop_size: int, normalize: bool = True) -> torch.Tensor:
    """Frames (T, H, W, 3) uint8 -> (T, 3, crop_size, crop_size): the whole frame squashed to the crop, its aspect
    ratio not kept, as VideoMAE v2's detection-feature extractor resizes THUMOS frames. Normalised float32, or
    uint8 with `normalize=False` (`normalize_clips` finishes them). `vjepa-tune features --resize full`; the
    default there is the evaluation transform (`ClipTransform(train=False)`: resize, centre crop), which drops
    the sides of a wide frame."""
    if crop_size < 1:
        raise BadInput(f"crop size must be a positive number of pixels, got {crop_size!r}.")
    video = F.resize(_as_video(frames), [crop_size, crop_size], antialias=True)
    return _plain(_NORMALIZE(video) if normalize else video)
