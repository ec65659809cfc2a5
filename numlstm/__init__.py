"""numlstm: Numba-accelerated LSTM, GRU and RNN layers and estimators for scientific sequences."""

from numlstm.layers import GRU, LSTM, RNN, is_grad_enabled, no_grad

__version__ = "0.1.0"
__all__ = ["LSTM", "GRU", "RNN", "no_grad", "is_grad_enabled"]
from numlstm.estimators import LSTMClassifier, LSTMRegressor  # noqa: E402
from numlstm.io import load  # noqa: E402
__all__ += ["LSTMRegressor", "LSTMClassifier", "load"]
