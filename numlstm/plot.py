"""Figures for fitted estimators: loss curves, forecasts, gate activations, and a model summary.

Needs matplotlib (``pip install numlstm[plot]``), imported on the first call
that draws, so ``import numlstm.plot`` itself is cheap. Every function that
draws takes an optional Axes to draw on (a new figure otherwise) and returns
what it drew on; ``summary`` returns text.
"""

import re

import numpy as np
import xarray as xr
from sklearn.utils.validation import check_is_fitted

__all__ = ["agg_pyplot", "loss_curve", "forecast", "gates", "summary"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError("numlstm.plot needs matplotlib: pip install 'numlstm[plot]'") from error
    return plt


def agg_pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, for scripts that write figures to files.

    Returns
    -------
    module or None
        ``matplotlib.pyplot``; None when matplotlib is missing, after
        printing that figures need the ``plot`` extra, so that a script can
        go on without its figure.
    """
    try:
        import matplotlib
    except ImportError:
        print('no figure: it needs matplotlib, pip install -e ".[plot]"')
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax):
    return _pyplot().subplots()[1] if ax is None else ax


def loss_curve(est, ax=None):
    """Plot the training loss per epoch, and the validation score on a twin axis when there is one.

    Parameters
    ----------
    est : LSTMRegressor or LSTMClassifier
        A fitted estimator.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the loss curve. The validation scores (with
        ``early_stopping``) are on ``ax.twinx()``.
    """
    check_is_fitted(est, "loss_curve_")
    ax = _axes(ax)
    epochs = np.arange(1, len(est.loss_curve_) + 1)
    ax.plot(epochs, est.loss_curve_, color="C0", label="training loss")
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{type(est).__name__} training")
    scores = getattr(est, "validation_scores_", None)
    if scores:
        twin = ax.twinx()
        twin.plot(epochs[: len(scores)], scores, color="C1", label="validation score")
        twin.set_ylabel("validation score")
        lines = ax.get_lines() + twin.get_lines()
        ax.legend(lines, [line.get_label() for line in lines])
    return ax


def _series(name, values):
    """``(x, y, label)`` of a 1-D array or DataArray; ``x`` is None for a plain array."""
    if isinstance(values, xr.DataArray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D; got a DataArray with dims {values.dims}")
        dim = values.dims[0]
        x = values[dim].values if dim in values.coords else None
        units = values.attrs.get("units")
        label = values.attrs.get("long_name", values.name)
        return x, values.values, f"{label} [{units}]" if label and units not in (None, "1") else label
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got an array of shape {array.shape}")
    return None, array, None


def forecast(y_true, y_pred, *, history=None, lower=None, upper=None, ax=None):
    """Plot a forecast, against the truth when it is known, after the history it continues.

    Parameters
    ----------
    y_true : array-like of shape (n_steps,), 1-D xarray.DataArray or None
        The observed values over the forecast period; None for a forecast of
        the real future, which is then drawn without a truth line.
    y_pred : array-like of shape (n_steps,) or 1-D xarray.DataArray
        The forecast. A DataArray's coordinate (e.g. years or dates, as
        ``LSTMForecaster.predict`` gives) sets the x values, as does
        ``y_true``'s.
    history : array-like or 1-D xarray.DataArray, optional
        Observations before the forecast period.
    lower, upper : array-like of shape (n_steps,), optional
        A prediction interval, shaded; pass both or neither.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes

    Notes
    -----
    Without coordinates the x values are step numbers: the history takes
    ``0 .. len(history) - 1`` and the forecast period follows it.
    """
    if (lower is None) != (upper is None):
        raise ValueError("lower and upper must be given together")
    x_pred, pred, pred_label = _series("y_pred", y_pred)
    x_true, true, ylabel = (None, None, None) if y_true is None else _series("y_true", y_true)
    if true is not None and len(pred) != len(true):
        raise ValueError(f"y_pred has {len(pred)} steps but y_true has {len(true)}")
    start = 0
    ax = _axes(ax)
    if history is not None:
        x_hist, hist, hist_label = _series("history", history)
        start = len(hist)
        ax.plot(np.arange(start) if x_hist is None else x_hist, hist, color="0.5", label="history")
        ylabel = ylabel or hist_label
    x = next((x for x in (x_true, x_pred) if x is not None), start + np.arange(len(pred)))
    if true is not None:
        ax.plot(x, true, color="k", label="truth")
    ax.plot(x, pred, color="C0", label="forecast")
    if lower is not None:
        ax.fill_between(x, np.asarray(lower), np.asarray(upper), color="C0", alpha=0.25,
                        label="interval")
    ax.set(ylabel=ylabel or pred_label or "", title="Forecast")
    ax.legend()
    return ax


def gates(ds, sample=0, layer=0, direction="forward", axes=None):
    """Heat maps of one sequence's gate activations and states, from ``inspect``.

    Parameters
    ----------
    ds : xarray.Dataset
        The output of ``est.inspect(X)``: variables with dims (sample, time,
        layer, direction, unit).
    sample : int, default=0
        Position of the sequence along the sample dim.
    layer : int, default=0
        Which layer.
    direction : {"forward", "reverse"}, default="forward"
        Which direction.
    axes : sequence of matplotlib.axes.Axes, optional
        One per variable of ``ds``; a new figure with one panel per
        variable by default.

    Returns
    -------
    list of matplotlib.axes.Axes
        One panel per variable, titled with its name: time on x, unit on y.
    """
    if not isinstance(ds, xr.Dataset) or not ds.data_vars:
        raise TypeError("ds must be the xarray.Dataset that est.inspect(X) returns")
    names = list(ds.data_vars)
    if axes is None:
        fig, axes = _pyplot().subplots(len(names), 1, sharex=True, squeeze=False,
                                       figsize=(7, 1.8 * len(names) + 0.6), layout="constrained")
        axes = list(axes[:, 0])
        fig.suptitle(f"{ds.attrs.get('cell', '').upper()} sample {sample}, layer {layer}, {direction}")
    elif len(axes) != len(names):
        raise ValueError(f"axes must hold one Axes per variable of ds ({len(names)}), got {len(axes)}")
    for axis, name in zip(axes, names):
        var = ds[name]
        one = var.isel({var.dims[0]: sample}).sel(layer=layer, direction=direction)
        time = one.dims[0]
        x = one[time].values if time in one.coords else np.arange(one.sizes[time])
        mesh = axis.pcolormesh(x, one["unit"].values, one.values.T, shading="nearest")
        axis.figure.colorbar(mesh, ax=axis)
        axis.set(title=name, ylabel="unit")
    axes[-1].set_xlabel(time)
    return axes


_KEY = re.compile(r"_l(\d+)(_reverse)?$")


def summary(est):
    """A table of the fitted network's layers, their shapes and parameter counts.

    Parameters
    ----------
    est : LSTMRegressor or LSTMClassifier
        A fitted estimator.

    Returns
    -------
    str
        One row for the embedding table if there is one, one per recurrent
        layer and direction, one for the dense head, and the total number of
        parameters.

    Examples
    --------
    >>> print(summary(est))                                      # doctest: +SKIP
    LSTMRegressor, float32
    layer                 inputs  hidden  outputs  parameters
    LSTM 0 forward             1      16       16       1,216
    dense head                16                1          17
    total                                               1,233
    """
    check_is_fitted(est, "network_")
    net = est.network_
    rnn = net.layer
    rows = [("layer", "inputs", "hidden", "outputs", "parameters")]
    embedding = getattr(net, "embedding", None)
    extra = 0 if embedding is None else embedding.size
    if embedding is not None:
        rows.append(("embedding", f"{embedding.shape[0]} ids", "", embedding.shape[1], f"{extra:,}"))
    counts = {}
    for key, value in rnn.state_dict().items():
        k, reverse = _KEY.search(key).groups()
        slot = (int(k), "reverse" if reverse else "forward")
        counts[slot] = counts.get(slot, 0) + np.size(value)
    directions = 2 if rnn.bidirectional else 1
    width = rnn.hidden_size if not getattr(rnn, "proj_size", 0) else rnn.proj_size
    for (k, direction), count in sorted(counts.items()):
        inputs = rnn.input_size if k == 0 else directions * width
        rows.append((f"{type(rnn).__name__} {k} {direction}", inputs, rnn.hidden_size, width, f"{count:,}"))
    head = np.size(net.weight) + np.size(net.bias)
    rows.append(("dense head", np.shape(net.weight)[1], "", np.shape(net.weight)[0], f"{head:,}"))
    rows.append(("total", "", "", "", f"{extra + sum(counts.values()) + head:,}"))
    lines = [f"{type(est).__name__}, {rnn.dtype}"]
    lines += [f"{r[0]:<20}" + "".join(f"{v!s:>{w}}" for v, w in zip(r[1:], (8, 8, 9, 12))) for r in rows]
    return "\n".join(lines)
