"""Writing predictions: JSON, CSV (one row per video or window) and timeline plots."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vjepa_tune.inference.results import DEFAULT_TOP_K, Prediction, _top_k, time_slices
from vjepa_tune.text import counted

if TYPE_CHECKING:  # torch, torchvision and PyAV load when used: the command line starts without them
    import torch
    from matplotlib.figure import Figure


def predictions_json(
    predictions: Sequence[Prediction],
    *,
    top_k: int = DEFAULT_TOP_K,
    run_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
    overlap: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The prediction document (`predict --json`, `--out FILE.json`); `overlap`: which of the videos the run saw in
    training (`data.overlap.Overlap.as_dict`), null when it was not checked."""
    classes = predictions[0].classes if predictions else []
    return {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "classes": classes,
        "settings": settings or {},
        "overlap": overlap,
        "videos": [p.as_dict(top_k) for p in predictions],
    }


def write_predictions_csv(path: Path, predictions: Sequence[Prediction], top_k: int = DEFAULT_TOP_K) -> Path:
    """One table: a `video` row per video, `window`, `segment` and `cut` rows in window mode, `error` rows.

    A video row's `end_s` is the video's duration and its `train_clip_s` the time the run's training clips
    typically spanned; its note says when the video is far longer (`Prediction.long_video`)."""
    k = max(1, min(top_k, len(predictions[0].classes))) if predictions else top_k
    header = ["path", "kind", "start_s", "end_s", "label", "score"]
    header += [f"{name}_{i}" for i in range(1, k + 1) for name in ("label", "prob")]
    header += ["note", "train_clip_s"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for p in predictions:
            if p.error is not None:
                writer.writerow([p.path, "error", "", "", "", "", *([""] * (2 * k)), p.error, ""])
                continue
            writer.writerow(
                [
                    p.path,
                    "video",
                    "",
                    _num(p.duration_s),
                    p.label,
                    _num(p.score),
                    *_flat_top_k(p.probs, p.classes, k),
                    _video_note(p),
                    _num(p.train_clip_s),
                ]
            )
            for w in p.windows:
                best = int(w.probs.argmax())
                note = _window_note(w.whole_video, w.whole_shot)
                writer.writerow(
                    [
                        p.path,
                        "window",
                        _num(w.start_s),
                        _num(w.end_s),
                        p.classes[best],
                        _num(float(w.probs[best])),
                        *_flat_top_k(w.probs, p.classes, k),
                        note,
                        "",
                    ]
                )
            for s in p.segments:
                writer.writerow(
                    [
                        p.path,
                        "segment",
                        _num(s.start_s),
                        _num(s.end_s),
                        s.label,
                        _num(s.score),
                        *([""] * (2 * k)),
                        counted(s.num_windows, "window"),
                        "",
                    ]
                )
            for t in p.cuts:
                writer.writerow([p.path, "cut", _num(t), "", "", "", *([""] * (2 * k)), "a new shot starts", ""])
    return path


def _video_note(p: Prediction) -> str:
    if p.short_video:
        return f"{p.num_frames} frames, fewer than a clip's {p.clip_frames}: the clip repeats frames"
    if not p.long_video:
        return ""
    ratio = p.duration_s / p.train_clip_s  # type: ignore[operator]
    return f"{ratio:.0f}x longer than the training clips: one clip cannot describe it; label it with --window"


def _window_note(whole_video: bool, whole_shot: bool) -> str:
    if whole_video:
        return "the video is shorter than one window: this window covers it"
    return "the shot is shorter than one window: this window covers it" if whole_shot else ""


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _flat_top_k(probs: torch.Tensor, classes: list[str], k: int) -> list[str]:
    cells: list[str] = []
    for label, p in _top_k(probs, classes, k):
        cells += [label, f"{p:.6f}"]
    return cells + [""] * (2 * k - len(cells))


_LABELLED_FRACTION = 0.05
"""Segments narrower than this fraction of the timeline are drawn without their label text."""


def plot_timeline(prediction: Prediction, out_png: Path, min_score: float | None = None) -> Path:
    """Write `timeline_figure` as a PNG."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    timeline_figure(prediction, min_score).savefig(out_png, dpi=110)
    return out_png


def timeline_figure(prediction: Prediction, min_score: float | None = None) -> Figure:
    """Class probabilities over time (the mean of the windows covering each moment, `time_slices`) above the
    segments, cuts drawn as dashed lines; `min_score`, when given, is drawn as the line a moment's top label
    must reach to join a segment."""
    # here, not at the top: the command line starts without torch or matplotlib
    import torch
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not prediction.windows:
        raise ValueError("plot_timeline needs a window-mode prediction.")
    classes = prediction.classes
    slices = time_slices(prediction.windows, prediction.duration_s, prediction.cuts)
    spans = [(piece.start_s, piece.end_s) for piece in slices]
    probs = torch.stack([piece.probs for piece in slices])
    shown = list(range(len(classes))) if len(classes) <= 10 else sorted(set(probs.argmax(dim=1).tolist()))
    colour = {c: f"C{n % 10}" for n, c in enumerate(shown)}
    end = spans[-1][1]

    fig = Figure(figsize=(11, 4.0))
    prob_ax, seg_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for c in shown:
        xs = [t for lo, hi in spans for t in (lo, hi)]
        ys = [float(p) for p in probs[:, c] for _ in range(2)]
        prob_ax.plot(xs, ys, color=colour[c], label=classes[c])
    if min_score is not None:
        prob_ax.axhline(min_score, color="black", linestyle=":", linewidth=1, label="minimum score")
    for n, t in enumerate(prediction.cuts):
        for ax in (prob_ax, seg_ax):
            ax.axvline(t, color="grey", linestyle="--", linewidth=1, label="cut" if n == 0 and ax is prob_ax else None)
    prob_ax.set(ylabel="probability", ylim=(0, 1.02), xlim=(0, end))
    prob_ax.grid(alpha=0.3)
    prob_ax.legend(fontsize="small", loc="upper right", ncol=min(4, len(shown)))
    name = prediction.path.name if prediction.path is not None else "video"
    shots = f", {counted(len(prediction.cuts) + 1, 'shot')}" if prediction.cuts else ""
    prob_ax.set_title(f"{name}: {counted(len(prediction.windows), 'window')}{shots}, "
                      f"{counted(len(prediction.segments), 'segment')}")
    index = {c: i for i, c in enumerate(classes)}
    for s in prediction.segments:
        seg_ax.broken_barh([(s.start_s, s.length_s)], (0, 1), color=colour.get(index[s.label], "grey"))
        if s.length_s < _LABELLED_FRACTION * end:  # too narrow for its name; the colour and the legend tell it
            continue
        seg_ax.text(
            s.start_s + s.length_s / 2,
            0.5,
            f"{s.label}\n{s.score:.2f}",
            ha="center",
            va="center",
            fontsize="x-small",
        )
    seg_ax.set(yticks=[], xlabel="time (s)", ylabel="segments")
    if not prediction.segments:
        seg_ax.legend(handles=[Patch(color="white", label="no segment above the minimum score")], loc="center")
    fig.tight_layout()
    return fig


def timeline_paths(predictions: Sequence[Prediction], folder: Path) -> dict[int, Path]:
    used: set[str] = set()
    out = {}
    for i, p in enumerate(predictions):
        if not p.windows or p.path is None:
            continue
        stem, n = p.path.stem, 1
        name = f"{stem}.timeline.png"
        while name in used:
            n += 1
            name = f"{stem}-{n}.timeline.png"
        used.add(name)
        out[i] = folder / name
    return out
