"""The sktime adapter: sktime's own estimator checks, its layouts, and that it learns."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sktime")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tiny max_iter

from sktime.datatypes import convert  # noqa: E402
from sktime.utils.estimator_checks import check_estimator  # noqa: E402

from numlstm import LSTMClassifier  # noqa: E402
from numlstm.sktime import LSTMSktimeClassifier  # noqa: E402


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


def test_importing_numlstm_does_not_import_sktime():
    code = "import numlstm, sys; numlstm.LSTMClassifier; assert 'sktime' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
