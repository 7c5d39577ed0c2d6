"""Extraction and the stored-feature pipeline end to end: the same results as recomputing, zero backbone passes
when warm, one backbone pass shared by head_only and the other strategies, the run's precision honoured."""

from __future__ import annotations

import json
import os
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from vjepa_tune.cli import main
from vjepa_tune.config import CacheConfig
from vjepa_tune.training.extraction import BackboneCounter
from vjepa_tune.training.store import cache_list


def _train(root: Path, out: Path, store: Path, *extra: str) -> dict:
    args = ["train", "--model", "random:tiny", "--data.root", str(root), "--out", str(out),
            "--cache.dir", str(store), "--num_epochs", "2", *extra]
    assert main(args) == 0
    (run,) = [d for d in out.iterdir() if d.is_dir()]
    return json.loads((run / "metrics.json").read_text())


def _train_in_python(root: Path, out: Path, store: Path, passes: list[int], **settings: object) -> dict:
    """A two-epoch run through the Python API, recording the batch size of every training pass of the classifier
    (a forward hook, set before the first epoch)."""
    import torch

    from vjepa_tune.config import DataConfig, TrainConfig, validate
    from vjepa_tune.models.adapters import unwrap
    from vjepa_tune.training.recipe import train

    def count(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        if module.training:
            passes.append(len(args[0]))

    def hook_once(epoch: int, model: torch.nn.Module) -> None:
        if epoch == 0:
            unwrap(model).classifier.register_forward_hook(count)

    settings.setdefault("cache", CacheConfig(dir=store))
    cfg = TrainConfig(model="random:tiny", out=out, num_epochs=2, data=DataConfig(root=root), **settings)
    return train(validate(cfg), log=lambda _: None, before_epoch=hook_once).metrics


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


def test_stored_features_train_a_whole_step_per_pass_with_the_same_result(synth_root: Path, tmp_path: Path) -> None:
    """The guide's batch 1 x 4 accumulation runs on stored features as one pass of 4 (four times fewer pooler passes,
    BENCHMARKS.md); the step's samples and mean gradient, hence the run, are unchanged."""
    fused_passes: list[int] = []
    fused = _train_in_python(synth_root, tmp_path / "fused", tmp_path / "store", fused_passes,
                             strategy="pooler_and_head", batch_size=1, accumulation_steps=4)
    passes: list[int] = []
    one_by_one = _train_in_python(synth_root, tmp_path / "single", tmp_path / "store", passes,
                                  strategy="pooler_and_head", batch_size=1, accumulation_steps=4,
                                  cache=CacheConfig(dir=tmp_path / "store", train_batch_size=1))
    assert set(passes) == {1} and max(fused_passes) == 4 and len(fused_passes) < len(passes) / 3
    for a, b in zip(fused["history"], one_by_one["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-4)
        assert a["val_acc"] == b["val_acc"]
    assert fused["test"]["confusion"] == one_by_one["test"]["confusion"]
    assert main(["train", "--cache.train_batch_size", "0", "--data.root", str(synth_root)]) == 2


def test_extraction_computes_in_the_runs_precision_and_names_it_in_the_store_key(synth_root: Path, tmp_path: Path
                                                                                  ) -> None:
    """`--precision` reaches extraction: fp32 entries are the plain forward of the clip exactly, bf16 entries are
    computed under bf16 autocast (close, not equal), and the two never share a store folder."""
    import torch

    from vjepa_tune.config import DataConfig, TrainConfig
    from vjepa_tune.data.probing import probe_samples
    from vjepa_tune.data.samples import Sample, Splits
    from vjepa_tune.data.transforms import normalize_clips
    from vjepa_tune.models.adapters import backbone_features
    from vjepa_tune.models.build import build_model
    from vjepa_tune.training.extraction import feature_pipeline
    from vjepa_tune.training.inputs import clip_datasets

    videos = [sorted((synth_root / name).glob("*.mp4"))[0] for name in ("waving", "other", "sitting_down")]
    samples = [Sample(path=p, label=i, id=f"{p.parent.name}/{p.name}") for i, p in enumerate(videos)]
    splits = Splits(train=samples[:1], val=samples[1:2], test=samples[2:], method="random")
    infos, _ = probe_samples(samples, workers=1, progress=False)
    cpu = torch.device("cpu")
    stored = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(model="random:tiny", strategy="pooler_and_head", precision=precision, num_epochs=1,
                          data=DataConfig(root=synth_root, crop_size=64),
                          cache=CacheConfig(dir=tmp_path / "store", dtype="fp32"))
        model = build_model(cfg.model, cfg.strategy, cfg.lora, ["a", "b", "c"], cfg.seed)
        pipeline = feature_pipeline(cfg, model, splits, infos, cpu, log=lambda _: None)
        stored[precision] = pipeline.eval_dataset("val")[0].inputs.float()
    assert len(list((tmp_path / "store").iterdir())) == 2, "one store folder per precision"
    clip = clip_datasets(cfg, splits, infos).eval_dataset("val")[0].inputs
    with torch.no_grad():
        plain = backbone_features(model, normalize_clips(clip[None]))[0]
    assert torch.equal(stored["fp32"], plain)
    assert not torch.equal(stored["bf16"], plain) and torch.allclose(stored["bf16"], plain, atol=0.1, rtol=0.1)


def test_every_entry_holds_its_own_clips_features_when_batches_are_written_one_behind(synth_root: Path,
                                                                                     tmp_path: Path) -> None:
    """Extraction queues a batch's forward before it writes the previous batch's entries (on a GPU the forward runs
    while the next clips arrive): across batch boundaries and a partial last batch, each backbone and pooler entry is
    its own clip's plain forward, exactly."""
    import torch

    from vjepa_tune.config import DataConfig, TrainConfig
    from vjepa_tune.data.probing import probe_samples
    from vjepa_tune.data.samples import Sample, Splits
    from vjepa_tune.data.transforms import normalize_clips
    from vjepa_tune.models.adapters import backbone_features, pooled_features
    from vjepa_tune.models.build import build_model
    from vjepa_tune.training.extraction import SplitViews, feature_pipeline
    from vjepa_tune.training.feature_store import EVAL_VIEW, entry_keys, load_entry, store_spec
    from vjepa_tune.training.inputs import clip_datasets

    videos = [p for name in ("waving", "other") for p in sorted((synth_root / name).glob("*.mp4"))[:3]]
    samples = [Sample(path=p, label=i % 2, id=f"{p.parent.name}/{p.name}") for i, p in enumerate(videos)]
    splits = Splits(train=samples[:4], val=samples[4:5], test=samples[5:], method="random")
    infos, _ = probe_samples(samples, workers=1, progress=False)
    cfg = TrainConfig(model="random:tiny", strategy="head_only", num_epochs=2,
                      data=DataConfig(root=synth_root, crop_size=64),
                      cache=CacheConfig(dir=tmp_path / "store", dtype="fp32", batch_size=3))
    model = build_model(cfg.model, cfg.strategy, cfg.lora, ["a", "b"], cfg.seed)
    cpu = torch.device("cpu")
    before = BackboneCounter.calls
    feature_pipeline(cfg, model, splits, infos, cpu, log=lambda _: None)
    assert BackboneCounter.calls - before == 4, "10 clips (4 videos x 2 views, val, test) in batches of 3"

    views = SplitViews(splits, clip_datasets(cfg, splits, infos))
    backbone, pooler = (store_spec(cfg, model, output, cpu, None) for output in ("backbone", "pooler"))
    for index in range(len(samples)):
        wanted = [0, 1] if index < len(splits.train) else [EVAL_VIEW]
        clips = views.training_views(index, wanted) if index < len(splits.train) else [views.eval_view(index)]
        for key, clip in zip(entry_keys(samples[index], wanted, cfg), clips, strict=True):
            with torch.no_grad():
                plain = backbone_features(model, normalize_clips(clip[None]))
                pooled = pooled_features(model, plain)[0]
            assert torch.equal(load_entry(backbone.entry_path(key), "fp32"), plain[0]), (index, key)
            assert torch.allclose(load_entry(pooler.entry_path(key), "fp32"), pooled, atol=1e-6), (index, key)


def test_copies_go_through_pinned_memory_on_a_cuda_device_only() -> None:
    """Pinned staging is for CUDA (torch cannot pin memory without it); elsewhere the same path copies plainly."""
    import torch

    from vjepa_tune.training.extraction import Encoding, Staging

    model = torch.nn.Linear(2, 2)
    assert Encoding(model, torch.device("cuda"), torch.bfloat16).staging == Staging(torch.device("cuda"), True)
    assert not Encoding(model, torch.device("cpu"), None).staging.pinned
    assert not Encoding(model, torch.device("cuda"), None, pinned=False).staging.pinned
    staging = Staging(torch.device("cpu"), pinned=False)
    clips = [torch.randint(0, 255, (2, 3, 4, 4), dtype=torch.uint8) for _ in range(3)]
    assert torch.equal(staging.to_device(clips), torch.stack(clips))
    feats = torch.randn(3, 5)
    assert torch.equal(staging.to_host(feats, torch.bfloat16).wait(), feats.bfloat16())
