"""Classify variable-length sequences whose label shows only at their last valid step.

Each sequence has 5 to 30 steps of two noisy features. Its class (low, mid,
high) sets the first feature of its last valid step; every other step is
noise. Shorter sequences are padded with trailing NaN, which is what
``xarray.concat``/``xarray.align`` produce for series of different lengths, and
the data travel as a DataArray. A model that read the padded end instead of
each sequence's own end would be at chance (1/3).

Run: ``python examples/variable_length_classification.py``.
"""

import time
import warnings

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from numlstm import LSTMClassifier

CLASSES = np.array(["low", "mid", "high"])
SETTINGS = dict(hidden_size=8, learning_rate=1e-2, max_iter=20, batch_size=32, random_state=0)


def make_sequences(n, seed, max_length=30):
    """``n`` padded sequences as a (sample, time, feature) DataArray, and their labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, max_length + 1, n)
    labels = rng.integers(0, len(CLASSES), n)
    values = rng.normal(size=(n, max_length, 2))
    values[np.arange(n), lengths - 1, 0] = np.array([-2.0, 0.0, 2.0])[labels] + 0.3 * rng.normal(size=n)
    values[np.arange(max_length) >= lengths[:, None]] = np.nan
    X = xr.DataArray(
        values,
        dims=("sample", "time", "feature"),
        coords={"sample": np.arange(n), "time": np.arange(max_length), "feature": ["a", "b"]},
    )
    return X, xr.DataArray(CLASSES[labels], dims="sample", coords={"sample": np.arange(n)})


def main():
    X_train, y_train = make_sequences(400, seed=0)
    X_test, y_test = make_sequences(300, seed=1)
    warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed epoch budget, on purpose
    start = time.perf_counter()
    model = LSTMClassifier(**SETTINGS).fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    accuracy = model.score(X_test, y_test)
    print(f"test accuracy {accuracy:.3f}   ({model.n_iter_} epochs, fit {fit_time:.1f} s)")
    print(model.predict(X_test[:5]).to_series().to_string())


if __name__ == "__main__":
    main()
