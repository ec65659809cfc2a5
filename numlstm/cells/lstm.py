"""LSTM family on the CPU: standard, peephole, coupled-gate (CIFG) and projected.

The public functions ``forward`` and ``backward`` run one direction of
one layer. They own the batched GEMMs of the backward pass (the weight
gradients over every step); the ``_``-prefixed Numba kernels own the time
loop, the input projection and recurrent product of each step, and the fused
gate arithmetic.

Notes
-----
With gate pre-activations :math:`a_* = W_{i*} x_t + b_{i*} + W_{h*} h_{t-1} + b_{h*}`:

.. math::

    i_t &= \\sigma(a_i + p_i \\odot c_{t-1}) \\\\
    f_t &= \\sigma(a_f + p_f \\odot c_{t-1})
           \\quad\\text{or}\\quad f_t = 1 - i_t \\text{ (coupled)} \\\\
    g_t &= \\tanh(a_g) \\\\
    c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
    o_t &= \\sigma(a_o + p_o \\odot c_t) \\\\
    h_t &= W_{hr}\\,(o_t \\odot \\tanh(c_t)) \\quad\\text{or}\\quad o_t \\odot \\tanh(c_t)

The peephole terms :math:`p` are present only for a peephole cell (Gers &
Schmidhuber 2000, "Recurrent nets that time and count"); the coupled
input-forget gate follows Greff et al. 2017, "LSTM: A search space odyssey";
the projection :math:`W_{hr}` follows Sak et al. 2014. Gate rows are ordered
(i, f, g, o), or (i, g, o) for a coupled cell, as in ``torch.nn.LSTM``.

Rows whose sequence has ended (``t >= lengths[b]``) keep their state and emit
zeros, which gives PyTorch's packed-sequence semantics in both directions.
"""

import numpy as np
from numba import njit

from numlstm._config import JIT_OPTIONS, rows_per_thread, run_on_rows
from numlstm.cells.activations import sigmoid, tanh
from numlstm.cells.gemm import matmul, matmul_nt, pack_gate_rows, packed
from numlstm.cells.common import (UNIT_SPLIT_PROJECTION_ROWS, emit_output, new_states, slots,
                                  unit_split, weight_gradients)
from numlstm.cells.sync import arrive_and_wait, enter, finish, run_parts


@njit(inline="always", **JIT_OPTIONS)
def _lstm_cell(a, t, b, r, i, bias, c, m, peep, coupled):
    """Row ``b`` of step ``t``: gate activations into ``a[t, b]``, new ``c[b]``, ``m[i]``.

    ``a[t, b]`` holds the input projection, ``r[i]`` the recurrent product
    and ``bias`` both biases; ``m[i]`` receives ``o * tanh(c)``. Each loop
    touches few arrays and has no branch, so that LLVM vectorises it. Each
    loop also counts from zero and adds the gate offset to the index: over
    ``range(start, stop)`` LLVM cannot prove the signed index non-negative,
    keeps Numba's negative-index wraparound, and leaves the loop scalar.
    Arrays are indexed, never sliced: a view would update its parent's
    reference count atomically, and the threads working on other rows share
    those parents.
    """
    H = c.shape[1]
    G = a.shape[2]
    one = a.dtype.type(1)
    g_off = H if coupled else 2 * H
    o_off = g_off + H
    for k in range(G):
        a[t, b, k] += r[i, k] + bias[k]
    if peep.shape[0] > 0:
        for j in range(H):
            a[t, b, j] += peep[0, j] * c[b, j]
        if not coupled:
            for j in range(H):
                a[t, b, H + j] += peep[1, j] * c[b, j]
    for k in range(g_off):
        a[t, b, k] = sigmoid(a[t, b, k])
    for j in range(H):
        a[t, b, g_off + j] = tanh(a[t, b, g_off + j])
    if coupled:
        for j in range(H):
            c[b, j] = (one - a[t, b, j]) * c[b, j] + a[t, b, j] * a[t, b, H + j]
    else:
        for j in range(H):
            c[b, j] = a[t, b, H + j] * c[b, j] + a[t, b, j] * a[t, b, 2 * H + j]
    if peep.shape[0] > 0:
        o_row = peep.shape[0] - 1
        for j in range(H):
            a[t, b, o_off + j] += peep[o_row, j] * c[b, j]
    for j in range(H):
        a[t, b, o_off + j] = sigmoid(a[t, b, o_off + j])
    for j in range(H):
        m[i, j] = a[t, b, o_off + j] * tanh(c[b, j])


