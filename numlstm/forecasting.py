"""Forecasting whole series: ``LSTMForecaster``, a scikit-learn-style estimator over series.

``LSTMRegressor`` learns from windows; ``LSTMForecaster`` takes the series
themselves, cuts the windows, scales each one, trains the regressor to
predict every step of the horizon at once, and gives the forecast back on
the future time coords.

Signature (the surface an adapter, e.g. for sktime, wraps)::

    LSTMForecaster(*, lookback=36, horizon=12, normalize="mean", linear=True, quantiles=None,
                   cell="lstm", hidden_size=32, num_layers=1, dropout=0.0, batch_size=32,
                   max_iter=200, learning_rate=1e-2, early_stopping=True,
                   validation_fraction=0.2, n_iter_no_change=20, tol=1e-4,
                   n_models=1, random_state=None, verbose=False, device="cpu",
                   dims=("series", "time", "component"))
    .fit(y, *, past_covariates=None, future_covariates=None, static_covariates=None) -> self
    .predict(horizon=None, *, y=None, past_covariates=None, future_covariates=None,
             static_covariates=None) -> xarray.DataArray
    .backtest(y, *, start=0.5, stride=None, horizon=None, season=1, refit=True,
              past_covariates=None, future_covariates=None, static_covariates=None)
        -> xarray.Dataset

Series forms (``y``, and the covariates, which follow the same rules):

* a 1-D array or a DataArray with only the time dim: one series;
* a 2-D array ``(series, time)``, or a 3-D array ``(series, time, component)``
  for several components (targets) per step;
* a list of 1-D ``(time,)`` or 2-D ``(time, component)`` arrays, one series
  each, of any lengths;
* a DataArray with the time dim and optionally the series and component dims
  (named by ``dims``), in any order.

NaN steps before a series' first observed step or after its last are padding
(xarray alignment gives exactly this); a NaN inside a series is an error.
"""

import time as _time
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from numlstm.data import _check_dims
from numlstm.estimators import LSTMRegressor, _median_quantile, _valid_quantiles
from numlstm.losses import pinball
from numlstm.training import _progress

__all__ = ["LSTMForecaster", "NORMALIZATIONS"]

NORMALIZATIONS = ("mean", "last", "none")
"""Per-window normalisations ``LSTMForecaster(normalize=...)`` offers."""

# Floor of a window's scale, as a share of the component's standard deviation over all
# training steps: a flat window must not blow its targets up.
_SCALE_FLOOR = 0.1

# Penalties the linear part's ridge regression chooses from, by leave-one-out error. Its inputs are
# window-normalised (about unit variance per lag), so these span from almost no shrinkage to a
# forecast of the window's last value (plus a constant) for a few hundred windows.
_RIDGE_ALPHAS = np.logspace(-2, 4, 13)


@dataclass
class _Panel:
    """Validated series: one ``(n_steps, n_components)`` array and one time coord per series."""

    values: list
    times: list
    many: bool                    # the output keeps a series dim
    component: bool               # the output keeps a component dim
    series_coord: np.ndarray | None = None
    component_coord: np.ndarray | None = None
    name: str | None = None
    attrs: dict | None = None

    @property
    def lengths(self):
        return np.array([len(v) for v in self.values])


def _dataarray_to_array(y, name, dims):
    """``(values (series, time, component), times, many, component, coords)`` of a DataArray."""
    series, time, component = dims
    if time not in y.dims:
        raise ValueError(f"{name} has dims {y.dims} but no time dim {time!r}; name yours with dims=")
    extra = [d for d in y.dims if d not in dims]
    if extra:
        raise ValueError(f"{name} has dims {y.dims}; besides {time!r} it may only have {series!r} and "
                         f"{component!r} (see dims)")
    many, has_component = series in y.dims, component in y.dims
    y = y.transpose(*[d for d in dims if d in y.dims])
    values = np.asarray(y.values)
    if not many:
        values = values[None]
    if not has_component:
        values = values[..., None]
    times = np.asarray(y[time].values) if time in y.coords else np.arange(values.shape[1])
    coord = {d: (np.asarray(y[d].values) if d in y.coords else None) for d in (series, component)}
    return values, times, many, has_component, coord[series], coord[component]


def _as_float(values, name, dtype):
    if values.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {values.dtype}")
    if dtype is None:
        dtype = np.float32 if values.dtype == np.float32 else np.float64
    return values.astype(dtype, copy=False)


def _to_panel(y, name, dims, dtype=None):
    """Validate ``y`` (any of the series forms) into a ``_Panel`` of float32 or float64 arrays.

    ``dtype`` None keeps float32 and makes anything else float64.
    """
    if y is None:
        raise ValueError(f"{name} is None; it needs at least one series")
    if isinstance(y, xr.Dataset):
        raise TypeError(f"{name} must be an array or a DataArray, not a Dataset; select one variable")
    if isinstance(y, xr.DataArray):
        values, time_coord, many, has_component, series_coord, component_coord = _dataarray_to_array(y, name, dims)
        rows = list(_as_float(values, name, dtype))
        coords = [time_coord] * len(rows)
        label, attrs = y.name, dict(y.attrs)
    elif isinstance(y, (list, tuple)) and y and all(np.ndim(s) in (1, 2) for s in y) \
            and any(isinstance(s, (np.ndarray, xr.DataArray, list, tuple)) for s in y):
        arrays = [np.asarray(s) for s in y]
        if len({a.shape[1:] for a in arrays}) > 1:
            raise ValueError(f"the series in {name} must have the same number of components, got shapes "
                             f"{[a.shape for a in arrays]}")
        has_component = arrays[0].ndim == 2
        if dtype is None:
            dtype = np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64
        rows = [_as_float(a if a.ndim == 2 else a[:, None], name, dtype) for a in arrays]
        coords = [np.asarray(s[dims[1]].values) if isinstance(s, xr.DataArray) and dims[1] in s.coords
                  else np.arange(len(a)) for s, a in zip(y, arrays)]
        many, series_coord, component_coord, label, attrs = True, None, None, None, {}
    else:
        values = np.asarray(y)
        if values.ndim not in (1, 2, 3):
            raise ValueError(f"{name} must be 1-D (time,), 2-D (series, time) or 3-D (series, time, component); "
                             f"got an array of shape {values.shape}")
        many, has_component = values.ndim > 1, values.ndim == 3
        values = values.reshape((1,) * (values.ndim == 1) + values.shape + (1,) * (values.ndim < 3))
        rows = list(_as_float(values, name, dtype))
        coords = [np.arange(values.shape[1])] * len(rows)
        series_coord = component_coord = label = None
        attrs = {}
    if not rows or any(r.shape[0] == 0 or r.shape[1] == 0 for r in rows):
        raise ValueError(f"{name} is empty: it needs at least one series with one step and one component")
    series, times = [], []
    for i, (row, coord) in enumerate(zip(rows, coords)):
        if np.isinf(row).any():
            raise ValueError(f"{name} contains inf (series {i}); only finite values and NaN padding are allowed")
        observed = ~np.isnan(row).all(axis=1)
        if not observed.any():
            raise ValueError(f"{name} contains a series that is all NaN (series {i})")
        first, last = int(np.argmax(observed)), len(observed) - int(np.argmax(observed[::-1]))
        inner = row[first:last]
        if np.isnan(inner).any():
            t = first + int(np.argmax(np.isnan(inner).any(axis=1)))
            raise ValueError(f"{name} contains NaN inside a series (series {i}, step {t}); NaN may only pad the "
                             "start or the end of a series. Fill gaps first, e.g. DataArray.interpolate_na('time')")
        series.append(np.ascontiguousarray(inner))
        times.append(np.asarray(coord)[first:last])
    return _Panel(series, times, many, has_component, series_coord, component_coord, label, attrs)


