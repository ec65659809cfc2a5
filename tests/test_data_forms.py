"""The data scientists bring: ragged lists, end-aligned records, gaps, unknown targets, weights.

Each test states the behaviour as a user meets it through ``fit``/``predict``,
and checks it against a form of the same data that worked before (trimmed,
padded by hand, duplicated).
"""

import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from numlstm import LSTMClassifier, LSTMRegressor
from numlstm.data import check_sequences, fill_missing, pad
from numlstm.losses import cross_entropy, squared_error

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(hidden_size=6, max_iter=3, random_state=0)


def ragged(n=12, F=2, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(T), F)) for T in rng.integers(2, 9, n)]


def test_pad_round_trip_and_alignment():
    seqs = ragged()
    start, end = pad(seqs), pad(seqs, align="end")
    assert start.shape == end.shape == (12, max(len(s) for s in seqs), 2)
    for i, s in enumerate(seqs):
        np.testing.assert_array_equal(start[i, : len(s)], s)
        np.testing.assert_array_equal(end[i, start.shape[1] - len(s) :], s)
        assert np.isnan(start[i, len(s) :]).all() and np.isnan(end[i, : start.shape[1] - len(s)]).all()
    univariate = pad([np.arange(3.0), np.arange(1.0)], dims=("sample", "time", "feature"))
    assert univariate.dims == ("sample", "time", "feature") and univariate.shape == (2, 3, 1)
    assert pad([np.ones(2, np.float32), np.ones(1, np.float32)]).dtype == np.float32
    with pytest.raises(ValueError, match="same number of features"):
        pad([np.ones((2, 1)), np.ones((2, 2))])
    with pytest.raises(ValueError, match="align"):
        pad(seqs, align="middle")


def test_a_list_of_sequences_fits_and_predicts_like_its_padded_array():
    seqs = ragged()
    y = np.array([s[-1, 0] for s in seqs])
    from_list = LSTMRegressor(**TINY).fit(seqs, y)
    from_array = LSTMRegressor(**TINY).fit(pad(seqs), y)
    np.testing.assert_array_equal(from_list.predict(seqs), from_array.predict(pad(seqs)))
    assert from_list.n_features_in_ == 2
    univariate = [s[:, 0] for s in seqs]  # (time,) arrays
    np.testing.assert_array_equal(LSTMRegressor(**TINY).fit(univariate, y).predict(univariate),
                                  LSTMRegressor(**TINY).fit(pad(univariate), y).predict(pad(univariate)))


def test_a_single_series_gets_advice_not_a_reshape():
    with pytest.raises(ValueError, match="sliding_windows"):
        LSTMRegressor(**TINY).fit(np.arange(20.0), np.arange(20.0))
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"flow": np.arange(20.0)})
    with pytest.warns(UserWarning, match="one-column DataFrame"):
        check_sequences(frame)


def test_end_aligned_sequences_predict_as_their_trimmed_selves():
    seqs = ragged()
    y = np.array([s[-1, 0] for s in seqs])
    est = LSTMRegressor(**TINY).fit(pad(seqs, align="end"), y)
    for i, s in enumerate(seqs):  # each record alone, with no padding at all
        np.testing.assert_allclose(est.predict(s[None]), est.predict(pad(seqs, align="end"))[i : i + 1],
                                   rtol=1e-12)
    # and per-step predictions come back on the input's own steps
    per_step_y = pad([s[:, :1] * 2 for s in seqs], align="end")
    tagger = LSTMRegressor(**TINY).fit(pad(seqs, align="end"), per_step_y)
    out = tagger.predict(pad(seqs, align="end"))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(per_step_y))
    i = 3
    np.testing.assert_allclose(out[i, -len(seqs[i]):], tagger.predict(seqs[i][None])[0], rtol=1e-12)


def test_gaps_are_an_error_by_default_and_filled_on_request():
    X = pad(ragged())
    X[0, 1, 0] = np.nan  # one feature missing at one step
    X[1, 1, :] = np.nan  # a whole step missing inside a sequence
    y = np.nan_to_num(X[:, 0, 1])
    with pytest.raises(ValueError, match="NaN inside a sequence .*missing='mask'"):
        LSTMRegressor(**TINY).fit(X, y)
    masked = LSTMRegressor(missing="mask", **TINY).fit(X, y)
    assert masked.network_.config["input_size"] == 4  # values and an indicator per feature
    assert np.isfinite(masked.predict(X)).all()
    filled = LSTMRegressor(missing="ffill", **TINY).fit(X, y)
    assert np.isfinite(filled.predict(X)).all()
    # a gap filled forward predicts as the same sequence with the value written in
    by_hand = X.copy()
    by_hand[0, 1, 0], by_hand[1, 1, :] = X[0, 0, 0], X[1, 0, :]
    np.testing.assert_array_equal(filled.predict(X[:2]), filled.predict(by_hand[:2]))


