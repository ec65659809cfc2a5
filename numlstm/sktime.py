"""sktime adapters: numlstm's estimators in sktime's terms (the optional ``sktime`` extra).

``LSTMSktimeClassifier`` is an sktime time series classifier
(``sktime.classification.base.BaseClassifier``) around
``numlstm.LSTMClassifier``. It takes any of sktime's Panel layouts: a
``numpy3D`` array ``(instance, channel, time)``, a ``pd-multiindex`` frame
(instance and time in the index, one column per channel), a nested frame or a
list of frames, with series of unequal lengths. It hands them to numlstm as a
``(sample, time, feature)`` DataArray, so that sktime's channel axis is never
read as numlstm's time axis.

``LSTMSktimeForecaster`` is an sktime forecaster
(``sktime.forecasting.base.BaseForecaster``) around ``numlstm.LSTMForecaster``:
y is a ``pd.Series`` or ``pd.DataFrame`` (one component per column), X the
exogenous data known in advance, which numlstm reads as future covariates.
Panel and hierarchical y are forecast series by series, by sktime's own
broadcasting.

This module imports sktime; ``import numlstm`` does not import it.
"""

import inspect

import numpy as np
import pandas as pd
import xarray as xr
from sktime.classification.base import BaseClassifier
from sktime.datatypes import update_data
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon

from numlstm.data import DEFAULT_DIMS, pad
from numlstm.estimators import LSTMClassifier, _median_quantile
from numlstm.forecasting import LSTMForecaster

__all__ = ["LSTMSktimeClassifier", "LSTMSktimeForecaster"]


def _defaults(cls):
    """The constructor defaults of ``cls``, so that an adapter's follow them."""
    return {name: p.default for name, p in inspect.signature(cls).parameters.items()}


_DEFAULTS = _defaults(LSTMClassifier)
_FORECASTER_DEFAULTS = _defaults(LSTMForecaster)


def _panel_to_dataarray(X):
    """sktime Panel data in an inner mtype (``numpy3D`` or ``df-list``) as a
    ``(sample, time, feature)`` DataArray, NaN-padded at the end of shorter series.

    A series' time index is read as consecutive steps: its values count, not
    its index labels.
    """
    if isinstance(X, np.ndarray):  # numpy3D: (instance, channel, time)
        return xr.DataArray(X.transpose(0, 2, 1), dims=DEFAULT_DIMS)
    return pad([frame.to_numpy() for frame in X], dims=DEFAULT_DIMS)


