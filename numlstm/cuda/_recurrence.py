"""Persistent recurrences: one cooperative launch runs every step of one direction.

A recurrent layer's steps depend on each other, so a launch per step pays the
host's launch cost (about 0.2 ms with Numba's argument marshalling) ``T``
times over, and the GPU idles in between. Here one kernel runs the whole time
loop instead (Diamos et al. 2016, "Persistent RNNs"); the blocks meet at a
grid-wide barrier (``cuda.cg.this_grid().sync()``, a cooperative launch)
after each step, because every unit of the next step reads the whole state.

Each step is split into ``TILE x TILE`` tiles of (batch row ``b``, unit
``j``); the blocks stride over the tiles, so any problem size runs on the
largest grid that can be co-resident. A thread computes every gate of its
``(b, j)`` in one pass over the recurrent weights (``tile_dot``), so the
cell's pointwise math follows in the same thread with no second launch and no
round trip through global memory:

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


def n_tiles(rows, cols, tile):
    """Number of ``tile x tile`` tiles that cover a ``rows x cols`` output."""
    return ((rows + tile - 1) // tile) * ((cols + tile - 1) // tile)


_n_tiles = cuda.jit(device=True)(n_tiles)


@functools.cache
def tile_dot(dtype, tile, n_gates, trans):
    """Device function ``dot(a, w, n, index, acc, sa, sw) -> (b, j)`` for tile ``index``.

    The tiles cover a ``a.shape[0] x n`` output in row-major tile order; the
    calling thread gets output ``(b, j)`` and
    ``acc[g] = sum_k a[b, k] * w[g * n + j, k]`` for ``g < n_gates``, or
    ``sum_k a[b, k] * w[k, g * n + j]`` when ``trans``. ``sa`` is a shared
    ``(tile, tile + 1)`` array and ``sw`` a shared ``(n_gates * tile, tile + 1)``
    one. Every thread of the block must call it (it synchronises the block);
    threads past the output's edge get zeros and an out-of-range ``(b, j)``.
    """
    zero = np.dtype(dtype).type(0)

    @cuda.jit(device=True)
    def dot(a, w, n, index, acc, sa, sw):
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        n_cols = (n + tile - 1) // tile
        b0 = (index // n_cols) * tile
        j0 = (index % n_cols) * tile
        M = a.shape[0]
        K = a.shape[1]
        for g in range(n_gates):
            acc[g] = zero
        for k0 in range(0, K, tile):
            b = b0 + ty
            ka = k0 + tx
            sa[ty, tx] = a[b, ka] if (b < M and ka < K) else zero
            for g in range(n_gates):
                if trans:  # neighbouring threads read neighbouring units j
                    kw = k0 + ty
                    jw = j0 + tx
                    sw[g * tile + tx, ty] = w[kw, g * n + jw] if (kw < K and jw < n) else zero
                else:  # neighbouring threads read neighbouring k of one row
                    jw = j0 + ty
                    kw = k0 + tx
                    sw[g * tile + ty, tx] = w[g * n + jw, kw] if (jw < n and kw < K) else zero
            cuda.syncthreads()
            for kk in range(tile):
                av = sa[ty, kk]
                for g in range(n_gates):
                    acc[g] += av * sw[g * tile + tx, kk]
            cuda.syncthreads()
        return b0 + ty, j0 + tx

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
    """The slot ``_slots`` reads at the first step; the initial state goes there."""
    return T if (store and reverse) else 0


@functools.cache
def forward_kernel(dtype, tile, n_gates, step):
    """The persistent forward kernel of a cell whose pointwise math is ``step``.

    ``step(acc, gates, t, b, j, active, h_prev, new, store, cell)`` gets the
    recurrent products ``acc[g]`` of unit ``(b, j)``, updates the cell's own
    arrays (the tuple ``cell``) and returns the unit's output (``m`` for a
    projected LSTM, else ``h``).

    Kernel arguments: ``gates`` (T, B, n_gates H) input projections, turned
    into the gate activations; ``w_hh``; ``hs`` (slots, B, P) the states,
    with the initial one in slot ``first_slot``; ``h`` (B, P) the final
    state; ``lengths``; ``reverse``; ``store``; ``out`` and ``off``;
    ``w_hr`` (P, H) or (0, H) and ``m`` (B, H) for a projection; ``cell``.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    dot_gates = tile_dot(dtype, tile, n_gates, False)
    dot_one = tile_dot(dtype, tile, 1, False)
    a_shape = (tile, tile + 1)  # compile-time constants for cuda.shared.array
    w_shape = (n_gates * tile, tile + 1)

    def forward(gates, w_hh, hs, h, lengths, reverse, store, out, off, w_hr, m, cell):
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
            for index in range(cuda.blockIdx.x, _n_tiles(B, H, tile), cuda.gridDim.x):
                b, j = dot_gates(h_prev, w_hh, H, index, acc, sa, sw)
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
                for index in range(cuda.blockIdx.x, _n_tiles(B, P, tile), cuda.gridDim.x):
                    b, j = dot_one(m, w_hr, P, index, acc, sa, sw)
                    if b < B and j < P:
                        active = t < lengths[b]
                        hj = acc[0] if active else h_prev[b, j]
                        hs[new, b, j] = hj
                        h[b, j] = hj
                        out[t, b, off + j] = hj if active else zero
                grid.sync()

    return cuda.jit(forward)


