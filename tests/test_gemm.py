"""The in-place per-step product ``out = a @ b.T``, on both of its paths and every edge."""

import numpy as np
import pytest

from numlstm.cells.gemm import BLAS_MIN_ROWS, BLOCK_BYTES, SPLIT_MIN_MACS, matmul, matmul_nt


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-13)])
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, BLAS_MIN_ROWS - 1, BLAS_MIN_ROWS, 33])
@pytest.mark.parametrize("cols", [1, 3, 4, 9, 16])
def test_matches_numpy(rows, cols, dtype, tol):
    rng = np.random.default_rng(rows * 100 + cols)
    a = rng.standard_normal((rows, 13)).astype(dtype)
    b = rng.standard_normal((cols, 13)).astype(dtype)
    out = np.full((rows, cols), np.nan, dtype)
    matmul_nt(a, b, out)
    expected = a.astype(np.float64) @ b.T.astype(np.float64)
    np.testing.assert_allclose(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
@pytest.mark.parametrize("rows", [4, 7, 8])
def test_several_column_blocks(rows, dtype, tol):
    """A long inner axis makes the column blocks narrow: blocks, their edge and an odd column."""
    k, cols = 600, 17
    assert BLOCK_BYTES // (k * np.dtype(dtype).itemsize) < cols // 2
    rng = np.random.default_rng(rows)
    a = rng.standard_normal((rows, k)).astype(dtype)
    b = rng.standard_normal((cols, k)).astype(dtype)
    out = np.full((rows, cols), np.nan, dtype)
    matmul_nt(a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.T.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(3, 5, 4), (300, 130, 120)], ids=["direct", "split"])
def test_matmul_matches_numpy_on_both_paths(shape):
    n, k, m = shape
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal((m, k)).astype(np.float32).T  # a transposed view, as the layers pass
    assert (n * k * m >= SPLIT_MIN_MACS) == (shape[0] == 300)
    np.testing.assert_allclose(matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
