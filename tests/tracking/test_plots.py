"""Each plot writes a real PNG of a sensible size and refuses input it could only draw as an empty picture."""

from __future__ import annotations

import struct

import pytest

from vjepa_tune.tracking.plots import (
    collapse_signals_figure,
    params_vs_accuracy_figure,
    plot_params_vs_accuracy,
    plot_scaling,
    plot_training_curves,
    pretraining_loss_figure,
    probe_accuracy_figure,
    scaling_figure,
    training_curves_figure,
)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _assert_sensible_png(path) -> None:
    width, height = _png_size(path)
    assert 300 <= width <= 3000 and 200 <= height <= 2000, (width, height)


def _lines(ax) -> dict[str, tuple[list[float], list[float]]]:
    """Every labelled line of an axes: its x and y data."""
    return {line.get_label(): ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
            for line in ax.get_lines() if not line.get_label().startswith("_")}


def _legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_training_curves_draw_each_runs_losses_and_validation_accuracy_leaving_gaps(tmp_path) -> None:
    histories = {
        "head_only": [
            {"epoch": 1, "train_loss": 1.3, "val_acc": 0.4, "val_loss": 1.2},
            {"epoch": 2, "train_loss": 1.1, "val_acc": None},  # no validation that epoch: a gap, not a crash
        ],
        "lora": [{"epoch": 1, "train_loss": 1.2, "val_acc": 0.6}],
    }
    loss_ax, acc_ax = training_curves_figure(histories).axes
    assert _lines(loss_ax) == {"head_only (train)": ([1.0, 2.0], [1.3, 1.1]), "head_only (val)": ([1.0], [1.2]),
                               "lora (train)": ([1.0], [1.2])}
    assert _lines(acc_ax) == {"head_only": ([1.0], [0.4]), "lora": ([1.0], [0.6])}
    assert (loss_ax.get_title(), loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("loss", "epoch", "loss")
    assert (acc_ax.get_title(), acc_ax.get_ylabel()) == ("validation accuracy", "accuracy")
    assert _legend(acc_ax) == ["head_only", "lora"]
    assert loss_ax.get_lines()[1].get_linestyle() == "--", "validation loss dashed"
    out = plot_training_curves(histories, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    _assert_sensible_png(out)


def test_several_seeds_curves_are_their_mean_with_the_range_they_span_shaded() -> None:
    seeds = [[{"epoch": 1, "train_loss": 1.0, "val_acc": 0.25}, {"epoch": 2, "train_loss": 0.5, "val_acc": 0.5}],
             [{"epoch": 1, "train_loss": 2.0, "val_acc": 0.75}, {"epoch": 2, "train_loss": 0.7, "val_acc": 1.0}]]
    loss_ax, acc_ax = training_curves_figure({"lora": seeds, "head_only": seeds[0]}).axes
    assert _lines(acc_ax) == {"lora (mean of 2)": ([1.0, 2.0], [0.5, 0.75]), "head_only": ([1.0, 2.0], [0.25, 0.5])}
    assert _lines(loss_ax)["lora (mean of 2) (train)"] == ([1.0, 2.0], [1.5, 0.6])
    (band,) = acc_ax.collections  # only the strategy with several seeds has a band
    vertices = band.get_paths()[0].vertices
    assert {(float(x), float(y)) for x, y in vertices} >= {(1.0, 0.25), (1.0, 0.75), (2.0, 0.5), (2.0, 1.0)}
    assert acc_ax.get_title() == "validation accuracy (shaded: the range over seeds)"


def test_scaling_draws_a_95_percent_interval_as_an_uneven_error_bar() -> None:
    (ax,) = scaling_figure({"lora": [(10, 0.5, 0.25, 0.6), (20, 0.875, 0.69, 0.96)]}).axes
    (container,) = ax.containers
    (bars,) = container.lines[2]
    assert [(round(float(seg[0][1]), 6), round(float(seg[1][1]), 6)) for seg in bars.get_segments()] == [
        (0.25, 0.6), (0.69, 0.96)]


def test_params_vs_accuracy_draws_an_error_bar_where_an_interval_is_given() -> None:
    (ax,) = params_vs_accuracy_figure([("head_only", 516, 0.5), ("lora", 61_956, 0.875, 0.69, 0.96)]).axes
    (bars,) = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert [(round(float(s[0][1]), 6), round(float(s[1][1]), 6)) for s in bars.get_segments()] == [(0.69, 0.96)]
    assert _legend(ax) == ["head_only: 50.0%, 516 params", "lora: 87.5%, 61,956 params"]


def test_scaling_draws_each_strategy_by_size_with_error_bars_where_given(tmp_path) -> None:
    points = {
        "head_only": [(200, 0.7, 0.02), (10, 0.3, 0.1), (50, 0.5, 0.05)],
        "lora": [(10, 0.35), (50, 0.6), (200, 0.85)],
    }
    (ax,) = scaling_figure(points).axes
    series = {bars.get_label(): bars for bars in ax.containers}  # one errorbar container per strategy
    assert {name: (list(b.lines[0].get_xdata()), list(b.lines[0].get_ydata())) for name, b in series.items()} == {
        "head_only": ([10, 50, 200], [0.3, 0.5, 0.7]), "lora": ([10, 50, 200], [0.35, 0.6, 0.85])}
    (bars,) = series["head_only"].lines[2]
    assert [round(float(seg[1][1] - seg[0][1]), 6) for seg in bars.get_segments()] == [0.2, 0.1, 0.04], "2 x std"
    assert not series["lora"].has_yerr
    assert ax.get_xscale() == "log", "sizes spanning 20x"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("videos per class", "test accuracy")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "50", "200"]
    assert _legend(ax) == ["head_only", "lora"]
    (linear,) = scaling_figure({"lora": [(10, 0.5), (20, 0.6)]}).axes
    assert linear.get_xscale() == "linear"
    _assert_sensible_png(plot_scaling(points, tmp_path / "scaling.png"))


def test_params_vs_accuracy_draws_one_named_point_per_strategy_on_a_log_axis(tmp_path) -> None:
    points = [("head_only", 4_100, 0.55), ("lora", 495_620, 0.78), ("pooler_and_head", 49_340_420, 0.83)]
    (ax,) = params_vs_accuracy_figure(points).axes
    drawn = [tuple(float(v) for v in c.get_offsets()[0]) for c in ax.collections]
    assert drawn == [(4_100.0, 0.55), (495_620.0, 0.78), (49_340_420.0, 0.83)]
    assert _legend(ax) == ["head_only: 55.0%, 4,100 params", "lora: 78.0%, 495,620 params",
                           "pooler_and_head: 83.0%, 49,340,420 params"]
    assert ax.get_xscale() == "log" and ax.get_xlim() == pytest.approx((4_100 / 3, 49_340_420 * 3))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("trainable parameters", "accuracy")
    _assert_sensible_png(plot_params_vs_accuracy(points, tmp_path / "params.png"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out: plot_training_curves({}, out), "at least one history"),
        (lambda out: plot_training_curves({"lora": []}, out), "empty history for 'lora'"),
        (lambda out: plot_training_curves({"lora": [[{"epoch": 1, "train_loss": 1.0}], []]}, out),
         "empty history for 'lora'"),
        (lambda out: plot_scaling({}, out), "at least one strategy"),
        (lambda out: plot_scaling({"lora": []}, out), "no points for 'lora'"),
        (lambda out: plot_scaling({"lora": [(10, 0.5), (20, 0.6, 0.1)]}, out), "all be"),
        (lambda out: plot_params_vs_accuracy([], out), "at least one"),
        (lambda out: plot_params_vs_accuracy([("x", 0, 0.5)], out), "must be > 0"),
    ],
)
def test_input_it_cannot_draw_is_refused(tmp_path, call, message) -> None:
    out = tmp_path / "plot.png"
    with pytest.raises(ValueError, match=message):
        call(out)
    assert not out.exists()


