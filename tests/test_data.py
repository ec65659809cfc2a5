"""Sequence validation, lengths from trailing NaN, targets, outputs, scaling, windows."""

import numpy as np
import pytest
import scipy.sparse as sp
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import DataConversionWarning

from numlstm.data import Standardizer, check_sequences, check_targets, sliding_windows, to_output


def padded(rng, lengths, n_features=2):
    X = rng.normal(size=(len(lengths), max(lengths), n_features))
    X[np.arange(max(lengths)) >= np.asarray(lengths)[:, None]] = np.nan
    return X


def test_2d_is_univariate_and_3d_keeps_features():
    X = np.arange(12.0).reshape(3, 4)
    seqs = check_sequences(X)
    assert seqs.values.shape == (3, 4, 1)
    assert seqs.values.flags.c_contiguous
    np.testing.assert_array_equal(seqs.lengths, [4, 4, 4])
    assert seqs.dims is None
    assert check_sequences(np.zeros((3, 4, 5))).values.shape == (3, 4, 5)


@pytest.mark.parametrize("dtype, expected",
                         [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64)])
def test_dtypes(dtype, expected):
    assert check_sequences(np.ones((2, 3), dtype)).values.dtype == expected


def test_lengths_from_trailing_nan_and_padding_zeroed():
    X = padded(np.random.default_rng(0), [5, 2, 1, 4])
    seqs = check_sequences(X)
    np.testing.assert_array_equal(seqs.lengths, [5, 2, 1, 4])
    np.testing.assert_array_equal(seqs.mask, np.arange(5) < seqs.lengths[:, None])
    assert not np.isnan(seqs.values).any()
    assert (seqs.values[~seqs.mask] == 0).all()
    np.testing.assert_array_equal(seqs.values[seqs.mask], X[seqs.mask])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8), st.integers(1, 3))
def test_lengths_round_trip(lengths, n_features):
    X = padded(np.random.default_rng(len(lengths)), lengths, n_features)
    seqs = check_sequences(X)
    np.testing.assert_array_equal(seqs.lengths, lengths)
    np.testing.assert_array_equal(seqs.values[seqs.mask], X[seqs.mask])


def test_dataarray_any_dim_order_and_custom_names():
    X = padded(np.random.default_rng(1), [3, 2])
    da = xr.DataArray(X, dims=("run", "step", "var"), coords={"run": ["a", "b"], "var": ["u", "v"]})
    seqs = check_sequences(da.transpose("var", "step", "run"), dims=("run", "step", "var"))
    np.testing.assert_array_equal(seqs.lengths, [3, 2])
    np.testing.assert_array_equal(seqs.values[seqs.mask], X[seqs.mask])
    assert seqs.dims == ("run", "step", "var")
    assert list(seqs.coords["run"]) == ["a", "b"] and "step" not in seqs.coords
    univariate = xr.DataArray(X[..., 0], dims=("time", "sample"))
    assert check_sequences(univariate).values.shape == (3, 2, 1)


