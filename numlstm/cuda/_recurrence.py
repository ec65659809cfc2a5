"""Persistent recurrences: one cooperative launch runs every step of one direction.

A recurrent layer's steps depend on each other, so a launch per step pays the
host's launch cost (about 0.2 ms with Numba's argument marshalling) ``T``
times over, and the GPU idles in between. Here one kernel runs the whole time
loop instead (Diamos et al. 2016, "Persistent RNNs"); the blocks meet at a
grid-wide barrier (``cuda.cg.this_grid().sync()``, a cooperative launch)
after each step, because every unit of the next step reads the whole state.

Each step is split into tiles of ``rows`` batch rows by ``TILE`` units
(:func:`batch_rows` picks ``rows``); the blocks stride over the tiles, so any
problem size runs on the largest grid that can be co-resident. A block's
``TILE`` rows of threads cover the tile's ``rows`` batch rows ``TILE // rows``
times over, each copy summing its own slice of ``k``, so that a small batch
still keeps every thread busy. A thread computes every gate of its ``(b, j)``
in one pass over the recurrent weights (:func:`tile_dot`), staged in shared
memory ``TILE * DEPTH`` along ``k`` at a time, so the cell's pointwise math
follows in the same thread with no second launch and no round trip through
global memory:

* forward: ``acc[g] = sum_k h_prev[b, k] W_hh[g H + j, k]``, then the cell's
  ``step`` device function (gates, state update, outputs); a projected LSTM
  adds a second phase ``h = m W_hr^T`` after a barrier.
* backward: ``dh[b, j] = sum_n dgates_{t'}[b, n] W_hh[n, j]`` from the step
  done before, then the cell's ``step`` for this step in the same thread.

The CUDA simulator syncs a grid of one block only, so there the launch uses
one block, which then strides over every tile.
"""

import functools

import numpy as np
from numba import config, cuda, from_dtype

from numlstm.cuda import _kernels

DEPTH = 4  # tile_dot stages TILE * DEPTH of k per block barrier
BUSY_THREADS = 16384  # batch_rows halves the rows per tile while the grid stays within this


