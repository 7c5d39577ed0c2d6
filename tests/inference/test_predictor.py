"""`load_run` and the `Predictor` from Python: the run's own probabilities, unreadable videos, in-memory clips, and
a cut search that fails on one video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vjepa_tune.cli import main
from vjepa_tune.data.decoding import read_frames
from vjepa_tune.data.transforms import ClipTransform
from vjepa_tune.data.video import UnreadableVideo, probe_video, sample_frame_indices
from vjepa_tune.synth import render_clip, write_video

CLASSES = ["other", "sitting_down", "standing_up", "waving"]


def _first_video(root: Path, cls: str) -> Path:
    return sorted((root / cls).glob("*.mp4"))[0]


def _run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ Python API
def test_load_run_predict_gives_the_runs_own_probabilities(lora_run: Path, synth_root: Path) -> None:
    from vjepa_tune import load_run

    run = load_run(lora_run)
    video = _first_video(synth_root, "waving")
    result = run.predict(video)
    assert result.classes == CLASSES and result.label in CLASSES
    assert abs(sum(result.probabilities().values()) - 1) < 1e-5
    top = result.top_k(3)
    assert len(top) == 3 and top[0] == (result.label, result.score)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)

    # The same clip training evaluated on: uniform frames, eval resize + centre crop, the best model.
    info = probe_video(video)
    frames = read_frames(video, sample_frame_indices(info, run.data.frames_per_clip), info)
    with torch.no_grad():
        logits = run.model(pixel_values_videos=ClipTransform(run.crop_size, train=False)(frames)[None]).logits
    assert torch.allclose(result.probs, torch.softmax(logits, dim=-1)[0], atol=1e-6)

    both = run.predict([video, _first_video(synth_root, "other")])
    assert isinstance(both, list) and torch.allclose(both[0].probs, result.probs, atol=1e-6)
    folder = run.predict(synth_root / "waving")
    assert isinstance(folder, list) and len(folder) == len(list((synth_root / "waving").glob("*.mp4")))


def test_a_single_unreadable_video_raises_with_its_reason(lora_run: Path, tmp_path: Path) -> None:
    from vjepa_tune import load_run

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(UnreadableVideo, match="broken.mp4"):
        load_run(lora_run).predict(broken)


def test_a_video_whose_cut_search_fails_is_reported_and_the_others_still_predicted(
    lora_run: Path, tmp_path: Path
) -> None:
    from vjepa_tune import load_run

    good, bad = tmp_path / "good.mp4", tmp_path / "bad.mp4"
    for path in (good, bad):
        write_video(path, render_clip("wave", 2, 50, size=(64, 64)), fps=25)
    run = load_run(lora_run)
    real = run.find_cuts

    def failing(path: Path, info: object, progress: object = None) -> list[float]:
        if Path(path).name == "bad.mp4":
            raise UnreadableVideo(path, "finding cuts: decoding failed (damaged)")
        return real(path, info, progress)

    run.find_cuts = failing
    results = run.predict_windows([good, bad], window_s=0.64, progress=False)
    assert results[0].ok and results[0].windows and results[0].cuts == []
    assert not results[1].ok and "finding cuts" in results[1].error


def test_predict_frames_labels_in_memory_clips(lora_run: Path) -> None:
    from vjepa_tune import load_run

    run = load_run(lora_run)
    frames = torch.from_numpy(np.ascontiguousarray(render_clip("wave", 7, 16, size=(64, 64))))
    result = run.predict_frames(frames)
    assert result.path is None and result.label in CLASSES
    clip = ClipTransform(run.crop_size, train=False)(frames)[None]
    assert torch.allclose(result.probs, torch.softmax(run.logits(clip), dim=-1)[0])