@functools.cache
def backward_kernel(dtype, tile, n_gates, step, accumulate):
    """The persistent backward kernel of a cell whose pointwise gradient is ``step``.

    ``step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell)`` gets the
    gradient ``d`` reaching unit ``(b, j)``'s output at step ``t`` and writes
    the pre-activation gradients ``dgx`` (input side) and ``dgh`` (hidden
    side; the same array unless the cell tells them apart). After it,
    ``dh = dgh_t W_hh`` for the rows that ran step ``t``; with
    ``accumulate`` that is added to what ``step`` left in ``dh`` (the GRU).

    Kernel arguments: ``dgx``, ``dgh`` (T, B, n_gates H); ``w_hh``; ``dh``
    (B, P) and the cell's other state gradients (in ``cell``), updated in
    place; ``lengths``; ``reverse``; ``grad_out`` and ``off``; ``w_hr`` (P, H)
    or (0, H) and ``dhp`` (T, B, P) for a projection, which gets the gradient
    of each step's projected output; ``cell``.
    """
    nbtype = from_dtype(np.dtype(dtype))
    zero = np.dtype(dtype).type(0)
    dot = tile_dot(dtype, tile, 1, True)
    shape = (tile, tile + 1)  # a compile-time constant for cuda.shared.array

    def backward(dgx, dgh, w_hh, dh, lengths, reverse, grad_out, off, w_hr, dhp, cell):
        grid = cuda.cg.this_grid()
        sa = cuda.shared.array(shape, nbtype)
        sw = cuda.shared.array(shape, nbtype)
        acc = cuda.local.array(1, nbtype)
        T = dgx.shape[0]
        B = dgx.shape[1]
        H = dgx.shape[2] // n_gates
        P = dh.shape[1]
        project = w_hr.shape[0] > 0
        n_cols = (P + tile - 1) // tile
        for s in range(T + 1):  # the extra pass takes the last step's gradient through W_hh
            t = s if reverse else T - 1 - s
            done = t - 1 if reverse else t + 1  # the step whose dgh_t reaches this one
            prev, new = _slots(s, t, reverse, True)
            for index in range(cuda.blockIdx.x, _n_tiles(B, P, tile), cuda.gridDim.x):
                if s > 0:
                    b, j = dot(dgh[done], w_hh, P, index, acc, sa, sw)
                else:
                    b = (index // n_cols) * tile + cuda.threadIdx.y
                    j = (index % n_cols) * tile + cuda.threadIdx.x
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
                for index in range(cuda.blockIdx.x, _n_tiles(B, H, tile), cuda.gridDim.x):
                    b, j = dot(dh, w_hr, H, index, acc, sa, sw)
                    if b < B and j < H:
                        step(acc[0], t, b, j, t < lengths[b], prev, new, dgx, dgh, dh, cell)
                grid.sync()

    return cuda.jit(backward)


def launch(kernel, tiles, args):
    """Launch a persistent kernel on as many ``TILE x TILE`` blocks as can be co-resident.

    ``tiles`` is the most tiles any of its phases has; more blocks than that
    would idle. Under the simulator the grid is one block (the only
    cooperative grid it can sync).
    """
    tile = _kernels.TILE
    if tiles == 0:
        return
    if config.ENABLE_CUDASIM:
        blocks = 1
    else:
        compiled = kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))
        blocks = min(tiles, compiled.max_cooperative_grid_blocks(tile * tile))
    kernel[blocks, (tile, tile)](*args)
