"""The CUDA kernels and their launchers: tiled GEMM, reductions and elementwise helpers.

Launch geometry is read from two module-level settings at every launch, so a
test can patch them small and make a tiny problem span several blocks and
partial tiles:

``THREADS_PER_BLOCK``
    Threads per block of every one-dimensional kernel (pointwise gate math,
    reductions, elementwise helpers).
``TILE``
    Side of the square thread blocks of the GEMM, the column sums and the
    persistent recurrences: such a block has ``TILE * TILE`` threads.
``GEMM_WORK``
    Outputs per GEMM thread along each side: a GEMM block computes a
    ``TILE * GEMM_WORK`` square tile of the product, and steps through
    ``k`` ``TILE`` at a time. Shared-memory shapes are compile-time
    constants in CUDA, so one GEMM kernel is compiled per (dtype, TILE,
    GEMM_WORK).

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
GEMM_WORK = 4


def blocks(n):
    """Number of one-dimensional blocks that cover ``n`` threads."""
    return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK)


# ---- GEMM ---------------------------------------------------------------------------------

def _gemm_source(tile, work, dtype):
    """The register-tiled GEMM kernel for one geometry and dtype, as a plain Python function.

    ``c[m, n] (+)= sum_k op(a)[m, k] * op(b)[k, n] + bias[n]`` where ``op``
    transposes when ``trans_a``/``trans_b`` is set. Rows ``m`` with
    ``t >= 0`` and ``t >= lengths[m]`` are left untouched, which gives the
    packed-sequence update of a state in the same launch. ``bias`` may be
    empty (no bias); ``accumulate`` adds into ``c``.

    A block of ``tile x tile`` threads computes a ``side x side`` tile of
    ``c`` (``side = tile * work``): thread ``(x, y)`` owns the ``work x work``
    outputs at rows ``y + i * tile`` and columns ``x + j * tile``, kept in
    registers. Per step of ``tile`` along ``k`` the block stages a
    ``side x tile`` slice of each operand in shared memory (``stage``);
    each thread then reads ``2 * work`` values per ``k`` for ``work ** 2``
    multiply-adds, where one output per thread reads two per multiply-add.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    side = tile * work
    shape = (tile, side + 1)  # compile-time constants for cuda.shared.array

    @cuda.jit(device=True)
    def stage(src, transposed, dst, r0, k0, R, K):
        """``dst[k, r] = op(src)[r0 + r, k0 + k]``, zero past the edges of the ``R x K`` op(src).

        ``op(src)`` is ``src.T`` when ``transposed``. Each thread loads
        ``work`` elements, and neighbouring threads read neighbouring
        addresses of ``src`` either way (coalesced loads).
        """
        first = cuda.threadIdx.y * tile + cuda.threadIdx.x
        for q in range(work):
            e = first + q * tile * tile
            if transposed:  # src is (K, R): run along r
                k = e // side
                r = e - k * side
                inside = k0 + k < K and r0 + r < R
                dst[k, r] = src[k0 + k, r0 + r] if inside else zero
            else:  # src is (R, K): run along k
                r = e // tile
                k = e - r * tile
                inside = r0 + r < R and k0 + k < K
                dst[k, r] = src[r0 + r, k0 + k] if inside else zero

    def gemm(a, b, c, trans_a, trans_b, bias, accumulate, lengths, t):
        sa = cuda.shared.array(shape, nbtype)
        sb = cuda.shared.array(shape, nbtype)
        acc = cuda.local.array((work, work), nbtype)
        av = cuda.local.array(work, nbtype)
        bv = cuda.local.array(work, nbtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row0 = cuda.blockIdx.y * side
        col0 = cuda.blockIdx.x * side
        M = c.shape[0]
        N = c.shape[1]
        K = a.shape[0] if trans_a else a.shape[1]
        for i in range(work):
            for j in range(work):
                acc[i, j] = zero
        for k0 in range(0, K, tile):
            stage(a, trans_a, sa, row0, k0, M, K)  # sa[k, m] = op(a)[row0 + m, k0 + k]
            stage(b, not trans_b, sb, col0, k0, N, K)  # sb[k, n] = op(b)[k0 + k, col0 + n]
            cuda.syncthreads()
            for kk in range(tile):
                for i in range(work):
                    av[i] = sa[kk, ty + i * tile]
                for j in range(work):
                    bv[j] = sb[kk, tx + j * tile]
                for i in range(work):
                    for j in range(work):
                        acc[i, j] += av[i] * bv[j]
            cuda.syncthreads()
        for i in range(work):
            row = row0 + ty + i * tile
            if row < M and (t < 0 or t < lengths[row]):
                for j in range(work):
                    col = col0 + tx + j * tile
                    if col < N:
                        value = acc[i, j]
                        if bias.shape[0] > 0:
                            value += bias[col]
                        if accumulate:
                            value += c[row, col]
                        c[row, col] = value

    return gemm


@functools.cache
def _gemm_kernel(tile, work, dtype):
    return cuda.jit(_gemm_source(tile, work, dtype))


@functools.cache
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
    tile, work = TILE, GEMM_WORK
    side = tile * work
    grid = ((N + side - 1) // side, (M + side - 1) // side)
    _gemm_kernel(tile, work, dtype.name)[grid, (tile, tile)](
        a, b, c, bool(trans_a), bool(trans_b), no_bias if bias is None else bias,
        bool(accumulate), lengths, int(t))
    return c


# ---- reductions and elementwise helpers ---------------------------------------------------

def _helper_sources(dtype):
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


@functools.cache
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


@functools.cache
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

@functools.cache
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
