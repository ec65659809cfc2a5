"""The sktime adapters: sktime's own estimator checks, its layouts, and that they learn."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sktime")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny max_iter

from sktime.datatypes import convert  # noqa: E402
from sktime.utils.estimator_checks import check_estimator  # noqa: E402

from numlstm import LSTMClassifier, LSTMForecaster  # noqa: E402
from numlstm.sktime import LSTMSktimeClassifier, LSTMSktimeForecaster  # noqa: E402


def _ramps(n, n_timepoints=16, seed=0):
    """numpy3D (instance, 1, time) noisy ramps, rising for label "up" and falling for "down"."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2, "up", "down")
    slope = np.where(y == "up", 1.0, -1.0) * rng.uniform(0.5, 1.5, n)
    t = np.linspace(-1, 1, n_timepoints)
    X = slope[:, None] * t + rng.normal(0, 0.3, (n, n_timepoints)) + rng.normal(0, 1, (n, 1))
    return X[:, None, :], y


def test_passes_sktime_check_estimator():
    results = check_estimator(LSTMSktimeClassifier, raise_exceptions=True, verbose=False)
    assert len(results) > 100
    assert all(outcome == "PASSED" for outcome in results.values())


def test_learns_a_separable_toy_problem():
    X, y = _ramps(60)
    clf = LSTMSktimeClassifier(hidden_size=8, max_iter=40, batch_size=8, random_state=0).fit(X[:40], y[:40])
    assert clf.score(X[40:], y[40:]) >= 0.9
    assert list(clf.classes_) == ["down", "up"]