def test_fill_missing_by_hand():
    values = np.array([[[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [0.0, 0.0]]])
    mask = np.array([[True, True, True, False]])
    np.testing.assert_array_equal(fill_missing(values, mask, "ffill")[0],
                                  [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(fill_missing(values, mask, "mask")[0],
                                  [[0, 1, 0, 1], [2, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_unknown_per_step_targets_are_left_out_of_the_loss():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 5, 2))
    y = X[..., :1].cumsum(axis=1)
    unknown = rng.random(y.shape[:2]) < 0.3
    y_nan, y_other = y.copy(), y.copy()
    y_nan[unknown], y_other[unknown] = np.nan, 1e3  # whatever is under the mask
    params = dict(TINY, batch_size=16, standardize=False)
    a = LSTMRegressor(**params).fit(X, y_nan)
    # the same fit, with the unknown targets given zero weight by hand through the loss
    b = LSTMRegressor(**params)
    b._loss = lambda outputs, rows, weights=None: _ignoring_1e3(outputs, rows, weights)
    b.fit(X, y_other)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-10)
    assert np.isfinite(a.score(X, y_nan))
    labels = np.where(y_nan[..., 0] > 0, "up", None).astype(object)
    labels[~unknown & (y[..., 0] <= 0)] = "down"
    clf = LSTMClassifier(**TINY).fit(X, labels[..., None])
    assert set(clf.classes_) == {"down", "up"}


def _ignoring_1e3(outputs, rows, weights):
    known = (rows[:, 0] != 1e3).astype(float)
    return squared_error(outputs, np.where(rows == 1e3, 0, rows), known if weights is None else weights * known)


def test_a_weight_of_two_is_a_duplicated_sample():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    weights = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    dup = np.r_[0, 1, 1, 2, 3, 4]
    loss_w, grad_w = squared_error(pred, target, weights)
    loss_d, grad_d = squared_error(pred[dup], target[dup])
    assert loss_w == pytest.approx(loss_d, rel=1e-14)
    np.testing.assert_allclose(grad_w[1], grad_d[1] + grad_d[2], rtol=1e-14)
    labels = rng.integers(0, 3, 5)
    loss_w, grad_w = cross_entropy(pred, labels, weights)
    loss_d, grad_d = cross_entropy(pred[dup], labels[dup])
    assert loss_w == pytest.approx(loss_d, rel=1e-14)
    np.testing.assert_allclose(grad_w[1], grad_d[1] + grad_d[2], rtol=1e-14)
    # and a full-batch fit with weight 2 is a fit with the sequence duplicated
    X = rng.normal(size=(10, 4, 2))
    y = X[:, -1, 0]
    w = np.ones(10)
    w[3] = 2
    params = dict(TINY, batch_size=64)
    weighted = LSTMRegressor(**params).fit(X, y, sample_weight=w)
    duplicated = LSTMRegressor(**params).fit(X[np.r_[np.arange(10), 3]], y[np.r_[np.arange(10), 3]])
    np.testing.assert_allclose(weighted.predict(X), duplicated.predict(X), rtol=1e-9)
    with pytest.raises(ValueError, match="sample_weight"):
        LSTMRegressor(**TINY).fit(X, y, sample_weight=np.zeros(10))
    with pytest.raises(ValueError, match="sample_weight|negative"):
        LSTMRegressor(**TINY).fit(X, y, sample_weight=-w)


def test_feature_names_of_ragged_dataarrays_and_no_warning_for_plain_use():
    seqs = ragged()
    y = np.array([s[-1, 0] for s in seqs])
    da = pad(seqs, dims=("sample", "time", "feature")).assign_coords(feature=["a", "b"])
    est = LSTMRegressor(**TINY).fit(da, y)
    np.testing.assert_array_equal(est.feature_names_in_, ["a", "b"])
    unnamed = LSTMRegressor(**TINY).fit(pad(seqs), y)
    np.testing.assert_array_equal(est.predict(da).values, unnamed.predict(pad(seqs)))  # names change no number
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(est.predict(da), xr.DataArray)


def test_an_array_that_looks_like_sktime_layout_gets_a_warning():
    sktime_like = np.random.default_rng(3).normal(size=(8, 1, 150))  # (instance, channel, time)
    with pytest.warns(UserWarning, match=r"sktime's \(instance, channel, time\).*transpose\(0, 2, 1\)"):
        check_sequences(sktime_like)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_sequences(sktime_like.transpose(0, 2, 1))
        check_sequences(xr.DataArray(sktime_like, dims=("sample", "feature", "time")))


def test_a_list_of_arrays_is_sequences_whatever_their_lengths():
    same = [np.array([np.nan, 1.0, 2.0]), np.array([3.0, 4.0, 5.0])]  # one end-aligned record
    seqs = check_sequences(same)
    np.testing.assert_array_equal(seqs.lengths, [2, 3])
    assert seqs.n_columns is None  # not a plain 2-D X
    with pytest.raises(ValueError, match="X is empty"):
        check_sequences([])


def test_layout_says_how_to_read_a_3d_array():
    sktime_like = np.random.default_rng(3).normal(size=(8, 2, 150))  # (instance, channel, time)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seqs = check_sequences(sktime_like, layout="sft")
        assert seqs.values.shape == (8, 150, 2)
        np.testing.assert_array_equal(seqs.values, sktime_like.transpose(0, 2, 1))
        assert check_sequences(sktime_like, layout="stf").values.shape == (8, 2, 150)
    with pytest.raises(ValueError, match="layout must be one of"):
        check_sequences(sktime_like, layout="tsf")


def test_an_estimator_reads_sktime_layout_with_layout_sft():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 1, 40))  # (instance, channel, time)
    y = X[:, 0, -3:].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0, layout="sft").fit(X, y)
    assert est.n_features_in_ == 1
    usual = LSTMRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X.transpose(0, 2, 1), y)
    np.testing.assert_array_equal(est.predict(X), usual.predict(X.transpose(0, 2, 1)))