class LSTMSktimeClassifier(BaseClassifier):
    """sktime classifier around ``numlstm.LSTMClassifier``: a recurrent network
    (LSTM, GRU or RNN) and a softmax layer, trained on the cross-entropy.

    Each series of X is a sequence: its time points are the steps and its
    channels (variables) the features of each step, whatever sktime layout it
    comes in. Series may have different lengths. NaN is an error unless
    ``missing`` says how to fill it (NaN at a series' start or end then shortens
    it).

    Parameters
    ----------
    cell, hidden_size, num_layers, bidirectional, peephole, coupled, forget_bias, dropout
        The network, as in ``numlstm.LSTMClassifier``, with its defaults.
    batch_size, max_iter, class_weight, optimizer, learning_rate, learning_rate_schedule
        Training, as in ``numlstm.LSTMClassifier``, with its defaults.
    momentum, nesterov, weight_decay, clip_norm
        The optimizer, as in ``numlstm.LSTMClassifier``, with its defaults.
    early_stopping, validation_fraction, n_iter_no_change, tol
        When to stop, as in ``numlstm.LSTMClassifier``, with its defaults.
    missing : {"error", "mask", "ffill"}
        What a NaN inside a series means, as in ``numlstm.LSTMClassifier``
        (default "error"). Any other value than "error" sets the
        ``capability:missing_values`` tag.
    standardize, random_state, verbose, device
        As in ``numlstm.LSTMClassifier``, with its defaults.

    Attributes
    ----------
    estimator_ : numlstm.LSTMClassifier
        The fitted numlstm classifier. It takes X as ``(sample, time,
        feature)``: to call it directly on sktime's ``numpy3D`` data, pass
        ``X.transpose(0, 2, 1)``.
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_classes_ : int
        The number of classes.

    See Also
    --------
    numlstm.LSTMClassifier : the classifier this wraps, and what each parameter does.

    Examples
    --------
    >>> from sktime.datasets import load_unit_test
    >>> from numlstm.sktime import LSTMSktimeClassifier
    >>> X_train, y_train = load_unit_test(split="train", return_type="numpy3D")
    >>> X_train.shape  # (instance, channel, time)
    (20, 1, 24)
    >>> clf = LSTMSktimeClassifier(hidden_size=8, max_iter=5, random_state=0)
    >>> clf.fit(X_train, y_train).predict_proba(X_train[:2]).shape
    (2, 2)
    """

    _tags = {
        "authors": ["the numlstm developers"],
        "maintainers": ["the numlstm developers"],
        "python_dependencies": "numlstm",
        # numpy3D stays as it is; every other Panel layout becomes a list of
        # (time, channel) frames, which holds series of unequal lengths
        "X_inner_mtype": ["df-list", "numpy3D"],
        "capability:multivariate": True,
        "capability:unequal_length": True,
        "capability:missing_values": False,  # True unless missing="error": see __init__
        "capability:categorical_in_X": False,
        "capability:predict_proba": True,
        "capability:class_weight": True,
        "capability:random_state": True,
        "property:randomness": "derandomized",
        "classifier_type": "deep_learning",
    }

    def __init__(
        self,
        *,
        cell=_DEFAULTS["cell"],
        hidden_size=_DEFAULTS["hidden_size"],
        num_layers=_DEFAULTS["num_layers"],
        bidirectional=_DEFAULTS["bidirectional"],
        peephole=_DEFAULTS["peephole"],
        coupled=_DEFAULTS["coupled"],
        forget_bias=_DEFAULTS["forget_bias"],
        dropout=_DEFAULTS["dropout"],
        batch_size=_DEFAULTS["batch_size"],
        max_iter=_DEFAULTS["max_iter"],
        class_weight=_DEFAULTS["class_weight"],
        optimizer=_DEFAULTS["optimizer"],
        learning_rate=_DEFAULTS["learning_rate"],
        learning_rate_schedule=_DEFAULTS["learning_rate_schedule"],
        momentum=_DEFAULTS["momentum"],
        nesterov=_DEFAULTS["nesterov"],
        weight_decay=_DEFAULTS["weight_decay"],
        clip_norm=_DEFAULTS["clip_norm"],
        early_stopping=_DEFAULTS["early_stopping"],
        validation_fraction=_DEFAULTS["validation_fraction"],
        n_iter_no_change=_DEFAULTS["n_iter_no_change"],
        tol=_DEFAULTS["tol"],
        missing=_DEFAULTS["missing"],
        standardize=_DEFAULTS["standardize"],
        random_state=_DEFAULTS["random_state"],
        verbose=_DEFAULTS["verbose"],
        device=_DEFAULTS["device"],
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.peephole = peephole
        self.coupled = coupled
        self.forget_bias = forget_bias
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.missing = missing
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose
        self.device = device
        super().__init__()
        self.set_tags(**{"capability:missing_values": missing != "error"})

    def _fit(self, X, y):
        """Fit a fresh ``numlstm.LSTMClassifier`` (``estimator_``) to X and y.

        Parameters
        ----------
        X : ndarray of shape (n_instances, n_channels, n_timepoints) or list of pandas.DataFrame
            The series, ``numpy3D`` or ``df-list``.
        y : ndarray of shape (n_instances,)
            The class labels.

        Returns
        -------
        self
        """
        params = self.get_params(deep=False)
        self.estimator_ = LSTMClassifier(**params).fit(_panel_to_dataarray(X), y)
        return self

    def _predict(self, X):
        """Predicted labels, ndarray of shape (n_instances,)."""
        return np.asarray(self.estimator_.predict(_panel_to_dataarray(X)))

    def _predict_proba(self, X):
        """Class probabilities, ndarray of shape (n_instances, n_classes), columns as ``classes_``."""
        return np.asarray(self.estimator_.predict_proba(_panel_to_dataarray(X)))

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Small, fast settings for sktime's tests.

        Parameters
        ----------
        parameter_set : str, default="default"
            Ignored: every set is the same.

        Returns
        -------
        list of dict
            An LSTM, and a bidirectional GRU that fills gaps (``missing="ffill"``).
        """
        return [
            {"hidden_size": 4, "max_iter": 3, "batch_size": 8, "random_state": 0},
            {"cell": "gru", "hidden_size": 3, "bidirectional": True, "max_iter": 2, "missing": "ffill",
             "random_state": 1},
        ]


class LSTMSktimeForecaster(BaseForecaster):
    """sktime forecaster around ``numlstm.LSTMForecaster``: a recurrent network
    that reads the last ``lookback`` steps and forecasts every step of the
    horizon at once, on per-window normalised values.

    The horizon is fixed at ``fit``: the network is trained to forecast
    ``max(fh)`` steps beyond the cutoff (``LSTMForecaster(horizon=max(fh))``),
    so sktime's ``fh`` must be passed to ``fit`` (tag ``requires-fh-in-fit``)
    and must lie out of sample. Each column of y is a component (target) of
    one network. X, if given, holds values known in advance (calendar,
    schedules, forecasts of drivers): numlstm reads it as
    ``future_covariates``, so ``predict`` needs X on every step from the
    cutoff to ``max(fh)``, not only on the steps of ``fh``.

    Parameters
    ----------
    lookback : int
        Steps of history each forecast reads, as in ``numlstm.LSTMForecaster``,
        with its default. y needs at least ``lookback + max(fh)`` steps.
    normalize : {"mean", "last", "none"}
        Per-window normalisation, as in ``numlstm.LSTMForecaster``, with its default.
    linear : bool
        Combine the network with a linear autoregression, as in
        ``numlstm.LSTMForecaster``, with its default. The linear part does
        not read X: with X, pass False unless early stopping (which weighs
        the two on held-out windows) is on.
    quantiles : sequence of float in (0, 1) or None
        Quantile levels the network is trained on (pinball loss), as in
        ``numlstm.LSTMForecaster``, with its default (None: a point forecast
        trained on the squared error). Given, they set the ``capability:pred_int`` tag:
        ``predict_quantiles`` answers for these levels (any others are a
        ``ValueError``), ``predict_interval`` for coverages whose bounds
        ``(1 - c)/2`` and ``(1 + c)/2`` are among them, and ``predict`` gives
        the quantile nearest 0.5.
    cell, hidden_size, num_layers, dropout
        The network, as in ``numlstm.LSTMForecaster``, with its defaults.
    batch_size, max_iter, learning_rate
        Training, as in ``numlstm.LSTMForecaster``, with its defaults.
    early_stopping, validation_fraction, n_iter_no_change, tol
        When to stop, as in ``numlstm.LSTMForecaster``, with its defaults.
    n_models, random_state, verbose, device
        As in ``numlstm.LSTMForecaster``, with its defaults.

    Attributes
    ----------
    forecaster_ : numlstm.LSTMForecaster
        The fitted numlstm forecaster, with ``horizon = max(fh)``.

    See Also
    --------
    numlstm.LSTMForecaster : the forecaster this wraps, and what each parameter does.

    Notes
    -----
    ``update`` appends the new observations to the series the forecaster
    continues; with ``update_params=True`` (sktime's default) it then trains
    a fresh network on all the data seen so far, with ``update_params=False``
    it keeps the network. Either way ``predict`` forecasts from the new cutoff.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from numlstm.sktime import LSTMSktimeForecaster
    >>> t = np.arange(80)
    >>> y = pd.Series(0.05 * t + np.sin(2 * np.pi * t / 12))
    >>> fc = LSTMSktimeForecaster(lookback=24, max_iter=20, random_state=0)
    >>> fc.fit(y, fh=[1, 2, 3]).predict().index.tolist()
    [80, 81, 82]
    """

    _tags = {
        "authors": ["the numlstm developers"],
        "maintainers": ["the numlstm developers"],
        "python_dependencies": "numlstm",
        "y_inner_mtype": "pd.DataFrame",
        "X_inner_mtype": "pd.DataFrame",
        "scitype:y": "both",
        "capability:multivariate": True,
        "capability:exogenous": True,
        "capability:categorical_in_X": False,
        "capability:non_contiguous_X": False,  # X must cover every step up to max(fh)
        "capability:missing_values": False,
        "capability:insample": False,
        "capability:pred_int": False,  # True with quantiles: see __init__
        "capability:pred_int:insample": False,
        "capability:update": True,
        "requires-fh-in-fit": True,
        "X-y-must-have-same-index": True,
        "capability:random_state": True,
        "property:randomness": "derandomized",
    }

    def __init__(
        self,
        *,
        lookback=_FORECASTER_DEFAULTS["lookback"],
        normalize=_FORECASTER_DEFAULTS["normalize"],
        linear=_FORECASTER_DEFAULTS["linear"],
        quantiles=_FORECASTER_DEFAULTS["quantiles"],
        cell=_FORECASTER_DEFAULTS["cell"],
        hidden_size=_FORECASTER_DEFAULTS["hidden_size"],
        num_layers=_FORECASTER_DEFAULTS["num_layers"],
        dropout=_FORECASTER_DEFAULTS["dropout"],
        batch_size=_FORECASTER_DEFAULTS["batch_size"],
        max_iter=_FORECASTER_DEFAULTS["max_iter"],
        learning_rate=_FORECASTER_DEFAULTS["learning_rate"],
        early_stopping=_FORECASTER_DEFAULTS["early_stopping"],
        validation_fraction=_FORECASTER_DEFAULTS["validation_fraction"],
        n_iter_no_change=_FORECASTER_DEFAULTS["n_iter_no_change"],
        tol=_FORECASTER_DEFAULTS["tol"],
        n_models=_FORECASTER_DEFAULTS["n_models"],
        random_state=_FORECASTER_DEFAULTS["random_state"],
        verbose=_FORECASTER_DEFAULTS["verbose"],
        device=_FORECASTER_DEFAULTS["device"],
    ):
        self.lookback = lookback
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
        super().__init__()
        self.set_tags(**{"capability:pred_int": quantiles is not None})

    def _fit(self, y, X, fh):
        """Train a fresh ``numlstm.LSTMForecaster`` (``forecaster_``) to forecast ``max(fh)`` steps.

        Parameters
        ----------
        y : pandas.DataFrame
            The series, one column per component.
        X : pandas.DataFrame or None
            Exogenous data on y's index, read as future covariates.
        fh : ForecastingHorizon
            Out-of-sample steps; the network forecasts up to the furthest.

        Returns
        -------
        self
        """
        self._cur_y, self._cur_X = y, X
        return self._train(horizon=int(np.max(fh.to_relative(self.cutoff).to_numpy())))

    def _train(self, horizon):
        """Fit a fresh ``forecaster_`` on all the data seen (``_cur_y``, ``_cur_X``)."""
        self.forecaster_ = LSTMForecaster(horizon=horizon, **self.get_params(deep=False)).fit(
            _values(self._cur_y), future_covariates=None if self._cur_X is None else _values(self._cur_X))
        return self

    def _update(self, y, X=None, update_params=True):
        """Append y and X to the series; with ``update_params``, retrain on all of them.

        Returns
        -------
        self
        """
        self._cur_y = update_data(self._cur_y, y)
        if self.forecaster_.n_future_covariates_:  # X that fit had no use for stays unused
            self._cur_X = update_data(self._cur_X, X)
        return self._train(self.forecaster_.horizon) if update_params else self

    def _predict(self, fh, X):
        """Forecasts of y on ``fh``'s absolute index, a pandas.DataFrame with y's columns.

        Parameters
        ----------
        fh : ForecastingHorizon
            The steps to forecast, out of sample and at most the fitted ``max(fh)`` from the cutoff.
        X : pandas.DataFrame or None
            Exogenous data after the cutoff; with the X seen so far it must
            cover every step up to the fitted horizon.
        """
        forecast = self._forecast(fh, X)
        if "quantile" in forecast.dims:
            forecast = forecast.isel(quantile=_median_quantile(forecast["quantile"].values))
        return pd.DataFrame(forecast.values, index=fh.to_absolute_index(self.cutoff), columns=self._cur_y.columns)

    def _predict_quantiles(self, fh, X, alpha):
        """Forecast quantiles on ``fh``'s absolute index.

        Parameters
        ----------
        fh : ForecastingHorizon
            As in ``_predict``.
        X : pandas.DataFrame or None
            As in ``_predict``.
        alpha : list of float
            Quantile levels, each one of ``quantiles``.

        Returns
        -------
        pandas.DataFrame
            One column per variable of y and level of ``alpha`` (a two-level
            column index), one row per step of ``fh``.
        """
        forecast = self._forecast(fh, X)
        levels = forecast["quantile"].values
        picks = [np.flatnonzero(np.isclose(levels, a)) for a in alpha]
        unknown = [a for a, p in zip(alpha, picks) if not len(p)]
        if unknown:
            raise ValueError(f"the forecaster was trained for the quantiles {levels.tolist()} (its quantiles "
                             f"parameter), not {unknown}; refit with those levels in quantiles")
        values = forecast.values[..., [p[0] for p in picks]]  # (step, component, alpha)
        return pd.DataFrame(values.reshape(len(values), -1), index=fh.to_absolute_index(self.cutoff),
                            columns=pd.MultiIndex.from_product([self._get_varnames(), alpha]))

    def _forecast(self, fh, X):
        """The forecaster's DataArray ``(time, component[, quantile])`` on the steps of ``fh``."""
        horizon = self.forecaster_.horizon
        steps = fh.to_indexer(self.cutoff).to_numpy()
        if steps.max() >= horizon:
            raise ValueError(f"fh reaches {steps.max() + 1} steps beyond the cutoff, but the forecaster was "
                             f"fitted for {horizon}; refit with that fh")
        future = None
        if self.forecaster_.n_future_covariates_:
            future = self._future_covariates(X, horizon)
        forecast = self.forecaster_.predict(y=_values(self._cur_y), future_covariates=future)
        series, time, component = self.forecaster_.dims
        return forecast.isel({series: 0}).transpose(time, component, ...).isel({time: steps})

    def _future_covariates(self, X, horizon):
        """X over the series seen and the ``horizon`` steps after the cutoff, as an array."""
        ahead = ForecastingHorizon(np.arange(1, horizon + 1), is_relative=True, freq=self._cur_y.index)
        index = self._cur_y.index.append(ahead.to_absolute_index(self.cutoff))
        known = self._cur_X if X is None else update_data(self._cur_X, X)
        missing = index.difference(known.index)
        if len(missing):
            raise ValueError(f"X must hold every step from the start of y to {horizon} steps after the cutoff "
                             f"(the fitted horizon, max(fh)): numlstm reads it as known future covariates. "
                             f"Missing: {list(missing[:5])}")
        return _values(known.loc[index])

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Small, fast settings for sktime's tests, whose series have 10 to 50 steps.

        Parameters
        ----------
        parameter_set : str, default="default"
            Ignored: every set is the same.

        Returns
        -------
        list of dict
            An LSTM on windows of 3 steps with the linear part, and a GRU
            without it, with ``normalize="last"``, trained on the quantile
            levels sktime's interval and quantile checks ask for.
        """
        checked = (0.05, 0.1, 0.125, 0.25, 0.375, 0.45, 0.475, 0.5, 0.525, 0.55, 0.625, 0.75, 0.875, 0.95)
        return [
            {"lookback": 3, "hidden_size": 3, "max_iter": 2, "early_stopping": False, "random_state": 0},
            {"lookback": 4, "cell": "gru", "normalize": "last", "linear": False, "quantiles": checked,
             "hidden_size": 2, "max_iter": 2, "early_stopping": False, "random_state": 1},
        ]


def _values(frame):
    """A frame as one series of numlstm: a float64 ``(1, time, column)`` array."""
    return frame.to_numpy(dtype=np.float64)[None]
