"""The in-place per-step product ``out = a @ b.T``: register tiles, their edges, the plain loops."""

import numpy as np
import pytest

from numlstm.cells.gemm import (PACK_MIN_USES, SPLIT_MIN_MACS, matmul, matmul_nt,
                                pack_gate_rows, pack_panels, panel_width)

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 8, 13, 37])
def test_panels_hold_the_transposed_rows(K, dtype):
    """Whole vector blocks, the columns past them, and the rows past the last panel."""
    w = panel_width(np.dtype(dtype).itemsize)
    b = np.random.default_rng(K).standard_normal((3 * w + 5, K)).astype(dtype)
    panels = pack_panels(b, PACK_MIN_USES)
    assert panels.shape == (3, K, w)
    for p in range(3):
        np.testing.assert_array_equal(panels[p], b[p * w:(p + 1) * w].T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_gates, H, j0, j1", [(4, 24, 0, 16), (4, 24, 16, 24), (3, 24, 16, 24),
                                                (4, 20, 8, 20), (3, 36, 5, 36), (1, 40, 0, 40)])
@pytest.mark.parametrize("uses", [PACK_MIN_USES - 1, PACK_MIN_USES])
def test_gate_rows_match_gathering_then_packing(n_gates, H, j0, j1, uses, dtype):
    """Units j0:j1 of each gate block, packed straight from the full weights: blocks of a
    vector's rows that lie in one gate, blocks that straddle two, and the tail rows."""
    K = 19
    b = np.random.default_rng(H + j0).standard_normal((n_gates * H, K)).astype(dtype)
    gathered = np.concatenate([b[g * H + j0:g * H + j1] for g in range(n_gates)])
    rows, panels = pack_gate_rows(b, n_gates, j0, j1, uses)
    expected = pack_panels(gathered, uses)
    assert rows.shape == gathered.shape and panels.shape == expected.shape
    np.testing.assert_array_equal(panels, expected)
    done = panels.shape[0] * panels.shape[2]  # matmul_nt reads the rows past the panels only
    np.testing.assert_array_equal(rows[done:], gathered[done:])
    a = np.random.default_rng(1).standard_normal((5, K)).astype(dtype)
    out = np.empty((5, len(gathered)), dtype)
    matmul_nt(a, rows, panels, out)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, reference(a, gathered), rtol=tol, atol=tol)


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
