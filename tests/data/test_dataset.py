"""ClipDataset and collate_clips on small real videos: keyed views, workers, broken videos."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from vjepa_tune.data.dataset import ClipDataset, SkippedClip
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import Sample
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.data.video import probe_video, sample_frame_indices
from vjepa_tune.training.inputs import collate

FRAMES = 4
CROP = 32


def make_samples(make_video, tmp_path, count=4, broken=()):
    samples = []
    for i in range(count):
        if i in broken:
            path = tmp_path / f"broken{i}.mp4"
            path.write_text("not a video")
        else:
            path = make_video(f"clip{i}", 30 + 7 * i, size=(48, 64))
        samples.append(Sample(path=path, label=i % 3, id=f"cls/{path.name}"))
    return samples


def dataset(samples, train=True, sampling="random_window", **kwargs):
    # Crops of at least 60% of the area: a smaller one can fall inside a black block of every numbered frame.
    transform = ClipTransform(CROP, train=train, color_jitter=0.3 if train else 0.0, crop_scale=(0.6, 1.0))
    return ClipDataset(
        samples,
        frames_per_clip=FRAMES,
        sampling=sampling,
        frame_step=3,
        transform=transform,
        seed=5,
        **kwargs,
    )


def batches(ds, num_workers):
    loader = DataLoader(ds, batch_size=3, shuffle=False, num_workers=num_workers, collate_fn=collate)
    return list(loader)


def test_items_have_the_model_input_shape_label_and_index(make_video, tmp_path):
    samples = make_samples(make_video, tmp_path, count=2)
    item = dataset(samples)[1]
    assert item.inputs.shape == (FRAMES, 3, CROP, CROP)
    assert item.inputs.dtype == torch.float32
    assert (item.label, item.index) == (1, 1)


def test_workers_give_the_same_tensors_as_the_main_process(make_video, tmp_path):
    ds = dataset(make_samples(make_video, tmp_path, count=5, broken=(3,)))
    ds.set_view(2)
    main, workers = batches(ds, 0), batches(ds, 2)
    assert len(main) == len(workers) == 2
    for a, b in zip(main, workers, strict=True):
        assert torch.equal(a.inputs, b.inputs)
        assert torch.equal(a.labels, b.labels) and torch.equal(a.index, b.index)
        assert a.skipped == b.skipped
    assert main[1].skipped == [3]


def test_views_draw_other_windows_and_crops_while_each_view_repeats(make_video, tmp_path):
    samples = make_samples(make_video, tmp_path, count=1)
    ds = dataset(samples)
    clips, windows = [], set()
    for view in range(6):
        ds.set_view(view)
        clips.append(ds[0].inputs)
        windows.add(tuple(ds.frame_indices(0)))
        again = dataset(samples)  # a fresh dataset, as in another process
        again.set_view(view)
        assert torch.equal(clips[-1], again[0].inputs)
    assert len(windows) > 1
    assert all(not torch.equal(clips[0], c) for c in clips[1:])


def test_eval_view_is_deterministic_and_is_the_plain_eval_pipeline(make_video, tmp_path):
    samples = make_samples(make_video, tmp_path, count=2)
    ds = dataset(samples, train=False, sampling="uniform")
    ds.set_view(None)
    info = probe_video(samples[1].path)
    expected = ClipTransform(CROP, train=False)(
        read_frames(samples[1].path, sample_frame_indices(info, FRAMES))
    )
    assert torch.equal(ds[1].inputs, expected)
    windowed = dataset(samples, train=False)  # random_window without a view: the centred window
    assert windowed.frame_indices(1) == sample_frame_indices(info, FRAMES, "random_window", 3)


def test_given_infos_are_used_instead_of_probing_again(make_video, tmp_path):
    import dataclasses

    samples = make_samples(make_video, tmp_path, count=2)
    infos, _ = probe_samples(samples, progress=False)
    shorter = {sid: dataclasses.replace(info, num_frames=FRAMES) for sid, info in infos.items()}
    assert all(info.num_frames > FRAMES for info in infos.values())
    ds = dataset(samples, infos=shorter, sampling="uniform")
    given, probed = shorter[samples[0].id], infos[samples[0].id]
    assert sample_frame_indices(given, FRAMES) != sample_frame_indices(probed, FRAMES)
    assert ds.frame_indices(0) == sample_frame_indices(given, FRAMES), "the given info, not a new probe's, is used"


def test_an_unreadable_video_is_skipped_and_reported_never_replaced(make_video, tmp_path):
    samples = make_samples(make_video, tmp_path, count=3, broken=(1,))
    ds = dataset(samples)
    skipped = ds[1]
    assert isinstance(skipped, SkippedClip)
    assert (skipped.index, skipped.sample_id) == (1, "cls/broken1.mp4")
    assert "not a readable video container" in skipped.reason
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch.inputs.shape == (2, FRAMES, 3, CROP, CROP)
    assert batch.labels.tolist() == [0, 2] and batch.labels.dtype == torch.long
    assert batch.index.tolist() == [0, 2]
    assert batch.skipped == [1]


def test_a_batch_of_only_unreadable_videos_is_empty(make_video, tmp_path):
    ds = dataset(make_samples(make_video, tmp_path, count=2, broken=(0, 1)))
    batch = collate([ds[0], ds[1]])
    assert batch.inputs.numel() == 0
    assert batch.labels.numel() == 0 and batch.index.numel() == 0
    assert batch.skipped == [0, 1]