def test_dataarray_alignment_gives_trailing_nan():
    short = xr.DataArray([[1.0, 2.0]], dims=("sample", "time"), coords={"sample": [0], "time": [0, 1]})
    long = xr.DataArray([[1.0, 2.0, 3.0]], dims=("sample", "time"), coords={"sample": [1], "time": [0, 1, 2]})
    seqs = check_sequences(xr.concat([short, long], dim="sample", join="outer"))
    np.testing.assert_array_equal(seqs.lengths, [2, 3])


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[1.0, np.nan, 2.0]]), ValueError, "NaN inside a sequence"),
        (np.array([[np.nan, 1.0, np.nan, 2.0]]), ValueError, "NaN inside a sequence"),
        (np.array([[[1.0, np.nan], [2.0, 3.0]]]), ValueError, "in every feature of a step.*missing="),
        (np.array([[1.0, 2.0], [np.nan, np.nan]]), ValueError, "all NaN"),
        (np.array([[1.0, np.inf]]), ValueError, "inf"),
        (np.zeros((0, 3)), ValueError, "0 sample"),
        (np.zeros((3, 0)), ValueError, "0 feature"),
        (np.zeros((2, 0, 3)), ValueError, "at least one time step"),
        (np.zeros(3), ValueError, "1-D, one value per step of a single series.*sliding_windows"),
        ([1.0, 2.0, 3.0], ValueError, "1-D"),
        (np.zeros((1, 2, 3, 4)), ValueError, "2-D .* or 3-D"),
        (np.array([["a", "b"]], dtype=object), ValueError, "could not convert"),
        (np.array([[{"a": 1}, 2.0]], dtype=object), TypeError, "argument must be"),
        (np.array([[1 + 1j, 2.0]]), ValueError, "Complex data"),
        (sp.csr_matrix(np.eye(3)), TypeError, "[Ss]parse"),
        (xr.Dataset({"v": (("sample", "time"), np.zeros((2, 2)))}), TypeError, "Dataset"),
        (xr.DataArray(np.zeros((2, 2)), dims=("sample", "t")), ValueError, "dims"),
    ],
)
def test_bad_sequences(X, error, match):
    with pytest.raises(error, match=match):
        check_sequences(X)


@pytest.mark.parametrize("dims", [("a", "b"), ("a", "a", "b"), ["sample", "time", "feature"], (1, 2, 3)])
def test_bad_dims(dims):
    with pytest.raises(ValueError, match="dims must be"):
        check_sequences(np.zeros((2, 2)), dims=dims)


def test_targets_forms():
    seqs = check_sequences(padded(np.random.default_rng(2), [3, 1]))
    one = check_targets([1.0, 2.0], seqs)
    assert one.values.shape == (2, 1) and not one.per_step and one.output_dim is None
    multi = check_targets(np.ones((2, 4)), seqs)
    assert multi.values.shape == (2, 4) and multi.output_dim == "output"
    y = np.full((2, 3, 1), np.nan)
    y[0, :, 0], y[1, 0, 0] = [1, 2, 3], 4  # NaN at padded steps is ignored and zeroed
    step = check_targets(y, seqs)
    assert step.per_step and step.values.shape == (2, 3, 1)
    np.testing.assert_array_equal(step.values[..., 0], [[1, 2, 3], [4, 0, 0]])


def test_targets_from_dataarray():
    X = xr.DataArray(padded(np.random.default_rng(3), [2, 2]), dims=("sample", "time", "feature"),
                     coords={"sample": [10, 20]})
    seqs = check_sequences(X)
    y = xr.DataArray(np.ones((2, 2, 2)), dims=("target", "time", "sample"),
                     coords={"target": ["p", "q"], "sample": [10, 20]})
    targets = check_targets(y, seqs)
    assert targets.per_step and targets.values.shape == (2, 2, 2)
    assert targets.output_dim == "target" and list(targets.output_coord) == ["p", "q"]
    with pytest.raises(ValueError, match="coords of y differ"):
        check_targets(y.assign_coords(sample=[20, 10]), seqs)
    with pytest.raises(ValueError, match="at most one"):
        check_targets(y.expand_dims(extra=1), seqs)
    with pytest.raises(ValueError, match="no sample dim"):
        check_targets(xr.DataArray([1.0, 2.0], dims="obs"), seqs)


@pytest.mark.parametrize(
    "y, match",
    [
        ([1.0, np.nan], "y contains NaN"),
        ([1.0, np.inf], "y contains inf"),
        ([1.0], "inconsistent numbers of samples"),
        (np.ones((2, 5, 1)), "time steps"),
        (np.ones((2, 0)), "at least one output"),
        (None, "requires y to be passed"),
    ],
)
def test_bad_targets(y, match):
    seqs = check_sequences(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=match):
        check_targets(y, seqs)


def test_single_output_targets():
    seqs = check_sequences(np.zeros((2, 3)))
    with pytest.warns(DataConversionWarning, match="column-vector"):
        targets = check_targets(np.array([["a"], ["b"]]), seqs, numeric=False, multi_output=False)
    assert targets.output_dim is None and targets.values.dtype.kind == "U"
    with pytest.raises(ValueError, match="multi-output"):
        check_targets(np.zeros((2, 2)), seqs, numeric=False, multi_output=False)


