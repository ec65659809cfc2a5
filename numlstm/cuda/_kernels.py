"""The CUDA kernels and their launchers: tiled GEMM, reductions and elementwise helpers.

Launch geometry is read from two module-level settings at every launch, so a
test can patch them small and make a tiny problem span several blocks and
partial tiles:

``THREADS_PER_BLOCK``
    Threads per block of every one-dimensional kernel (pointwise gate math,
    reductions, elementwise helpers).
``TILE``
    Side of the square shared-memory tiles of the GEMM kernel; a GEMM block
    has ``TILE * TILE`` threads. Shared-memory shapes are compile-time
    constants in CUDA, so one GEMM kernel is compiled per (dtype, TILE).

Every kernel is built by a factory per dtype (``float32`` or ``float64``): the
constants (0, 1) are NumPy scalars of that dtype captured by the closure, so
a float32 kernel never widens to float64 arithmetic.
"""

import functools
import math

import numpy as np
from numba import cuda, from_dtype

THREADS_PER_BLOCK = 128
TILE = 16


def blocks(n):
    """Number of one-dimensional blocks that cover ``n`` threads."""
    return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


# ---- GEMM ---------------------------------------------------------------------------------

def _gemm_source(tile, dtype):
    """The tiled GEMM kernel for one tile size and dtype, as a plain Python function.

    ``c[m, n] (+)= sum_k op(a)[m, k] * op(b)[k, n] + bias[n]`` where ``op``
    transposes when ``trans_a``/``trans_b`` is set. Rows ``m`` with
    ``t >= 0`` and ``t >= lengths[m]`` are left untouched, which gives the
    packed-sequence update of a state in the same launch. ``bias`` may be
    empty (no bias); ``accumulate`` adds into ``c``.

    Each block computes one ``tile x tile`` tile of ``c``. Both operand tiles
    are staged in shared memory; a transposed operand is loaded with the
    thread indices swapped so that neighbouring threads read neighbouring
    addresses either way (coalesced loads), and the shared tiles are padded
    by one column against bank conflicts.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    shape = (tile, tile + 1)  # a compile-time constant for cuda.shared.array

    def gemm(a, b, c, trans_a, trans_b, bias, accumulate, lengths, t):
        sa = cuda.shared.array(shape, nbtype)
        sb = cuda.shared.array(shape, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * tile
        col0 = cuda.blockIdx.x * tile
        row = row0 + ty
        col = col0 + tx
        M = c.shape[0]
        N = c.shape[1]
        K = a.shape[0] if trans_a else a.shape[1]
        acc = zero
        for k0 in range(0, K, tile):
            # sa[r, k] = op(a)[row0 + r, k0 + k]
            if trans_a:
                r = row0 + tx
                k = k0 + ty
                sa[tx, ty] = a[k, r] if (r < M and k < K) else zero
            else:
                k = k0 + tx
                sa[ty, tx] = a[row, k] if (row < M and k < K) else zero
            # sb[k, n] = op(b)[k0 + k, col0 + n]
            if trans_b:
                n = col0 + ty
                k = k0 + tx
                sb[tx, ty] = b[n, k] if (n < N and k < K) else zero
            else:
                k = k0 + ty
                sb[ty, tx] = b[k, col] if (k < K and col < N) else zero
            cuda.syncthreads()
            for kk in range(tile):
                acc += sa[ty, kk] * sb[kk, tx]
            cuda.syncthreads()
        if row < M and col < N:
            if t < 0 or t < lengths[row]:
                if bias.shape[0] > 0:
                    acc += bias[col]
                if accumulate:
                    acc += c[row, col]
                c[row, col] = acc

    return gemm


@functools.lru_cache(maxsize=None)
def _gemm_kernel(tile, dtype):
    return cuda.jit(_gemm_source(tile, dtype))


@functools.lru_cache(maxsize=None)
def _placeholders(dtype):
    """An empty vector of ``dtype`` (no bias) and a one-element int64 vector (no mask)."""
    return cuda.device_array(0, np.dtype(dtype)), cuda.to_device(np.zeros(1, np.int64))


def gemm(a, b, c=None, trans_a=False, trans_b=False, bias=None, accumulate=False,
         lengths=None, t=-1):
    """``c = op(a) @ op(b) [+ bias] [+ c]`` on the device; returns ``c``.

    ``a``, ``b`` and ``c`` are 2-D device arrays (``c`` is allocated when
    None). With ``lengths`` and ``t``, rows ``m`` whose sequence has ended
    (``t >= lengths[m]``) are left as they are.
    """
    M = a.shape[1] if trans_a else a.shape[0]
    K = a.shape[0] if trans_a else a.shape[1]
    N = b.shape[0] if trans_b else b.shape[1]
    if (b.shape[1] if trans_b else b.shape[0]) != K:
        raise ValueError(f"gemm: inner dimensions differ, {a.shape} and {b.shape}")
    dtype = np.dtype(a.dtype)
    if c is None:
        c = cuda.device_array((M, N), dtype)
    if c.shape != (M, N):
        raise ValueError(f"gemm: output has shape {c.shape}, expected {(M, N)}")
    if M == 0 or N == 0:
        return c
    no_bias, no_mask = _placeholders(dtype.name)
    if lengths is None:
        lengths, t = no_mask, -1
    tile = TILE
    grid = ((N + tile - 1) // tile, (M + tile - 1) // tile)
    _gemm_kernel(tile, dtype.name)[grid, (tile, tile)](
        a, b, c, bool(trans_a), bool(trans_b), no_bias if bias is None else bias,
        bool(accumulate), lengths, int(t))
    return c


# ---- reductions and elementwise helpers ---------------------------------------------------

def _helper_sources(dtype):
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)

    def fill(a, value):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] = value

    def add(a, b, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = a[i] + b[i]

    def multiply(a, b, out):
        i = cuda.grid(1)
        if i < out.shape[0]:
            out[i] = a[i] * b[i]

    def swap01(a, out):
        """out[j, i, k] = a[i, j, k], one thread per element of ``out``."""
        idx = cuda.grid(1)
        n1 = out.shape[1]
        n2 = out.shape[2]
        if idx < out.shape[0] * n1 * n2:
            k = idx % n2
            rest = idx // n2
            i = rest % n1
            j = rest // n1
            out[j, i, k] = a[i, j, k]

    def count_nonfinite(a, count):
        i = cuda.grid(1)
        if i < a.shape[0]:
            v = a[i]
            if not math.isfinite(v):
                cuda.atomic.add(count, 0, 1)

    def copy2d(a, out):
        idx = cuda.grid(1)
        n1 = out.shape[1]
        if idx < out.shape[0] * n1:
            i = idx // n1
            j = idx - i * n1
            out[i, j] = a[i, j]

    def copy3d(a, out):
        idx = cuda.grid(1)
        n1 = out.shape[1]
        n2 = out.shape[2]
        if idx < out.shape[0] * n1 * n2:
            k = idx % n2
            rest = idx // n2
            j = rest % n1
            i = rest // n1
            out[i, j, k] = a[i, j, k]

    def scale(a, factor):
        i = cuda.grid(1)
        if i < a.shape[0]:
            a[i] *= factor

    def sum_squares(a, total):
        """total[0] += sum of a**2 (float64 atomics; one thread per element)."""
        i = cuda.grid(1)
        if i < a.shape[0]:
            v = np.float64(a[i])
            cuda.atomic.add(total, 0, v * v)

    def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay):
        """torch.optim.SGD: v = m v + g; param -= lr (g + m v if nesterov else v)."""
        i = cuda.grid(1)
        if i < param.shape[0]:
            g = grad[i] + weight_decay * param[i]
            v = momentum * velocity[i] + g
            velocity[i] = v
            step = g + momentum * v if nesterov else v
            param[i] -= lr * step

    def adam_update(param, grad, m, v, step_size, beta_1, beta_2, root_correction, epsilon,
                    weight_decay):
        """torch.optim.Adam with bias correction folded into step_size and root_correction."""
        i = cuda.grid(1)
        if i < param.shape[0]:
            g = grad[i] + weight_decay * param[i]
            mi = beta_1 * m[i] + (one - beta_1) * g
            vi = beta_2 * v[i] + (one - beta_2) * g * g
            m[i] = mi
            v[i] = vi
            param[i] -= step_size * mi / (math.sqrt(vi) / root_correction + epsilon)

    return dict(fill=fill, add=add, multiply=multiply, swap01=swap01,
                count_nonfinite=count_nonfinite, copy2d=copy2d, copy3d=copy3d, scale=scale,
                sum_squares=sum_squares, sgd_update=sgd_update, adam_update=adam_update)


@functools.lru_cache(maxsize=None)
def helpers(dtype):
    """The compiled helper kernels for ``dtype``, by name."""
    return {name: cuda.jit(fn) for name, fn in _helper_sources(np.dtype(dtype).name).items()}


def _colsum_source(tile, dtype):
    """The column-sum kernel ``out[n] = sum_m a[m, n]`` for one tile size and dtype.

    A ``(tile, tile)`` block sums ``tile`` columns: thread ``(x, y)`` adds up
    rows ``y, y + tile, ...`` of column ``x`` (neighbouring threads read
    neighbouring columns), then thread ``(x, 0)`` adds the ``tile`` partial
    sums in a fixed order, so the result is deterministic (no atomics).
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    shape = (tile, tile + 1)  # a compile-time constant for cuda.shared.array

    def colsum(a, out):
        partial = cuda.shared.array(shape, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        n = cuda.blockIdx.x * tile + tx
        acc = zero
        if n < out.shape[0]:
            for m in range(ty, a.shape[0], tile):
                acc += a[m, n]
        partial[ty, tx] = acc
        cuda.syncthreads()
        if ty == 0 and n < out.shape[0]:
            total = zero
            for r in range(tile):
                total += partial[r, tx]
            out[n] = total

    return colsum


@functools.lru_cache(maxsize=None)
def _colsum_kernel(tile, dtype):
    return cuda.jit(_colsum_source(tile, dtype))


def colsum(a, out=None):
    """Column sums of a 2-D device array, (N,)."""
    if out is None:
        out = cuda.device_array(a.shape[1], a.dtype)
    tile = TILE
    if a.shape[1]:
        _colsum_kernel(tile, np.dtype(a.dtype).name)[(a.shape[1] + tile - 1) // tile,
                                                     (tile, tile)](a, out)
    return out


# ---- activations --------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def activations(dtype):
    """``(sigmoid, tanh)`` device functions for ``dtype``.

    The sigmoid is the two-sided stable form; both use the CUDA math library
    (``expf``/``tanhf`` for float32), with no widening to float64.
    """
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)

    @cuda.jit(device=True)
    def sigmoid(x):
        if x >= zero:
            return one / (one + math.exp(-x))
        e = math.exp(x)
        return e / (one + e)

    @cuda.jit(device=True)
    def tanh(x):
        return math.tanh(x)

    return sigmoid, tanh
