"""numlstm: Numba-accelerated LSTM, GRU and RNN layers and estimators for scientific sequences.

The layers import with NumPy and Numba alone. The estimators, ``load`` and
the ``datasets`` and ``plot`` modules bring in scikit-learn and xarray, so
they are imported on first use, which keeps ``import numlstm`` fast.
"""

import importlib

from numlstm.layers import GRU, LSTM, RNN, is_grad_enabled, no_grad

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "RNN", "no_grad", "is_grad_enabled", "LSTMRegressor", "LSTMClassifier",
           "LSTMForecaster", "load"]

_LAZY = {"LSTMRegressor": "numlstm.estimators", "LSTMClassifier": "numlstm.estimators",
         "LSTMForecaster": "numlstm.forecasting", "load": "numlstm.io"}
_LAZY_MODULES = ("datasets", "plot")


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f"numlstm.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'numlstm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_LAZY_MODULES))