def test_to_output():
    X = xr.DataArray(np.zeros((2, 3)), dims=("sample", "time"), coords={"sample": ["a", "b"], "time": [5, 6, 7]})
    seqs = check_sequences(X)
    out = to_output(np.ones((2, 3, 2)), seqs, per_step=True, output_dim="class", output_coord=["x", "y"])
    assert out.dims == ("sample", "time", "class")
    assert list(out["time"].values) == [5, 6, 7] and list(out["class"].values) == ["x", "y"]
    assert to_output(np.ones((2, 1)), seqs, per_step=False).dims == ("sample",)
    plain = to_output(np.ones((2, 1)), check_sequences(np.zeros((2, 3))), per_step=False)
    assert isinstance(plain, np.ndarray) and plain.shape == (2,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardizer(dtype):
    rows = np.random.default_rng(4).normal(5, 3, size=(100, 3)).astype(dtype)
    rows[:, 2] = 7  # constant feature
    scaler = Standardizer.fit(rows)
    out = scaler.transform(rows)
    assert out.dtype == dtype and scaler.scale[2] == 1
    np.testing.assert_allclose(out[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(out[:, :2].std(0), 1, rtol=1e-5)
    np.testing.assert_array_equal(out[:, 2], 0)
    np.testing.assert_allclose(scaler.inverse_transform(out), rows, rtol=1e-6)


def test_sliding_windows():
    X, y = sliding_windows(np.arange(6.0), window=3)
    np.testing.assert_array_equal(X, [[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    np.testing.assert_array_equal(y, [3, 4, 5])
    X, y = sliding_windows(np.arange(10.0).reshape(5, 2), window=2, horizon=2)
    assert X.shape == (2, 2, 2) and y.shape == (2, 2)
    np.testing.assert_array_equal(X[1], [[2, 3], [4, 5]])
    np.testing.assert_array_equal(y[1], [8, 9])
    with pytest.raises(ValueError, match="too short"):
        sliding_windows(np.arange(3.0), window=3)
    with pytest.raises(ValueError, match=">= 1"):
        sliding_windows(np.arange(3.0), window=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4, 50, 8), (300, 50, 8)])  # the brief kernel, and NumPy past BRIEF_MAX_VALUES
def test_the_finite_check_finds_any_inf_or_nan_wherever_it_is(dtype, shape):
    from numlstm.data import _all_finite

    rng = np.random.default_rng(0)
    values = (rng.standard_normal(shape) * 1e30).astype(dtype)  # large, but finite in either width
    assert _all_finite(values) and _all_finite(values[:, ::2, 1:])  # a strided view too
    for index in [(0, 0, 0), (shape[0] // 2, 17, 3), (shape[0] - 1, shape[1] - 1, shape[2] - 1)]:
        for bad in (np.nan, np.inf, -np.inf):
            broken = values.copy()
            broken[index] = bad
            assert not _all_finite(broken)
            assert not _all_finite(broken.transpose(1, 0, 2))


@pytest.mark.parametrize("dtype, scaler_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                                 (np.float32, np.float64)])
@pytest.mark.parametrize("shape", [(4, 50, 8), (16, 512, 8)])  # the second exactly BRIEF_MAX_VALUES values
def test_standardizing_a_small_batch_gives_numpys_bits(dtype, scaler_dtype, shape):
    rng = np.random.default_rng(1)
    values = (3 + 5 * rng.standard_normal(shape)).astype(dtype)
    scaler = Standardizer(rng.standard_normal(8).astype(scaler_dtype), rng.uniform(0.1, 3, 8).astype(scaler_dtype))
    for x in (values, values[:, ::3]):  # contiguous and strided
        expected = ((x - scaler.mean) / scaler.scale).astype(dtype)
        got = scaler.transform(x)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


def test_standardizing_with_a_scaler_of_other_width_fails_as_numpy_does():
    scaler = Standardizer(np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="broadcast"):
        scaler.transform(np.arange(24.0).reshape(2, 3, 4))
