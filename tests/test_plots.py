"""vgrad.plots: each figure returns its Axes, is titled and labelled, and survives inf/nan."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vgrad import plots  # noqa: E402


@pytest.fixture(autouse=True)
def ax():
    figure, axes = plt.subplots()
    yield axes
    plt.close(figure)


def data_lines(axes, style="-"):
    """Data lines of one style (measured or predicted curves); reference lines are dotted
    and non-finite markers have no line, so neither matches a solid or dashed style."""
    return [line for line in axes.get_lines()
            if line.get_linestyle() == style and line.get_label() not in ("inf or nan", "zero")]


def legend_texts(axes):
    return [text.get_text() for text in axes.get_legend().get_texts()]


def test_gradient_norms_several_configurations_with_predictions(ax):
    norms = {"sigmoid": {"dense_1": 1e-9, "dense_2": 1e-5, "dense_3": 1e-2},
             "relu": {"dense_1": 1e-2, "dense_2": 1e-2, "dense_3": 1e-2}}
    predicted = {"sigmoid": {"dense_1": 2e-9, "dense_2": 2e-5, "dense_3": 1e-2}}
    assert plots.plot_gradient_norms(norms, predicted=predicted, ax=ax) is ax
    measured, dashed = data_lines(ax), data_lines(ax, "--")
    assert len(measured) == 2 and len(dashed) == 1
    assert dashed[0].get_color() == measured[0].get_color()  # prediction in the line's colour
    assert list(measured[0].get_xdata()) == [1, 2, 3]
    assert ax.get_yscale() == "log" and ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.patches) == 1  # the healthy band
    band = ax.patches[0]
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((1e-4, 1.0))  # x1e-2 .. x1e2 around 1e-2
    assert "relu" in legend_texts(ax)


def test_gradient_norms_relative_marks_non_finite_and_zero(ax):
    norms = {"dense_1": np.inf, "dense_2": 0.0, "dense_3": np.nan, "dense_4": 0.5, "dense_5": 2.0}
    plots.plot_gradient_norms(norms, relative=True, healthy=(0.1, 10), ax=ax, title="mine")
    (line,) = data_lines(ax)
    assert list(line.get_xdata()) == [4, 5] and list(line.get_ydata()) == [0.25, 1.0]
    assert {"inf or nan", "zero"} <= set(legend_texts(ax)) and ax.get_title() == "mine"


@pytest.mark.parametrize("healthy", [(1.0,), (10, 1), (0, 1)])
def test_gradient_norms_rejects_bad_band(ax, healthy):
    with pytest.raises(ValueError, match="healthy must be"):
        plots.plot_gradient_norms({"a": 1.0}, healthy=healthy, ax=ax)


def test_gradient_norms_rejects_non_dict(ax):
    with pytest.raises(TypeError, match="norms must be"):
        plots.plot_gradient_norms([1.0, 2.0], ax=ax)


def test_training_curves_log_scale_dashed_validation_and_nan(ax):
    class History:  # what keras.callbacks.History exposes
        history = {"loss": [2.0, 0.2, 0.002], "val_loss": [2.1, 0.3, 0.01]}

    histories = {"fixed": History(), "broken": {"loss": [2.3, np.nan, np.nan]}}
    assert plots.plot_training_curves(histories, ax=ax) is ax
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" and ax.get_title()
    assert len(data_lines(ax)) == 2 and len(data_lines(ax, "--")) == 1
    assert legend_texts(ax) == ["fixed", "broken", "training", "validation", "inf or nan"]
    with pytest.raises(ValueError, match="accepted: 'loss'"):
        plots.plot_training_curves({"run": {"loss": [1.0]}}, metric="accuracy", ax=ax)


def test_training_curves_name_the_held_out_curves(ax):
    history = {"loss": [2.0, 1.0], "val_loss": [2.1, 1.2]}
    plots.plot_training_curves({"run": history}, ax=ax, validation_label="test")
    assert legend_texts(ax) == ["run", "training", "test"]
    with pytest.raises(TypeError, match="validation_label must be a str"):
        plots.plot_training_curves({"run": history}, validation_label=None)


def test_training_curves_linear_when_range_is_small(ax):
    plots.plot_training_curves({"loss": [1.0, 0.8, 0.7]}, ax=ax)
    assert ax.get_yscale() == "linear"


def test_activation_histograms_one_per_layer(ax, tiny_mlp, batch):
    assert plots.plot_activation_histograms(tiny_mlp, batch[0], ax=ax) is ax
    assert legend_texts(ax) == ["dense_1 (tanh)", "dense_2 (tanh)", "dense_3 (tanh)"]
    assert ax.get_yscale() == "log" and ax.get_title()
    plots.plot_activation_histograms(tiny_mlp, batch[0], layers=["dense_3"], bins=5, ax=ax)
    with pytest.raises(ValueError, match="accepted: dense_1, dense_2, dense_3"):
        plots.plot_activation_histograms(tiny_mlp, batch[0], layers=["dense_9"], ax=ax)


def recorded_run():
    paths = ["dense_1/kernel", "dense_1/bias", "dense_2/kernel", "logits/kernel"]
    history = {path: list(np.geomspace(1e-6, 1e-3, 5) * 10 ** i) for i, path in enumerate(paths)}
    history["dense_2/kernel"][2] = np.nan
    history["dense_2/kernel"][3] = 0.0
    ratios = {path: [1e-3, 1e-4, np.inf, 0.0, 1e-3] for path in paths}
    return SimpleNamespace(steps=[0, 10, 20, 30, 40], history=history, update_ratio=ratios)


def test_monitor_heatmap_has_log_colorbar_and_kernel_rows(ax):
    assert plots.plot_monitor(recorded_run(), ax=ax) is ax
    (mesh,) = ax.collections
    assert type(mesh.norm).__name__ == "LogNorm" and mesh.colorbar is not None
    assert [t.get_text() for t in ax.get_yticklabels()] == ["dense_1", "dense_2", "logits"]
    assert mesh.get_array().mask.sum() == 1 and ax.get_title()


def test_monitor_update_ratio_lines_and_reference(ax):
    plots.plot_monitor(recorded_run(), kind="update_ratio", ax=ax)
    assert ax.get_yscale() == "log" and len(data_lines(ax)) == 3
    assert any(line.get_ydata()[0] == 1e-3 for line in data_lines(ax, "--"))
    # layers are named by a colour scale, so the legend stays short
    assert "healthy ~ 0.001" in legend_texts(ax) and len(legend_texts(ax)) <= 3
    assert len(ax.figure.axes) == 2
    with pytest.raises(ValueError, match="'heatmap' or 'update_ratio'"):
        plots.plot_monitor(recorded_run(), kind="lines", ax=ax)


def test_time_gradients(ax):
    norms = {"SimpleRNN": np.geomspace(1e-8, 1.0, 20), "LSTM": np.r_[np.nan, np.ones(19)]}
    assert plots.plot_time_gradients(norms, ax=ax, title="through time") is ax
    assert ax.get_yscale() == "log" and len(data_lines(ax)) == 2
    assert "time step" in ax.get_xlabel() and ax.get_title() == "through time"


def test_phase_diagram(ax):
    sweep = SimpleNamespace(labels=["sigmoid", "relu"], depths=np.array([2, 5, 10]),
                            measured=np.array([[0.1, 1e-4, 1e-9], [1.0, 0.9, np.inf]]),
                            predicted=np.array([[0.06, 1e-4, 1e-8], [1.0, 1.0, 1.0]]))
    assert plots.plot_phase_diagram(sweep, ax=ax) is ax
    assert ax.get_yscale() == "log" and len(data_lines(ax)) == 2 and len(data_lines(ax, "--")) == 2
    measured, predicted = data_lines(ax), data_lines(ax, "--")
    # configurations told apart by marker as well as colour; predictions drawn on top
    assert measured[0].get_marker() != measured[1].get_marker()
    assert all(p.get_zorder() > m.get_zorder() and p.get_linewidth() > m.get_linewidth()
               for m, p in zip(measured, predicted))
    assert "healthy: 0.01 to 100" in legend_texts(ax)
    # one legend entry per configuration and per line style, not one per line
    assert legend_texts(ax)[:4] == ["sigmoid", "relu", "measured", "predicted"]
    assert "inf or nan" in legend_texts(ax)
    # the legend sits below the axes, not beside them
    legend_box = ax.get_legend().get_window_extent(ax.figure.canvas.get_renderer())
    assert legend_box.y1 < ax.get_window_extent().y0
    sweep.predicted = sweep.predicted[:1]
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        plots.plot_phase_diagram(sweep, ax=ax)


def test_new_figure_when_no_axes_given():
    axes = plots.plot_time_gradients(np.ones(3))
    assert axes.figure.get_figwidth() <= 7
    plt.close(axes.figure)


def test_activation_derivatives_plot():
    import vgrad

    z = np.linspace(-4, 4, 81)
    slopes = vgrad.activation_derivatives(["sigmoid", "tanh"], z)
    fig, ax = plt.subplots()
    assert vgrad.plots.plot_activation_derivatives(z, slopes, ax=ax) is ax
    assert len(ax.get_lines()) == 3 and ax.get_title()
    with pytest.raises(ValueError, match="points"):
        vgrad.plots.plot_activation_derivatives(z[:10], slopes, ax=ax)
    plt.close(fig)


def test_jacobian_products_plot():
    import vgrad

    norms = {"a": [1.0, 0.1, 0.01], "b": [1.0, np.inf, np.nan]}
    fig, ax = plt.subplots()
    assert vgrad.plots.plot_jacobian_products(norms, ax=ax) is ax
    assert ax.get_yscale() == "log" and ax.get_title()
    assert any(line.get_label() == "inf or nan" for line in ax.get_lines())
    plt.close(fig)
