"""The backbone feature store: same results as recomputing, zero backbone passes when warm, honest keys."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from vjepa_tune.cli import main
from vjepa_tune.training.features import BackboneCounter
from vjepa_tune.training.store import cache_list


def _train(root: Path, out: Path, store: Path, *extra: str) -> dict:
    args = ["train", "--model", "random:tiny", "--data.root", str(root), "--out", str(out),
            "--cache.dir", str(store), "--num_epochs", "2", *extra]
    assert main(args) == 0
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    return json.loads((run / "metrics.json").read_text())


@pytest.mark.parametrize("augment", [(), ("--data.color_jitter", "0.3", "--data.random_erasing", "0.5")],
                         ids=["uint8-transport", "erasing-keeps-floats"])
def test_fp32_store_trains_exactly_like_recomputing(synth_root: Path, tmp_path: Path, augment: tuple) -> None:
    common = ("--strategy", "lora", "--lora.dropout", "0.1", "--batch_size", "2", "--accumulation_steps", "2",
              *augment)
    plain = _train(synth_root, tmp_path / "plain", tmp_path / "unused", "--cache.enabled", "false", *common)
    stored = _train(synth_root, tmp_path / "stored", tmp_path / "store", "--cache.dtype", "fp32", *common)
    assert plain["input"] == "clips" and stored["input"].startswith("stored backbone features (fp32")
    for a, b in zip(plain["history"], stored["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["val_acc"] == b["val_acc"]
    assert plain["test"]["confusion"] == stored["test"]["confusion"]


def test_second_run_never_runs_the_backbone_and_changed_files_are_extracted_again(
    synth_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    store = tmp_path / "store"
    _train(root, tmp_path / "first", store, "--strategy", "pooler_and_head")
    assert BackboneCounter.clips > 0
    before = BackboneCounter.calls
    _train(root, tmp_path / "second", store, "--strategy", "lora")  # same backbone output, other strategy
    assert BackboneCounter.calls == before

    video = next(p for p in sorted(root.rglob("*.mp4")))
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    clips_before = BackboneCounter.clips
    _train(root, tmp_path / "third", store, "--strategy", "lora")
    extracted = BackboneCounter.clips - clips_before
    assert 1 <= extracted <= 2, "only the touched video's views are extracted again"


def test_head_only_stores_pooler_vectors_and_shares_the_backbone_pass(synth_root: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    _train(synth_root, tmp_path / "out", store, "--strategy", "head_only")
    stores = {e["output"]: e for e in cache_list(store)}
    assert stores["pooler"]["shape"] == [128] and stores["backbone"]["shape"] == [128, 128]
    expected = 16 * 2 + 8  # two training views per video plus one eval view for val and test
    assert stores["pooler"]["entries"] == stores["backbone"]["entries"] == expected
    calls = BackboneCounter.calls
    _train(synth_root, tmp_path / "out2", store, "--strategy", "pooler_and_head")
    assert BackboneCounter.calls == calls, "the backbone features kept by head_only's extraction are reused"

    other = tmp_path / "other-store"
    _train(synth_root, tmp_path / "out3", other, "--strategy", "lora")
    calls = BackboneCounter.calls
    _train(synth_root, tmp_path / "out4", other, "--strategy", "head_only")
    assert BackboneCounter.calls == calls, "head_only pools stored backbone features instead of decoding"
    pooled = {e["output"]: e for e in cache_list(other)}["pooler"]
    assert pooled["entries"] == expected


def test_backbone_lora_refuses_the_store(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--model", "random:tiny", "--data.root", str(synth_root), "--out", str(tmp_path),
                 "--strategy", "backbone_lora", "--cache.enabled", "true"])
    assert code == 2
    assert "--cache.enabled true cannot be used with --strategy backbone_lora" in capsys.readouterr().err


def test_too_little_disk_is_refused_before_extracting(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 1000, 1000))
    calls = BackboneCounter.calls
    code = main(["train", "--model", "random:tiny", "--data.root", str(synth_root), "--out", str(tmp_path / "o"),
                 "--strategy", "lora", "--cache.dir", str(tmp_path / "store")])
    assert code == 2
    assert "the feature store needs about" in capsys.readouterr().err
    assert BackboneCounter.calls == calls


def test_cache_list_and_clear_commands(synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = tmp_path / "store"
    _train(synth_root, tmp_path / "out", store, "--strategy", "head_only")
    capsys.readouterr()
    assert main(["cache", "list", "--cache.dir", str(store), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {e["output"] for e in listed} == {"pooler", "backbone"}
    assert all(e["model"] == "random:tiny" and e["entries"] == 40 for e in listed)
    assert main(["cache", "clear", "--cache.dir", str(store)]) == 0
    assert "freed" in capsys.readouterr().out
    assert cache_list(store) == []
    assert main(["cache", "prune", "--cache.dir", str(store)]) == 2


def test_the_store_key_follows_the_weights_that_make_the_feature_and_nothing_else() -> None:
    """The predictor, which classification skips, must not split one store into two (it did, on a GPU machine
    whose transformers left it uninitialised); a changed encoder or pooler weight must give a new key."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.training.features import store_spec
    from vjepa_tune.training.setup import build_model

    cfg = TrainConfig(model="random:tiny")
    cfg.data.crop_size = 64

    def keys(model: torch.nn.Module) -> tuple[str, str]:
        return store_spec(cfg, model, "backbone").model_key, store_spec(cfg, model, "pooler").model_key

    model = build_model("random:tiny", "pooler_and_head", cfg.lora, ["a", "b"], 0, lambda _: None)
    before = keys(model)
    assert before == keys(build_model("random:tiny", "head_only", cfg.lora, ["a", "b"], 0, lambda _: None))
    with torch.no_grad():
        model.vjepa2.predictor.embeddings.mask_tokens.add_(1.0)
        assert keys(model) == before
        model.pooler.query_tokens.add_(1.0)
        assert keys(model)[0] == before[0] and keys(model)[1] != before[1]
        model.vjepa2.encoder.layer[0].mlp.fc1.weight.add_(1.0)
        assert keys(model)[0] != before[0]


