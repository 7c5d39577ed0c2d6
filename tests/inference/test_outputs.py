"""What a window-mode prediction's timeline draws: each class's probability over time, the cuts, the minimum score,
and the segments with their labels."""

from __future__ import annotations

from pathlib import Path

import torch

from vjepa_tune.inference.outputs import plot_timeline, timeline_figure
from vjepa_tune.inference.results import DetectedSegment, Prediction, WindowPrediction


def _prediction() -> Prediction:
    windows = [WindowPrediction(0.0, 2.0, torch.tensor([0.8, 0.2])), WindowPrediction(1.0, 3.0,
                                                                                    torch.tensor([0.4, 0.6]))]
    segments = [DetectedSegment("walk", 0.0, 1.0, 0.8, 1), DetectedSegment("run", 2.0, 3.0, 0.6, 1)]
    return Prediction(Path("clip.mp4"), ["walk", "run"], torch.tensor([0.6, 0.4]), None, 3.0, windows, segments,
                      [1.5])


def test_the_timeline_draws_each_class_over_time_the_cuts_and_the_segments(tmp_path: Path) -> None:
    prob_ax, seg_ax = timeline_figure(_prediction(), min_score=0.5).axes
    lines = {line.get_label(): line for line in prob_ax.get_lines()}
    walk = lines["walk"]
    # pieces cut at the window edges and the cut; each the mean of the windows covering it
    assert list(walk.get_xdata()) == [0.0, 1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 3.0]
    assert [round(float(y), 6) for y in walk.get_ydata()] == [0.8, 0.8, 0.6, 0.6, 0.6, 0.6, 0.4, 0.4]
    assert [round(float(y), 6) for y in lines["run"].get_ydata()] == [0.2, 0.2, 0.4, 0.4, 0.4, 0.4, 0.6, 0.6]
    assert list(lines["minimum score"].get_ydata()) == [0.5, 0.5]
    assert list(lines["cut"].get_xdata()) == [1.5, 1.5]
    assert prob_ax.get_title() == "clip.mp4: 2 windows, 2 shots, 2 segments"
    bars = [patch.get_x() for patch in seg_ax.patches] or [
        path.vertices[0][0] for c in seg_ax.collections for path in c.get_paths()]
    assert sorted(bars) == [0.0, 2.0]
    assert [t.get_text() for t in seg_ax.texts] == ["walk\n0.80", "run\n0.60"]
    png = plot_timeline(_prediction(), tmp_path / "t" / "clip.timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
