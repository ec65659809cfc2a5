"""The per-step matrix product of the time loops: ``out = a @ b.T`` in place.

Inside a time loop the product is small: a few batch rows times the
recurrent weights, once per step. A BLAS call repacks the weights at every
step, and its fixed cost dominates at a few rows. So the time loops use a
kernel of their own:

* The weights are packed once per call into column panels
  (``pack_panels``): panel ``p`` holds columns ``p*W : (p+1)*W`` of
  ``b.T`` as a contiguous (K, W) block, W being two 32-byte vectors (16
  float32 or 8 float64). Packing transposes square blocks of one vector's
  width in registers (``_transpose_block``).
* A register tile (``_tile``) computes four rows by one panel: eight
  vector accumulators stay in registers for the whole inner axis, and each
  step of it loads two weight vectors, broadcasts four inputs and issues
  eight fused multiply-adds. Numba's loops do not produce this code (LLVM's
  vectoriser reduces along the inner axis instead), so the tile is written
  in LLVM IR through ``numba.extending.intrinsic``. On this project's
  AVX2 machine it runs at the core's peak, about 90 GFLOPS in float32
  against 55-60 for the best vectorised loop, and at least as fast as
  single-threaded BLAS from four rows up.
* The last rows (fewer than four) take tiles of two rows by two panels and
  of one row by four panels: the same eight accumulators, each weight
  vector loaded once per row group. One row with ``b`` in L1 runs at about
  65 GFLOPS, twice the reducing loops; with ``b`` in L2 it is bound by L2
  bandwidth either way.
* The columns past the last full panel use plain loops that reduce along
  the contiguous inner axis of ``b``. So does everything when a call
  multiplies too few rows for the packing to pay (``pack_panels``).

Nothing is allocated inside a time loop: every product writes into a
preallocated ``out``.

The time loops also project each step's input with the same kernel, so a
forward pass calls no BLAS at all. The GEMMs of the backward pass over every
step at once (weight and input gradients) go through ``matmul``, which
splits the rows of the left operand across numlstm's threads, each with
single-threaded BLAS. Waking BLAS's own thread pool instead would leave its
workers spinning after the call, taking the cores that the time loops need
next.

The loops index the 2-D arrays directly instead of taking row views, and the
helpers are inlined: a view, like an array passed to a function that is not
inlined, updates its parent's reference count atomically, and threads that
share the weights would fight over that counter.
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from numlstm._config import (BLAS_ALONE_MACS, BRIEF_JIT_OPTIONS, JIT_OPTIONS, ORDERED_JIT_OPTIONS, PACK_MIN_USES,
                             PANEL_VECTORS, SPLIT_BLOCK_ROWS, SPLIT_MIN_MACS, TILE_ROWS, VECTOR_BYTES,
                             run_on_rows, single_threaded_blas)


@njit(inline="always", **JIT_OPTIONS)
def panel_width(itemsize):
    """Columns per panel: two 32-byte vectors of ``itemsize``-byte numbers."""
    return PANEL_VECTORS * VECTOR_BYTES // itemsize


@njit(**BRIEF_JIT_OPTIONS)
def pack_panels(b, uses):
    """The full column panels of ``b.T`` for ``matmul_nt``, (N // W, K, W).

    ``b`` is (N, K), C-contiguous; panel ``p`` holds ``b[p*W + c, k]`` at
    ``[p, k, c]``. ``uses`` is how many rows one thread multiplies by
    ``b.T`` over the whole call (rows per product times products): below
    ``PACK_MIN_USES`` packing costs more than the tiles save, and nothing is
    packed.
    """
    return _pack_gate_panels(b, 1, 0, b.shape[0], uses)


@njit(inline="always", **JIT_OPTIONS)
def _gate_row(r, n, H, j0):
    """The row of ``b`` that holds row ``r`` of units ``j0:j0+n`` of every gate block of ``H``."""
    return r // n * H + j0 + r % n


@njit(inline="always", **JIT_OPTIONS)
def _pack_gate_panels(b, n_gates, j0, j1, uses):
    """The panels of rows ``j0:j1`` of every gate block of ``b`` (see ``pack_gate_rows``)."""
    H = b.shape[0] // n_gates
    K = b.shape[1]
    n = j1 - j0
    w = panel_width(b.itemsize)
    lanes = VECTOR_BYTES // b.itemsize
    full = n_gates * n // w if uses >= PACK_MIN_USES else 0
    panels = np.empty((full, K, w), b.dtype)
    for p in range(full):
        for c in range(0, w, lanes):
            r = p * w + c
            if r % n + lanes <= n:  # the vector's rows lie in one gate block
                pack_rows(b, _gate_row(r, n, H, j0), panels, p, c)
            else:
                for i in range(lanes):
                    src = _gate_row(r + i, n, H, j0)
                    for k in range(K):
                        panels[p, k, c + i] = b[src, k]
    return panels


@njit(inline="always", **JIT_OPTIONS)
def pack_rows(b, r, panels, p, c):
    """``panels[p, :, c:c+n] = b[r:r+n].T``, ``n`` being the numbers in one vector.

    Square blocks of ``n`` by ``n`` go through ``_transpose_block``; the
    columns of ``b`` past the last whole block are copied one by one.
    """
    K = b.shape[1]
    n = VECTOR_BYTES // b.itemsize
    for k in range(0, K - K % n, n):
        _transpose_block(b, r, k, panels, p, c)
    for k in range(K - K % n, K):
        for i in range(n):
            panels[p, k, c + i] = b[r + i, k]


@intrinsic
def _transpose_block(typingctx, b, r, k, panels, p, c):
    """``panels[p, k:k+n, c:c+n] = b[r:r+n, k:k+n].T``, ``n`` being the numbers in one vector.

    ``b`` is a C-contiguous 2-D array, ``panels`` the (P, K, W) array of
    ``pack_panels``. The block travels in ``n`` vector registers: loaded
    as rows, transposed by ``log2(n)`` rounds of shuffles (each swaps one bit
    of the row index with the same bit of the column index) and stored as
    rows of the panel. Copying number by number took three times as long,
    and the weights are packed at every call.
    """
    if not (isinstance(b, types.Array) and isinstance(panels, types.Array) and b.ndim == 2
            and b.layout == "C" and panels.ndim == 3 and b.dtype == panels.dtype
            and b.dtype in (types.float32, types.float64)):
        return None
    dtype = b.dtype

    def codegen(context, builder, sig, args):
        arr_b, row, col, arr_p, panel, lane0 = args
        Bm = context.make_array(sig.args[0])(context, builder, arr_b)
        Pm = context.make_array(sig.args[3])(context, builder, arr_p)
        fty = context.get_data_type(dtype)
        size = context.get_abi_sizeof(fty)
        n = VECTOR_BYTES // size
        vty = ir.VectorType(fty, n)
        intp = context.get_value_type(types.intp)

        def const(v):
            return ir.Constant(intp, v)

        def vector_at(data, index):
            return builder.bitcast(builder.gep(data, [index]), vty.as_pointer())

        b_row = builder.extract_value(Bm.shape, 1)
        K = builder.extract_value(Pm.shape, 1)
        W = builder.extract_value(Pm.shape, 2)
        rows = [builder.load(vector_at(Bm.data, builder.add(
            builder.mul(builder.add(row, const(i)), b_row), col)), align=size) for i in range(n)]
        i32 = ir.IntType(32)
        bit = 1
        while bit < n:
            low = ir.Constant(ir.VectorType(i32, n), [j if j & bit == 0 else n + (j & ~bit)
                                                      for j in range(n)])
            high = ir.Constant(ir.VectorType(i32, n), [j | bit if j & bit == 0 else n + j
                                                       for j in range(n)])
            for i in range(n):
                if i & bit == 0:
                    u, v = rows[i], rows[i | bit]
                    rows[i] = builder.shuffle_vector(u, v, low)
                    rows[i | bit] = builder.shuffle_vector(u, v, high)
            bit *= 2
        first = builder.add(builder.mul(builder.add(builder.mul(panel, K), col), W), lane0)
        for j in range(n):
            at = builder.add(first, builder.mul(const(j), W))
            builder.store(rows[j], vector_at(Pm.data, at), align=size)
        return context.get_dummy_value()

    return types.void(b, r, k, panels, p, c), codegen


@njit(**JIT_OPTIONS)
def pack_gate_rows(b, n_gates, j0, j1, uses):
    """Rows ``j0:j1`` of every gate block of ``b``, with their panels for ``matmul_nt``.

    ``b`` is (n_gates * H, K), C-contiguous, its rows in ``n_gates`` blocks
    of ``H``. Returns ``(rows, panels)``: ``rows`` is (G, K), ``G`` being
    ``n_gates * (j1 - j0)``, and ``panels`` packs it as ``pack_panels``
    would, straight from ``b``. Only the rows that ``matmul_nt`` reads
    from ``rows`` are filled: those past the last full panel, or all of them
    when nothing is packed (``uses`` as in ``pack_panels``).
    """
    H = b.shape[0] // n_gates
    n = j1 - j0
    panels = _pack_gate_panels(b, n_gates, j0, j1, uses)
    rows = np.empty((n_gates * n, b.shape[1]), b.dtype)
    for r in range(panels.shape[0] * panels.shape[2], rows.shape[0]):
        src = _gate_row(r, n, H, j0)
        for k in range(rows.shape[1]):
            rows[r, k] = b[src, k]
    return rows, panels


def packed(b, uses):
    """``b`` (N, K) as a C-contiguous array, with its panels for ``matmul_nt``.

    ``uses`` as in ``pack_panels``: for the time loops, the rows per
    thread (``numlstm._config.rows_per_thread``) times the steps.
    """
    b = np.ascontiguousarray(b)
    if b.size == 0:  # an absent projection: no panels, and no kernel call
        return b, np.empty((0, b.shape[1], panel_width.py_func(b.itemsize)), b.dtype)
    return b, pack_panels(b, uses)


def _tile(rows, n_panels):
    """An intrinsic for ``out[i:i+rows, p*W:(p+n_panels)*W] = a[i:i+rows] @ panels[p:p+n_panels]``.

    The intrinsic takes ``(a, panels, out, i, p)``: ``a`` is (n, K) with unit
    inner stride, ``panels`` the C-contiguous (P, K, W) array of
    ``pack_panels`` and ``out`` (n, N) with unit inner stride. The
    ``rows`` by ``n_panels * W`` accumulator lives in ``rows * n_panels *
    PANEL_VECTORS`` vector registers; multiply and add carry the
    ``contract`` flag, so they fuse where the CPU has FMA.
    """

    @intrinsic
    def tile(typingctx, a, panels, out, i, p):
        if not (isinstance(a, types.Array) and isinstance(panels, types.Array)
                and isinstance(out, types.Array) and a.ndim == 2 and panels.ndim == 3
                and out.ndim == 2 and a.dtype == panels.dtype == out.dtype
                and a.dtype in (types.float32, types.float64)):
            return None
        dtype = a.dtype

        def codegen(context, builder, sig, args):
            arr_a, arr_p, arr_o, row, panel = args
            A = context.make_array(sig.args[0])(context, builder, arr_a)
            W = context.make_array(sig.args[1])(context, builder, arr_p)
            O = context.make_array(sig.args[2])(context, builder, arr_o)
            fty = context.get_data_type(dtype)
            size = context.get_abi_sizeof(fty)
            lanes = VECTOR_BYTES // size
            width = panel_width.py_func(size)
            vty = ir.VectorType(fty, lanes)
            intp = context.get_value_type(types.intp)

            def const(v):
                return ir.Constant(intp, v)

            K = builder.extract_value(W.shape, 1)
            a_row = builder.sdiv(builder.extract_value(A.strides, 0), const(size))
            o_row = builder.sdiv(builder.extract_value(O.strides, 0), const(size))
            bases = [builder.mul(builder.mul(builder.add(panel, const(q)), K), const(width))
                     for q in range(n_panels)]
            a_rows = [builder.mul(builder.add(row, const(r)), a_row) for r in range(rows)]
            zero = ir.Constant(vty, [ir.Constant(fty, 0)] * lanes)
            acc = [[cgutils.alloca_once_value(builder, zero)
                    for _ in range(n_panels * PANEL_VECTORS)] for _ in range(rows)]
            splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            flags = ("contract",)
            with cgutils.for_range(builder, K) as loop:
                k = loop.index
                step = builder.mul(k, const(width))
                w = []
                for base in bases:
                    at = builder.add(base, step)
                    for v in range(PANEL_VECTORS):
                        ptr = builder.gep(W.data, [builder.add(at, const(v * lanes))])
                        w.append(builder.load(builder.bitcast(ptr, vty.as_pointer()), align=size))
                for r in range(rows):
                    x = builder.load(builder.gep(A.data, [builder.add(a_rows[r], k)]))
                    xv = builder.insert_element(ir.Constant(vty, ir.Undefined), x,
                                                ir.Constant(ir.IntType(32), 0))
                    xv = builder.shuffle_vector(xv, ir.Constant(vty, ir.Undefined), splat)
                    for v, wv in enumerate(w):
                        prod = builder.fmul(xv, wv, flags=flags)
                        builder.store(builder.fadd(builder.load(acc[r][v]), prod, flags=flags),
                                      acc[r][v])
            col = builder.mul(panel, const(width))
            for r in range(rows):
                start = builder.add(builder.mul(builder.add(row, const(r)), o_row), col)
                for v in range(n_panels * PANEL_VECTORS):
                    ptr = builder.gep(O.data, [builder.add(start, const(v * lanes))])
                    builder.store(builder.load(acc[r][v]),
                                  builder.bitcast(ptr, vty.as_pointer()), align=size)
            return context.get_dummy_value()

        return types.void(a, panels, out, i, p), codegen

    return tile


# 4x1, 2x2 and 1x4 keep eight vector accumulators each; 2x1 and 1x1 take a last odd panel.
_tile_4x1 = _tile(TILE_ROWS, 1)
_tile_2x2 = _tile(2, 2)
_tile_2x1 = _tile(2, 1)
_tile_1x4 = _tile(1, 4)
_tile_1x1 = _tile(1, 1)


@njit(inline="always", **ORDERED_JIT_OPTIONS)
def _dot_columns(a, b, out, i0, i1, j0):
    """Rows ``i0:i1`` and columns ``j0:`` of ``out = a @ b.T``, one reduction each."""
    K = a.shape[1]
    for i in range(i0, i1):
        for j in range(j0, b.shape[0]):
            s = a.dtype.type(0)
            for k in range(K):
                s += a[i, k] * b[j, k]
            out[i, j] = s


@njit(inline="always", **ORDERED_JIT_OPTIONS)
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
    _dot_columns(a, b, out, i, i + 2, M - M % 4)


@njit(inline="always", **ORDERED_JIT_OPTIONS)
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
    _dot_columns(a, b, out, i, i + 1, M - M % 4)


@njit(**ORDERED_JIT_OPTIONS)
def matmul_nt(a, b, panels, out):
    """``out = a @ b.T`` for ``a`` (n, K), ``b`` (N, K) and ``out`` (n, N), rows contiguous.

    ``panels`` is ``pack_panels(b, uses)``; it may be empty, and then plain
    loops do all the work. Every element is the same chain of fused
    multiply-adds over ``k`` in order, whether a tile or a loop computes it:
    so the result does not depend on how the rows and columns were split
    between threads, on the packing, or on the tile that took a row.
    """
    n = a.shape[0]
    P = panels.shape[0]
    if P == 0:
        for i in range(0, n - 1, 2):
            _dot_pair(a, b, out, i)
        if n % 2:
            _dot_single(a, b, out, n - 1)
        return
    i = n - n % TILE_ROWS
    for p in range(P):
        for r in range(0, i, TILE_ROWS):
            _tile_4x1(a, panels, out, r, p)
    if n - i >= 2:  # two of the last rows
        for p in range(0, P - P % 2, 2):
            _tile_2x2(a, panels, out, i, p)
        if P % 2:
            _tile_2x1(a, panels, out, i, P - 1)
        i += 2
    if i < n:  # the last row
        for p in range(0, P - P % 4, 4):
            _tile_1x4(a, panels, out, i, p)
        for p in range(P - P % 4, P):
            _tile_1x1(a, panels, out, i, p)
    _dot_columns(a, b, out, 0, n, P * panels.shape[2])


def matmul(a, b):
    """``a @ b`` for 2-D arrays, the rows of ``a`` split across numlstm's threads.

    Below ``SPLIT_MIN_MACS`` multiply-adds the split costs more than it
    saves, and the product runs on the calling thread. Above, the rows go
    to BLAS in blocks of ``SPLIT_BLOCK_ROWS``, the threads sharing out whole
    blocks: the blocks, and so every number of the result, are the same for
    any thread count. BLAS is held to one thread either way: a
    multi-threaded call would leave BLAS's workers spinning for about 0.1 s
    afterwards, taking the cores from numlstm's next time loop or from
    whatever the caller runs next. Products that BLAS runs on one thread by
    itself (``BLAS_ALONE_MACS``) skip the limit, which costs more than they do.
    """
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    if macs <= BLAS_ALONE_MACS:
        return a @ b
    if macs < SPLIT_MIN_MACS:
        with single_threaded_blas():
            return a @ b
    out = np.empty((a.shape[0], b.shape[1]), np.result_type(a, b))

    def blocks(k0, k1):
        for k in range(k0, k1):
            rows = slice(k * SPLIT_BLOCK_ROWS, (k + 1) * SPLIT_BLOCK_ROWS)
            np.matmul(a[rows], b, out=out[rows])

    run_on_rows(blocks, -(-a.shape[0] // SPLIT_BLOCK_ROWS), calls_blas=True)
    return out