def test_entry_writer_writes_everything_before_close_returns_and_raises_a_failed_write(tmp_path: Path) -> None:
    import torch

    from vjepa_tune.training.features import _EntryWriter, load_entry

    writer = _EntryWriter(threads=2, limit=3)
    features = torch.randn(10, 4, 8).bfloat16()
    for i, feature in enumerate(features):
        writer.put(tmp_path / "ab" / f"{i}.npy", feature, "bf16")
    writer.close()
    for i, feature in enumerate(features):
        assert torch.equal(load_entry(tmp_path / "ab" / f"{i}.npy", "bf16"), feature.float())
    assert not list(tmp_path.rglob("*.tmp"))

    (tmp_path / "file").write_text("not a folder")
    writer = _EntryWriter(threads=1, limit=2)
    writer.put(tmp_path / "file" / "x.npy", features[0], "bf16")  # its folder cannot be made
    with pytest.raises(OSError):
        writer.close()


def test_stored_features_are_read_in_the_main_process_in_their_stored_dtype(tmp_path: Path) -> None:
    """Moving 4 MB ViT-L entries out of DataLoader workers cost more than reading them, so the feature pipeline
    uses none, and hands over bf16 entries as bf16 (the model casts them exactly)."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.training.features import FeatureDataset, StoreSpec, _save_entry, entry_key

    video = tmp_path / "a.mp4"
    video.write_bytes(b"not decoded here")
    cfg = TrainConfig(model="random:tiny")
    sample = Sample(path=video, label=1, id="a.mp4")
    spec = StoreSpec(root=tmp_path / "store", model_key="k", output="backbone", dtype="bf16", shape=(4, 8))
    feature = torch.randn(4, 8).bfloat16()
    _save_entry(spec.entry_path(entry_key(sample, 0, cfg)), feature, "bf16")
    item = FeatureDataset(spec, cfg, [sample], 0, {})[0]
    assert item["inputs"].dtype == torch.bfloat16 and torch.equal(item["inputs"], feature)
    assert item["labels"] == 1


def test_an_error_during_extraction_is_reported_not_a_write_error_behind_it(tmp_path: Path) -> None:
    import torch

    from vjepa_tune.training.features import _EntryWriter

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(KeyboardInterrupt), _EntryWriter(threads=1) as writer:
        writer.put(tmp_path / "file" / "x.npy", torch.zeros(2), "fp32")  # will fail on its thread
        raise KeyboardInterrupt


def test_stored_features_train_a_whole_step_per_pass_with_the_same_result(
    synth_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guide's batch 1 x 4 accumulation runs on stored features as one pass of 4 (four times fewer pooler passes,
    which bounded the guide's grid on an H200); the step's samples and mean gradient, hence the run, are unchanged."""
    from vjepa_tune.models import strategies

    passes: list[int] = []
    real = strategies.classify_features

    def counted(model, inputs, from_):
        if model.training:
            passes.append(len(inputs))
        return real(model, inputs, from_=from_)

    monkeypatch.setattr(strategies, "classify_features", counted)
    common = ("--strategy", "pooler_and_head", "--batch_size", "1", "--accumulation_steps", "4")
    fused = _train(synth_root, tmp_path / "fused", tmp_path / "store", *common)
    fused_passes, passes[:] = list(passes), []
    one_by_one = _train(synth_root, tmp_path / "single", tmp_path / "store", *common, "--cache.train_batch_size", "1")
    assert set(passes) == {1} and max(fused_passes) == 4 and len(fused_passes) < len(passes) / 3
    for a, b in zip(fused["history"], one_by_one["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["val_acc"] == b["val_acc"]
    assert fused["test"]["confusion"] == one_by_one["test"]["confusion"]
    assert main(["train", "--cache.train_batch_size", "0", "--data.root", str(synth_root)]) == 2


def test_an_entry_left_unreadable_is_reported_by_its_dataset_index(synth_root: Path, tmp_path: Path) -> None:
    """A video that probed fine but failed to decode during extraction has no entry; the batch must name that video
    (its index in the split), not its position in the batch."""
    import torch

    from vjepa_tune.config import TrainConfig
    from vjepa_tune.data.samples import Sample
    from vjepa_tune.training.features import FeatureDataset, StoreSpec, _save_entry, collate_features

    cfg = TrainConfig()
    videos = sorted(synth_root.rglob("*.mp4"))[:4]
    samples = [Sample(path=p, label=i % 2, id=f"{p.parent.name}/{p.name}") for i, p in enumerate(videos)]
    spec = StoreSpec(root=tmp_path, model_key="k", output="pooler", dtype="fp32", shape=(3,))
    dataset = FeatureDataset(spec, cfg, samples, 0, unreadable={samples[2].id: "could not be decoded"})
    for i in (1, 3):
        _save_entry(dataset.paths[i], torch.full((3,), float(i)), "fp32")
    batch = collate_features([dataset[1], dataset[2], dataset[3]])
    assert batch["skipped"] == [2]
    assert batch["index"].tolist() == [1, 3] and batch["inputs"][:, 0].tolist() == [1.0, 3.0]
