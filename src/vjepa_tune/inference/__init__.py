"""Using a finished run: load it, label videos whole or in sliding windows, and score it on a split.

`load_run(RUN_DIR)` rebuilds the run's best model and returns a `Predictor`; `predict` labels whole videos the
way the run evaluated its own (same frames, same centre crop, optionally more clips and crops averaged), and
`predict_windows` turns a long recording into action detection: every window is one clip cut as training cut
its clips, laid out shot by shot so that none spans a cut (`inference.shots`); each moment is labelled by the mean
of the windows covering it (`time_slices`), and runs of one label within a shot become segments.
`evaluate_run` scores the run on its own validation or test videos (splits.json) or on another data set, writing
the metrics of training (top-1, top-5, mean class accuracy, macro-F1, confusion matrix) and per-video predictions.

The `predict` and `evaluate` commands are `inference.commands`. Importing this package imports no torch: the heavy
libraries are imported where they are used, so `from vjepa_tune import load_run` and the command line start fast.
"""

from vjepa_tune.inference.evaluate import EVALUATION_DIR, Evaluation, evaluate_run
from vjepa_tune.inference.outputs import plot_timeline, predictions_json, write_predictions_csv
from vjepa_tune.inference.predictor import Predictor, collect_videos, load_run
from vjepa_tune.inference.results import (
    DEFAULT_MIN_SCORE,
    DEFAULT_TOP_K,
    DetectedSegment,
    Prediction,
    TimeSlice,
    WindowPrediction,
    merge_segments,
    shot_bounds,
    time_slices,
    window_bounds,
)

__all__ = [
    "DEFAULT_MIN_SCORE", "DEFAULT_TOP_K", "EVALUATION_DIR", "DetectedSegment", "Evaluation", "Prediction", "Predictor",
    "TimeSlice", "WindowPrediction", "collect_videos", "evaluate_run", "load_run", "merge_segments", "plot_timeline",
    "predictions_json", "shot_bounds", "time_slices", "window_bounds", "write_predictions_csv",
]