def _diebold_mariano(d, horizon):
    """Diebold and Mariano's (1995) statistic of the loss differences ``d`` of overlapping ``horizon``-step
    forecasts, in time order, with Harvey, Leybourne and Newbold's (1997) small-sample correction.

    The long-run variance of ``d`` sums its autocovariances up to lag ``horizon - 1`` (the lags at which two
    windows' targets overlap) with Bartlett weights (Newey and West 1987), which keeps it positive; 0 when ``d``
    has no spread but a mean of 0, and when there are no more windows than the horizon: their targets then all
    overlap, and the correction ``(n - h)(n - h + 1) / n**2`` vanishes (n = h, h - 1) or means nothing.
    """
    n = len(d)
    if n <= horizon:
        return 0.0
    z = d - d.mean()
    lags = horizon - 1
    variance = z @ z / n + 2 * sum((1 - k / (lags + 1)) * (z[k:] @ z[:-k]) / n for k in range(1, lags + 1))
    if variance <= 0:
        return 0.0 if d.mean() == 0 else float(np.copysign(np.inf, d.mean()))
    correction = (n - horizon) * (n - horizon + 1) / n**2  # n + 1 - 2h + h(h - 1)/n, over n
    return float(d.mean() / np.sqrt(variance / n) * np.sqrt(correction))


def _combination_weight(e_lin, e_net, horizon):
    """The network's share of the forecast from the squared errors ``e_lin`` and ``e_net`` of the linear part and
    the network on each held-out window, in time order: the inverse-error weight ``e_lin / (e_lin + e_net)`` of the
    means, times the Stein-type factor ``1 - 1 / t**2`` of their Diebold-Mariano statistic ``t``; 0 unless ``t``
    exceeds 1 (see ``LSTMForecaster``'s Notes), and 0 when an error is not finite."""
    if not (np.isfinite(e_lin).all() and np.isfinite(e_net).all()):
        return 0.0
    t = _diebold_mariano(e_lin - e_net, horizon)
    if not t > 1:
        return 0.0
    return float(e_lin.mean() / (e_lin.mean() + e_net.mean()) * (1 - 1 / t ** 2))


def _time_step(times):
    """The step between a series' time coords: a pandas frequency string for datetimes, a number
    otherwise; None when the coords are irregular or too few to tell."""
    if np.issubdtype(times.dtype, np.datetime64):
        return pd.infer_freq(pd.DatetimeIndex(times)) if len(times) >= 3 else None
    if times.dtype.kind in "iuf":
        if len(times) < 2:
            return 1 if times.dtype.kind in "iu" else None
        steps = np.diff(times)
        return steps[0].item() if steps[0] > 0 and np.allclose(steps, steps[0]) else None
    return None


def _future_times(last, step, horizon, series):
    """``horizon`` time coords after ``last``, ``step`` apart."""
    if step is None:
        raise ValueError(f"cannot extend the time coords of series {series}: they are irregular, too few, or "
                         "neither datetime64 nor numbers; pass y with a regular time coord (or none)")
    if isinstance(step, str):
        return pd.date_range(pd.Timestamp(last), periods=horizon + 1, freq=step)[1:].values.astype(
            np.asarray(last).dtype)
    return np.asarray(last) + step * np.arange(1, horizon + 1)


