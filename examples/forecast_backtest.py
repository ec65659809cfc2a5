"""Backtest LSTMForecaster against seasonal naive, ARIMA and exponential smoothing on real series.

Every series is forecast from several cutoffs near its end (an expanding
window: each model is trained on everything before the cutoff, then forecasts
the next ``horizon`` steps), by four methods:

- ``LSTMForecaster`` with its default settings (only ``horizon`` is set, to
  the task's);
- the seasonal naive forecast: the value one season earlier (the last value
  for yearly series);
- ARIMA (statsmodels), its order (p, d, q), p, q <= 2, d <= 1, picked by AIC
  on the first cutoff's training data and refitted at every cutoff, with a
  seasonal (0, 1, 1) part for seasonal series;
- exponential smoothing (statsmodels ETS, additive errors), its trend (none,
  additive, damped) and season (none, additive) picked by AIC at every
  cutoff.

The script prints the RMSE of every method over all cutoffs, the ratio of
the LSTM's to the best classical one, and the fit times, and draws each
series' last cutoff (history, forecast, 80% interval of a quantile model).

Run: ``python examples/forecast_backtest.py [--out forecast_backtest.png]
[--quick]``; ``--quick`` backtests two series on two cutoffs with short
training, for smoke tests. Needs statsmodels; the figure needs matplotlib
(``pip install -e ".[plot]"``).
"""

import argparse
import contextlib
import itertools
import time
import warnings

import numpy as np

from numlstm import LSTMForecaster
from numlstm.datasets import load_co2, load_elnino, load_nile, load_sunspots
from numlstm.plot import agg_pyplot

# name: (loader, season, horizon). Seasonal naive uses the season; 1 means the last value.
SERIES = {
    "sunspots": (load_sunspots, 1, 5),
    "nile": (load_nile, 1, 5),
    "co2": (lambda: load_co2().interpolate_na("time"), 12, 12),
    "elnino": (load_elnino, 12, 12),
}
FOLDS = 5
QUICK = dict(series=("nile", "co2"), folds=2, max_iter=5)


def seasonal_naive(train, horizon, season):
    """Each step repeats the value one season before it (the last value for ``season=1``)."""
    return np.resize(train[-season:], horizon)


@contextlib.contextmanager
def _quiet_statsmodels():
    """A context in which statsmodels' convergence and frequency warnings stay quiet."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, ValueWarning

    with warnings.catch_warnings():
        for category in (ConvergenceWarning, ValueWarning, RuntimeWarning, UserWarning):
            warnings.filterwarnings("ignore", category=category)
        yield


def _arima_model(train, season, order):
    """ARIMA of ``order``, with a seasonal (0, 1, 1) part when ``season > 1`` and a constant when undifferenced."""
    from statsmodels.tsa.arima.model import ARIMA

    seasonal = (0, 1, 1, season) if season > 1 else (0, 0, 0, 0)
    trend = "c" if order[1] == 0 and season == 1 else "n"
    return ARIMA(train, order=order, seasonal_order=seasonal, trend=trend)


def arima_order(train, season, quick=False):
    """The (p, d, q) of least AIC, p and q up to 2 and d up to 1 (with a seasonal (0, 1, 1) part
    when ``season > 1``)."""
    grid = [(1, 1, 1)] if quick else itertools.product(range(3), range(2), range(3))
    scores = {}
    with _quiet_statsmodels():
        for order in grid:
            try:
                scores[order] = _arima_model(train, season, order).fit().aic
            except (ValueError, np.linalg.LinAlgError):
                continue
    return min(scores, key=scores.get)


def arima(train, horizon, season, order):
    with _quiet_statsmodels():
        return _arima_model(train, season, order).fit().forecast(horizon)


def ets(train, horizon, season):
    """The ETS forecast (additive errors) of least AIC over trend none/additive/damped and season
    none/additive."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    configs = [dict(trend=None), dict(trend="add"), dict(trend="add", damped_trend=True)]
    if season > 1:
        configs += [dict(c, seasonal="add", seasonal_periods=season) for c in configs]
    with _quiet_statsmodels():
        fits = [ETSModel(train, error="add", **config).fit(disp=False) for config in configs]
    return min(fits, key=lambda fit: fit.aic).forecast(horizon)


def baselines(values, cutoffs, horizon, season, quick=False):
    """Forecasts ``(n_cutoffs, horizon)`` and total fit seconds of each classical method."""
    out, seconds = {}, {}
    began = time.perf_counter()
    out["seasonal naive"] = np.stack([seasonal_naive(values[:c], horizon, season) for c in cutoffs])
    seconds["seasonal naive"] = time.perf_counter() - began
    began = time.perf_counter()
    order = arima_order(values[: cutoffs[0]], season, quick)
    out["ARIMA"] = np.stack([arima(values[:c], horizon, season, order) for c in cutoffs])
    seconds["ARIMA"] = time.perf_counter() - began
    began = time.perf_counter()
    out["ETS"] = np.stack([ets(values[:c], horizon, season) for c in cutoffs])
    seconds["ETS"] = time.perf_counter() - began
    return out, seconds, order


