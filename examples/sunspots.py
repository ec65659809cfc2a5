"""Forecast yearly sunspot numbers one year ahead, and compare with persistence.

The series is the yearly sunspot number, 1700-2008, bundled with numlstm
(:func:`numlstm.datasets.load_sunspots`). Each sample is a 20-year window and
its target the following year. Windows whose target year is at most 1950
train the model; the later ones (1951-2008) test it, against the persistence
forecast "next year equals this year".

Run: ``python examples/sunspots.py``. ``python -m numlstm demo`` does the same
and draws the forecast.
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from numlstm import LSTMRegressor
from numlstm.data import sliding_windows
from numlstm.datasets import load_sunspots

WINDOW = 20
LAST_TRAIN_YEAR = 1950
SETTINGS = dict(hidden_size=16, learning_rate=1e-2, max_iter=60, batch_size=32, random_state=0)


def load_windows():
    """Train and test windows: ``X_train, y_train, X_test, y_test, test_years``."""
    spots = load_sunspots()
    X, y = sliding_windows(spots.values, WINDOW)
    year = spots.time.values[WINDOW:]
    train = year <= LAST_TRAIN_YEAR
    return X[train], y[train], X[~train], y[~train], year[~train]


def rmse(pred, true):
    return float(np.sqrt(np.mean((np.asarray(pred) - true) ** 2)))


def main():
    X_train, y_train, X_test, y_test, years = load_windows()
    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed epoch budget, on purpose
    start = time.perf_counter()
    model = LSTMRegressor(**SETTINGS).fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    pred = model.predict(X_test)
    print(f"{len(X_train)} training windows, {len(X_test)} test years ({years[0]}-{years[-1]})")
    print(f"LSTM        RMSE {rmse(pred, y_test):6.2f}   ({model.n_iter_} epochs, fit {fit_time:.1f} s)")
    print(f"persistence RMSE {rmse(X_test[:, -1], y_test):6.2f}")


if __name__ == "__main__":
    main()