class LSTMForecaster(BaseEstimator):
    """Multi-step forecaster of one or many series, with covariates and quantile intervals.

    The forecaster cuts every training series into windows of ``lookback``
    steps followed by ``horizon`` steps, normalises each window on its own
    input steps (``normalize``), and trains one ``numlstm.LSTMRegressor`` to
    map the window to all ``horizon`` future steps at once (the *direct*
    multi-horizon strategy, MIMO: one network, one output per step ahead and
    component, no feedback of its own forecasts). With ``linear`` (default)
    the forecast is a weighted mean of the network's and that of a linear
    autoregression fitted in closed form on the same windows. ``predict``
    reads the last ``lookback`` steps of each series and returns the next
    ``horizon`` steps on the series' future time coords.

    Parameters
    ----------
    lookback : int, default=36
        Steps of history each forecast reads (darts' ``input_chunk_length``).
        Every training series needs at least ``lookback + horizon`` steps.
    horizon : int, default=12
        Steps forecast at once (darts' ``output_chunk_length``);
        ``predict`` may ask for fewer.
    normalize : {"mean", "last", "none"}, default="mean"
        Per-window normalisation, in the spirit of reversible instance
        normalisation (RevIN, Kim et al. 2022): each component of each window
        is shifted by a location of its input steps and divided by their
        standard deviation (floored at a tenth of the component's standard
        deviation over the training data), the network learns in those
        units, and its outputs are shifted and scaled back, so that the
        network sees changes relative to the window and a trend carries past
        the training range. "mean" takes the window's mean as the location, as
        RevIN does; "last" its last value (the network then predicts changes
        from the present, much as on differenced data); "none" leaves the
        levels to the regressor's global standardisation, which cannot
        extrapolate beyond the levels seen in training. The default was the
        most accurate in the backtests of ``docs/guide/forecasting.md``.
    linear : bool, default=True
        Combine the network with a linear autoregression: a ridge
        regression (``sklearn.linear_model.RidgeCV``, its penalty chosen by
        leave-one-out error) from each window's normalised target values,
        less the last one, to its normalised targets less the same (NLinear,
        Zeng et al. 2023), fitted on all training windows in closed form.
        The forecast is the weighted mean of the network's and the linear
        part's (``network_weight_``). With ``early_stopping`` the weights are
        inversely proportional to their mean squared errors on the held-out
        windows (the linear part then fitted on the training windows only),
        shrunk towards the linear part unless the network's errors there
        are lower by more than their noise (a Stein-type shrinkage by the
        Diebold-Mariano statistic, see the Notes); without early stopping
        they are equal. With ``quantiles``, every quantile of
        the network moves as its median does, so the spread stays the
        network's. The linear part adds no epochs and leaves the network as
        it is. It reads only the target values, not the covariates: with
        covariates that drive the series, keep ``early_stopping`` (the weights
        then favour the network) or pass False. False: the network alone.
    quantiles : sequence of float in (0, 1) or None, default=None
        If given, the network is trained on the pinball loss of these
        quantiles (``LSTMRegressor(loss="quantile")``) and every forecast has a
        ``quantile`` dim, e.g. ``(0.1, 0.5, 0.9)`` for a median and an 80%
        interval. None: a point forecast trained on the squared error.
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        Recurrent cell.
    hidden_size : int, default=32
        Units of the recurrent layer.
    num_layers : int, default=1
        Stacked recurrent layers.
    dropout : float, default=0.0
        Dropout between stacked layers, in training.
    batch_size : int, default=32
        Windows per mini-batch.
    max_iter : int, default=200
        Maximum number of epochs.
    learning_rate : float, default=1e-2
        Adam's step size.
    early_stopping : bool, default=True
        Choose the number of epochs on held-out windows in time order: the
        last ``validation_fraction`` of each series' steps (at least
        ``horizon``) are held out, the network trains on the windows whose
        targets end before them until the loss on the windows whose targets lie
        in them has not improved by ``tol`` for ``n_iter_no_change`` epochs,
        and a fresh network (same seed) then trains on all windows for the
        best epoch count; the network's forecast is the mean of the two (the
        searched network kept at its best epoch). About twice the cost of one
        fit; it keeps small noisy series from being overfitted. False: train
        up to ``max_iter`` epochs, stopped by the training loss.
    validation_fraction : float in (0, 1), default=0.2
        Share of each series' last steps held out for ``early_stopping``.
    n_iter_no_change : int, default=20
        Epochs without improvement (of the held-out loss with
        ``early_stopping``, else of the training loss) before training stops.
        The held-out loss of a small series is noisy: a patience of 10
        stopped too early in the backtests of ``docs/guide/forecasting.md``.
    tol : float, default=1e-4
        Smallest improvement of the loss that counts.
    n_models : int, default=1
        Networks trained on the same windows from different seeds; the
        forecast is the mean of theirs (a seed ensemble: it averages out
        the seed's share of the error at ``n_models`` times the training
        cost). With ``early_stopping`` the first network's search picks the
        epoch count for all of them.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights and the shuffling; an int makes ``fit`` reproducible.
        With ``n_models > 1``, network ``i`` gets ``random_state + i`` (an
        int) or a seed drawn from the RandomState instance.
    verbose : bool, default=False
        Show a progress bar over epochs.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the recurrent layer runs (see ``LSTMRegressor``).
    dims : tuple of str, default=("series", "time", "component")
        Names of the series, time and component dims of DataArray inputs and
        of the forecast.

    Attributes
    ----------
    regressors_ : list of numlstm.LSTMRegressor
        The networks whose mean is the network's forecast: the ``n_models``
        trained on all windows, then, with ``early_stopping``, the one the
        held-out windows validated (trained on the windows before them, at
        its best epoch).
    regressor_ : numlstm.LSTMRegressor
        The first of them: its X has ``lookback`` steps (``lookback +
        horizon`` with future covariates) and its y ``horizon *
        n_components_`` columns.
    linear_ : sklearn.linear_model.RidgeCV or None
        With ``linear``, the linear part: it maps the ``lookback *
        n_components_`` normalised target values of a window less the last
        one (step-major, as ``(lookback, n_components_)`` flattened) to its
        ``horizon * n_components_`` normalised targets less the same. None
        without.
    network_weight_ : float
        The network's share of the forecast, the linear part having the
        rest (see the Notes): 1.0 without ``linear``, 0.5 without
        ``early_stopping``, 0 when the network did not beat the linear part
        on the held-out windows by more than one standard error.
    n_components_ : int
        Components (targets) per step of ``y``.
    n_series_ : int
        Series ``fit`` saw.
    n_past_covariates_, n_future_covariates_, n_static_covariates_ : int
        Covariates per step (per series for static ones) seen in ``fit``; 0 for none.
    n_windows_ : int
        Training windows cut from the series.
    n_iter_ : int
        Epochs the first network trained (with ``early_stopping``, the count
        every network trained).
    validation_scores_ : list of float or None
        With ``early_stopping``: the held-out loss after each epoch of the
        search (mean squared error, or the pinball loss with ``quantiles``,
        in window-normalised units); None otherwise.

    Notes
    -----
    Window ``j`` of a series :math:`y` ends at step :math:`t_j`: its input is
    :math:`y_{t_j-L+1..t_j}` (``L = lookback``) and its targets are
    :math:`y_{t_j+1..t_j+H}` (``H = horizon``). With location :math:`m_j`
    and scale :math:`s_j = \\max(\\operatorname{sd}(y_{t_j-L+1..t_j}), 0.1\\,
    \\sigma)`, the network sees :math:`(y - m_j)/s_j` and learns
    :math:`(y_{t_j+h} - m_j)/s_j`; its output :math:`o` becomes the forecast
    :math:`\\hat y_{t_j+h} = m_j + s_j\\,o_h`. Because both the shift and the
    positive scale are undone exactly, quantiles stay ordered.

    With ``linear``, let :math:`x_j` hold the window's normalised target
    values and :math:`\\ell_j` its last one. The ridge regression's
    :math:`W, b` minimise :math:`\\sum_j \\lVert z_j - \\ell_j - W(x_j - \\ell_j)
    - b\\rVert^2 + \\alpha \\lVert W\\rVert^2`, with :math:`z_j` the normalised
    targets and :math:`\\alpha` chosen by leave-one-out error (closed form);
    in the original units its forecast is :math:`y_{t_j} +
    W(y_{t_j-L+1..t_j} - y_{t_j}) + s_j b`, an autoregression that shrinks
    towards the naive forecast. Let :math:`d_j` be the linear part's
    squared error less the network's (its best epoch's, in the search),
    averaged over the horizon and components, on held-out window :math:`j`
    (in time order, series after series), and
    :math:`e_{lin}`, :math:`e_{net}` the two's mean squared errors there.
    The network's weight is

    .. math::

        w = \\frac{e_{lin}}{e_{lin} + e_{net}}
            \\Bigl(1 - \\frac{1}{t^2}\\Bigr) \\text{ if } t > 1,
        \\quad w = 0 \\text{ otherwise},

    and the output becomes :math:`o + (1 - w)(\\ell_j + W(x_j - \\ell_j) + b
    - o)`. The first factor weighs the two inversely to their errors, which
    ignores the errors' correlation and so is estimated robustly from few
    windows (Bates and Granger 1969; Smith and Wallis 2009). The second
    shrinks the network's share towards the simpler linear part by how
    clearly the network won: :math:`t` is the Diebold-Mariano (1995)
    statistic of the :math:`d_j` (their mean over its standard error; the
    windows overlap, so the long-run variance sums the autocovariances up to
    lag :math:`H - 1` with Bartlett weights, Newey and West 1987), times the
    small-sample correction :math:`\\sqrt{(n + 1 - 2H + H(H-1)/n)/n}` of
    Harvey, Leybourne and Newbold (1997) for :math:`n` windows; the factor
    :math:`1 - 1/t^2`, cut to 0 below :math:`t = 1`, is the positive-part
    Stein-type combination of a restricted and an unrestricted model with
    the squared statistic as the distance (Hansen 2016), here with
    shrinkage 1: the network gets no share unless it beat the linear part
    by more than one standard error.
    The best epoch's held-out error is the least of many and so biased
    low; the shrinkage also guards against that. With no more held-out
    windows than the horizon, :math:`t` is taken as 0. With several series
    the windows of all of them form one sequence, series after series: the
    lags at the seams and the correlation between series are ignored, so
    :math:`t` grows with the number of series as if they were independent.

    With ``early_stopping`` the network's forecast is the mean of the
    networks refitted on all windows and of the searched one at its best
    epoch: an equal-weight ensemble (Hansen and Salamon 1990) whose members
    differ in their training windows as well as their epochs' paths, so that
    the refit's transfer of an epoch count to more windows is hedged. It
    costs no training, but a forecast runs both networks.

    Covariates enter as extra input features per step: past covariates
    over the ``lookback`` steps; future covariates over the ``lookback`` steps
    and the ``horizon`` steps after them, through which the network then runs
    (the target and past-covariate features are 0 there, and an indicator
    feature marks those steps); static covariates repeat at every step.
    The regressor standardizes every feature globally.

    References
    ----------
    Bates, J. M. and Granger, C. W. J. (1969). The combination of forecasts.
    Operational Research Quarterly 20(4), 451-468.

    Diebold, F. X. and Mariano, R. S. (1995). Comparing predictive
    accuracy. Journal of Business and Economic Statistics 13(3), 253-263.

    Hansen, B. E. (2016). Efficient shrinkage in parametric models. Journal
    of Econometrics 190(1), 115-132.

    Hansen, L. K. and Salamon, P. (1990). Neural network ensembles. IEEE
    Transactions on Pattern Analysis and Machine Intelligence 12(10),
    993-1001.

    Harvey, D., Leybourne, S. and Newbold, P. (1997). Testing the equality of
    prediction mean squared errors. International Journal of Forecasting
    13(2), 281-291.

    Kim, T., Kim, J., Tae, Y., Park, C., Choi, J.-H. and Choo, J. (2022).
    Reversible instance normalization for accurate time-series forecasting
    against distribution shift. ICLR 2022.

    Newey, W. K. and West, K. D. (1987). A simple, positive semi-definite,
    heteroskedasticity and autocorrelation consistent covariance matrix.
    Econometrica 55(3), 703-708.

    Smith, J. and Wallis, K. F. (2009). A simple explanation of the forecast
    combination puzzle. Oxford Bulletin of Economics and Statistics 71(3),
    331-355.

    Taieb, S. B., Bontempi, G., Atiya, A. F. and Sorjamaa, A. (2012). A review
    and comparison of strategies for multi-step ahead time series
    forecasting based on the NN5 forecasting competition. Expert Systems
    with Applications 39(8), 7067-7083.

    Zeng, A., Chen, M., Zhang, L. and Xu, Q. (2023). Are transformers
    effective for time series forecasting? AAAI 2023, 11121-11128.

    Examples
    --------
    >>> import numpy as np
    >>> from numlstm import LSTMForecaster
    >>> t = np.arange(120.0)
    >>> y = 0.05 * t + np.sin(2 * np.pi * t / 12)
    >>> fc = LSTMForecaster(lookback=24, horizon=6, max_iter=20, random_state=0).fit(y)
    >>> fc.predict().sizes["time"]
    6
    """

    _parameter_constraints: dict = {
        "lookback": [Interval(Integral, 1, None, closed="left")],
        "horizon": [Interval(Integral, 1, None, closed="left")],
        "normalize": [StrOptions(set(NORMALIZATIONS))],
        "linear": ["boolean"],
        "quantiles": ["array-like", None],
        "cell": [StrOptions({"lstm", "gru", "rnn"})],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_models": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "dims": [tuple],
    }

    def __init__(self, *, lookback=36, horizon=12, normalize="mean", linear=True, quantiles=None, cell="lstm",
                 hidden_size=32, num_layers=1, dropout=0.0, batch_size=32, max_iter=200, learning_rate=1e-2,
                 early_stopping=True, validation_fraction=0.2, n_iter_no_change=20, tol=1e-4, n_models=1,
                 random_state=None, verbose=False, device="cpu", dims=("series", "time", "component")):
        self.lookback = lookback
        self.horizon = horizon
        self.normalize = normalize
        self.linear = linear
        self.quantiles = quantiles
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.n_models = n_models
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        self.dims = dims

    # ---- validation ---------------------------------------------------------------------

    def _check_params(self):
        self._validate_params()
        _check_dims(self.dims, "(series, time, component)")
        if self.quantiles is not None:
            if not _valid_quantiles(self.quantiles):
                raise ValueError(f"quantiles must be distinct values in (0, 1), got {self.quantiles!r}")

    def _seeds(self):
        """The ``random_state`` of each network of the ensemble."""
        if self.n_models == 1 or self.random_state is None:
            return [self.random_state] * self.n_models
        if isinstance(self.random_state, Integral):
            return [int(self.random_state) + i for i in range(self.n_models)]
        return [int(seed) for seed in self.random_state.randint(np.iinfo(np.int32).max, size=self.n_models)]

    def _regressor(self, random_state):
        quantiles = None if self.quantiles is None else tuple(sorted(float(q) for q in self.quantiles))
        return LSTMRegressor(
            cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers, dropout=self.dropout,
            batch_size=self.batch_size, max_iter=self.max_iter, learning_rate=self.learning_rate,
            n_iter_no_change=self.n_iter_no_change, tol=self.tol, random_state=random_state,
            verbose=self.verbose, device=self.device, loss="quantile" if quantiles else None, quantiles=quantiles,
            dims=("sample", "time", "feature"))

    def _covariates(self, panel, covariates, name, *, kind, horizon=0, fitted=None):
        """Covariates as per-series ``(n_steps, n)`` arrays aligned with ``panel``'s series.

        ``kind`` is "past" (as many steps as the series), "future" (at least
        ``horizon`` more) or "static" (one row per series). ``fitted`` is the
        number of covariates ``fit`` saw (None in ``fit``).
        """
        if covariates is None:
            if fitted:
                raise ValueError(f"{name} is required: the forecaster was fitted with {fitted} of them")
            return None
        if fitted == 0:
            raise ValueError(f"{name} were given, but the forecaster was fitted without them")
        n = len(panel.values)
        dtype = panel.values[0].dtype
        if kind == "static":
            values = np.asarray(covariates.values if isinstance(covariates, xr.DataArray) else covariates)
            values = _as_float(values, name, dtype)
            values = values.reshape(1, -1) if values.ndim == 1 and n == 1 else values
            if values.ndim == 1:
                values = values[:, None]
            if values.ndim != 2 or values.shape[0] != n:
                raise ValueError(f"{name} must be (n_series, n_static) = ({n}, ...), one row per series, "
                                 f"got shape {np.shape(covariates)}")
            if not np.isfinite(values).all():
                raise ValueError(f"{name} must be finite")
            out = list(values)
        else:
            cov = _to_panel(covariates, name, self.dims, dtype)
            if len(cov.values) != n:
                raise ValueError(f"{name} has {len(cov.values)} series, y has {n}")
            out = []
            for i, (c, v) in enumerate(zip(cov.values, panel.values)):
                need = len(v) + horizon
                if kind == "past" and len(c) != len(v) or kind == "future" and len(c) < need:
                    what = f"exactly {len(v)}" if kind == "past" else f"at least {need}"
                    extra = f" (y's {len(v)} plus the horizon {horizon})" if kind == "future" and horizon else ""
                    raise ValueError(f"{name} of series {i} has {len(c)} steps; it needs {what}{extra}, aligned "
                                     "with y's first step")
                out.append(c[:need])
        width = out[0].shape[-1]
        if fitted is not None and width != fitted:
            raise ValueError(f"{name} have {width} columns, but the forecaster was fitted with {fitted}")
        return out

    # ---- windows ------------------------------------------------------------------------

    def _normalise(self, inputs):
        """Location and scale of each window ``(n, lookback, k)``: two ``(n, 1, k)`` arrays."""
        if self.normalize == "none":
            ones = np.ones((len(inputs), 1, inputs.shape[2]), inputs.dtype)
            return 0 * ones, ones
        loc = inputs[:, -1:] if self.normalize == "last" else inputs.mean(axis=1, keepdims=True)
        scale = np.maximum(inputs.std(axis=1, keepdims=True), self._scale_floor)
        return loc, scale.astype(inputs.dtype)

    def _features(self, inputs, loc, scale, past, future, static):
        """The regressor's X: ``(n, lookback[+horizon], features)``.

        ``inputs`` (n, lookback, k) are the target values; ``past`` (n,
        lookback, p), ``future`` (n, lookback + horizon, f) and ``static`` (n, s) or (1, s)
        the covariates, or None.
        """
        parts = [(inputs - loc) / scale] + ([past] if past is not None else [])
        X = np.concatenate(parts, axis=2)
        if future is not None:
            ahead = future.shape[1] - X.shape[1]
            X = np.concatenate([X, np.zeros((len(X), ahead, X.shape[2]), X.dtype)], axis=1)
            flag = np.zeros(X.shape[:2] + (1,), X.dtype)
            flag[:, -ahead:] = 1
            X = np.concatenate([X, future, flag], axis=2)
        if static is not None:
            X = np.concatenate([X, np.broadcast_to(static[:, None, :], X.shape[:2] + static.shape[1:])], axis=2)
        return np.ascontiguousarray(X.astype(inputs.dtype, copy=False))

    # ---- fit ----------------------------------------------------------------------------

    def fit(self, y, *, past_covariates=None, future_covariates=None, static_covariates=None):
        """Train on the series ``y``.

        Parameters
        ----------
        y : array-like, list of arrays or xarray.DataArray
            One or many series (see the module docstring): ``(time,)``,
            ``(series, time[, component])``, a list of ``(time[, component])``
            arrays of any lengths, or a DataArray with a time dim. Each needs
            at least ``lookback + horizon`` steps.
        past_covariates : same forms as y, optional
            Values known up to the present only (e.g. measured drivers): the
            same series and steps as ``y``, any number of columns (the
            component dim).
        future_covariates : same forms as y, optional
            Values known in advance (calendar, scheduled inputs, forecasts of
            drivers): aligned with ``y``'s first step and at least as long
            (steps beyond are ignored, so that one array can serve ``fit`` and
            ``predict``, where they must reach ``horizon`` steps beyond the end).
        static_covariates : array-like of shape (n_series, n_static) or (n_static,), optional
            One row of constants per series (a 1-D array for one series).

        Returns
        -------
        self
        """
        self._check_params()
        panel = _to_panel(y, "y", self.dims)
        short = [i for i, n in enumerate(panel.lengths) if n < self.lookback + self.horizon]
        if short:
            raise ValueError(f"y's series {short[:5]} have {panel.lengths[short][:5].tolist()} steps, fewer than "
                             f"lookback + horizon = {self.lookback} + {self.horizon}; every series needs at "
                             "least that many to give a training window (lower lookback or horizon)")
        past = self._covariates(panel, past_covariates, "past_covariates", kind="past")
        future = self._covariates(panel, future_covariates, "future_covariates", kind="future")
        static = self._covariates(panel, static_covariates, "static_covariates", kind="static")
        every = np.concatenate(panel.values)
        sd = every.std(axis=0)
        self._scale_floor = (_SCALE_FLOOR * np.where(sd > 0, sd, 1)).astype(every.dtype)
        X, Y, ends, lengths = self._windows(panel, past, future, static)
        Y = Y.reshape(len(Y), -1)
        self.n_components_ = panel.values[0].shape[1]
        seeds = self._seeds()
        epochs, scores, weight, searched = (self._epochs(X, Y, ends, lengths, seeds[0]) if self.early_stopping
                                            else (None, None, None, None))
        self.linear_ = self._fit_linear(X, Y) if self.linear else None
        self.network_weight_ = 1.0 if not self.linear else 0.5 if weight is None else weight
        refits = [self._regressor(seed) for seed in seeds]
        self.regressors_ = refits + ([] if searched is None else [searched])
        for regressor in refits:
            if epochs is None:
                regressor.fit(X, Y)
            else:  # exactly the epochs the held-out windows chose: reaching them is no failure to converge
                regressor.set_params(max_iter=epochs, n_iter_no_change=epochs)
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=ConvergenceWarning)
                    regressor.fit(X, Y)
        self.regressor_ = regressor = self.regressors_[0]
        self.n_iter_, self.validation_scores_ = regressor.n_iter_, scores
        self.n_series_ = len(panel.values)
        self.n_windows_ = len(X)
        self.n_past_covariates_ = 0 if past is None else past[0].shape[1]
        self.n_future_covariates_ = 0 if future is None else future[0].shape[1]
        self.n_static_covariates_ = 0 if static is None else len(static[0])
        self._quantiles = regressor._quantiles
        self._y = panel
        self._past, self._static = past, static
        return self

    def _windows(self, panel, past, future, static):
        """Training X and Y ``(n_windows, horizon, k)`` over every series."""
        L, H = self.lookback, self.horizon
        Xs, Ys, ends, lengths = [], [], [], []
        for i, v in enumerate(panel.values):
            full = np.lib.stride_tricks.sliding_window_view(v, L + H, axis=0).transpose(0, 2, 1)
            inputs, targets = full[:, :L], full[:, L:]
            loc, scale = self._normalise(inputs)
            p = None if past is None else np.lib.stride_tricks.sliding_window_view(
                past[i][: len(v) - H], L, axis=0).transpose(0, 2, 1)
            f = None if future is None else np.lib.stride_tricks.sliding_window_view(
                future[i][: len(v)], L + H, axis=0).transpose(0, 2, 1)
            s = None if static is None else static[i][None]  # (1, s): _features broadcasts it
            Xs.append(self._features(inputs, loc, scale, p, f, s))
            Ys.append((targets - loc) / scale)
            ends.append(np.arange(L + H, len(v) + 1))
            lengths.append(np.full(len(inputs), len(v)))
        return (np.concatenate(Xs), np.concatenate(Ys).astype(panel.values[0].dtype, copy=False),
                np.concatenate(ends), np.concatenate(lengths))

    def _lags(self, X):
        """The linear part's input, each window's normalised target values less the last one ``(n, lookback * k)``,
        and that last one, tiled over the horizon ``(n, horizon * k)``."""
        values = X[:, :self.lookback, :self.n_components_]
        last = values[:, -1]
        return (values - last[:, None]).reshape(len(X), -1), np.tile(last, self.horizon)

    def _fit_linear(self, X, Y):
        """The linear part fitted on the windows X, Y."""
        lags, last = self._lags(X)
        with np.errstate(divide="ignore", invalid="ignore"):  # one window leaves none to validate: intercept only
            return RidgeCV(alphas=_RIDGE_ALPHAS).fit(lags, Y - last)

    def _linear_forecast(self, linear, X):
        """The linear part's forecasts of the windows X, ``(n, horizon * k)`` in normalised units."""
        lags, last = self._lags(X)
        return linear.predict(lags).astype(X.dtype, copy=False) + last

    def _network_weight(self, X_train, Y_train, X_val, Y_val, network):
        """The network's share of the forecast (``_combination_weight``) from its point forecasts ``network`` of the
        held-out windows ``X_val`` and those of a linear part fitted on the training windows."""
        linear = self._linear_forecast(self._fit_linear(X_train, Y_train), X_val)
        e_lin, e_net = (np.mean((f - Y_val) ** 2, axis=1, dtype=np.float64) for f in (linear, network))
        return _combination_weight(e_lin, e_net, self.horizon)

    def _epochs(self, X, Y, ends, lengths, random_state):
        """The epoch count of least loss on held-out windows, the loss of every epoch, the network's weight and
        the network of that epoch.

        The last ``validation_fraction`` of each series' steps (at least
        ``horizon``) are held out: windows whose targets start there validate,
        windows whose targets end before it train, so no held-out value is a
        training target. Training stops once the held-out loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs. With ``linear``,
        also the network's weight in the forecast from the held-out errors of
        its best epoch and of a linear part fitted on the training windows
        (else None). (None, None, None, None) with a warning when a series is
        too short to hold any window out.
        """
        held = np.maximum(self.horizon, np.round(self.validation_fraction * lengths).astype(int))
        val, train = ends - self.horizon >= lengths - held, ends <= lengths - held
        if not val.any() or not train.any():
            warnings.warn(f"{type(self).__name__}: the series are too short to hold out windows for early stopping "
                          f"(validation_fraction={self.validation_fraction}); the training loss decides when to stop",
                          UserWarning, stacklevel=3)
            return None, None, None, None
        regressor, losses, best, least, since = self._regressor(random_state), [], np.inf, np.inf, 0
        X_train, Y_train, X_val, Y_val = X[train], Y[train], X[val], Y[val]
        for _ in range(self.max_iter):
            regressor.partial_fit(X_train, Y_train)
            predicted = np.asarray(regressor.predict(X_val))
            if regressor._quantiles is None:
                losses.append(float(np.mean((Y_val - predicted) ** 2)))
            else:  # the pinball loss the quantile model trains on
                losses.append(pinball(predicted.reshape(len(predicted), -1), Y_val, regressor._quantiles)[0])
            if losses[-1] < least:  # the first best epoch so far: its weights, progress and point forecasts
                least, kept = losses[-1], (regressor.network_.state_dict(), _progress(regressor))
                point = predicted[..., _median_quantile(regressor._quantiles)] if regressor._quantiles else predicted
            if losses[-1] < best - self.tol:
                best, since = losses[-1], 0
            else:
                since += 1
                if since >= self.n_iter_no_change:
                    break
        weight = self._network_weight(X_train, Y_train, X_val, Y_val, point) if self.linear else None
        weights, progress = kept  # back to the best epoch, as the estimators' own early stopping does
        regressor.network_.load_state_dict(weights)
        for name, value in progress.items():
            setattr(regressor, name, value)
        return regressor.n_iter_, losses, weight, regressor

    # ---- predict ------------------------------------------------------------------------

    def predict(self, horizon=None, *, y=None, past_covariates=None, future_covariates=None,
                static_covariates=None):
        """Forecast the next ``horizon`` steps of each series.

        Parameters
        ----------
        horizon : int or None, default=None
            Steps ahead, 1 to the ``horizon`` of the constructor (its value
            when None). A direct forecaster predicts only as far as it was
            trained to; refit with a larger ``horizon`` to see further.
        y : same forms as in ``fit``, optional
            The series to continue, each with at least ``lookback`` steps
            (only the last ``lookback`` are read). None: the series of ``fit``,
            continued from their ends.
        past_covariates, future_covariates, static_covariates : optional
            As in ``fit``, for the series forecast, and required exactly when
            ``fit`` had them. ``future_covariates`` must reach the fitted
            ``horizon`` steps beyond each series' end (the network reads all
            of them, even when fewer steps are asked for). With ``y=None`` the past and static
            covariates of ``fit`` are reused when these are None.

        Returns
        -------
        xarray.DataArray
            Dims ``(series, time, component, quantile)``, without ``series``
            for a single series, without ``component`` when ``y`` had none,
            and with ``quantile`` only with ``quantiles``. The ``time`` coord
            continues each series' time coord by its step (a datetime
            frequency or a constant number; positions for arrays). Series that
            end at different times share the union of their future times, with
            NaN where a series' forecast does not reach.
        """
        check_is_fitted(self)
        horizon = self._check_horizon(horizon)
        panel, past, future, static = self._inputs(y, past_covariates, future_covariates, static_covariates,
                                                   horizon)
        values = self._forecast(panel, past, future, static)[:, :horizon]
        return self._to_dataarray(values, panel, [_time_step(t) for t in panel.times])

    def _check_horizon(self, horizon):
        if horizon is None:
            return self.horizon
        if not isinstance(horizon, Integral) or isinstance(horizon, bool) or not 1 <= horizon <= self.horizon:
            raise ValueError(f"horizon must be an int from 1 to the fitted horizon {self.horizon}, got {horizon!r}; "
                             "refit with a larger horizon to forecast further")
        return int(horizon)

    def _inputs(self, y, past_covariates, future_covariates, static_covariates, horizon):
        """The series to continue and their covariates, validated against ``fit``."""
        n_past, n_static = self.n_past_covariates_, self.n_static_covariates_
        if y is None:
            panel = self._y
            past = self._past if past_covariates is None else self._covariates(
                panel, past_covariates, "past_covariates", kind="past", fitted=n_past)
            static = self._static if static_covariates is None else self._covariates(
                panel, static_covariates, "static_covariates", kind="static", fitted=n_static)
        else:
            panel = _to_panel(y, "y", self.dims, self._y.values[0].dtype)
            short = [i for i, n in enumerate(panel.lengths) if n < self.lookback]
            if short:
                raise ValueError(f"y's series {short[:5]} are shorter than lookback={self.lookback}; predict reads "
                                 "the last lookback steps of each series")
            if panel.values[0].shape[1] != self.n_components_:
                raise ValueError(f"y has {panel.values[0].shape[1]} components, but the forecaster was fitted "
                                 f"with {self.n_components_}")
            past = self._covariates(panel, past_covariates, "past_covariates", kind="past", fitted=n_past)
            static = self._covariates(panel, static_covariates, "static_covariates", kind="static", fitted=n_static)
        future = self._covariates(panel, future_covariates, "future_covariates", kind="future",
                                  horizon=self.horizon if self.n_future_covariates_ else horizon,
                                  fitted=self.n_future_covariates_)
        return panel, past, future, static

    def _forecast(self, panel, past, future, static):
        """Forecasts ``(n_series, horizon, k[, n_quantiles])`` in y's units."""
        L, H = self.lookback, self.horizon
        inputs = np.stack([v[-L:] for v in panel.values])
        loc, scale = self._normalise(inputs)
        p = None if past is None else np.stack([c[len(v) - L: len(v)] for c, v in zip(past, panel.values)])
        f = None if future is None else np.stack([c[len(v) - L: len(v) + H] for c, v in zip(future, panel.values)])
        s = None if static is None else np.stack(static)
        X = self._features(inputs, loc, scale, p, f, s)
        out = np.mean([np.asarray(regressor.predict(X)) for regressor in self.regressors_], axis=0)
        n, k = len(inputs), self.n_components_
        if self.linear_ is not None:  # move the network's (n, H * k[, n_quantiles]) outputs towards the linear part
            point = out[..., _median_quantile(self._quantiles)] if self._quantiles else out
            shift = (1 - self.network_weight_) * (self._linear_forecast(self.linear_, X) - point)
            out = out + (shift[..., None] if self._quantiles else shift)
        if self._quantiles:
            out = out.reshape(n, H, k, len(self._quantiles))
            return out * scale[..., None] + loc[..., None]
        return out.reshape(n, H, k) * scale + loc

    def _to_dataarray(self, values, panel, steps):
        series_dim, time_dim, component_dim = self.dims
        horizon = values.shape[1]
        futures = [_future_times(t[-1], step, horizon, i) for i, (t, step) in enumerate(zip(panel.times, steps))]
        same = all(np.array_equal(f, futures[0]) for f in futures)
        times = futures[0] if same else np.unique(np.concatenate(futures))
        full = np.full((len(values), len(times)) + values.shape[2:], np.nan, values.dtype)
        for row, f, v in zip(full, futures, values):
            row[np.searchsorted(times, f)] = v
        dims = [series_dim, time_dim, component_dim] + (["quantile"] if self._quantiles else [])
        coords = {time_dim: times}
        if panel.series_coord is not None:
            coords[series_dim] = panel.series_coord
        if panel.component_coord is not None:
            coords[component_dim] = panel.component_coord
        if self._quantiles:
            coords["quantile"] = np.asarray(self._quantiles)
        out = xr.DataArray(full, dims=dims, coords=coords, name=panel.name, attrs=panel.attrs or {})
        if not panel.component:
            out = out.isel({component_dim: 0}, drop=True)
        if not panel.many:
            out = out.isel({series_dim: 0}, drop=True)
        return out

    # ---- backtest -----------------------------------------------------------------------

    def backtest(self, y, *, start=0.5, stride=None, horizon=None, season=1, refit=True, past_covariates=None,
                 future_covariates=None, static_covariates=None):
        """Historical forecasts over expanding windows, with their errors.

        For each cutoff ``c`` (from ``start`` to the end, ``stride`` apart) a
        clone of this forecaster is trained on the first ``c`` steps of ``y``
        (once, on the first cutoff's, with ``refit=False``) and forecasts
        steps ``c .. c + horizon - 1``, which are compared with the truth.
        The estimator itself is left as it is.

        Parameters
        ----------
        y : one series, in any form ``fit`` takes
            A single series (with any number of components).
        start : float in (0, 1) or int, default=0.5
            The first cutoff: a share of the series, or a number of steps (at
            least ``lookback + horizon``).
        stride : int or None, default=None
            Steps between cutoffs; ``horizon`` when None, so that the forecast
            periods tile the rest of the series.
        horizon : int or None, default=None
            Steps forecast from each cutoff, up to the constructor's ``horizon``
            (its value when None).
        season : int, default=1
            Seasonal period of the naive forecast that scales MASE (1: the
            random walk; 12 for monthly data with a yearly cycle).
        refit : bool, default=True
            Train anew at every cutoff (expanding window) or once.
        past_covariates, future_covariates, static_covariates : optional
            As in ``fit``, for the whole series (future covariates at least as
            long as ``y``).

        Returns
        -------
        xarray.Dataset
            Dims ``fold`` and ``step`` (1 .. horizon), plus ``component`` and
            ``quantile`` as ``predict`` has them. Variables: ``forecast`` and
            ``truth``; per fold ``mae``, ``rmse``, ``mase`` and ``smape``
            (symmetric MAPE in %, 0 to 200), all over the fold's steps and
            components and of the median (the quantile nearest 0.5) when there
            are quantiles, ``coverage`` (share of the truth inside the outer
            quantiles) with quantiles, and ``fit_time`` in seconds (0 for the
            folds that did not refit). Coords: ``cutoff``, the time of the last
            step trained on, and ``time`` (fold, step), the forecast times.

        Notes
        -----
        With forecast :math:`\\hat y` and truth :math:`y` over the fold's
        steps :math:`h = 1..H`, MAE :math:`= \\overline{|y-\\hat y|}`, RMSE
        :math:`= \\sqrt{\\overline{(y-\\hat y)^2}}`, sMAPE :math:`=
        \\overline{200\\,|y-\\hat y|/(|y|+|\\hat y|)}` and MASE :math:`=`
        MAE :math:`/\\,\\overline{|y_t - y_{t-m}|}`, the mean over the fold's
        training steps of the seasonal naive error with :math:`m =` ``season``
        (Hyndman and Koehler 2006).
        """
        self._check_params()
        horizon = self._check_horizon(horizon)
        panel = _to_panel(y, "y", self.dims)
        if len(panel.values) != 1:
            raise ValueError(f"backtest takes a single series; y has {len(panel.values)}. Backtest each one "
                             "on its own")
        n = len(panel.values[0])
        first = self._first_cutoff(start, n, horizon)
        stride = horizon if stride is None else stride
        if not isinstance(stride, Integral) or isinstance(stride, bool) or stride < 1:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        if not isinstance(season, Integral) or isinstance(season, bool) or season < 1:
            raise ValueError(f"season must be a positive int, got {season!r}")
        cutoffs = np.arange(first, n - horizon + 1, stride)
        values = panel.values[0]
        past, future = (None if c is None else _to_panel(c, name, self.dims, values.dtype).values[0]
                        for c, name in ((past_covariates, "past_covariates"),
                                        (future_covariates, "future_covariates")))
        forecasts, fit_times, model = [], [], None
        for c in cutoffs:
            cut = dict(past_covariates=None if past is None else [past[:c]],
                       future_covariates=None if future is None else [future[: c + self.horizon]],
                       static_covariates=static_covariates)
            if refit or model is None:
                began = _time.perf_counter()
                model = clone(self).fit([values[:c]], **cut)
                fit_times.append(_time.perf_counter() - began)
            else:
                fit_times.append(0.0)
            forecasts.append(model.predict(horizon, y=[values[:c]], **cut).values)
        forecast = np.stack(forecasts).reshape((len(cutoffs), horizon, values.shape[1]) + (
            (len(model._quantiles),) if model._quantiles else ()))
        truth = np.stack([values[c: c + horizon] for c in cutoffs])
        point = forecast[..., _median_quantile(model._quantiles)] if model._quantiles else forecast
        scales = [np.mean(np.abs(values[season:c] - values[: c - season])) for c in cutoffs]
        return self._backtest_dataset(panel, cutoffs, horizon, forecast, truth, point, scales, fit_times,
                                      model._quantiles)

    def _first_cutoff(self, start, n, horizon):
        if isinstance(start, Real) and not isinstance(start, (Integral, bool)) and 0 < start < 1:
            first = int(round(start * n))
        elif isinstance(start, Integral) and not isinstance(start, bool):
            first = int(start)
        else:
            raise ValueError(f"start must be a share in (0, 1) or a number of steps, got {start!r}")
        if first < self.lookback + self.horizon or first > n - horizon:
            raise ValueError(f"start={start!r} puts the first cutoff at step {first}; it must lie from "
                             f"lookback + horizon = {self.lookback + self.horizon} (the first training window) "
                             f"to {n - horizon} (the last that leaves {horizon} steps to forecast) of y's {n}")
        return first

    def _backtest_dataset(self, panel, cutoffs, horizon, forecast, truth, point, scales, fit_times, quantiles):
        _, time_dim, component_dim = self.dims
        errors = point - truth
        folds = tuple(range(1, errors.ndim))
        absolute = np.abs(errors)
        mae = absolute.mean(axis=folds)
        magnitude = np.abs(truth) + np.abs(point)
        data = {
            "forecast": (("fold", "step", component_dim) + (("quantile",) if quantiles else ()), forecast),
            "truth": (("fold", "step", component_dim), truth),
            "mae": ("fold", mae),
            "rmse": ("fold", np.sqrt((errors ** 2).mean(axis=folds))),
            "mase": ("fold", mae / np.where(np.asarray(scales) > 0, scales, np.nan)),
            "smape": ("fold", np.mean(200 * absolute / np.where(magnitude > 0, magnitude, np.inf), axis=folds)),
            "fit_time": ("fold", np.asarray(fit_times)),
        }
        if quantiles:
            inside = (forecast[..., 0] <= truth) & (truth <= forecast[..., -1])
            data["coverage"] = ("fold", inside.mean(axis=folds))
        times = panel.times[0]
        coords = {"fold": np.arange(len(cutoffs)), "step": np.arange(1, horizon + 1),
                  "cutoff": ("fold", times[cutoffs - 1]),
                  time_dim: (("fold", "step"), np.stack([times[c: c + horizon] for c in cutoffs]))}
        if quantiles:
            coords["quantile"] = np.asarray(quantiles)
        if panel.component_coord is not None:
            coords[component_dim] = panel.component_coord
        ds = xr.Dataset(data, coords=coords)
        return ds if panel.component else ds.isel({component_dim: 0}, drop=True)

