"""numlstm.plot, under matplotlib's Agg backend: what each function draws."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from numlstm import LSTMRegressor, plot  # noqa: E402
from numlstm.datasets import load_sunspots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def fitted(**params):
    X = np.random.default_rng(0).standard_normal((40, 7, 2)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LSTMRegressor(hidden_size=4, max_iter=4, random_state=0, **params).fit(X, X.sum(axis=(1, 2)))
    return est, X


def test_loss_curve_without_validation():
    est, _ = fitted()
    ax = plot.loss_curve(est)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, est.n_iter_ + 1))
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "training loss"
    assert len(ax.figure.axes) == 1


def test_loss_curve_with_validation_scores_on_a_twin_axis():
    est, _ = fitted(early_stopping=True, validation_fraction=0.25)
    _, ax = plt.subplots()
    assert plot.loss_curve(est, ax=ax) is ax
    twin = [a for a in ax.figure.axes if a is not ax]
    assert len(twin) == 1 and twin[0].get_ylabel() == "validation score"
    np.testing.assert_allclose(twin[0].get_lines()[0].get_ydata(), est.validation_scores_)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["training loss", "validation score"]


def test_loss_curve_needs_a_fitted_estimator():
    with pytest.raises(NotFittedError):
        plot.loss_curve(LSTMRegressor())


def test_forecast_with_dataarrays_uses_their_coords():
    spots = load_sunspots()
    history, truth = spots.sel(time=slice(1900, 1950)), spots.sel(time=slice(1951, None))
    ax = plot.forecast(truth, truth * 0.9, history=history, lower=truth * 0.8, upper=truth * 1.1)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["history", "truth", "forecast"]
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), np.arange(1900, 1951))
    np.testing.assert_array_equal(ax.get_lines()[2].get_xdata(), np.arange(1951, 2009))
    np.testing.assert_allclose(ax.get_lines()[2].get_ydata(), truth.values * 0.9)
    assert len(ax.collections) == 1  # the interval
    assert ax.get_ylabel() == "yearly mean sunspot number"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels + ["interval"]


def test_forecast_with_arrays_follows_the_history():
    ax = plot.forecast(np.arange(3.0), np.ones(3), history=np.zeros(5))
    history, truth, pred = ax.get_lines()
    np.testing.assert_array_equal(history.get_xdata(), np.arange(5))
    np.testing.assert_array_equal(history.get_ydata(), np.zeros(5))
    np.testing.assert_array_equal(truth.get_xdata(), [5, 6, 7])
    np.testing.assert_array_equal(truth.get_ydata(), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(pred.get_xdata(), [5, 6, 7])
    np.testing.assert_array_equal(pred.get_ydata(), [1.0, 1.0, 1.0])
    assert not ax.collections


def test_forecast_with_datetime_coords():
    time = np.arange("2000-01", "2000-07", dtype="datetime64[M]").astype("datetime64[ns]")
    truth = xr.DataArray(np.arange(6.0), dims="time", coords={"time": time}, name="co2",
                         attrs={"units": "ppm"})
    ax = plot.forecast(truth, truth + 1)
    assert ax.get_ylabel() == "co2 [ppm]" and len(ax.get_lines()) == 2
    truth_line, pred_line = ax.get_lines()
    for line in (truth_line, pred_line):  # drawn against the months themselves, not step numbers
        np.testing.assert_array_equal(np.asarray(line.get_xdata(), dtype="datetime64[ns]"), time)
    np.testing.assert_array_equal(pred_line.get_ydata(), np.arange(1.0, 7.0))


def test_forecast_of_the_future_without_truth():
    history = xr.DataArray([3.0, 4.0, 6.0, 5.0], dims="time", coords={"time": [2000, 2001, 2002, 2003]},
                           name="flow", attrs={"units": "m3/s"})
    future = xr.DataArray([5.5, 6.5], dims="time", coords={"time": [2004, 2005]}, name="flow")
    ax = plot.forecast(None, future, history=history, lower=future - 1, upper=future + 2)
    hist, pred = ax.get_lines()
    assert [hist.get_label(), pred.get_label()] == ["history", "forecast"]
    np.testing.assert_array_equal(pred.get_xdata(), [2004, 2005])
    np.testing.assert_array_equal(pred.get_ydata(), [5.5, 6.5])
    (band,) = ax.collections
    corners = band.get_paths()[0].vertices
    assert corners[:, 0].min() == 2004 and corners[:, 0].max() == 2005
    assert corners[:, 1].min() == 4.5 and corners[:, 1].max() == 8.5
    assert ax.get_ylabel() == "flow [m3/s]"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["history", "forecast", "interval"]
    # arrays, no history: step numbers, and an unnamed forecast labels nothing
    ax = plot.forecast(None, np.array([1.0, 2.0, 3.0]))
    (only,) = ax.get_lines()
    np.testing.assert_array_equal(only.get_xdata(), [0, 1, 2])
    assert ax.get_ylabel() == ""
    # no history: a named forecast labels the axis itself
    assert plot.forecast(None, future).get_ylabel() == "flow"


@pytest.mark.parametrize("kwargs, message", [
    (dict(y_true=np.ones(3), y_pred=np.ones(4)), "y_pred has 4 steps but y_true has 3"),
    (dict(y_true=np.ones((3, 2)), y_pred=np.ones(3)), "y_true must be 1-D"),
    (dict(y_true=np.ones(3), y_pred=np.ones(3), lower=np.zeros(3)), "lower and upper"),
])
def test_forecast_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plot.forecast(**kwargs)


def test_gates_one_panel_per_variable():
    est, X = fitted(cell="gru", num_layers=2, bidirectional=True)
    ds = est.inspect(X)
    axes = plot.gates(ds, sample=3, layer=1, direction="reverse")
    assert [ax.get_title() for ax in axes] == ["reset_gate", "update_gate", "candidate", "hidden"]
    mesh = axes[0].collections[0]
    assert mesh.get_array().shape == (4, 7)  # (unit, time)
    np.testing.assert_allclose(mesh.get_array(), ds.reset_gate[3, :, 1, 1, :].values.T)
    assert axes[-1].get_xlabel() == "time" and axes[0].get_ylabel() == "unit"
    assert "GRU sample 3, layer 1, reverse" == axes[0].figure.get_suptitle()


def test_gates_on_given_axes():
    est, X = fitted()
    ds = est.inspect(X)
    fig, axes = plt.subplots(6)
    assert list(plot.gates(ds, axes=axes)) == list(axes)
    assert [ax.get_title() for ax in axes] == list(ds.data_vars)
    with pytest.raises(ValueError, match="one Axes per variable"):
        plot.gates(ds, axes=axes[:2])
    with pytest.raises(TypeError, match="inspect"):
        plot.gates(ds.hidden)


def test_summary_counts_every_parameter():
    est, _ = fitted(num_layers=2, bidirectional=True)
    text = plot.summary(est)
    lines = text.splitlines()
    assert lines[0] == "LSTMRegressor, float32"
    assert [line.split()[:3] for line in lines[2:6]] == [
        ["LSTM", "0", "forward"], ["LSTM", "0", "reverse"], ["LSTM", "1", "forward"], ["LSTM", "1", "reverse"]]
    net = est.network_
    total = sum(np.size(v) for v in net.layer.state_dict().values()) + np.size(net.weight) + np.size(net.bias)
    assert lines[-1].split() == ["total", f"{total:,}"]
    # by hand: an LSTM direction has 4H(I + H) weights and 2 * 4H biases; H = 4, I = 2 then 2H = 8
    by_hand = 2 * (16 * (2 + 4) + 32) + 2 * (16 * (8 + 4) + 32) + (8 + 1)
    assert total == by_hand == 713
    assert lines[-2].split() == ["dense", "head", "8", "1", "9"]
    with pytest.raises(NotFittedError):
        plot.summary(LSTMRegressor())


def test_summary_with_an_embedding_table():
    from numlstm import LSTMClassifier

    X = np.random.default_rng(0).integers(0, 5, (30, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LSTMClassifier(embedding_dim=3, hidden_size=4, max_iter=2, random_state=0).fit(X, X[:, 0] > 2)
    lines = plot.summary(est).splitlines()
    table = est.network_.embedding
    assert lines[2].split() == ["embedding", f"{table.shape[0]}", "ids", "3", f"{table.size}"]
    assert lines[3].split()[:4] == ["LSTM", "0", "forward", "3"]


def test_import_is_lazy_and_missing_matplotlib_names_the_extra(tmp_path):
    blocker = tmp_path / "matplotlib"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('blocked')\n")
    code = ("import numlstm.plot as p, sys; assert 'matplotlib' not in sys.modules\n"
            "try:\n    p.forecast([1.0], [1.0])\nexcept ImportError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'numlstm[plot]'" in result.stdout
