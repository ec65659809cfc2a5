"""The in-place per-step product ``out = a @ b.T``: register tiles, their edges, the plain loops."""

import numpy as np
import pytest

from numlstm.cells.gemm import (PACK_MIN_USES, SPLIT_MIN_MACS, matmul, matmul_nt, pack_panels,
                                panel_width)

DTYPES = [(np.float32, 1e-5), (np.float64, 1e-13)]


def reference(a, b):
    return a.astype(np.float64) @ b.T.astype(np.float64)


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 5, 6, 7, 8, 13, 33])
@pytest.mark.parametrize("panels_wide, tail", [(0, 3), (1, 0), (1, 3), (2, 0), (3, 3), (4, 0),
                                               (5, 3), (9, 0)])
def test_matches_numpy(rows, panels_wide, tail, dtype, tol):
    """Every split of rows (4-row tiles, a pair, a single row) and of columns (groups of
    panels, a last odd panel, a tail past the last panel)."""
    w = panel_width(np.dtype(dtype).itemsize)
    cols = panels_wide * w + tail
    rng = np.random.default_rng(rows * 100 + cols)
    a = rng.standard_normal((rows, 13)).astype(dtype)
    b = rng.standard_normal((cols, 13)).astype(dtype)
    panels = pack_panels(b, PACK_MIN_USES)
    assert panels.shape == (panels_wide, 13, w)
    out = np.full((rows, cols), np.nan, dtype)
    matmul_nt(a, b, panels, out)
    np.testing.assert_allclose(out, reference(a, b), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 9])
def test_without_panels_the_plain_loops_do_everything(rows, dtype, tol):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((rows, 20)).astype(dtype)
    b = rng.standard_normal((35, 20)).astype(dtype)
    panels = pack_panels(b, PACK_MIN_USES - 1)
    assert panels.shape[0] == 0
    out = np.full((rows, 35), np.nan, dtype)
    matmul_nt(a, b, panels, out)
    np.testing.assert_allclose(out, reference(a, b), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_row_views_of_larger_arrays(dtype, tol):
    """Rows of a 3-D array and of a padded 2-D array, written into rows of a larger output."""
    rng = np.random.default_rng(3)
    k, cols = 300, 2 * panel_width(np.dtype(dtype).itemsize) + 5
    stack = rng.standard_normal((3, 11, k)).astype(dtype)
    padded = rng.standard_normal((6, k + 7)).astype(dtype)[:, :k]
    b = rng.standard_normal((cols, k)).astype(dtype)
    panels = pack_panels(b, PACK_MIN_USES)
    for a in (stack[1, 2:10], padded):
        big = np.full((a.shape[0] + 3, cols), np.nan, dtype)
        out = big[2:2 + a.shape[0]]
        matmul_nt(a, b, panels, out)
        np.testing.assert_allclose(out, reference(a, b), rtol=tol, atol=tol)
        assert np.isnan(big[:2]).all() and np.isnan(big[2 + a.shape[0]:]).all()


@pytest.mark.parametrize("shape", [(3, 5, 4), (300, 130, 120)], ids=["direct", "split"])
def test_matmul_matches_numpy_on_both_paths(shape):
    n, k, m = shape
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, k)).astype(np.float32)
    b = rng.standard_normal((m, k)).astype(np.float32).T  # a transposed view, as the layers pass
    assert (n * k * m >= SPLIT_MIN_MACS) == (shape[0] == 300)
    np.testing.assert_allclose(matmul(a, b), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
