"""The classic first LSTM: learn a sine wave, then forecast its continuation from the model's own output.

The series is ``sin(t)`` sampled at ``t = numpy.linspace(0, 100, 1001)`` (a
step of 0.1, so one period spans about 63 steps). The first 800 values train
an :class:`~numlstm.LSTMRegressor` on 50-step windows, each with the value
that follows it as its target. The last 201 values are then forecast
*recursively*: the model predicts one step from the last 50 observed values,
that prediction joins the window, and so on, so after the first step the model
reads only its own output and errors can compound. The script prints the
one-step-ahead and the recursive test RMSE against the naive forecast that
holds the last observed value, and draws the forecast against the truth.

Run: ``python examples/sine_wave.py [--out sine_wave.png]`` (a few seconds
once Numba's cache is warm). The figure needs matplotlib
(``pip install -e ".[plot]"``); without it the numbers are still printed.
"""

import argparse
import time

import numpy as np
import xarray as xr
from sklearn.metrics import root_mean_squared_error as rmse

from numlstm import LSTMRegressor
from numlstm.data import sliding_windows
from numlstm.plot import agg_pyplot

WINDOW = 50
N_TRAIN = 800
SETTINGS = dict(hidden_size=16, learning_rate=1e-2, max_iter=300, tol=1e-4, n_iter_no_change=10,
                batch_size=32, random_state=0)


def sine():
    """The whole series as a DataArray over ``t``."""
    t = np.linspace(0, 100, 1001)
    return xr.DataArray(np.sin(t), dims="t", coords={"t": t}, name="sin(t)")


def recursive_forecast(model, history, steps):
    """``steps`` values, each predicted from the previous ``WINDOW`` values, its own predictions included."""
    window = list(np.asarray(history)[-WINDOW:])
    forecast = []
    for _ in range(steps):
        value = float(model.predict(np.asarray(window[-WINDOW:])[None, :])[0])
        forecast.append(value)
        window.append(value)
    return np.array(forecast)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sine_wave.png", help="where to write the figure (default %(default)s)")
    args = parser.parse_args(argv)

    series = sine()
    train, test = series[:N_TRAIN], series[N_TRAIN:]
    X, y = sliding_windows(train.values, WINDOW)
    start = time.perf_counter()
    model = LSTMRegressor(**SETTINGS).fit(X, y)
    fit_time = time.perf_counter() - start

    forecast = recursive_forecast(model, train.values, len(test))
    one_step = model.predict(sliding_windows(series.values[N_TRAIN - WINDOW :], WINDOW)[0])
    naive = np.full(len(test), train.values[-1])
    print(f"sin(t), t = 0 ... 100 in steps of 0.1: {len(X)} training windows of {WINDOW} steps, "
          f"forecast t = {float(test.t[0]):.1f} ... {float(test.t[-1]):.1f} ({len(test)} steps)")
    print(f"LSTM fit: {model.n_iter_} epochs of at most {SETTINGS['max_iter']}, {fit_time:.1f} s")
    print(f"test RMSE  LSTM one step ahead     {rmse(one_step, test):.4f}")
    print(f"           LSTM recursive          {rmse(forecast, test):.4f}   "
          f"(its own output fed back, {len(test)} steps)")
    print(f"           last value held (naive) {rmse(naive, test):.4f}")
    print(f"largest recursive error {np.max(np.abs(forecast - test.values)):.4f}")

    plt = agg_pyplot()
    if plt is None:
        return model
    from numlstm.plot import forecast as plot_forecast

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1),
                                      layout="constrained")
    plot_forecast(test, test.copy(data=forecast), history=train[-300:], ax=top)
    top.plot(test.t, naive, color="C1", linestyle="--", label="last value held")
    top.set_ylim(-1.45, 1.15)
    top.legend(loc="lower center", ncols=4, fontsize=8)
    top.set(title=f"Recursive LSTM forecast of sin(t): RMSE {rmse(forecast, test):.4f} "
                  f"(last value held: {rmse(naive, test):.2f})")
    bottom.plot(test.t, forecast - test.values, color="C0")
    bottom.axhline(0, color="0.5", linewidth=0.8)
    bottom.set(xlabel="t", ylabel="forecast - truth")
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")
    return model


if __name__ == "__main__":
    main()
