"""The per-step matrix product of the time loops: ``out = a @ b.T`` in place.

Inside a time loop the product is small: a few batch rows times the
recurrent weights. For a handful of rows, a register-blocked loop of our own
beats a BLAS call, whose fixed cost dominates at that size. Its tile is four
rows by two columns: eight independent reductions over the contiguous inner
axis, which LLVM vectorises, so every weight vector loaded from memory feeds
four rows. The columns are visited in blocks whose weights fit in L1, and
every row tile reuses a block before the next is loaded. From
``BLAS_MIN_ROWS`` rows on (set in :mod:`numlstm._config`), BLAS's packed
kernels win and the product goes to ``np.dot``. Both write into a
preallocated ``out``: nothing is allocated inside a time loop.

The GEMMs over every step at once (input projection, weight gradients) go
through :func:`matmul`, which splits the rows of the left operand across
numlstm's threads, each with single-threaded BLAS. Waking BLAS's own thread
pool instead would leave its workers spinning after the call, taking the
cores that the time loops need next.

The loops index the 2-D arrays directly instead of taking row views: a view
updates its parent's reference count atomically, and threads that share the
weights would fight over that counter at every view.
"""

import numpy as np
from numba import njit

from numlstm._config import BLAS_MIN_ROWS, JIT_OPTIONS, run_on_rows

SPLIT_MIN_MACS = 1 << 22
# Bytes of weights per column block of the register-blocked product: half of a 32 KiB L1.
BLOCK_BYTES = 1 << 14


@njit(inline="always", **JIT_OPTIONS)
def _dot_quad(a, b, out, i, j0, j1):
    """Rows ``i`` to ``i + 3`` of ``out = a @ b.T``, columns ``j0:j1`` (an even count)."""
    K = a.shape[1]
    zero = a.dtype.type(0)
    for j in range(j0, j1, 2):
        s00 = s01 = s10 = s11 = s20 = s21 = s30 = s31 = zero
        for k in range(K):
            w0 = b[j, k]
            w1 = b[j + 1, k]
            s00 += a[i, k] * w0
            s01 += a[i, k] * w1
            s10 += a[i + 1, k] * w0
            s11 += a[i + 1, k] * w1
            s20 += a[i + 2, k] * w0
            s21 += a[i + 2, k] * w1
            s30 += a[i + 3, k] * w0
            s31 += a[i + 3, k] * w1
        out[i, j], out[i, j + 1] = s00, s01
        out[i + 1, j], out[i + 1, j + 1] = s10, s11
        out[i + 2, j], out[i + 2, j + 1] = s20, s21
        out[i + 3, j], out[i + 3, j + 1] = s30, s31


@njit(inline="always", **JIT_OPTIONS)
def _dot_pair(a, b, out, i):
    """Rows ``i`` and ``i + 1`` of ``out = a @ b.T``, four columns at a time."""
    K = a.shape[1]
    M = b.shape[0]
    zero = a.dtype.type(0)
    for j in range(0, M - M % 4, 4):
        s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
        for k in range(K):
            x0 = a[i, k]
            x1 = a[i + 1, k]
            s00 += x0 * b[j, k]
            s01 += x0 * b[j + 1, k]
            s02 += x0 * b[j + 2, k]
            s03 += x0 * b[j + 3, k]
            s10 += x1 * b[j, k]
            s11 += x1 * b[j + 1, k]
            s12 += x1 * b[j + 2, k]
            s13 += x1 * b[j + 3, k]
        out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s00, s01, s02, s03
        out[i + 1, j], out[i + 1, j + 1], out[i + 1, j + 2], out[i + 1, j + 3] = s10, s11, s12, s13
    for j in range(M - M % 4, M):
        s0 = s1 = zero
        for k in range(K):
            s0 += a[i, k] * b[j, k]
            s1 += a[i + 1, k] * b[j, k]
        out[i, j], out[i + 1, j] = s0, s1


@njit(inline="always", **JIT_OPTIONS)
def _dot_single(a, b, out, i):
    """Row ``i`` of ``out = a @ b.T``, four columns at a time."""
    K = a.shape[1]
    M = b.shape[0]
    zero = a.dtype.type(0)
    for j in range(0, M - M % 4, 4):
        s0 = s1 = s2 = s3 = zero
        for k in range(K):
            x = a[i, k]
            s0 += x * b[j, k]
            s1 += x * b[j + 1, k]
            s2 += x * b[j + 2, k]
            s3 += x * b[j + 3, k]
        out[i, j], out[i, j + 1], out[i, j + 2], out[i, j + 3] = s0, s1, s2, s3
    for j in range(M - M % 4, M):
        s = zero
        for k in range(K):
            s += a[i, k] * b[j, k]
        out[i, j] = s


@njit(**JIT_OPTIONS)
def matmul_nt(a, b, out):
    """``out = a @ b.T`` for C-contiguous ``a`` (n, K), ``b`` (M, K) and ``out`` (n, M)."""
    n, K = a.shape
    M = b.shape[0]
    if n >= BLAS_MIN_ROWS:
        np.dot(a, b.T, out)
        return
    n4 = n - n % 4
    if n4:
        even = M - M % 2
        block = max(2, BLOCK_BYTES // max(1, K * a.itemsize) // 2 * 2)
        for j0 in range(0, even, block):
            j1 = min(j0 + block, even)
            for i in range(0, n4, 4):
                _dot_quad(a, b, out, i, j0, j1)
        if M % 2:
            for i in range(n4):
                s = a.dtype.type(0)
                for k in range(K):
                    s += a[i, k] * b[M - 1, k]
                out[i, M - 1] = s
    if n - n4 >= 2:
        _dot_pair(a, b, out, n4)
    if n % 2:
        _dot_single(a, b, out, n - 1)


def matmul(a, b):
    """``a @ b`` for 2-D arrays, the rows of ``a`` split across numlstm's threads.

    Below ``SPLIT_MIN_MACS`` multiply-adds the split and the BLAS thread
    limit cost more than they save, and BLAS runs such a product on one
    thread anyway: it is called directly.
    """
    if a.shape[0] * a.shape[1] * b.shape[1] < SPLIT_MIN_MACS:
        return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))

    def rows(r0, r1):
        np.matmul(a[r0:r1], b, out=out[r0:r1])

    run_on_rows(rows, a.shape[0], calls_blas=True)
    return out
