"""What a prediction holds: window layouts shot by shot, each moment's mean of its windows, segments, and when
a video is too long for one clip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vjepa_tune.cli import main
from vjepa_tune.errors import BadInput
from vjepa_tune.inference import Prediction, WindowPrediction, merge_segments, time_slices, window_bounds

CLASSES = ["other", "sitting_down", "standing_up", "waving"]


def _first_video(root: Path, cls: str) -> Path:
    return sorted((root / cls).glob("*.mp4"))[0]


def _run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------ windows
def _windows(*rows: tuple[float, float, list[float]]) -> list[WindowPrediction]:
    return [WindowPrediction(start, end, torch.tensor(probs)) for start, end, probs in rows]


def test_window_bounds_cover_the_video_and_a_short_video_gets_one_marked_window() -> None:
    bounds = window_bounds(10.0, 2.0, 1.0)
    assert [b[0] for b in bounds] == [float(k) for k in range(9)] and bounds[-1][1] == 10.0
    assert window_bounds(10.5, 2.0, 1.0)[-1] == (8.5, 10.5, False), "a last window ends with the video"
    assert window_bounds(1.5, 2.0, 1.0) == [(0.0, 1.5, True)]
    for window, stride in ((0.0, 1.0), (2.0, 3.0), (2.0, 0.0)):
        with pytest.raises(BadInput, match="--window|--stride"):
            window_bounds(10.0, window, stride)


def test_windows_are_laid_out_shot_by_shot_and_never_span_a_cut() -> None:
    bounds = window_bounds(10.0, 2.0, 1.0, cuts=[1.5, 5.5])
    assert bounds == [
        (0.0, 1.5, True),  # a shot shorter than one window: one window covers it
        (1.5, 3.5, False), (2.5, 4.5, False), (3.5, 5.5, False),
        (5.5, 7.5, False), (6.5, 8.5, False), (7.5, 9.5, False), (8.0, 10.0, False),
    ]  # fmt: skip
    for start, end, _ in bounds:
        assert not any(start < cut < end for cut in (1.5, 5.5))


def test_cuts_within_float_noise_make_no_empty_shot_or_sliver() -> None:
    assert window_bounds(10.0, 2.0, 1.0, cuts=[5.0, 5.0, 5.0000001, 0.0, 10.0]) == window_bounds(10.0, 2.0, 1.0, [5.0])
    bounds = window_bounds(2.0, 0.64, 0.16, cuts=[0.8, 1.6])  # 0.16 * k + 0.64 carries float noise
    windows = [WindowPrediction(a, b, torch.tensor([1.0, 0.0])) for a, b, _ in bounds]
    slices = time_slices(windows, 2.0, [0.8, 1.6])
    assert all(p.end_s - p.start_s > 1e-6 for p in slices)
    assert all(a.end_s == b.start_s for a, b in zip(slices, slices[1:], strict=False)), "slices tile the video"
    assert slices[0].start_s == 0.0 and slices[-1].end_s == 2.0


def test_each_moment_takes_the_mean_of_the_windows_covering_it() -> None:
    classes = ["a", "b"]
    windows = _windows((0, 2, [0.9, 0.1]), (1, 3, [0.8, 0.2]), (2, 4, [0.3, 0.7]), (3, 5, [0.2, 0.8]))
    slices = time_slices(windows, 5.0)
    assert [(p.start_s, p.end_s, p.windows) for p in slices] == [
        (0, 1, (0,)), (1, 2, (0, 1)), (2, 3, (1, 2)), (3, 4, (2, 3)), (4, 5, (3,))
    ]  # fmt: skip
    assert slices[2].probs.tolist() == pytest.approx([0.55, 0.45])

    segments = merge_segments(windows, classes, min_score=0.6, duration_s=5.0)
    found = [(s.label, s.start_s, s.end_s, s.num_windows) for s in segments]
    assert found == [("a", 0, 2, 2), ("b", 3, 5, 2)], "2-3 s: a at 0.55, below the minimum score"
    assert segments[0].score == pytest.approx(0.875) and segments[1].score == pytest.approx(0.775)
    everything = merge_segments(windows, classes, min_score=0.0, duration_s=5.0)
    assert [(s.label, s.start_s, s.end_s, s.num_windows) for s in everything] == [("a", 0, 3, 3), ("b", 3, 5, 2)]
    longer = merge_segments(windows, classes, min_score=0.0, min_length_s=2.5, duration_s=5.0)
    assert [s.label for s in longer] == ["a"]
    with pytest.raises(BadInput, match="--min_score"):
        merge_segments(windows, classes, min_score=1.5)

    detection = Prediction(None, classes, None, None, 5.0, windows, segments)
    assert detection.label_at([0.0, 1.99, 2.5, 3.0, 4.99, 5.0, -1.0]) == ["a", "a", "a", "b", "b", None, None]


def test_a_segment_ends_at_a_cut_even_when_the_label_goes_on() -> None:
    windows = _windows((0, 2, [0.9, 0.1]), (2, 4, [0.7, 0.3]), (4, 5, [0.2, 0.8]))
    segments = merge_segments(windows, ["a", "b"], min_score=0.5, duration_s=5.0, cuts=[2.0, 4.0])
    assert [(s.label, s.start_s, s.end_s) for s in segments] == [("a", 0, 2), ("a", 2, 4), ("b", 4, 5)]


def test_a_gap_between_hand_made_windows_takes_the_nearest_window() -> None:
    windows = _windows((0, 1, [0.9, 0.1]), (3, 4, [0.1, 0.9]))
    detection = Prediction(None, ["a", "b"], None, None, 4.0, windows, [])
    assert detection.label_at([1.4, 2.6]) == ["a", "b"]


def test_the_long_video_rule_is_more_than_four_training_clips() -> None:
    def prediction(duration_s: float, clip_s: float | None, windows: bool = False) -> Prediction:
        window = [WindowPrediction(0.0, 1.0, torch.tensor([1.0]))] if windows else []
        return Prediction(Path("v.mp4"), ["a"], torch.tensor([1.0]), duration_s=duration_s, train_clip_s=clip_s,
                          windows=window)

    assert prediction(4.01, 1.0).long_video and not prediction(4.0, 1.0).long_video
    assert not prediction(100.0, None).long_video, "unknown training clips: no claim"
    assert not prediction(100.0, 1.0, windows=True).long_video, "window mode labels it window by window"
    assert prediction(12.0, 2.0).long_video_warning() == (
        "v.mp4 lasts 12.0 s, 6x the run's training clips (typically 2.00 s): its label comes from one clip that "
        "cannot describe it all, however confident it looks. Label it window by window instead: --window 2."
    )