def test_numpy3d_is_read_as_instance_channel_time():
    X, y = _ramps(12, n_timepoints=10)
    X = np.concatenate([X, -X], axis=1)  # 2 channels of 10 time points
    clf = LSTMSktimeClassifier(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    assert clf.estimator_.n_features_in_ == 2
    direct = clf.estimator_.predict_proba(X.transpose(0, 2, 1))  # numlstm's (sample, time, feature)
    np.testing.assert_allclose(clf.predict_proba(X), direct, rtol=1e-12)
    # the same network on the same series in sktime's long pd-multiindex frame
    frame = convert(X, from_type="numpy3D", to_type="pd-multiindex")
    np.testing.assert_allclose(clf.predict_proba(frame), direct, rtol=1e-12)


def test_unequal_lengths_are_sequences_of_their_own_length():
    X, y = _ramps(10, n_timepoints=12)
    clf = LSTMSktimeClassifier(hidden_size=3, max_iter=2, random_state=0).fit(X, y)
    frame = convert(X, from_type="numpy3D", to_type="pd-multiindex")
    short = frame.drop(index=[(0, t) for t in range(7, 12)])  # instance 0 keeps 7 time points
    padded = X.transpose(0, 2, 1).copy()
    padded[0, 7:] = np.nan  # numlstm's trailing-NaN padding
    np.testing.assert_allclose(clf.predict_proba(short), clf.estimator_.predict_proba(padded), rtol=1e-12)
    assert not np.allclose(clf.predict_proba(short)[0], clf.predict_proba(X)[0])


def test_missing_values_tag_follows_missing():
    X, y = _ramps(10, n_timepoints=8)
    X[1, 0, 3] = np.nan  # a gap inside a series
    assert LSTMSktimeClassifier().get_tag("capability:missing_values") is False
    with pytest.raises(ValueError, match="missing"):
        LSTMSktimeClassifier(max_iter=1).fit(X, y)
    clf = LSTMSktimeClassifier(missing="ffill", hidden_size=3, max_iter=2, random_state=0)
    assert clf.get_tag("capability:missing_values") is True
    assert np.isfinite(clf.fit(X, y).predict_proba(X)).all()


def test_hyper_parameters_reach_numlstm():
    X, y = _ramps(10, n_timepoints=8)
    params = dict(cell="gru", hidden_size=5, learning_rate=0.02, max_iter=3, random_state=4)
    clf = LSTMSktimeClassifier(**params).fit(X, y)
    assert clf.estimator_.get_params() == LSTMClassifier(**params).get_params()
    assert clf.estimator_.network_.config["hidden_size"] == 5


def _trend_and_sine(n, columns=("y",)):
    """A monthly frame: a linear trend plus a yearly sine, one column each (phase-shifted)."""
    t = np.arange(n)[:, None] + 3 * np.arange(len(columns))
    values = 0.05 * t + np.sin(2 * np.pi * t / 12)
    return pd.DataFrame(values, index=pd.period_range("2000-01", periods=n, freq="M"), columns=list(columns))


def test_forecaster_passes_sktime_check_estimator():
    results = check_estimator(LSTMSktimeForecaster, raise_exceptions=True, verbose=False)
    assert len(results) > 500
    assert all(outcome == "PASSED" for outcome in results.values())


def test_forecaster_follows_a_trend_and_matches_numlstm():
    series = _trend_and_sine(110)["y"]
    y, truth = series.iloc[:104], series.iloc[104:]
    params = dict(lookback=24, normalize="mean", hidden_size=16, batch_size=32, max_iter=40, learning_rate=1e-2,
                  early_stopping=False, random_state=0)
    fc = LSTMSktimeForecaster(**params).fit(y, fh=[1, 2, 3, 4, 5, 6])
    pred = fc.predict()
    assert isinstance(pred, pd.Series) and pred.index.equals(truth.index)
    # the last value misses by up to 1.3 over these six months, the seasonal naive forecast by 0.6
    assert np.abs(pred - truth).max() < 0.15
    assert fc.forecaster_.horizon == 6
    direct = LSTMForecaster(horizon=6, **params).fit(y.to_numpy()).predict()
    np.testing.assert_allclose(pred.to_numpy(), direct.values, rtol=1e-12)
    # an absolute, non-contiguous fh: the same network, those steps
    fc2 = LSTMSktimeForecaster(**params).fit(y, fh=pd.PeriodIndex(truth.index[[1, 5]]))
    assert fc2.forecaster_.horizon == 6
    np.testing.assert_allclose(fc2.predict().to_numpy(), direct.values[[1, 5]], rtol=1e-12)


def test_forecaster_reads_X_as_future_covariates():
    frame = _trend_and_sine(40, columns=("a", "b"))
    X = pd.DataFrame({"month": frame.index.month.to_numpy(float)}, index=frame.index)
    y, X_train, X_ahead = frame.iloc[:36], X.iloc[:36], X.iloc[36:39]
    params = dict(lookback=6, hidden_size=4, max_iter=3, early_stopping=False, random_state=2)
    fc = LSTMSktimeForecaster(**params).fit(y, X=X_train, fh=[1, 3])
    pred = fc.predict(X=X_ahead)
    assert list(pred.columns) == ["a", "b"] and pred.index.equals(frame.index[[36, 38]])
    direct = LSTMForecaster(horizon=3, **params).fit(y.to_numpy()[None], future_covariates=X_train.to_numpy()[None])
    ahead = direct.predict(y=y.to_numpy()[None], future_covariates=X.iloc[:39].to_numpy()[None])
    np.testing.assert_allclose(pred.to_numpy(), ahead.values[0, [0, 2]], rtol=1e-12)
    with pytest.raises(ValueError, match="X must hold every step"):
        fc.predict(X=X_ahead.iloc[[0, 2]])  # step 2 is missing, and numlstm reads it


def test_forecaster_intervals_are_the_trained_quantiles():
    series = _trend_and_sine(40)["y"]
    params = dict(lookback=6, hidden_size=4, max_iter=3, early_stopping=False, random_state=0,
                  quantiles=(0.1, 0.5, 0.9))
    fc = LSTMSktimeForecaster(**params).fit(series, fh=[1, 2])
    assert fc.get_tag("capability:pred_int") and not LSTMSktimeForecaster().get_tag("capability:pred_int")
    direct = LSTMForecaster(horizon=2, **params).fit(series.to_numpy()).predict()  # (time, quantile)
    interval = fc.predict_interval(coverage=0.8)
    np.testing.assert_allclose(interval[("y", 0.8, "lower")], direct.sel(quantile=0.1), rtol=1e-12)
    np.testing.assert_allclose(interval[("y", 0.8, "upper")], direct.sel(quantile=0.9), rtol=1e-12)
    np.testing.assert_allclose(fc.predict(), direct.sel(quantile=0.5), rtol=1e-12)
    with pytest.raises(ValueError, match="quantiles"):
        fc.predict_quantiles(alpha=[0.25])


def test_forecaster_update_continues_from_the_new_cutoff():
    frame = _trend_and_sine(46)
    params = dict(lookback=6, hidden_size=4, max_iter=3, early_stopping=False, random_state=0)
    fc = LSTMSktimeForecaster(**params).fit(frame.iloc[:40], fh=[1, 2])
    network = fc.forecaster_
    fc.update(frame.iloc[40:43], update_params=False)
    assert fc.forecaster_ is network and fc.cutoff[0] == frame.index[42]
    pred = fc.predict()
    assert pred.index.equals(frame.index[43:45])
    np.testing.assert_allclose(pred.to_numpy(), network.predict(y=frame.iloc[:43].to_numpy()[None]).values[0],
                               rtol=1e-12)
    fc.update(frame.iloc[43:], update_params=True)  # a fresh network on all 46 steps
    refit = LSTMForecaster(horizon=2, **params).fit(frame.to_numpy()[None])
    assert fc.forecaster_ is not network
    np.testing.assert_allclose(fc.predict().to_numpy(), refit.predict().values[0], rtol=1e-12)


def test_importing_numlstm_does_not_import_sktime():
    code = "import numlstm, sys; numlstm.LSTMClassifier; assert 'sktime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
