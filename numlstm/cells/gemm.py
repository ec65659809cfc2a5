"""The per-step matrix product of the time loops: ``out = a @ b.T`` in place.

Inside a time loop the product is small: a few batch rows times the
recurrent weights. For a handful of rows, a register-blocked loop of our own
(two rows by four columns, reductions over the contiguous inner axis that
LLVM vectorises) beats a BLAS call, whose fixed cost dominates at that size.
From ``BLAS_MIN_ROWS`` rows on (set in :mod:`numlstm._config`), BLAS's
packed kernels win and the product goes to ``np.dot``. Both write into a preallocated ``out``: nothing is
allocated inside a time loop.
"""

import numpy as np
from numba import njit

from numlstm._config import BLAS_MIN_ROWS, JIT_OPTIONS


@njit(**JIT_OPTIONS)
def _dot_pair(a, b, out, i):
    """Rows ``i`` and ``i + 1`` of ``out = a @ b.T``, four columns at a time."""
    K = a.shape[1]
    M = b.shape[0]
    zero = a.dtype.type(0)
    a0, a1 = a[i], a[i + 1]
    for j in range(0, M - M % 4, 4):
        b0, b1, b2, b3 = b[j], b[j + 1], b[j + 2], b[j + 3]
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
        for k in range(K):
            x0 = a0[k]
            x1 = a1[k]
            s00 += x0 * b0[k]
            s01 += x0 * b1[k]
            s02 += x0 * b2[k]
            s03 += x0 * b3[k]
            s10 += x1 * b0[k]
            s11 += x1 * b1[k]
            s12 += x1 * b2[k]
            s13 += x1 * b3[k]
        out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s00, s01, s02, s03
        out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = s10, s11, s12, s13
    for j in range(M - M % 4, M):
        out[i, j] = np.dot(a0, b[j])
        out[i + 1, j] = np.dot(a1, b[j])


@njit(**JIT_OPTIONS)
def _dot_single(a, b, out, i):
    """Row ``i`` of ``out = a @ b.T``, four columns at a time."""
    K = a.shape[1]
    M = b.shape[0]
    zero = a.dtype.type(0)
    x = a[i]
    for j in range(0, M - M % 4, 4):
        b0, b1, b2, b3 = b[j], b[j + 1], b[j + 2], b[j + 3]
        s0 = s1 = s2 = s3 = zero
        for k in range(K):
            s0 += x[k] * b0[k]
            s1 += x[k] * b1[k]
            s2 += x[k] * b2[k]
            s3 += x[k] * b3[k]
        out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s0, s1, s2, s3
    for j in range(M - M % 4, M):
        out[i, j] = np.dot(x, b[j])


@njit(**JIT_OPTIONS)
def matmul_nt(a, b, out):
    """``out = a @ b.T`` for C-contiguous ``a`` (n, K), ``b`` (M, K) and ``out`` (n, M)."""
    n = a.shape[0]
    if n >= BLAS_MIN_ROWS:
        np.dot(a, b.T, out)
        return
    for i in range(0, n - 1, 2):
        _dot_pair(a, b, out, i)
    if n % 2:
        _dot_single(a, b, out, n - 1)