def n_tiles(B, n, rows, tile):
    """Number of tiles of ``rows`` batch rows by ``tile`` units that cover a ``B x n`` output."""
    return ((B + rows - 1) // rows) * ((n + tile - 1) // tile)


_n_tiles = cuda.jit(device=True)(n_tiles)


def batch_rows(B, n, tile):
    """Batch rows per tile for a ``B x n`` output: ``tile``, halved while that pays.

    The block's ``tile`` rows of threads then split each dot product's ``k``
    ``tile // rows`` ways. Fewer rows per tile help while the grid is small:
    every halving doubles the threads working on each output, until about
    ``BUSY_THREADS`` threads are busy (and always while ``rows // 2 >= B``,
    where whole rows of threads would idle).
    """
    rows = tile
    while rows > 1 and (rows // 2 >= B
                        or n_tiles(B, n, rows // 2, tile) * tile * tile <= BUSY_THREADS):
        rows //= 2
    return rows


@cuda.jit(device=True)
def _owner(index, n, rows, tile, B):
    """The output ``(b, j)`` that the calling thread owns in tile ``index``; ``b = B`` if none.

    Thread ``(x, y)`` of a ``tile x tile`` block works on batch row
    ``y % rows`` and unit ``x`` of the tile, on slice ``y // rows`` of ``k``;
    the threads of slice 0 own the outputs.
    """
    n_cols = (n + tile - 1) // tile
    j = (index % n_cols) * tile + cuda.threadIdx.x
    if cuda.threadIdx.y >= rows:
        return B, j
    return (index // n_cols) * rows + cuda.threadIdx.y, j


@functools.lru_cache(maxsize=None)
def tile_dot(dtype, tile, depth, n_gates, trans):
    """Device function ``dot(a, w, n, rows, index, acc, sa, sw) -> (b, j)`` for tile ``index``.

    The tiles (:func:`n_tiles` with ``rows``) cover an ``a.shape[0] x n``
    output in row-major tile order. The calling thread gets an output
    ``(b, j)`` (see :func:`_owner`) and
    ``acc[g] = sum_k a[b, k] * w[g * n + j, k]`` for ``g < n_gates``, or
    ``sum_k a[b, k] * w[k, g * n + j]`` when ``trans``.

    ``k`` goes ``tile * depth`` at a time: the block stages that slice of
    its ``rows`` rows of ``a`` in ``sa``, a shared ``(tile, tile * depth + 1)``
    array, and of its ``n_gates * tile`` rows of weights in ``sw``, a shared
    ``(n_gates * tile, tile * depth + 1)`` one, with neighbouring threads
    reading neighbouring addresses. Each of the ``tile // rows`` slices of
    threads sums every ``tile // rows``-th ``k``; slice 0 then adds the
    others' partial sums in a fixed order, so the result is deterministic.
    Every thread of the block must call it (it synchronises the block);
    threads that own no output get an out-of-range ``b``.
    """
    zero = np.dtype(dtype).type(0)
    chunk = tile * depth
    width = n_gates * tile  # rows of sw

    @cuda.jit(device=True)
    def dot(a, w, n, rows, index, acc, sa, sw):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        first = ty * tile + tx
        split = tile // rows
        row = ty % rows
        part = ty // rows  # this thread's slice of k
        M = a.shape[0]
        K = a.shape[1]
        n_cols = (n + tile - 1) // tile
        b0 = (index // n_cols) * rows
        j0 = (index % n_cols) * tile
        for g in range(n_gates):
            acc[g] = zero
        for k0 in range(0, K, chunk):
            for e in range(first, rows * chunk, tile * tile):  # sa[r, k] = a[b0 + r, k0 + k]
                r = e // chunk
                k = e - r * chunk
                sa[r, k] = a[b0 + r, k0 + k] if (b0 + r < M and k0 + k < K) else zero
            for e in range(first, width * chunk, tile * tile):
                if trans:  # sw[g tile + u, k] = w[k0 + k, g n + j0 + u], running along u
                    k = e // width
                    gu = e - k * width
                else:  # sw[g tile + u, k] = w[g n + j0 + u, k0 + k], running along k
                    gu = e // chunk
                    k = e - gu * chunk
                g = gu // tile
                u = gu - g * tile
                inside = k0 + k < K and j0 + u < n
                if trans:
                    sw[gu, k] = w[k0 + k, g * n + j0 + u] if inside else zero
                else:
                    sw[gu, k] = w[g * n + j0 + u, k0 + k] if inside else zero
            cuda.syncthreads()
            if part < split:
                for kk in range(part, chunk, split):
                    av = sa[row, kk]
                    for g in range(n_gates):
                        acc[g] += av * sw[g * tile + tx, kk]
            cuda.syncthreads()
        if split > 1:  # slice 0 adds the partial sums of the others, parked in sw
            if part < split:
                for g in range(n_gates):
                    sw[g * tile + tx, ty] = acc[g]
            cuda.syncthreads()
            if part == 0:
                for other in range(1, split):
                    for g in range(n_gates):
                        acc[g] += sw[g * tile + tx, other * rows + row]
            cuda.syncthreads()
        return _owner(index, n, rows, tile, M)

    return dot


@cuda.jit(device=True)
def _slots(s, t, reverse, store):
    """State slots (read, written) at step ``s`` (time ``t``): see ``numlstm.cells.common``.

    Without ``store`` the state lives in two slots used in turn.
    """
    if store:
        if reverse:
            return t + 1, t
        return t, t + 1
    prev = s % 2
    return prev, 1 - prev


def first_slot(T, reverse, store):
    """The slot :func:`_slots` reads at the first step; the initial state goes there."""
    return T if (store and reverse) else 0


@functools.lru_cache(maxsize=None)
def forward_kernel(dtype, tile, depth, n_gates, step):
    """The persistent forward kernel of a cell whose pointwise math is ``step``.

    ``step(acc, gates, t, b, j, active, h_prev, new, store, cell)`` gets the
    recurrent products ``acc[g]`` of unit ``(b, j)``, updates the cell's own
    arrays (the tuple ``cell``) and returns the unit's output (``m`` for a
    projected LSTM, else ``h``).

    Kernel arguments: ``rows``, the batch rows per tile (:func:`batch_rows`);
    ``gates`` (T, B, n_gates H) input projections, turned into the gate activations; ``w_hh``; ``hs`` (slots, B, P) the states,
    with the initial one in slot :func:`first_slot`; ``h`` (B, P) the final
    state; ``lengths``; ``reverse``; ``store``; ``out`` and ``off``;
    ``w_hr`` (P, H) or (0, H) and ``m`` (B, H) for a projection; ``cell``.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    dot_gates = tile_dot(dtype, tile, depth, n_gates, False)
    dot_one = tile_dot(dtype, tile, depth, 1, False)
    a_shape = (tile, tile * depth + 1)  # compile-time constants for cuda.shared.array
    w_shape = (n_gates * tile, tile * depth + 1)

    def forward(rows, gates, w_hh, hs, h, lengths, reverse, store, out, off, w_hr, m, cell):
        grid = cuda.cg.this_grid()
        sa = cuda.shared.array(a_shape, nbtype)
        sw = cuda.shared.array(w_shape, nbtype)
        acc = cuda.local.array(n_gates, nbtype)
        T = gates.shape[0]
        B = gates.shape[1]
        H = gates.shape[2] // n_gates
        P = h.shape[1]
        project = w_hr.shape[0] > 0
        for s in range(T):
            t = T - 1 - s if reverse else s
            prev, new = _slots(s, t, reverse, store)
            h_prev = hs[prev]
            for index in range(cuda.blockIdx.x, _n_tiles(B, H, rows, tile), cuda.gridDim.x):
                b, j = dot_gates(h_prev, w_hh, H, rows, index, acc, sa, sw)
                if b < B and j < H:
                    active = t < lengths[b]
                    value = step(acc, gates, t, b, j, active, h_prev, new, store, cell)
                    if project:
                        m[b, j] = value
                    else:
                        hj = value if active else h_prev[b, j]
                        hs[new, b, j] = hj
                        h[b, j] = hj
                        out[t, b, off + j] = value if active else zero
            grid.sync()
            if project:
                for index in range(cuda.blockIdx.x, _n_tiles(B, P, rows, tile), cuda.gridDim.x):
                    b, j = dot_one(m, w_hr, P, rows, index, acc, sa, sw)
                    if b < B and j < P:
                        active = t < lengths[b]
                        hj = acc[0] if active else h_prev[b, j]
                        hs[new, b, j] = hj
                        h[b, j] = hj
                        out[t, b, off + j] = hj if active else zero
                grid.sync()

    return cuda.jit(forward)


@functools.lru_cache(maxsize=None)
def backward_kernel(dtype, tile, depth, n_gates, step, accumulate):
    """The persistent backward kernel of a cell whose pointwise gradient is ``step``.

    ``step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell)`` gets the
    gradient ``d`` reaching unit ``(b, j)``'s output at step ``t`` and writes
    the pre-activation gradients ``dgx`` (input side) and ``dgh`` (hidden
    side; the same array unless the cell tells them apart). After it,
    ``dh = dgh_t W_hh`` for the rows that ran step ``t``; with
    ``accumulate`` that is added to what ``step`` left in ``dh`` (the GRU).

    Kernel arguments: ``rows`` (:func:`batch_rows`); ``dgx``, ``dgh`` (T, B, n_gates H); ``w_hh``; ``dh``
    (B, P) and the cell's other state gradients (in ``cell``), updated in
    place; ``lengths``; ``reverse``; ``grad_out`` and ``off``; ``w_hr`` (P, H)
    or (0, H) and ``dhp`` (T, B, P) for a projection, which gets the gradient
    of each step's projected output; ``cell``.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    dot = tile_dot(dtype, tile, depth, 1, True)
    shape = (tile, tile * depth + 1)  # a compile-time constant for cuda.shared.array

    def backward(rows, dgx, dgh, w_hh, dh, lengths, reverse, grad_out, off, w_hr, dhp, cell):
        grid = cuda.cg.this_grid()
        sa = cuda.shared.array(shape, nbtype)
        sw = cuda.shared.array(shape, nbtype)
        acc = cuda.local.array(1, nbtype)
        T = dgx.shape[0]
        B = dgx.shape[1]
        H = dgx.shape[2] // n_gates
        P = dh.shape[1]
        project = w_hr.shape[0] > 0
        for s in range(T + 1):  # the extra pass takes the last step's gradient through W_hh
            t = s if reverse else T - 1 - s
            done = t - 1 if reverse else t + 1  # the step whose dgh_t reaches this one
            prev, new = _slots(s, t, reverse, True)
            for index in range(cuda.blockIdx.x, _n_tiles(B, P, rows, tile), cuda.gridDim.x):
                if s > 0:
                    b, j = dot(dgh[done], w_hh, P, rows, index, acc, sa, sw)
                else:
                    b, j = _owner(index, P, rows, tile, B)
                if b < B and j < P:
                    if s > 0 and done < lengths[b]:
                        dh[b, j] = acc[0] + dh[b, j] if accumulate else acc[0]
                    if s < T:
                        active = t < lengths[b]
                        d = dh[b, j] + grad_out[t, b, off + j]
                        if not project:
                            step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell)
                        elif active:
                            dh[b, j] = d
                            dhp[t, b, j] = d
                        else:
                            dhp[t, b, j] = zero
            grid.sync()
            if project and s < T:
                for index in range(cuda.blockIdx.x, _n_tiles(B, H, rows, tile), cuda.gridDim.x):
                    b, j = dot(dh, w_hr, H, rows, index, acc, sa, sw)
                    if b < B and j < H:
                        step(acc[0], t, b, j, t < lengths[b], prev, new, dgx, dgh, dh, cell)
                grid.sync()

    return cuda.jit(backward)


def launch(kernel, B, widths, args):
    """Launch a persistent kernel on as many ``TILE x TILE`` blocks as can be co-resident.

    ``B`` is the batch and ``widths`` the output widths of the kernel's
    phases (``H``, and ``P`` with a projection); the kernel gets the batch
    rows per tile (:func:`batch_rows`) before ``args``. More blocks than the
    most tiles of any phase would idle. Under the simulator the grid is one
    block (the only cooperative grid it can sync).
    """
    tile = _kernels.TILE
    rows = batch_rows(B, max(widths), tile)
    tiles = max(n_tiles(B, n, rows, tile) for n in widths)
    if tiles == 0:
        return
    args = (rows,) + tuple(args)
    if config.ENABLE_CUDASIM:
        blocks = 1
    else:
        compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        blocks = min(tiles, compiled.max_cooperative_grid_blocks(tile * tile))
    kernel[blocks, (tile, tile)](*args)
