"""Dask-backed DataArrays in predict, predict_proba and inspect: lazy answers, equal to the in-memory ones,
in this process and on a cluster of process workers."""

import numpy as np
import pytest
import xarray as xr

from numlstm import LSTMClassifier, LSTMRegressor, _config

da = pytest.importorskip("dask.array")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(hidden_size=6, max_iter=2, random_state=0)


def sequences(n=23, T=7, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F))
    X[np.arange(T) >= rng.integers(2, T + 1, n)[:, None]] = np.nan  # variable lengths
    return xr.DataArray(X, dims=("sample", "time", "feature"),
                        coords={"sample": np.arange(n) * 10, "time": np.arange(T), "feature": ["a", "b"]})


class CountingSource:
    """A Dask array over X whose chunks count how often they are computed."""

    def __init__(self, X, chunks):
        self.calls = 0
        self.values = X.values
        lazy = da.from_array(self.values, chunks=chunks)
        self.array = X.copy(data=lazy.map_blocks(self.count, dtype=lazy.dtype, meta=np.empty((0, 0, 0))))

    def count(self, block):
        self.calls += 1
        return block


@pytest.mark.parametrize("per_step", [False, True])
def test_lazy_predictions_compute_nothing_and_equal_the_in_memory_ones(per_step):
    X = sequences()
    y = X.isel(feature=0).fillna(0).cumsum("time") if per_step else X.isel(feature=0, time=0)
    est = LSTMRegressor(**TINY).fit(X, y)
    source = CountingSource(X, chunks=(5, 7, 2))
    lazy = est.predict(source.array)
    assert source.calls == 0 and lazy.chunks is not None
    assert lazy.chunksizes["sample"] == (5, 5, 5, 5, 3)
    expected = est.predict(X)
    computed = lazy.compute()
    assert source.calls == 5
    assert computed.dims == expected.dims
    np.testing.assert_array_equal(computed.values, expected.values)
    np.testing.assert_array_equal(computed["sample"], X["sample"])


def test_chunks_along_time_and_features_are_merged():
    X = sequences()
    est = LSTMRegressor(**TINY).fit(X, X.isel(feature=0, time=0))
    lazy = est.predict(X.chunk({"sample": 4, "time": 3, "feature": 1}))
    np.testing.assert_array_equal(lazy.values, est.predict(X).values)


def test_lazy_classifier_probabilities_and_gate_states():
    X = sequences()
    labels = xr.where(X.isel(feature=0, time=0) > 0, "up", "down")
    clf = LSTMClassifier(**TINY).fit(X, labels)
    chunked = X.chunk({"sample": 6})
    proba = clf.predict_proba(chunked)
    assert proba.chunks is not None and proba.dims == ("sample", "class")
    np.testing.assert_array_equal(proba.values, clf.predict_proba(X).values)
    np.testing.assert_array_equal(clf.predict(chunked).values, clf.predict(X).values)
    states = clf.inspect(chunked)
    assert states["forget_gate"].chunks is not None
    eager = clf.inspect(X)
    for name in eager.data_vars:
        np.testing.assert_array_equal(states[name].values, eager[name].values)


def _kernel_compiles():
    """(loads from the on-disk cache, compiles) of numlstm's Numba kernels in this process."""
    import sys

    from numba.core.dispatcher import Dispatcher

    loads = compiles = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("numlstm"):
            for obj in vars(module).values():
                if isinstance(obj, Dispatcher):
                    loads += sum(obj.stats.cache_hits.values())
                    compiles += sum(obj.stats.cache_misses.values())
    return loads, compiles


def test_lazy_predictions_on_a_cluster_of_processes_load_cached_kernels():
    """Process workers answer bit for bit as in memory, with kernels from the on-disk cache."""
    distributed = pytest.importorskip("distributed")
    X = sequences()
    est = LSTMRegressor(**TINY).fit(X, X.isel(feature=0, time=0))
    expected = est.predict(X)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        computed = est.predict(X.chunk({"sample": 6})).compute()
        counts = client.run(_kernel_compiles)
    np.testing.assert_array_equal(computed.values, expected.values)
    np.testing.assert_array_equal(computed["sample"], X["sample"])
    assert len(counts) == 2
    if _config.CACHE:  # the workers ran their chunks' kernels, loaded and never compiled
        assert all(compiles == 0 for loads, compiles in counts.values()), counts
        assert sum(loads for loads, compiles in counts.values()) > 0, counts