def _drawn_y(ax) -> list[float]:
    return [float(y) for line in ax.get_lines() for y in line.get_ydata()]


def test_a_zero_accuracy_in_the_scaling_plot_is_drawn_above_the_axis_not_under_it() -> None:
    """A strategy at 0% on the smallest size sat on the x axis, its line and marker half hidden."""
    (ax,) = scaling_figure({"head_only": [(10, 0.0), (50, 0.25)], "lora": [(10, 0.5), (50, 1.0)]}).axes
    low, high = ax.get_ylim()
    assert 0.0 in _drawn_y(ax) and 1.0 in _drawn_y(ax)
    assert low < 0.0 and high > 1.0, (low, high)
    assert low <= -0.03 and high >= 1.03, "a marker's radius of margin on either side"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "50"]


def test_every_accuracy_axis_leaves_room_for_0_and_100_percent() -> None:
    curves = training_curves_figure({"lora": [{"epoch": 1, "train_loss": 1.4, "val_acc": 0.0},
                                              {"epoch": 2, "train_loss": 1.1, "val_acc": 1.0}]})
    loss_ax, acc_ax = curves.axes
    assert _drawn_y(acc_ax) == [0.0, 1.0]
    assert acc_ax.get_ylim()[0] < 0.0 < 1.0 < acc_ax.get_ylim()[1]
    (params_ax,) = params_vs_accuracy_figure([("head_only", 516, 0.0), ("lora", 61_956, 1.0)]).axes
    assert params_ax.get_ylim()[0] < 0.0 < 1.0 < params_ax.get_ylim()[1]
    drawn = sorted(float(y) for c in params_ax.collections for _, y in c.get_offsets())
    assert drawn == [0.0, 1.0]


