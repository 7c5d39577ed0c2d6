"""The feature store's keys, entries and datasets: honest keys (the same as stores were made with, the file looked up
once per video), entries written whole and read in their stored dtype, unreadable videos named by their dataset
index."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_the_store_key_follows_the_weights_that_make_the_feature_and_nothing_else() -> None:
    """The predictor, which classification skips, must not split one store into two (it did, on a GPU machine
    whose transformers left it uninitialised); a changed encoder or pooler weight must give a new key."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.models.build import build_model
    from vjepa_tune.training.feature_store import store_spec

    cfg = TrainConfig(model="random:tiny")
    cfg.data.crop_size = 64
    cpu = torch.device("cpu")

    def keys(model: torch.nn.Module) -> tuple[str, str]:
        return (store_spec(cfg, model, "backbone", cpu, None).model_key,
                store_spec(cfg, model, "pooler", cpu, None).model_key)

    model = build_model("random:tiny", "pooler_and_head", cfg.lora, ["a", "b"], 0)
    before = keys(model)
    assert before == keys(build_model("random:tiny", "head_only", cfg.lora, ["a", "b"], 0))
    with torch.no_grad():
        model.vjepa2.predictor.embeddings.mask_tokens.add_(1.0)
        assert keys(model) == before
        model.pooler.query_tokens.add_(1.0)
        assert keys(model)[0] == before[0] and keys(model)[1] != before[1]
        model.vjepa2.encoder.layer[0].mlp.fc1.weight.add_(1.0)
        assert keys(model)[0] != before[0]


def test_entry_keys_are_the_keys_stores_were_made_with_and_look_the_file_up_once_per_video(tmp_path: Path) -> None:
    import hashlib
    import json
    import os

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.training.feature_store import EVAL_VIEW, entry_key, entry_keys

    video = tmp_path / "v.mp4"
    video.write_bytes(b"0" * 1000)
    os.utime(video, ns=(1_700_000_000_000_000_000, 1_700_000_000_123_456_789))
    lookups = []

    class CountingPath(type(video)):
        def stat(self, *args: object, **kwargs: object) -> os.stat_result:
            lookups.append(self)
            return super().stat(*args, **kwargs)

    cfg = TrainConfig(model="random:tiny", seed=7)
    sample = Sample(path=CountingPath(video), label=1, id="walk/v.mp4")
    views = [0, 1, 2, EVAL_VIEW]
    entry_keys(sample, [0], cfg)
    for_one_view = len(lookups)
    lookups.clear()
    keys = entry_keys(sample, views, cfg)
    assert len(lookups) == for_one_view, "the file is looked up for all four views as for one"

    def written_out(view: object) -> str:  # the key as every store so far was made: changing it orphans them
        d = cfg.data
        transform = ({"crop": d.crop_size, "train": False} if view == EVAL_VIEW else
                     {"crop": d.crop_size, "train": True, "hflip": d.hflip, "color_jitter": d.color_jitter,
                      "random_erasing": d.random_erasing, "crop_scale": list(d.crop_scale)})
        key = {"path": str(video.resolve()), "size": 1000, "mtime_ns": 1_700_000_000_123_456_789, "id": "walk/v.mp4",
               "frames": d.frames_per_clip, "sampling": d.sampling, "frame_step": None, "transform": transform,
               "view": view, "seed": 7}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]

    assert keys == [written_out(v) for v in views] == [entry_key(sample, v, cfg) for v in views]
    assert len(set(keys)) == 4


def test_entry_writer_writes_everything_before_close_returns_and_raises_a_failed_write(tmp_path: Path) -> None:
    import torch

    from vjepa_tune.training.feature_store import EntryWriter, load_entry

    writer = EntryWriter(threads=2, limit=3)
    features = torch.randn(10, 4, 8).bfloat16()
    for i, feature in enumerate(features):
        writer.put(tmp_path / "ab" / f"{i}.npy", feature, "bf16")
    writer.close()
    for i, feature in enumerate(features):
        assert torch.equal(load_entry(tmp_path / "ab" / f"{i}.npy", "bf16"), feature.float())
    assert not list(tmp_path.rglob("*.tmp"))

    (tmp_path / "file").write_text("not a folder")
    writer = EntryWriter(threads=1, limit=2)
    writer.put(tmp_path / "file" / "x.npy", features[0], "bf16")  # its folder cannot be made
    with pytest.raises(OSError):
        writer.close()


def test_stored_features_are_read_in_the_main_process_in_their_stored_dtype(tmp_path: Path) -> None:
    """Moving 4 MB ViT-L entries out of DataLoader workers cost more than reading them, so the feature pipeline
    uses none, and hands over bf16 entries as bf16 (the model casts them exactly)."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.training.feature_store import FeatureDataset, StoreSpec, entry_key, save_entry

    video = tmp_path / "a.mp4"
    video.write_bytes(b"not decoded here")
    cfg = TrainConfig(model="random:tiny")
    sample = Sample(path=video, label=1, id="a.mp4")
    spec = StoreSpec(root=tmp_path / "store", model_key="k", output="backbone", dtype="bf16", shape=(4, 8))
    feature = torch.randn(4, 8).bfloat16()
    save_entry(spec.entry_path(entry_key(sample, 0, cfg)), feature, "bf16")
    item = FeatureDataset(spec, cfg, [sample], 0, {})[0]
    assert item.inputs.dtype == torch.bfloat16 and torch.equal(item.inputs, feature)
    assert item.label == 1


def test_an_error_during_extraction_is_reported_not_a_write_error_behind_it(tmp_path: Path) -> None:
    import torch

    from vjepa_tune.training.feature_store import EntryWriter

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(KeyboardInterrupt), EntryWriter(threads=1) as writer:
        writer.put(tmp_path / "file" / "x.npy", torch.zeros(2), "fp32")  # will fail on its thread
        raise KeyboardInterrupt


def test_an_entry_left_unreadable_is_reported_by_its_dataset_index(synth_root: Path, tmp_path: Path) -> None:
    """A video that probed fine but failed to decode during extraction has no entry; the batch must name that video
    (its index in the split), not its position in the batch."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.training.feature_store import FeatureDataset, StoreSpec, save_entry
    from vjepa_tune.training.inputs import collate

    cfg = TrainConfig()
    videos = sorted(synth_root.rglob("*.mp4"))[:4]
    samples = [Sample(path=p, label=i % 2, id=f"{p.parent.name}/{p.name}") for i, p in enumerate(videos)]
    spec = StoreSpec(root=tmp_path, model_key="k", output="pooler", dtype="fp32", shape=(3,))
    dataset = FeatureDataset(spec, cfg, samples, 0, unreadable={samples[2].id: "could not be decoded"})
    for i in (1, 3):
        save_entry(dataset.paths[i], torch.full((3,), float(i)), "fp32")
    batch = collate([dataset[1], dataset[2], dataset[3]])
    assert batch.skipped == [2]
    assert batch.index.tolist() == [1, 3] and batch.inputs[:, 0].tolist() == [1.0, 3.0]
