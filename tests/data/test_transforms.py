"""Clip transforms: shapes, the reference eval preprocessing, keyed randomness, one draw per clip, crops."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as F

from vjepa_tune.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform, spatial_crops
from vjepa_tune.errors import BadInput

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def smooth_frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(T, H, W, 3) uint8 with smooth random content, different in every frame."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand((t, 3, max(2, h // 8), max(2, w // 8)), generator=gen)
    fine = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return (fine.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def normalised(video_tchw_uint8: torch.Tensor) -> torch.Tensor:
    return (video_tchw_uint8.float() / 255 - MEAN) / STD


def full_train(crop: int = 32) -> ClipTransform:
    return ClipTransform(crop, train=True, color_jitter=0.4, random_erasing=0.5)


@pytest.mark.parametrize("train", [True, False])
def test_output_is_float_tchw_at_the_crop_size_even_from_a_smaller_video(train):
    frames = smooth_frames(4, 24, 40)  # smaller than the crop on both sides
    out = ClipTransform(64, train=train)(frames, ("k",))
    assert out.dtype == torch.float32 and out.shape == (4, 3, 64, 64)
    assert type(out) is torch.Tensor  # no tv_tensors subclass leaks out


def test_eval_normalises_with_imagenet_mean_and_std():
    frames = torch.empty((2, 50, 70, 3), dtype=torch.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 128, 0
    out = ClipTransform(32, train=False)(frames)
    expected = torch.tensor([(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225])
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-5)


def test_eval_equals_the_reference_vjepa2_video_processor():
    from transformers import VJEPA2VideoProcessor

    frames = smooth_frames(3, 90, 150)
    reference = VJEPA2VideoProcessor()(frames.permute(0, 3, 1, 2), return_tensors="pt")[
        "pixel_values_videos"
    ][0]
    ours = ClipTransform(256, train=False)(frames)
    assert ours.shape == reference.shape == (3, 3, 256, 256)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_eval_is_resize_short_side_then_centre_crop_and_ignores_the_key():
    frames = smooth_frames(2, 60, 100)
    video = frames.permute(0, 3, 1, 2)
    expected = normalised(F.center_crop(F.resize(video, [int(48 * 256 / 224)], antialias=True), [48]))
    transform = ClipTransform(48, train=False)
    assert torch.allclose(transform(frames), expected, atol=1e-5)
    assert torch.equal(transform(frames, (1, "a")), transform(frames, (2, "b")))


def test_same_key_same_clip_and_other_keys_other_clips():
    frames = smooth_frames(4, 48, 64)
    transform = full_train()
    first = transform(frames, (42, "class/a.mp4", 0, "transform"))
    assert torch.equal(first, transform(frames, (42, "class/a.mp4", 0, "transform")))
    assert torch.equal(first, full_train()(frames, (42, "class/a.mp4", 0, "transform")))  # a fresh instance
    for other in [
        (42, "class/a.mp4", 1, "transform"),
        (42, "class/b.mp4", 0, "transform"),
        (7, "class/a.mp4", 0),
    ]:
        assert not torch.equal(first, transform(frames, other))


def test_training_draws_leave_the_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    full_train()(smooth_frames(2, 40, 40), (1, "a", 0))
    assert torch.equal(torch.get_rng_state(), state)


def test_one_draw_per_clip_applies_the_same_augmentation_to_every_frame():
    frame = smooth_frames(1, 48, 64)
    still = frame.expand(6, -1, -1, -1).contiguous()  # a clip whose frames are identical
    for view in range(10):
        out = full_train()(still, (3, "still.mp4", view))
        assert all(torch.equal(out[0], out[i]) for i in range(1, 6))


def test_flip_and_crop_are_drawn_per_key_and_hflip_can_be_turned_off():
    frames = smooth_frames(2, 32, 32)
    whole = ClipTransform(32, train=True, crop_scale=(1.0, 1.0))  # square video: the crop is the whole frame
    plain = normalised(frames.permute(0, 3, 1, 2))
    flipped = plain.flip(-1)
    outs = [whole(frames, (0, "a", view)) for view in range(12)]
    assert any(torch.allclose(o, plain, atol=1e-5) for o in outs)
    assert any(torch.allclose(o, flipped, atol=1e-5) for o in outs)
    no_flip = ClipTransform(32, train=True, hflip=False, crop_scale=(1.0, 1.0))
    assert all(torch.allclose(no_flip(frames, (0, "a", view)), plain, atol=1e-5) for view in range(12))


def test_training_needs_a_key_and_refuses_bad_settings():
    with pytest.raises(ValueError, match="key"):
        full_train()(smooth_frames(1, 40, 40))
    with pytest.raises(BadInput, match="crop_scale"):
        ClipTransform(32, train=True, crop_scale=(0.5, 0.2))
    with pytest.raises(BadInput, match="random_erasing"):
        ClipTransform(32, train=True, random_erasing=1.5)


def test_three_crops_take_both_ends_and_the_middle_of_the_long_side():
    crop = 16
    landscape = smooth_frames(2, crop, 3 * crop)  # short side already at the crop: no resize
    left, middle, right = spatial_crops(landscape, crop, 3)
    video = normalised(landscape.permute(0, 3, 1, 2))
    assert torch.allclose(left, video[..., :, 0:crop], atol=1e-5)
    assert torch.allclose(middle, video[..., :, crop : 2 * crop], atol=1e-5)
    assert torch.allclose(right, video[..., :, 2 * crop :], atol=1e-5)
    portrait = smooth_frames(2, 2 * crop, crop)
    top, _, bottom = spatial_crops(portrait, crop, 3)
    video = normalised(portrait.permute(0, 3, 1, 2))
    assert torch.allclose(top, video[..., 0:crop, :], atol=1e-5)
    assert torch.allclose(bottom, video[..., crop:, :], atol=1e-5)


def test_three_crops_resize_the_short_side_to_the_crop_and_one_crop_is_the_eval_view():
    frames = smooth_frames(2, 40, 100)
    crops = spatial_crops(frames, 20, 3)
    assert [c.shape for c in crops] == [(2, 3, 20, 20)] * 3
    resized = normalised(F.resize(frames.permute(0, 3, 1, 2), [20], antialias=True))  # 20 x 50
    assert torch.allclose(crops[2], resized[..., 30:50], atol=1e-5)
    (single,) = spatial_crops(frames, 20, 1)
    assert torch.equal(single, ClipTransform(20, train=False)(frames))
    with pytest.raises(BadInput, match="num_crops"):
        spatial_crops(frames, 20, 2)


@pytest.mark.parametrize("train", [True, False])
def test_uint8_clips_normalised_later_are_exactly_the_normalised_clips(train):
    """DataLoader workers hand over uint8 (a quarter of the bytes); normalising them later changes nothing."""
    from vjepa_tune.data.transforms import normalize_clips

    frames = smooth_frames(4, 40, 56)
    full = ClipTransform(24, train=train, color_jitter=0.4)
    raw = full.unnormalized()
    key = (0, "clip", 3, "transform")
    clip = raw(frames, key)
    assert clip.dtype == torch.uint8 and clip.shape == (4, 3, 24, 24)
    assert torch.equal(normalize_clips(clip), full(frames, key))
    assert torch.equal(normalize_clips(torch.stack([clip, clip])), torch.stack([full(frames, key)] * 2))
    normalised = full(frames, key)
    assert normalize_clips(normalised) is normalised  # float clips are already the model's input


def test_random_erasing_keeps_clips_normalised():
    assert full_train().unnormalized() is None
    with pytest.raises(ValueError, match="random erasing"):
        ClipTransform(32, train=True, random_erasing=0.5, normalize=False)
