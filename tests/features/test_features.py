"""`vjepa-tune features` and `vjepa_tune.features.extract`: what each video's files hold, where they go, what a rerun
and a second process do, and that a clip's features are the ones `train`'s feature store computed for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import namedtuple
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.cli import main
from vjepa_tune.data.feature_files import read_set, read_video_features
from vjepa_tune.errors import BadInput
from vjepa_tune.features import extract

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def videos(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two classes of the session's data set, two videos each (64 px, 32 frames at 25 fps)."""
    root = tmp_path_factory.mktemp("feature-videos") / "clips"
    for name in ("waving", "sitting_down"):
        (root / name).mkdir(parents=True)
        for video in sorted((synth_root / name).glob("*.mp4"))[:2]:
            shutil.copy(video, root / name / video.name)
    return root


def _features(*argv: str) -> None:
    assert main(["features", *argv]) == 0


def test_each_video_gets_its_rows_and_their_times_under_its_mirrored_folder(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats"
    _features("tiny", str(videos), "--out", str(out), "--window_frames", "8", "--stride_frames", "4", "--dtype",
              "fp16")
    array, meta = read_video_features(out, "waving/waving_0000")
    assert array.shape == (7, 128) and array.dtype == np.float16, "range(0, 32 - 8 + 1, 4): 7 windows"
    assert meta["rows"] == 7 and meta["fps"] == 25.0 and meta["num_frames"] == 32
    assert (meta["window_frames"], meta["stride_frames"]) == (8, 4)
    assert meta["window_s"] == pytest.approx(0.32) and meta["stride_s"] == pytest.approx(0.16)
    assert meta["row_start_s"][:2] == [0.0, 0.16] and meta["row_end_s"][-1] == pytest.approx(1.28)
    assert (meta["model"], meta["layers"], meta["pool"], meta["resize"]) == ("tiny", [3], "mean", "crop")
    assert "final layer norm" in meta["layer_norm"]
    document = read_set(out)
    assert document["actionformer"] == {"feat_stride": 4, "num_frames": 8, "default_fps": 25.0, "input_dim": 128}
    assert sorted(v["key"] for v in document["videos"]) == [
        "sitting_down/sitting_down_0000", "sitting_down/sitting_down_0001", "waving/waving_0000",
        "waving/waving_0001"]


def test_a_795_frame_video_gives_195_rows_of_16_frame_windows_every_4_as_videomae_v2_lays_them_out(
    tmp_path: Path,
) -> None:
    from vjepa_tune.synth import write_video

    frames = np.random.default_rng(0).integers(0, 256, (795, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "video_test_0000004.mp4", frames, fps=30)
    out = tmp_path / "feats"
    _features("random:tiny", str(tmp_path / "video_test_0000004.mp4"), "--out", str(out), "--frames_per_clip", "2",
              "--layers", "0,-1")
    array, meta = read_video_features(out, "video_test_0000004")
    assert array.shape == (195, 256) and meta["rows"] == 195 and meta["layers"] == [0, 3]
    assert meta["row_start_s"][-1] == pytest.approx(776 / 30) and meta["row_end_s"][-1] == pytest.approx(792 / 30)
    assert (meta["window_s"], meta["stride_s"]) == (pytest.approx(16 / 30), pytest.approx(4 / 30))
    padded = extract("random:tiny", tmp_path / "video_test_0000004.mp4", frames_per_clip=2, pad_last=True,
                     progress=False)[0]
    assert padded.features.shape == (196, 128) and padded.end_s[-1] == pytest.approx(795 / 30)


def test_the_python_api_returns_the_arrays_the_command_writes(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "feats"
    _features("tiny", str(videos / "waving"), "--out", str(out), "--window_frames", "16", "--stride_frames", "8")
    results = extract("tiny", videos / "waving", window_frames=16, stride_frames=8, progress=False)
    assert [r.path.name for r in results] == ["waving_0000.mp4", "waving_0001.mp4"]
    written, meta = read_video_features(out, "waving_0000")
    assert np.array_equal(results[0].features, written)
    assert results[0].start_s == meta["row_start_s"] and results[0].fps == 25.0


def test_features_of_a_clip_equal_what_the_training_feature_store_computed_for_it(
    tiny_run: Path, synth_root: Path, tmp_path: Path
) -> None:
    """The session's `lora` run on `tiny` stored every test video's evaluation clip (bf16); a window spanning the
    whole 32-frame video, sampled to the run's 16 frames, is that clip."""
    from vjepa_tune.models.adapters import unwrap
    from vjepa_tune.runs.checkpoint import load_run_model
    from vjepa_tune.runs.folder import read_splits
    from vjepa_tune.training.feature_store import EVAL_VIEW, entry_key, load_entry, store_spec

    model, cfg, _ = load_run_model(tiny_run)
    sample = read_splits(tiny_run, synth_root).test[0]
    spec = store_spec(cfg, unwrap(model), "backbone", torch.device("cpu"), None)
    stored = load_entry(spec.entry_path(entry_key(sample, EVAL_VIEW, cfg)), spec.dtype)

    (result,) = extract(tiny_run, sample.path, window_frames=32, stride_frames=32, pool="tokens", progress=False)
    assert result.features.shape == (1, 128, 128), "8 temporal x 4 x 4 spatial tokens, 128 channels"
    rounded = torch.from_numpy(result.features[0]).to(torch.bfloat16).float()
    assert torch.equal(rounded, stored)
    (pooled,) = extract(tiny_run, sample.path, window_frames=32, stride_frames=32, pool="pooler", progress=False)
    with torch.no_grad():
        logits = unwrap(model).classifier(torch.from_numpy(pooled.features))
    from vjepa_tune import load_run

    expected = load_run(tiny_run, device="cpu").logits(_eval_clip(sample.path)[None])
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)  # the pooler row is what the classifier reads


def test_a_backbone_lora_run_gives_the_features_of_its_adapted_backbone(
    trained_run: Callable[[str], Path], synth_root: Path
) -> None:
    from vjepa_tune.models.adapters import backbone_features
    from vjepa_tune.runs.checkpoint import load_run_model

    run = trained_run("backbone_lora")
    video = sorted((synth_root / "waving").glob("*.mp4"))[0]
    (adapted,) = extract(run, video, window_frames=32, stride_frames=32, pool="tokens", progress=False)
    model, _, _ = load_run_model(run)
    with torch.no_grad():
        expected = backbone_features(model, _eval_clip(video)[None])  # through peft, LoRA applied on the fly
    torch.testing.assert_close(torch.from_numpy(adapted.features), expected, rtol=1e-4, atol=1e-4)
    (base,) = extract("random:tiny", video, window_frames=32, stride_frames=32, pool="tokens", progress=False)
    assert not np.allclose(base.features, adapted.features, atol=1e-3), "the adapters moved the features"


def _eval_clip(video: Path) -> torch.Tensor:
    from vjepa_tune.data.decoding import read_frames
    from vjepa_tune.data.transforms import ClipTransform
    from vjepa_tune.data.video import probe_video, sample_frame_indices

    info = probe_video(video)
    return ClipTransform(64, train=False)(read_frames(video, sample_frame_indices(info, 16), info))


def test_a_pretraining_run_is_read_through_its_model_folder(videos: Path, tmp_path: Path) -> None:
    """A run folder holding model/config.json (what `pretrain` writes) is a model source; a plain VJEPA2Model
    folder (no pooler, no classifier) loads."""
    from vjepa_tune.models.loading import load_model

    backbone = load_model("tiny", num_labels=1, id2label=None, log=lambda _: None).vjepa2
    run = tmp_path / "pretrain-run"
    backbone.save_pretrained(run / "model")
    (run / "config.yaml").write_text("model: tiny\n")
    (from_run,) = extract(run, videos / "waving" / "waving_0000.mp4", window_frames=16, progress=False)
    (from_tiny,) = extract("tiny", videos / "waving" / "waving_0000.mp4", window_frames=16, progress=False)
    assert np.array_equal(from_run.features, from_tiny.features)
    (tmp_path / "not-a-model").mkdir()
    with pytest.raises(BadInput, match="is neither a Hugging Face model folder"):
        extract(tmp_path / "not-a-model", videos, progress=False)


def test_layers_pooling_resizing_and_resampling_are_kept_and_said(videos: Path, tmp_path: Path) -> None:
    video = videos / "waving" / "waving_0001.mp4"
    (last,) = extract("tiny", video, window_frames=16, stride_frames=8, progress=False)
    (two,) = extract("tiny", video, window_frames=16, stride_frames=8, layers=[1, -1], progress=False)
    assert two.features.shape == (3, 256)
    assert np.array_equal(two.features[:, 128:], last.features), "layers are concatenated in the order given"
    (timed,) = extract("tiny", video, window_frames=16, stride_frames=16, pool="time", progress=False)
    assert timed.features.shape == (2 * 8, 128), "16 frames per clip: 8 temporal tokens per window"
    assert timed.start_s[:2] == [0.0, 0.08] and timed.end_s[7] == pytest.approx(0.64)
    out = tmp_path / "feats"
    _features("tiny", str(video), "--out", str(out), "--window_frames", "12", "--stride_frames", "12", "--fps",
              "12.5", "--pad_last", "--resize", "full")
    array, meta = read_video_features(out, "waving_0001")
    assert meta["resampled"] and meta["fps"] == 12.5 and meta["num_frames"] == 16
    assert array.shape == (2, 128), "one whole window of 12 frames at 12.5 fps, and one ending at the last frame"
    assert meta["row_start_s"] == [0.0, pytest.approx(0.32)] and meta["resize"] == "full"
    assert meta["resample_fps"] == 12.5 and meta["pad_last"] is True


def test_a_rerun_skips_complete_videos_writes_damaged_ones_again_and_refuses_other_settings(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "feats"
    argv = ["tiny", str(videos), "--out", str(out), "--window_frames", "16", "--stride_frames", "8"]
    _features(*argv)
    first = {p: p.read_bytes() for p in out.rglob("*.np[y]")}
    cut = out / "waving" / "waving_0000.npy"
    cut.write_bytes(cut.read_bytes()[:-10])
    (out / "sitting_down" / "sitting_down_0001.json").unlink()
    untouched = out / "waving" / "waving_0001.npy"
    stamp = untouched.stat().st_mtime_ns
    capsys.readouterr()
    _features(*argv)
    assert "2 videos to extract" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*.np[y]")} == first
    assert untouched.stat().st_mtime_ns == stamp, "a complete video is not written again"
    assert main(["features", *argv[:-1], "4"]) == 2
    assert "holds features made with other settings: stride_frames 8 (now 4)" in capsys.readouterr().err


def test_unreadable_videos_are_reported_and_the_others_written(videos: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(videos / "waving", folder)
    (folder / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "feats"
    _features("tiny", str(folder), "--out", str(out))
    err = capsys.readouterr().err
    assert f"skipping {folder / 'broken.mp4'}: not a readable video container" in err
    document = read_set(out)
    assert [s["video"] for s in document["skipped"]] == [str(folder / "broken.mp4")]
    assert document["num_videos"] == 2
    assert main(["features", "tiny", str(folder / "broken.mp4"), "--out", str(tmp_path / "none")]) == 2
    assert "no video gave features" in capsys.readouterr().err
    assert not (tmp_path / "none").exists(), "a failed command leaves no folder behind"


def test_same_named_videos_stay_apart_and_one_name_for_two_files_is_refused(
    videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "in" / "a", tmp_path / "in" / "b"
    for folder in (a, b):
        folder.mkdir(parents=True)
        shutil.copy(videos / "waving" / "waving_0000.mp4", folder / "clip.mp4")
    out = tmp_path / "feats"
    _features("tiny", str(a), str(b), "--out", str(out))
    assert (out / "a" / "clip.npy").is_file() and (out / "b" / "clip.npy").is_file()
    shutil.copy(videos / "waving" / "waving_0000.mp4", a / "clip.mkv")
    assert main(["features", "tiny", str(a), "--out", str(tmp_path / "other")]) == 2
    assert "would both be written as clip.npy" in capsys.readouterr().err


def test_pooler_needs_a_trained_run_and_tokens_that_do_not_fit_are_refused_with_their_size(
    videos: Path, tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["features", "tiny", str(videos), "--out", str(tmp_path / "p"), "--pool", "pooler"]) == 2
    assert "--pool pooler takes a trained run's attentive pooler" in capsys.readouterr().err
    assert main(["features", str(tiny_run), str(videos), "--out", str(tmp_path / "p"), "--pool", "pooler",
                 "--layers", "1"]) == 2
    assert "--pool pooler pools the last layer" in capsys.readouterr().err
    assert main(["features", "tiny", str(videos), "--out", str(tmp_path / "p"), "--frames_per_clip", "6",
                 "--layers", "4"]) == 2
    assert "--layers 4 is not a layer of this encoder, which has 4" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**6, 10**6 - 1000, 1000))
    assert main(["features", "tiny", str(videos), "--out", str(tmp_path / "t"), "--pool", "tokens"]) == 2
    err = capsys.readouterr().err
    assert "the features need about 1.25 MiB but" in err and "--pool tokens keeps every token" in err
    assert not (tmp_path / "t").exists()


def test_two_processes_write_exactly_what_one_process_writes(videos: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    common = ["-m", "vjepa_tune", "features", "random:tiny", str(videos), "--window_frames", "8",
              "--stride_frames", "4", "--batch_size", "3"]
    one = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "one")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "vjepa_tune", *common[2:], "--out", str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "4 videos written by 2 processes (2, 2)" in two.stderr
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.suffix in (".npy",
                                                                                                           ".json"))
    assert len(files) == 4 * 2 + 1
    for name in files:
        if name.name == "features.json":
            a, b = json.loads((tmp_path / "one" / name).read_text()), json.loads((tmp_path / "two" / name).read_text())
            assert a == b
        else:
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
