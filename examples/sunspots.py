"""Forecast yearly sunspot numbers one year ahead, and compare with persistence.

The series is the yearly sunspot number, 1700-2008, bundled with numlstm
(:func:`numlstm.datasets.load_sunspots`). Each sample is a 20-year window and
its target the following year. Windows whose target year is at most 1950
train the model; the later ones (1951-2008) test it, against the persistence
forecast "next year equals this year". Training stops by itself once the
epoch loss has not improved by ``tol`` for ``n_iter_no_change`` epochs.

The script prints both test errors and draws the forecast (with
:func:`numlstm.plot.forecast`) and the training loss curve.

Run: ``python examples/sunspots.py [--out sunspots.png] [--quick]``; ``--quick``
stops training sooner (a larger ``tol``), for smoke tests. The figure needs
matplotlib (``pip install -e ".[plot]"``). ``python -m numlstm demo`` is a
shorter version of this script.
"""

import argparse
import time

import numpy as np

from numlstm import LSTMRegressor
from numlstm.data import sliding_windows
from numlstm.datasets import load_sunspots
from numlstm.plot import agg_pyplot

WINDOW = 20
LAST_TRAIN_YEAR = 1950
SETTINGS = dict(hidden_size=16, learning_rate=1e-2, max_iter=200, tol=1e-3, n_iter_no_change=10,
                batch_size=32, random_state=0)
QUICK = dict(tol=1e-2)


def load_windows():
    """Train and test windows: ``X_train, y_train, X_test, y_test, test_years``."""
    spots = load_sunspots()
    X, y = sliding_windows(spots.values, WINDOW)
    year = spots.time.values[WINDOW:]
    train = year <= LAST_TRAIN_YEAR
    return X[train], y[train], X[~train], y[~train], year[~train]


def rmse(pred, true):
    return float(np.sqrt(np.mean((np.asarray(pred) - true) ** 2)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sunspots.png", help="where to write the figure (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="stop training sooner (tol 1e-2), for smoke tests")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test, years = load_windows()
    settings = {**SETTINGS, **(QUICK if args.quick else {})}
    start = time.perf_counter()
    model = LSTMRegressor(**settings).fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    pred, naive = model.predict(X_test), X_test[:, -1]
    print(f"{len(X_train)} training windows, {len(X_test)} test years ({years[0]}-{years[-1]})")
    print(f"LSTM        RMSE {rmse(pred, y_test):6.2f}   ({model.n_iter_} epochs of at most "
          f"{settings['max_iter']}, fit {fit_time:.1f} s)")
    print(f"persistence RMSE {rmse(naive, y_test):6.2f}   (next year = this year)")

    plt = agg_pyplot()
    if plt is None:
        return model
    from numlstm.plot import forecast, loss_curve

    spots = load_sunspots()
    truth = spots.sel(time=years)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), width_ratios=(2.2, 1), layout="constrained")
    forecast(truth, truth.copy(data=pred), history=spots.sel(time=slice(1900, LAST_TRAIN_YEAR)), ax=left)
    left.plot(years, naive, color="C1", linestyle="--", label="persistence")
    left.legend(fontsize=8)
    left.set(xlabel="year", title=f"Sunspots one year ahead: LSTM RMSE {rmse(pred, y_test):.1f}, "
                                  f"persistence {rmse(naive, y_test):.1f}")
    loss_curve(model, ax=right)
    right.set_yscale("log")
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")
    return model


if __name__ == "__main__":
    main()