HISTORY = [{"step": s, "loss": 1.0 - 0.1 * k, "lr": 1e-4 * (k + 1), "ema_momentum": 0.99 + 0.001 * k,
            "grad_norm": 1.0, "target_std": 0.7, "target_rank": 30.0 - 10 * k, "pred_std": 0.1 + 0.1 * k}
           for k, s in enumerate((1, 50, 100))]
FINDINGS = [{"step": 100, "message": "collapse: target_rank fell"}]


def test_the_pretraining_loss_plot_draws_the_loss_the_schedules_and_marks_the_findings() -> None:
    loss_ax, lr_ax, ema_ax = pretraining_loss_figure(HISTORY, FINDINGS).axes
    lines = _lines(loss_ax)
    assert lines["loss (mean since the last monitor)"] == ([1.0, 50.0, 100.0], pytest.approx([1.0, 0.9, 0.8]))
    assert lines["collapse: finding"][0] == [100.0, 100.0], "a vertical line at the finding's step"
    assert _lines(lr_ax)["learning rate"][1] == pytest.approx([1e-4, 2e-4, 3e-4])
    assert _lines(ema_ax)["EMA momentum"][1] == pytest.approx([0.99, 0.991, 0.992])


def test_the_collapse_plot_draws_each_signal_with_the_level_a_fall_is_reported_at() -> None:
    axes = collapse_signals_figure(HISTORY, FINDINGS, fall_fraction=0.2).axes
    assert [ax.get_ylabel() for ax in axes] == ["target_std", "target_rank", "pred_std"]
    rank = _lines(axes[1])
    assert rank["target_rank"] == ([1.0, 50.0, 100.0], [30.0, 20.0, 10.0])
    assert rank["20% of its value at step 1"][1] == pytest.approx([6.0, 6.0])
    assert "collapse: finding" in rank


def test_the_collapse_plots_level_is_the_monitors_own_reference_where_it_took_one_later() -> None:
    """pred_std's reference is taken after the warm-up (a new predictor first learns the mean): the dotted level is
    20% of that value, the level the monitor applies, not of the first point's."""
    axes = collapse_signals_figure(HISTORY, FINDINGS, 0.2, {"pred_std": (50, 0.2), "target_rank": (1, 30.0)}).axes
    assert _lines(axes[2])["20% of its value at step 50"][1] == pytest.approx([0.04, 0.04])
    assert _lines(axes[1])["20% of its value at step 1"][1] == pytest.approx([6.0, 6.0])
    assert not any(label.startswith("20%") for label in _lines(axes[0])), "target_std: the monitor took no reference"


def test_the_probe_plot_draws_validation_and_test_accuracy_with_their_intervals(tmp_path) -> None:
    probes = [{"step": s, "val_acc": v, "val_ci": [v - 0.1, v + 0.1], "num_val": 24, "test_acc": t,
               "test_ci": [t - 0.2, t + 0.1], "num_test": 24} for s, v, t in ((0, 0.5, 0.4), (100, 0.6, 0.7))]
    (ax,) = probe_accuracy_figure(probes).axes
    assert _legend(ax) == ["validation accuracy (24 videos, 95% interval)", "test accuracy (24 videos, 95% interval)"]
    bars = [c for c in ax.collections]
    assert len(bars) == 2, "one set of error bars per split"
    (_, test_low), (_, test_high) = bars[1].get_segments()[0]
    assert (test_low, test_high) == pytest.approx((0.2, 0.5)), "the test interval at step 0"
    with pytest.raises(ValueError, match="at least one probe"):
        probe_accuracy_figure([])
