"""Data-parallel fit on a Dask cluster of process workers: the same model as a fit on one process."""

import warnings

import numpy as np
import pytest
import xarray as xr

from numlstm import LSTMClassifier, LSTMRegressor, distributed

pytest.importorskip("dask.distributed")
from dask.distributed import Client, LocalCluster  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client


def data(n=96, T=8, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F))
    X[np.arange(T) >= rng.integers(2, T + 1, n)[:, None]] = np.nan
    return X, np.nansum(X[:, :, 0], axis=1)


def assert_same_weights(a, b, rtol):
    for name, value in a.network_.state_dict().items():
        np.testing.assert_allclose(b.network_.state_dict()[name], value, rtol=rtol, atol=rtol, err_msg=name)


def test_data_parallel_fit_matches_a_single_process_fit(client):
    X, y = data()
    params = dict(hidden_size=5, max_iter=3, batch_size=32, random_state=0)
    single = LSTMRegressor(**params).fit(X, y)
    parallel = distributed.fit(LSTMRegressor(**params), X, y, client=client)
    assert_same_weights(single, parallel, rtol=1e-10)
    np.testing.assert_allclose(parallel.loss_curve_, single.loss_curve_, rtol=1e-12)
    assert parallel.n_iter_ == 3


def test_shards_of_weighted_per_step_float32_classifier_targets(client):
    X, y = data(n=64)
    X = X.astype(np.float32)
    labels = xr.DataArray((np.nan_to_num(X[:, :, 0]) > 0).astype(int), dims=("sample", "time"))
    Xd = xr.DataArray(X, dims=("sample", "time", "feature"))
    weights = np.random.default_rng(2).uniform(0, 2, len(X))
    params = dict(hidden_size=4, max_iter=2, batch_size=20, random_state=1, class_weight="balanced")
    single = LSTMClassifier(**params).fit(Xd, labels, sample_weight=weights)
    parallel = distributed.fit(LSTMClassifier(**params), Xd, labels, client=client, sample_weight=weights, n_shards=3)
    assert parallel.network_.state_dict()["weight_ih_l0"].dtype == np.float32
    assert_same_weights(single, parallel, rtol=2e-5)


def test_a_dask_backed_X_is_streamed_on_the_driver(client):
    X, y = data()
    Xd = xr.DataArray(X, dims=("sample", "time", "feature"))
    params = dict(hidden_size=4, max_iter=2, batch_size=16, random_state=0)
    single = LSTMRegressor(**params).fit(Xd.chunk({"sample": 40}), y)
    parallel = distributed.fit(LSTMRegressor(**params), Xd.chunk({"sample": 40}), y, client=client)
    assert_same_weights(single, parallel, rtol=1e-10)


def test_bad_arguments(client):
    X, y = data(n=20)
    with pytest.raises(ValueError, match="n_shards"):
        distributed.fit(LSTMRegressor(max_iter=1), X, y, client=client, n_shards=0)
    with pytest.raises(ValueError, match="device"):
        distributed.fit(LSTMRegressor(max_iter=1, device="cuda"), X, y, client=client)


def test_a_batch_of_zero_weight_trains_as_in_a_single_process(client):
    X, y = data(n=32)
    weights = np.zeros(len(X))
    weights[0] = 1.0  # every mini-batch but one weighs nothing
    params = dict(hidden_size=4, max_iter=2, batch_size=8, random_state=0)
    single = LSTMRegressor(**params).fit(X, y, sample_weight=weights)
    parallel = distributed.fit(LSTMRegressor(**params), X, y, client=client, sample_weight=weights)
    assert_same_weights(single, parallel, rtol=1e-10)
    np.testing.assert_allclose(parallel.loss_curve_, single.loss_curve_, rtol=1e-12)
