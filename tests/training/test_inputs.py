"""What the model is fed: one `Batch` type for decoded clips and stored features alike, unreadable samples named by
their dataset index, and clip datasets whose training view changes with the epoch while the eval view never does."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vjepa_tune.config import DataConfig, TrainConfig
from vjepa_tune.data.dataset import Example, SkippedClip
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import Sample, Splits
from vjepa_tune.training.inputs import Batch, clip_datasets, clip_pipeline, collate, forward_clips


def test_collate_stacks_the_readable_examples_and_lists_the_skipped_ones_by_dataset_index() -> None:
    items = [Example(torch.full((2, 3), 1.0), 0, 4), SkippedClip(7, "b.mp4", "damaged"),
             Example(torch.full((2, 3), 2.0), 3, 9)]
    batch = collate(items)
    assert isinstance(batch, Batch) and len(batch) == 2
    assert batch.inputs.shape == (2, 2, 3) and batch.inputs[:, 0, 0].tolist() == [1.0, 2.0]
    assert batch.labels.tolist() == [0, 3] and batch.labels.dtype == torch.long
    assert batch.index.tolist() == [4, 9] and batch.skipped == [7]


def test_a_batch_with_nothing_readable_is_empty_and_still_names_its_videos() -> None:
    batch = collate([SkippedClip(1, "a.mp4", "gone"), SkippedClip(2, "b.mp4", "gone")])
    assert len(batch) == 0 and batch.inputs.numel() == 0 and batch.labels.dtype == torch.long
    assert batch.skipped == [1, 2]


@pytest.fixture(scope="module")
def small(synth_root: Path) -> tuple[TrainConfig, Splits, dict]:
    videos = [sorted((synth_root / name).glob("*.mp4"))[0] for name in ("waving", "other", "sitting_down")]
    samples = [Sample(path=p, label=i, id=f"{p.parent.name}/{p.name}") for i, p in enumerate(videos)]
    splits = Splits(train=samples[:1], val=samples[1:2], test=samples[2:], method="random")
    infos, _ = probe_samples(samples, workers=1, progress=False)
    cfg = TrainConfig(model="random:tiny", data=DataConfig(root=synth_root, crop_size=64, frames_per_clip=8))
    return cfg, splits, infos


def test_training_clips_change_with_the_epoch_and_evaluation_clips_never_do(small) -> None:
    cfg, splits, infos = small
    datasets = clip_datasets(cfg, splits, infos)
    epoch0 = datasets.train_dataset(0)[0].inputs.clone()
    epoch1 = datasets.train_dataset(1)[0].inputs
    assert not torch.equal(epoch0, epoch1), "each epoch draws its own frames and augmentation"
    assert torch.equal(datasets.train_dataset(0)[0].inputs, epoch0), "and the same ones again for the same epoch"
    first = datasets.eval_dataset("val")[0].inputs
    assert torch.equal(datasets.eval_dataset("val")[0].inputs, first)
    assert first.dtype == torch.uint8 and first.shape == (8, 3, 64, 64), "normalised on the device, not here"
    assert [len(datasets.eval_dataset(name)) for name in ("train", "val", "test")] == [1, 1, 1]


def test_the_clip_pipeline_feeds_uint8_clips_to_the_whole_model_normalised(small) -> None:
    from vjepa_tune.data.transforms import normalize_clips
    from vjepa_tune.models.build import build_model

    cfg, splits, infos = small
    pipeline = clip_pipeline(cfg, splits, infos)
    assert pipeline.describe == "clips" and pipeline.forward is forward_clips
    assert pipeline.micro_batch(cfg) == cfg.batch_size and pipeline.workers(cfg) == cfg.num_workers
    model = build_model("random:tiny", "head_only", cfg.lora, ["a", "b", "c"], 0).eval()
    clip = pipeline.eval_dataset("test")[0].inputs[None]
    with torch.no_grad():
        expected = model(pixel_values_videos=normalize_clips(clip)).logits
        assert torch.equal(pipeline.forward(model, clip), expected)