def rmse(forecast, truth):
    return float(np.sqrt(np.mean((np.asarray(forecast) - truth) ** 2)))


def backtest_series(name, folds=FOLDS, quick=False, **settings):
    """Backtest one series: the LSTM's Dataset, the classical forecasts, RMSEs and fit seconds."""
    load, season, horizon = SERIES[name]
    series = load()
    n = series.sizes["time"]
    forecaster = LSTMForecaster(horizon=horizon, random_state=0, **settings)
    ds = forecaster.backtest(series, start=n - folds * horizon, season=season)
    cutoffs = n - folds * horizon + horizon * np.arange(folds)
    classical, seconds, order = baselines(series.values, cutoffs, horizon, season, quick)
    truth = ds.truth.values
    scores = {"LSTM": rmse(ds.forecast.values, truth)} | {k: rmse(v, truth) for k, v in classical.items()}
    seconds = {"LSTM": float(ds.fit_time.sum())} | seconds
    return series, ds, classical, scores, seconds, order


def print_table(rows):
    """One line per series: RMSE of each method, the LSTM's ratio to the best classical, fit seconds."""
    methods = ("LSTM", "seasonal naive", "ARIMA", "ETS")
    print(f"{'series':<10}" + "".join(f"{m:>15}" for m in methods) + f"{'LSTM/best':>11}"
          + "".join(f"{'s ' + m:>12}" for m in ("LSTM", "ARIMA", "ETS")))
    ratios = []
    for name, scores, seconds in rows:
        ratio = scores["LSTM"] / min(scores["ARIMA"], scores["ETS"])
        ratios.append(ratio)
        print(f"{name:<10}" + "".join(f"{scores[m]:15.3f}" for m in methods) + f"{ratio:11.2f}"
              + "".join(f"{seconds[m]:12.1f}" for m in ("LSTM", "ARIMA", "ETS")))
    print(f"mean ratio of the LSTM's RMSE to the best of ARIMA and ETS: {np.mean(ratios):.2f}")
    return ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="forecast_backtest.png",
                        help="where to write the figure (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="two series, two cutoffs, short training")
    args = parser.parse_args(argv)

    names = QUICK["series"] if args.quick else tuple(SERIES)
    folds = QUICK["folds"] if args.quick else FOLDS
    settings = dict(max_iter=QUICK["max_iter"], n_iter_no_change=QUICK["max_iter"]) if args.quick else {}
    results, rows = {}, []
    for name in names:
        series, ds, classical, scores, seconds, order = backtest_series(name, folds, args.quick, **settings)
        results[name] = series, ds, classical
        rows.append((name, scores, seconds))
        print(f"{name}: {series.sizes['time']} steps, {folds} cutoffs of horizon {ds.sizes['step']}, "
              f"ARIMA order {order}")
    print("RMSE over all cutoffs and steps; fit seconds summed over cutoffs")
    print_table(rows)

    plt = agg_pyplot()
    if plt is None:
        return results
    from numlstm.plot import forecast

    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names)), layout="constrained", squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        series, ds, classical = results[name]
        horizon = SERIES[name][2]
        # the interval comes from a quantile model trained on the last cutoff's history
        cut = int(np.searchsorted(series.time.values, ds.cutoff.values[-1])) + 1
        quantile_model = LSTMForecaster(horizon=horizon, quantiles=(0.1, 0.5, 0.9), random_state=0, **settings)
        band = quantile_model.fit(series[:cut]).predict()
        last = ds.isel(fold=-1)
        truth = series.isel(time=slice(cut, cut + horizon))
        history = series.isel(time=slice(max(0, cut - 4 * horizon), cut))
        forecast(truth, truth.copy(data=last.forecast.values), history=history,
                 lower=band.sel(quantile=0.1).values, upper=band.sel(quantile=0.9).values, ax=ax)
        ax.plot(truth.time.values, classical["ETS"][-1], color="C2", linestyle="--", label="ETS")
        ax.plot(truth.time.values, classical["seasonal naive"][-1], color="C1", linestyle=":", label="seasonal naive")
        ax.set_ylabel(f"{series.name} [{series.attrs.get('units', '')}]")
        ax.legend(fontsize=7, ncol=3)
        ax.set_title(f"{name}: last cutoff, LSTM forecast and 80% interval (quantile model)", fontsize=9)
    fig.savefig(args.out, dpi=80)
    plt.close(fig)
    print(f"figure: {args.out}")
    return results


if __name__ == "__main__":
    main()
