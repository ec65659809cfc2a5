"""fit and score on Dask-backed (and zarr-backed) DataArrays: streamed chunk by chunk, never loaded whole."""

import tracemalloc
import warnings

import numpy as np
import pytest
import xarray as xr

from numlstm import LSTMClassifier, LSTMRegressor
from numlstm.data import Standardizer, check_sequences

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(hidden_size=6, max_iter=3, random_state=0, batch_size=16)


def sequences(n=90, T=9, F=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F))
    X[np.arange(T) >= rng.integers(3, T + 1, n)[:, None]] = np.nan  # variable lengths
    return xr.DataArray(X, dims=("sample", "time", "feature"), coords={"sample": np.arange(n)})


def first_feature_sum(X):
    return X.isel(feature=0).sum("time").values


class CountingSource:
    """A Dask array over X that records how many samples each computed block holds."""

    def __init__(self, X, chunks):
        self.blocks = []
        lazy = da.from_array(X.values, chunks=chunks)
        self.array = X.copy(data=lazy.map_blocks(self.record, dtype=lazy.dtype, meta=np.empty((0, 0, 0))))

    def record(self, block):
        self.blocks.append(len(block))
        return block


def test_fit_reads_one_chunk_at_a_time_and_learns():
    X = sequences(n=200)
    y = first_feature_sum(X)
    source = CountingSource(X, chunks=(25, -1, -1))
    est = LSTMRegressor(**dict(TINY, max_iter=40, learning_rate=2e-2)).fit(source.array, y)
    assert source.blocks and max(source.blocks) == 25  # never more than a chunk per read
    assert est.score(X, y) > 0.9


def test_scaling_moments_equal_the_in_memory_ones():
    X = sequences()
    weights = np.random.default_rng(1).uniform(0.5, 2, len(X))
    lazy = LSTMRegressor(**dict(TINY, max_iter=1)).fit(X.chunk({"sample": 20}), first_feature_sum(X), weights)
    seqs = check_sequences(X)
    expected = Standardizer.fit(seqs.values[seqs.mask], np.repeat(weights, seqs.lengths))
    np.testing.assert_allclose(lazy._x_scaler.mean, expected.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(lazy._x_scaler.scale, expected.scale, rtol=1e-12)


def test_chunked_fit_is_reproducible_and_validates_on_held_out_sequences():
    X = sequences(n=120).chunk({"sample": 32})
    y = first_feature_sum(X.compute())
    fits = [LSTMRegressor(**dict(TINY, early_stopping=True, validation_fraction=0.2)).fit(X, y) for _ in range(2)]
    for name, value in fits[0].network_.state_dict().items():
        np.testing.assert_array_equal(value, fits[1].network_.state_dict()[name])
    assert len(fits[0].validation_scores_) == fits[0].n_iter_


def test_every_training_sequence_is_seen_once_per_epoch():
    from numlstm.training import batch_gradients

    X = sequences(n=70)
    seen = []

    def spy(est, data, batch, x):
        seen.append(batch.copy())
        assert len(x) == len(batch) and x.shape[1] == data.lengths[batch].max()
        return batch_gradients(est, data, batch, x)

    est = LSTMRegressor(**dict(TINY, max_iter=1))
    est._fit(X.chunk({"sample": 15}), first_feature_sum(X), partial=False, gradients=spy)
    batches = [len(b) for b in seen]
    assert sorted(np.concatenate(seen)) == list(range(70))
    assert batches[:-1] == [16] * (len(batches) - 1)  # full mini-batches across chunk boundaries


def test_lazy_score_equals_the_in_memory_score():
    X = sequences()
    y = first_feature_sum(X)
    est = LSTMRegressor(**TINY).fit(X, y)
    assert est.score(X.chunk({"sample": 13}), y) == est.score(X, y)


def test_classifier_and_per_step_targets_stream_too():
    X = sequences(n=80)
    labels = (first_feature_sum(X) > 0).astype(int)
    clf = LSTMClassifier(**TINY).fit(X.chunk({"sample": 16}), labels)
    assert set(clf.classes_) == {0, 1}
    per_step = X.isel(feature=0).cumsum("time")
    reg = LSTMRegressor(**TINY).fit(X.chunk({"sample": 16}), per_step)
    predicted = reg.predict(X)
    assert predicted.dims == ("sample", "time")
    np.testing.assert_array_equal(predicted.isnull(), X.isel(feature=0).isnull())  # each sample's own steps


def test_bad_chunks_are_named_with_the_global_sample_index():
    X = sequences(n=40)
    values = X.values.copy()
    values[33, 1, :] = np.nan  # a gap inside sample 33, in the third chunk
    values[33, 0, :] = 1.0
    bad = X.copy(data=values).chunk({"sample": 15})
    with pytest.raises(ValueError, match=r"NaN inside a sequence \(sample 33, step 1\)"):
        LSTMRegressor(**TINY).fit(bad, np.zeros(40))
    with pytest.raises(ValueError, match="sample_weight"):
        LSTMRegressor(**TINY).fit(X.chunk({"sample": 15}), np.zeros(40), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="compute"):
        tokens = xr.DataArray(np.ones((4, 3)), dims=("sample", "time")).chunk({"sample": 2})
        LSTMClassifier(embedding_dim=2, max_iter=1).fit(tokens, [0, 1, 0, 1])


def test_zarr_backed_data_trains_out_of_core(tmp_path):
    pytest.importorskip("zarr")
    X = sequences(n=60)
    X.chunk({"sample": 20}).to_dataset(name="x").to_zarr(tmp_path / "x.zarr", consolidated=False)
    stored = xr.open_zarr(tmp_path / "x.zarr", consolidated=False)["x"]
    assert stored.chunks is not None
    y = first_feature_sum(X)
    from_zarr = LSTMRegressor(**TINY).fit(stored, y)
    from_dask = LSTMRegressor(**TINY).fit(X.chunk({"sample": 20}), y)
    np.testing.assert_array_equal(from_zarr.predict(X), from_dask.predict(X))


def test_peak_memory_stays_far_below_the_data_set():
    """Peak Python-heap memory of a fit grows with the sequences' count, not with their size."""
    def peak_of_fit(n):
        x = da.random.RandomState(0).normal(size=(n, 40, 8), chunks=(100, 40, 8))
        X = xr.DataArray(x, dims=("sample", "time", "feature"))
        y = X.isel(feature=0, time=-1).compute().values
        with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tracemalloc.start()
            try:
                LSTMRegressor(hidden_size=4, max_iter=1, batch_size=50, random_state=0).fit(X, y)
                return tracemalloc.get_traced_memory()[1], x.nbytes
            finally:
                tracemalloc.stop()

    peak_of_fit(200)  # compile outside the measurement
    small, small_bytes = peak_of_fit(1000)
    large, large_bytes = peak_of_fit(4000)
    assert large < large_bytes / 4
    assert large - small < (large_bytes - small_bytes) / 10


def test_lazy_predict_drops_coords_of_other_names_as_the_in_memory_one_does():
    X = sequences(n=12).assign_coords(lat=("sample", np.arange(12.0)))
    est = LSTMRegressor(**TINY).fit(X, first_feature_sum(X))
    expected = est.predict(X)
    assert "lat" not in expected.coords
    lazy = X.copy(data=da.from_array(X.values, chunks=(4, -1, -1)))
    lazy = lazy.assign_coords(lat=("sample", da.from_array(np.arange(12.0), chunks=12)))  # chunked unlike X
    xr.testing.assert_identical(est.predict(lazy).compute(), expected)
