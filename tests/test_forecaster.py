"""LSTMForecaster: forecasts, scale handling, time coords, quantiles, covariates, backtests, errors."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from numlstm import LSTMForecaster
from numlstm.forecasting import _combination_weight, _diebold_mariano

SMALL = dict(hidden_size=8, max_iter=40, n_iter_no_change=40, early_stopping=False, random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        yield


def trend_and_wave(n, slope=0.1, period=10):
    t = np.arange(n, dtype=float)
    return slope * t + np.sin(2 * np.pi * t / period)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def test_trend_plus_wave_is_forecast_accurately():
    y = trend_and_wave(130)
    fc = LSTMForecaster(lookback=20, horizon=5, **SMALL).fit(y[:120])
    pred = fc.predict()
    assert pred.dims == ("time",) and pred.shape == (5,)
    assert rmse(pred, y[120:125]) < 0.15                       # the wave's amplitude is 1
    assert rmse(fc.predict(3), y[120:123]) == pytest.approx(rmse(pred[:3], y[120:123]))


def test_a_trend_carries_past_the_training_range_only_with_window_normalisation():
    y = trend_and_wave(160, slope=0.5)                         # ends far above every training level
    errors = {norm: rmse(LSTMForecaster(lookback=20, horizon=5, normalize=norm, linear=False, **SMALL).fit(y[:140])
                         .predict(), y[140:145]) for norm in ("last", "mean", "none")}
    assert errors["last"] < 0.3 and errors["mean"] < 0.5
    assert errors["none"] > 5 * errors["last"]                 # raw levels cannot leave the range


def test_the_linear_part_continues_a_trend_plus_wave_that_the_network_has_not_learned():
    # 0.1 t + sin(2 pi t / 10) obeys y_t = a . y_{t-4..t-1} with sum(a) = 1, so each window's targets less its
    # last value are, over its scale, one linear function of its values less the last: ridge finds it
    y = trend_and_wave(130)
    fc = LSTMForecaster(lookback=20, horizon=5, hidden_size=8, max_iter=2, n_iter_no_change=2, random_state=0)
    fc.fit(y[:120])
    window = y[100:120]
    scale = window.std()                                       # the "mean" normalisation's scale, not floored here
    linear = window[-1] + scale * fc.linear_.predict(((window - window[-1]) / scale)[None])[0]
    assert np.abs(linear - y[120:125]).max() < 0.005
    assert fc.network_weight_ < 1e-3                            # the held-out windows saw the linear part win
    assert rmse(fc.predict(), y[120:125]) < 0.005
    alone = clone(fc).set_params(linear=False).fit(y[:120])     # two epochs leave the network far off
    assert alone.linear_ is None and alone.network_weight_ == 1.0
    assert rmse(alone.predict(), y[120:125]) > 0.3


@pytest.mark.parametrize("quantiles", [None, (0.1, 0.5, 0.9)])
def test_the_forecast_moves_the_networks_towards_the_linear_part_by_the_held_out_weight(quantiles):
    y = np.empty(90)                                            # the logistic map: no linear model forecasts it
    y[0] = 0.3
    for t in range(1, 90):
        y[t] = 3.9 * y[t - 1] * (1 - y[t - 1])
    params = dict(lookback=12, horizon=1, quantiles=quantiles, hidden_size=8, max_iter=30, n_iter_no_change=5,
                  random_state=0)
    fc = LSTMForecaster(**params).fit(y)
    window = y[-12:]
    loc, scale = window.mean(), window.std()
    x = (window - loc) / scale
    # the network's forecast is the mean of the refitted and the searched networks
    refit, searched = (np.asarray(r.predict(x[None, :, None]))[0] for r in fc.regressors_)  # (1,) or (1, 3)
    assert len(fc.regressors_) == 2 and not np.allclose(refit, searched)
    network = (refit + searched) / 2
    linear = x[-1] + fc.linear_.predict((x - x[-1])[None])[0]
    w = fc.network_weight_
    assert 0.5 < w < 1                                          # the held-out windows saw the network win
    if quantiles is None:
        expected = network + (1 - w) * (linear - network)
    else:                                                       # every quantile moves as the median does
        expected = network + (1 - w) * (linear - network[:, 1])[:, None]
    np.testing.assert_allclose(fc.predict().values, loc + scale * expected, rtol=1e-6)
    # the network is the one linear=False trains: the linear part changes neither its epochs nor its weights
    alone = LSTMForecaster(linear=False, **params).fit(y)
    assert alone.n_iter_ == fc.n_iter_ and alone.validation_scores_ == fc.validation_scores_
    np.testing.assert_allclose(alone.predict().values, loc + scale * network, rtol=1e-12)
    assert LSTMForecaster(**dict(params, early_stopping=False)).fit(y).network_weight_ == 0.5


def test_the_diebold_mariano_statistic_matches_hand_computations():
    d = np.random.default_rng(0).normal(0.3, 1.0, size=40)
    # one step ahead the windows do not overlap and the corrected statistic is the one-sample t statistic
    assert _diebold_mariano(d, 1) == pytest.approx(stats.ttest_1samp(d, 0).statistic, rel=1e-12)
    # two steps ahead: the lag-1 autocovariance enters with Bartlett weight 1/2, then the small-sample correction
    n, z = len(d), d - d.mean()
    variance = (z @ z + 2 * 0.5 * z[1:] @ z[:-1]) / n
    expected = d.mean() / np.sqrt(variance / n) * np.sqrt((n + 1 - 4 + 2 / n) / n)
    assert _diebold_mariano(d, 2) == pytest.approx(expected, rel=1e-12)
    # independently: statsmodels' Newey-West t statistic of the mean, times the small-sample correction
    sm = pytest.importorskip("statsmodels.api")
    for h in (2, 5):
        hac = sm.OLS(d, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": h - 1, "use_correction": False})
        assert _diebold_mariano(d, h) == pytest.approx(hac.tvalues[0] * np.sqrt((n - h) * (n - h + 1) / n**2),
                                                       rel=1e-12)
    assert _diebold_mariano(d[:1], 2) == 0.0
    # no more windows than the horizon: all of them overlap, and the statistic says nothing
    assert _diebold_mariano(d[:12], 12) == 0.0 and _diebold_mariano(d[:3], 24) == 0.0
    assert _diebold_mariano(d[:13], 12) != 0.0


def test_the_network_weight_shrinks_towards_the_linear_part_with_less_evidence():
    rng = np.random.default_rng(1)
    e_net = rng.exponential(1.0, size=8)
    e_lin = e_net + rng.normal(0.5, 0.5, size=8)                # the network better on average, noisily
    inverse_error = e_lin.mean() / (e_lin.mean() + e_net.mean())
    t = stats.ttest_1samp(e_lin - e_net, 0).statistic           # the statistic for a horizon of 1 (see above)
    few = _combination_weight(e_lin, e_net, 1)
    assert t > 1 and few == pytest.approx(inverse_error * (1 - 1 / t ** 2), rel=1e-12)
    # the same errors seen 25 times as often: the same inverse-error weight, much less shrunk
    many = _combination_weight(np.tile(e_lin, 25), np.tile(e_net, 25), 1)
    assert few < many < inverse_error and many == pytest.approx(inverse_error, rel=0.01)
    # a network far worse on the held-out windows, or no clearer than one standard error: all to the linear part
    assert _combination_weight(e_net, e_lin, 1) == 0.0
    assert _combination_weight(np.array([2.0, 0.2]), np.array([1.0, 1.0]), 1) == 0.0   # t = 0.11
    # an error that is not finite gives the network nothing, never a NaN weight
    assert _combination_weight(np.array([1.0, 2.0, 3.0]), np.array([0.5, np.inf, 0.2]), 1) == 0.0


def test_future_time_coords_continue_datetime_and_integer_indexes():
    y = trend_and_wave(60)
    months = pd.date_range("2000-01-01", periods=60, freq="MS").values
    fc = LSTMForecaster(lookback=12, horizon=4, **SMALL).fit(xr.DataArray(y, dims="time", coords={"time": months},
                                                                         name="level", attrs={"units": "m"}))
    pred = fc.predict()
    np.testing.assert_array_equal(pred.time.values, pd.date_range("2005-01-01", periods=4, freq="MS").values)
    assert pred.name == "level" and pred.attrs["units"] == "m"
    years = 1900 + 5 * np.arange(60)
    pred = clone(fc).fit(xr.DataArray(y, dims="time", coords={"time": years})).predict(2)
    np.testing.assert_array_equal(pred.time.values, [2200, 2205])
    np.testing.assert_array_equal(clone(fc).fit(y).predict().time.values, [60, 61, 62, 63])


def test_irregular_time_coords_cannot_be_extended():
    fc = LSTMForecaster(lookback=12, horizon=4, **SMALL)
    time = np.cumsum(np.arange(1, 61))
    fc.fit(xr.DataArray(trend_and_wave(60), dims="time", coords={"time": time}))
    with pytest.raises(ValueError, match="irregular"):
        fc.predict()


def test_quantiles_are_ordered_and_cover_the_truth():
    rng = np.random.default_rng(0)
    y = np.sin(2 * np.pi * np.arange(300) / 12) + 0.3 * rng.normal(size=300)
    fc = LSTMForecaster(lookback=12, horizon=3, quantiles=(0.9, 0.1, 0.5), **SMALL)
    ds = fc.backtest(y, start=200, stride=3, refit=False)
    assert list(ds["quantile"].values) == [0.1, 0.5, 0.9]
    assert ds.forecast.dims == ("fold", "step", "quantile")
    assert (np.diff(ds.forecast.values, axis=-1) >= 0).all()
    inside = float(ds.coverage.mean())                          # nominally 0.8
    assert 0.6 <= inside <= 0.95
    width = float((ds.forecast.sel(quantile=0.9) - ds.forecast.sel(quantile=0.1)).mean())
    assert 2 * 0.3 * 1.28 * 0.6 < width < 2 * 0.3 * 1.28 * 1.6  # the noise's 80% interval is 0.77 wide


def test_a_known_future_covariate_drives_the_forecast():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = 2 * x + 0.05 * np.arange(200)
    fc = LSTMForecaster(lookback=8, horizon=3, linear=False, **SMALL).fit(y[:180], future_covariates=x[:180])
    pred = fc.predict(future_covariates=x[:183])
    assert rmse(pred, y[180:183]) < 0.8                         # y's own sd is 2
    flipped = fc.predict(future_covariates=np.r_[x[:180], -x[180:183]])
    assert np.corrcoef(pred - flipped, x[180:183])[0, 1] > 0.9  # the forecast moves with the covariate
    # the linear part does not see the covariate: the held-out windows give the network most of the weight
    weighed = LSTMForecaster(lookback=8, horizon=3, hidden_size=8, max_iter=40, random_state=0)
    assert weighed.fit(y[:180], future_covariates=x[:180]).network_weight_ > 0.8
    with pytest.raises(ValueError, match="future_covariates is required"):
        fc.predict()
    with pytest.raises(ValueError, match="at least 183"):
        fc.predict(future_covariates=x[:181])


def test_past_and_static_covariates_enter_and_are_checked():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 60, 2))
    y = np.cumsum(rng.normal(size=(2, 60)), axis=1)
    fc = LSTMForecaster(lookback=6, horizon=2, **SMALL).fit(y, past_covariates=x, static_covariates=[[0.0], [1.0]])
    assert fc.regressor_.n_features_in_ == 1 + 2 + 1
    assert (fc.n_past_covariates_, fc.n_static_covariates_, fc.n_future_covariates_) == (2, 1, 0)
    base = fc.predict()
    assert base.dims == ("series", "time")
    assert not np.allclose(fc.predict(static_covariates=[[1.0], [0.0]]), base)
    with pytest.raises(ValueError, match="past_covariates of series 0 has 59 steps; it needs exactly 60"):
        clone(fc).fit(y, past_covariates=x[:, :59])
    with pytest.raises(ValueError, match="static_covariates must be"):
        clone(fc).fit(y, static_covariates=[0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="fitted with 2"):
        fc.predict(y=y, past_covariates=x[..., :1], static_covariates=[[0.0], [1.0]])


def test_many_series_of_different_lengths():
    a, b = trend_and_wave(50), trend_and_wave(70)[::-1].copy()
    fc = LSTMForecaster(lookback=10, horizon=3, **SMALL).fit([a, b])
    assert fc.n_series_ == 2 and fc.n_windows_ == (50 - 12) + (70 - 12)
    pred = fc.predict()
    assert pred.dims == ("series", "time")
    np.testing.assert_array_equal(pred.time.values, [50, 51, 52, 70, 71, 72])
    assert np.isfinite(pred[0, :3]).all() and np.isnan(pred[0, 3:]).all()
    assert np.isfinite(pred[1, 3:]).all() and np.isnan(pred[1, :3]).all()
    # the same series as a NaN-padded DataArray, as xarray alignment gives them
    padded = xr.DataArray(np.stack([np.r_[a, np.full(20, np.nan)], b]), dims=("series", "time"),
                          coords={"series": ["a", "b"]})
    again = clone(fc).fit(padded).predict()
    assert list(again.series.values) == ["a", "b"]
    np.testing.assert_allclose(again.values, pred.values)


def test_components_are_forecast_together():
    y = np.stack([trend_and_wave(80), -trend_and_wave(80)], axis=-1)
    pred = LSTMForecaster(lookback=10, horizon=2, **SMALL).fit(
        xr.DataArray(y, dims=("time", "component"), coords={"component": ["up", "down"]})).predict()
    assert pred.dims == ("time", "component") and list(pred.component.values) == ["up", "down"]
    assert rmse(pred, np.stack([trend_and_wave(82)[80:], -trend_and_wave(82)[80:]], axis=-1)) < 0.3


def test_backtest_matches_a_hand_computation():
    y = trend_and_wave(70)
    fc = LSTMForecaster(lookback=10, horizon=4, **SMALL)
    ds = fc.backtest(y, start=50, stride=6, season=10)
    assert not hasattr(fc, "regressor_")                        # the estimator itself stays unfitted
    np.testing.assert_array_equal(ds.cutoff.values, [49, 55, 61])
    assert ds.forecast.shape == ds.truth.shape == (3, 4)
    np.testing.assert_array_equal(ds.time.values[1], [56, 57, 58, 59])
    for fold, c in enumerate([50, 56, 62]):
        np.testing.assert_array_equal(ds.truth[fold], y[c: c + 4])
        own = clone(fc).fit(y[:c]).predict(y=y[:c])
        np.testing.assert_allclose(ds.forecast[fold], own)
        error = own.values - y[c: c + 4]
        assert ds.mae[fold] == pytest.approx(np.mean(np.abs(error)))
        assert ds.rmse[fold] == pytest.approx(np.sqrt(np.mean(error ** 2)))
        assert ds.mase[fold] == pytest.approx(np.mean(np.abs(error)) / np.mean(np.abs(y[10:c] - y[: c - 10])))
        assert ds.smape[fold] == pytest.approx(np.mean(200 * np.abs(error) / (np.abs(own) + np.abs(y[c: c + 4]))))
    once = fc.backtest(y, start=50, stride=6, refit=False)
    assert once.fit_time[0] > 0 and (once.fit_time[1:] == 0).all()
    np.testing.assert_allclose(once.forecast[0], ds.forecast[0])


def test_early_stopping_picks_the_epochs_on_held_out_windows_in_time_order():
    y = trend_and_wave(80)
    fc = LSTMForecaster(lookback=10, horizon=4, hidden_size=8, max_iter=30, n_iter_no_change=3, random_state=0)
    fc.fit(y)
    scores = fc.validation_scores_
    best = int(np.argmin(scores)) + 1
    assert fc.n_iter_ == best and fc.regressor_.n_iter_ == best
    # beside the refit on all windows, the forecast keeps the searched network as it was at its best epoch
    refit, searched = fc.regressors_
    assert searched.n_iter_ == best and searched.loss_curve_ != refit.loss_curve_
    assert len(scores) == 30 or len(scores) - best >= 3         # stopped by patience, or at max_iter
    with pytest.warns(UserWarning, match="too short to hold out windows"):
        LSTMForecaster(lookback=10, horizon=4, hidden_size=8, max_iter=3, random_state=0).fit(y[:15])


def test_random_state_makes_it_reproducible_pickling_keeps_it_and_float32_stays_float32():
    y = trend_and_wave(60)
    fitted = LSTMForecaster(lookback=8, horizon=2, **SMALL).fit(y)
    one = fitted.predict()
    two = LSTMForecaster(lookback=8, horizon=2, **SMALL).fit(y).predict()
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict(), one)
    single = LSTMForecaster(lookback=8, horizon=2, **SMALL).fit(y.astype(np.float32))
    assert single.predict().dtype == np.float32 and one.dtype == np.float64
    assert single.linear_.coef_.dtype == np.float32
    assert single.regressor_.network_.config["dtype"] == "float32"
    np.testing.assert_allclose(single.predict(), one, atol=0.05)


def test_an_ensemble_forecasts_the_mean_of_its_members_each_seeded_in_turn():
    y = trend_and_wave(60)
    params = dict(SMALL, max_iter=5, n_iter_no_change=5)
    ensemble = LSTMForecaster(lookback=8, horizon=2, n_models=3, **params).fit(y)
    members = [LSTMForecaster(lookback=8, horizon=2, **dict(params, random_state=i)).fit(y).predict() for i in range(3)]
    assert len(ensemble.regressors_) == 3 and ensemble.regressor_ is ensemble.regressors_[0]
    np.testing.assert_allclose(ensemble.predict(), np.mean(members, axis=0))
    assert not np.allclose(members[0], members[1])
    searched = LSTMForecaster(lookback=8, horizon=2, hidden_size=8, max_iter=6, n_iter_no_change=2, n_models=2,
                              random_state=0).fit(y)            # one search picks the epochs of every member
    assert [r.n_iter_ for r in searched.regressors_] == [searched.n_iter_] * 3  # and the searched network


@pytest.mark.parametrize("params, match", [
    (dict(horizon=0), "horizon"),
    (dict(lookback=-1), "lookback"),
    (dict(normalize="diff"), "normalize"),
    (dict(quantiles=(0.5, 1.5)), "quantiles"),
    (dict(dims=("a", "a", "b")), "dims"),
    (dict(n_models=0), "n_models"),
    (dict(linear="yes"), "linear"),
])
def test_bad_parameters_are_named_in_fit(params, match):
    fc = LSTMForecaster(**params)                               # __init__ only stores them
    with pytest.raises(ValueError, match=match):
        fc.fit(trend_and_wave(60))


def test_bad_input_gets_a_clear_error():
    y = trend_and_wave(40)
    fc = LSTMForecaster(lookback=10, horizon=3, **SMALL)
    with pytest.raises(NotFittedError):
        fc.predict()
    with pytest.raises(ValueError, match="fewer than lookback \\+ horizon = 30 \\+ 12"):
        LSTMForecaster(lookback=30).fit(y)
    with pytest.raises(ValueError, match="NaN inside a series \\(series 0, step 5\\)"):
        fc.fit(np.r_[y[:5], np.nan, y[6:]])
    with pytest.raises(TypeError, match="y must hold numbers"):
        fc.fit(np.array(["a"] * 40))
    with pytest.raises(ValueError, match="no time dim"):
        fc.fit(xr.DataArray(y, dims="step"))
    fc.fit(y)
    for horizon in (0, 4, 2.0):
        with pytest.raises(ValueError, match="horizon must be an int from 1 to the fitted horizon 3"):
            fc.predict(horizon)
    with pytest.raises(ValueError, match="shorter than lookback=10"):
        fc.predict(y=y[:9])
    with pytest.raises(ValueError, match="past_covariates were given"):
        fc.predict(past_covariates=y)
    with pytest.raises(ValueError, match="start=0.95 puts the first cutoff at step 38"):
        fc.backtest(y, start=0.95)
    with pytest.raises(ValueError, match="backtest takes a single series"):
        fc.backtest([y, y])