@njit(**JIT_OPTIONS)
def _lstm_forward(x, w_ih, panels_ih, bias, gates, w_hh, panels_hh, w_hr, panels_hr, peep,
                  lengths, reverse, h, c, hs, cs, out, off, b0, b1):
    """Run the recurrence over every step for batch rows ``b0:b1``, in place.

    Each step projects its input rows in the same thread, just before the
    recurrent product, so that the projection is still in cache when the
    gate math reads it, and no separate pass over the sequence is needed.

    Parameters
    ----------
    x : ndarray (T, B, I)
    w_ih : ndarray (G, I)
    panels_ih : ndarray
        ``w_ih`` packed by ``numlstm.cells.gemm.pack_panels``.
    bias : ndarray (G,)
        Both biases, summed.
    gates : ndarray (T, B, G)
        Receives the gate activations (i, f, g, o), or (i, g, o) when
        ``G == 3 * H``; rows of finished sequences hold their input
        projection.
    w_hh : ndarray (G, P)
    panels_hh : ndarray
        ``w_hh`` packed likewise.
    w_hr : ndarray (P, H) or (0, H)
        Projection weights; empty for no projection (then P == H).
    panels_hr : ndarray
        ``w_hr`` packed likewise.
    peep : ndarray (n, H)
        Peephole weights, rows (i, f, o) or (i, o) for a coupled cell; empty
        for no peepholes.
    lengths : ndarray (B,) int64
    reverse : bool
    h, c : ndarray (B, P), (B, H)
        Initial state on entry, final state on exit.
    hs, cs : ndarray (T + 1, B, P), (T + 1, B, H), or empty along axis 0
        Every state, stored for backward (see ``slots``); empty for inference.
    out : ndarray (T, B, D * P)
        Layer output; this direction writes columns ``off:off + P``.
    b0, b1 : int
        The batch rows this call owns; calls on disjoint rows may run
        concurrently.
    """
    T, _, G = gates.shape
    H = c.shape[1]
    P = h.shape[1]
    coupled = G == 3 * H
    project = w_hr.shape[0] > 0
    store = hs.shape[0] > 0
    hh = np.empty((b1 - b0, G), gates.dtype)
    m = np.empty((b1 - b0, H), gates.dtype)
    hp = np.empty((b1 - b0, P), gates.dtype) if project else m
    if store:
        hs[T if reverse else 0, b0:b1] = h[b0:b1]
        cs[T if reverse else 0, b0:b1] = c[b0:b1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        matmul_nt(x[t, b0:b1], w_ih, panels_ih, gates[t, b0:b1])
        matmul_nt(h[b0:b1], w_hh, panels_hh, hh)
        for b in range(b0, b1):
            if t < lengths[b]:
                _lstm_cell(gates, t, b, hh, b - b0, bias, c, m, peep, coupled)
        if project:
            matmul_nt(m, w_hr, panels_hr, hp)
        for b in range(b0, b1):
            active = t < lengths[b]
            if active:
                for j in range(P):
                    h[b, j] = hp[b - b0, j]
            emit_output(out, t, b, off, h, active)
        if store:
            _, new = slots(t, reverse)
            hs[new, b0:b1] = h[b0:b1]
            cs[new, b0:b1] = c[b0:b1]


@njit(**JIT_OPTIONS)
def _lstm_forward_units(x2d, w_ih, w_hh, bias, peep, lengths, reverse, hbuf, c, out, off, j0, j1,
                        flags, part, chunk):
    """Inference over every step for hidden units ``j0:j1`` of every batch row.

    One of the parts of a unit split (see ``forward``): the parts run at
    once, one thread each, and meet at a barrier after every step, when each
    has written its units of the new hidden state.

    The part first gathers its gate rows (units ``j0:j1`` of each gate) of
    ``w_ih``, ``w_hh`` (full and C-contiguous, (G, I) and (G, H)), ``bias``
    and ``peep``, packing the weights as it gathers them. It projects the
    input ``chunk`` steps at a time, which gives the register tile enough
    rows when the batch is small. ``x2d`` is the input as (T * B, I).
    ``hbuf`` (2, B, H) is shared: step ``s`` reads
    the hidden state from ``hbuf[s % 2]`` and writes this part's units of
    ``hbuf[(s + 1) % 2]``; ``hbuf[0]`` holds the initial state. ``c`` (B, H)
    holds the initial cell state on entry; this part writes its units of
    the final one. ``out`` (T, B, D * H) receives columns
    ``off + j0:off + j1``. ``flags`` are the barrier's counters (see
    ``numlstm.cells.sync``) and ``part`` this part's index.
    """
    enter(flags, part)
    B, H = c.shape
    T = x2d.shape[0] // B
    n_gates = w_hh.shape[0] // H
    n = j1 - j0
    G = n_gates * n
    dtype = c.dtype
    wi, panels_ih = pack_gate_rows(w_ih, n_gates, j0, j1, T * B)
    wh, panels_hh = pack_gate_rows(w_hh, n_gates, j0, j1, T * B)
    bp = np.empty(G, dtype)
    for g in range(n_gates):
        for j in range(n):
            bp[g * n + j] = bias[g * H + j0 + j]
    pp = np.ascontiguousarray(peep[:, j0:j1])
    pre = np.empty((chunk, B, G), dtype)
    pre2d = pre.reshape(chunk * B, G)
    rec = np.empty((B, G), dtype)
    h = np.empty((B, H), dtype)  # this part's copy: a view of hbuf would share its refcount
    cp = np.empty((B, n), dtype)
    m = np.empty((B, n), dtype)
    for b in range(B):
        for j in range(H):
            h[b, j] = hbuf[0, b, j]
        for j in range(n):
            cp[b, j] = c[b, j0 + j]
    col = max(off, 0) + j0
    lo = 0
    for s in range(T):
        if s % chunk == 0:
            steps = min(chunk, T - s)
            lo = T - s - steps if reverse else s
            matmul_nt(x2d[lo * B:(lo + steps) * B], wi, panels_ih, pre2d[:steps * B])
        t = T - 1 - s if reverse else s
        nxt = (s + 1) % 2
        matmul_nt(h, wh, panels_hh, rec)
        for b in range(B):
            if t < lengths[b]:
                _lstm_cell(pre, t - lo, b, rec, b, bp, cp, m, pp, n_gates == 3)
                for j in range(n):
                    hbuf[nxt, b, j0 + j] = m[b, j]
                    out[t, b, col + j] = m[b, j]
            else:
                for j in range(n):
                    hbuf[nxt, b, j0 + j] = h[b, j0 + j]
                    out[t, b, col + j] = 0
        if not arrive_and_wait(flags, part, s + 1):
            return
        for b in range(B):
            for j in range(H):
                h[b, j] = hbuf[nxt, b, j]
    for b in range(B):
        for j in range(n):
            c[b, j0 + j] = cp[b, j]
    finish(flags, part, T + 1)


@njit(inline="always", **JIT_OPTIONS)
def _lstm_cell_backward(a, dg, t, b, cs, prev, new, dm, i, dc, peep, dpeep, coupled):
    """Row ``b`` of step ``t`` backward.

    ``a[t, b]`` holds the step's gate activations, ``cs[prev, b]`` and
    ``cs[new, b]`` the previous and new cell state, ``dm[i]`` the gradient
    of ``o * tanh(c)``. ``dc[b]`` holds the gradient of the new cell state on
    entry and of the previous one on exit; ``dg[t, b]`` receives the
    pre-activation gradients and ``dpeep[b]`` accumulates row ``b``'s share
    of the peephole gradient. Indexed, never sliced, as in ``_lstm_cell``.
    """
    H = dc.shape[1]
    one = a.dtype.type(1)
    g_off = H if coupled else 2 * H
    o_off = g_off + H
    has_peep = peep.shape[0] > 0
    for j in range(H):
        og = a[t, b, o_off + j]
        tc = tanh(cs[new, b, j])
        dg[t, b, o_off + j] = dm[i, j] * tc * og * (one - og)
        dc[b, j] += dm[i, j] * og * (one - tc * tc)
    if has_peep:
        o_row = peep.shape[0] - 1
        for j in range(H):
            dc[b, j] += dg[t, b, o_off + j] * peep[o_row, j]
            dpeep[b, o_row, j] += dg[t, b, o_off + j] * cs[new, b, j]
    if coupled:
        for j in range(H):
            ig, gg = a[t, b, j], a[t, b, H + j]
            dg[t, b, j] = dc[b, j] * (gg - cs[prev, b, j]) * ig * (one - ig)
            dg[t, b, H + j] = dc[b, j] * ig * (one - gg * gg)
            dc[b, j] *= one - ig
    else:
        for j in range(H):
            ig, fg, gg = a[t, b, j], a[t, b, H + j], a[t, b, 2 * H + j]
            dg[t, b, j] = dc[b, j] * gg * ig * (one - ig)
            dg[t, b, H + j] = dc[b, j] * cs[prev, b, j] * fg * (one - fg)
            dg[t, b, 2 * H + j] = dc[b, j] * ig * (one - gg * gg)
            dc[b, j] *= fg
    if has_peep:
        for j in range(H):
            dc[b, j] += dg[t, b, j] * peep[0, j]
            dpeep[b, 0, j] += dg[t, b, j] * cs[prev, b, j]
        if not coupled:
            for j in range(H):
                dc[b, j] += dg[t, b, H + j] * peep[1, j]
                dpeep[b, 1, j] += dg[t, b, H + j] * cs[prev, b, j]


@njit(**JIT_OPTIONS)
def _lstm_backward(gates, w_hh_t, panels_hh_t, w_hr_t, panels_hr_t, peep, lengths, reverse, hs,
                   cs, grad_out, off, dh, dc, dgates, dpeep, dhp, ms, b0, b1):
    """Back-propagate through every step for batch rows ``b0:b1``.

    ``gates``, ``hs`` and ``cs`` are what ``_lstm_forward`` stored;
    ``w_hh_t`` (P, G) and ``w_hr_t`` (H, P) are the transposed weights, as
    C-contiguous arrays, with their panels (see ``_lstm_forward``).
    ``dh``/``dc`` hold the gradient of the final state on entry and of the
    initial state on exit. ``dgates`` (T, B, G) receives
    the gradient of the gate pre-activations (zero on finished rows);
    ``dpeep`` (B, n, H) accumulates each row's share of the peephole
    gradient. With a
    projection, ``dhp`` (T, B, P) receives the gradient of each projected
    output and ``ms`` (T, B, H) the unprojected output
    :math:`o \\odot \\tanh(c)`, for the ``W_hr`` GEMM.
    """
    T, _, G = gates.shape
    H = dc.shape[1]
    P = dh.shape[1]
    coupled = G == 3 * H
    project = w_hr_t.shape[1] > 0
    o_off = 2 * H if coupled else 3 * H
    off = max(off, 0)  # provably non-negative, so the loops reading grad_out vectorise
    dm = np.empty((b1 - b0, H), gates.dtype)
    dh_prev = np.empty((b1 - b0, P), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, new = slots(t, reverse)
        for b in range(b0, b1):
            active = t < lengths[b]
            for j in range(P):
                if active:
                    dh[b, j] += grad_out[t, b, off + j]
                if project:
                    dhp[t, b, j] = dh[b, j] if active else 0
            if project:
                for j in range(H):
                    ms[t, b, j] = gates[t, b, o_off + j] * tanh(cs[new, b, j]) if active else 0
        if project:
            matmul_nt(dh[b0:b1], w_hr_t, panels_hr_t, dm)
        for b in range(b0, b1):
            if t >= lengths[b]:
                for k in range(G):
                    dgates[t, b, k] = 0
            elif project:
                _lstm_cell_backward(gates, dgates, t, b, cs, prev, new, dm, b - b0, dc, peep,
                                    dpeep, coupled)
            else:
                _lstm_cell_backward(gates, dgates, t, b, cs, prev, new, dh, b, dc, peep, dpeep,
                                    coupled)
        matmul_nt(dgates[t, b0:b1], w_hh_t, panels_hh_t, dh_prev)
        for b in range(b0, b1):
            if t < lengths[b]:
                for j in range(P):
                    dh[b, j] = dh_prev[b - b0, j]


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one LSTM layer.

    Parameters
    ----------
    p : dict
        This direction's weights without the layer suffix: ``weight_ih``,
        ``weight_hh``, ``bias_ih``, ``bias_hh`` (zeros when the layer has no
        bias), ``weight_hr`` ((0, H) when absent) and ``weight_peephole``
        ((0, H) when absent).
    x : ndarray (T, B, I)
    state : tuple of ndarray
        ``(h, c)``, initial on entry and final on exit.
    lengths : ndarray (B,) int64
    reverse : bool
    out : ndarray (T, B, D * P)
    off : int
        First column of ``out`` for this direction.
    store : bool
        Keep what backward needs.

    Returns
    -------
    cache : tuple or None
    """
    h, c = state
    T, B, _ = x.shape
    if not store and p["weight_hr"].shape[0] == 0:
        bounds = unit_split(B, c.shape[1], p["weight_ih"].size + p["weight_hh"].size)
        if bounds and _forward_by_units(p, x, h, c, lengths, reverse, out, off, bounds):
            return None
    uses = rows_per_thread(B) * T
    w_ih, panels_ih = packed(p["weight_ih"], uses)
    w_hh, panels_hh = packed(p["weight_hh"], uses)
    w_hr, panels_hr = packed(p["weight_hr"], uses)
    gates = np.empty((T, B, w_hh.shape[0]), x.dtype)
    depth = T + 1 if store else 0
    hs = np.empty((depth,) + h.shape, x.dtype)
    cs = np.empty((depth,) + c.shape, x.dtype)
    bias = p["bias_ih"] + p["bias_hh"]
    run_on_rows(lambda b0, b1: _lstm_forward(x, w_ih, panels_ih, bias, gates, w_hh, panels_hh,
                                             w_hr, panels_hr, p["weight_peephole"], lengths,
                                             reverse, h, c, hs, cs, out, off, b0, b1), B)
    return (x, gates, hs, cs) if store else None


def _forward_by_units(p, x, h, c, lengths, reverse, out, off, bounds):
    """Inference with each step's hidden units split across threads (see ``unit_split``).

    ``bounds`` are the unit ranges, one per thread. Returns False, having
    done nothing, when the threads for a unit split are busy with another
    call.
    """
    T, B, I = x.shape
    hbuf = np.empty((2,) + h.shape, h.dtype)
    hbuf[0] = h
    chunk = -(-UNIT_SPLIT_PROJECTION_ROWS // B)
    x2d = x.reshape(T * B, I)
    bias = p["bias_ih"] + p["bias_hh"]
    w_ih, w_hh = np.ascontiguousarray(p["weight_ih"]), np.ascontiguousarray(p["weight_hh"])

    def part(k, flags):
        _lstm_forward_units(x2d, w_ih, w_hh, bias, p["weight_peephole"], lengths, reverse, hbuf,
                            c, out, off, bounds[k], bounds[k + 1], flags, k, chunk)

    if not run_parts(part, len(bounds) - 1):
        return False
    h[...] = hbuf[T % 2]
    return True


def backward(p, cache, lengths, reverse, grad_out, off, dstate):
    """Gradients of one direction of one LSTM layer.

    ``dstate`` is ``(dh, dc)``: the gradient of the final state on entry, of
    the initial state on exit. Returns ``(dx, grads)`` where ``grads`` has
    the keys of ``p``.
    """
    x, gates, hs, cs = cache
    dh, dc = dstate
    T, B, G = gates.shape
    P = hs.shape[2]
    H = cs.shape[2]
    project = p["weight_hr"].shape[0] > 0
    dgates = np.empty_like(gates)
    dhp = np.empty((T, B, P) if project else (0, B, P), x.dtype)
    ms = np.empty((T, B, H) if project else (0, B, H), x.dtype)
    uses = rows_per_thread(B) * T
    w_hh_t, panels_hh_t = packed(p["weight_hh"].T, uses)
    w_hr_t, panels_hr_t = packed(p["weight_hr"].T, uses)

    # one share of the peephole gradient per row, summed in row order below: a sum per thread
    # would depend on the thread count
    dpeep = np.zeros((B,) + p["weight_peephole"].shape, x.dtype)
    run_on_rows(lambda b0, b1: _lstm_backward(gates, w_hh_t, panels_hh_t, w_hr_t, panels_hr_t,
                                              p["weight_peephole"], lengths, reverse, hs, cs,
                                              grad_out, off, dh, dc, dgates, dpeep, dhp, ms,
                                              b0, b1), B)
    dx, grads = weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"])
    grads["weight_peephole"] = dpeep.sum(axis=0)
    grads["weight_hr"] = (matmul(dhp.reshape(T * B, P).T, ms.reshape(T * B, H))
                          if project else np.zeros_like(p["weight_hr"]))
    return dx, grads


def gate_states(cache, reverse):
    """Per-step gates and states, (T, B, size) each, from a forward cache."""
    _, gates, hs, cs = cache
    H = cs.shape[2]
    i = gates[..., :H]
    if gates.shape[2] == 3 * H:
        f, g, o = 1 - i, gates[..., H:2 * H], gates[..., 2 * H:]
    else:
        f, g, o = gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
    return {"input_gate": i, "forget_gate": f, "cell_candidate": g, "output_gate": o,
            "cell": new_states(cs, reverse), "hidden": new_states(hs, reverse)}
