"""sktime adapters: numlstm's estimators in sktime's terms (the optional ``sktime`` extra).

``LSTMSktimeClassifier`` is an sktime time series classifier
(``sktime.classification.base.BaseClassifier``) around
``numlstm.LSTMClassifier``. It takes any of sktime's Panel layouts: a
``numpy3D`` array ``(instance, channel, time)``, a ``pd-multiindex`` frame
(instance and time in the index, one column per channel), a nested frame or a
list of frames, with series of unequal lengths. It hands them to numlstm as a
``(sample, time, feature)`` DataArray, so that sktime's channel axis is never
read as numlstm's time axis.

The forecaster adapter (``LSTMSktimeForecaster`` around
``numlstm.LSTMForecaster``, on sktime's ``BaseForecaster``) belongs in this
module too, beside the classifier.

This module imports sktime; ``import numlstm`` does not import it.
"""

import inspect

import numpy as np
import xarray as xr
from sktime.classification.base import BaseClassifier

from numlstm.data import DEFAULT_DIMS, pad
from numlstm.estimators import LSTMClassifier

__all__ = ["LSTMSktimeClassifier"]

# LSTMClassifier's defaults, so that the adapter's follow them.
_DEFAULTS = {name: p.default for name, p in inspect.signature(LSTMClassifier).parameters.items()}


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
