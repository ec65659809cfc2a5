"""LSTM family on the CPU: standard, peephole, coupled-gate (CIFG) and projected.

This module holds the cell's pointwise math: the fused gate arithmetic of
one row and step, forward and backward, and the packing of its weights for
the kernels. ``numlstm.cells.driver`` generates the time loops around it and
the public ``forward`` and ``backward``, which run one direction of one
layer; the spec is ``numlstm.cells.registry.SPECS["lstm"]``.

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

from numlstm._config import JIT_OPTIONS
from numlstm.cells import driver
from numlstm.cells.activations import sigmoid, tanh
from numlstm.cells.common import new_states
from numlstm.cells.gemm import matmul
from numlstm.cells.registry import SPECS


@njit(inline="always", **JIT_OPTIONS)
def _step(a, t, b, r, i, h, c, m, cell):
    """Row ``b`` of step ``t``: gate activations into ``a[t, b]``, new ``c[b]``, ``m[i]``.

    ``a[t, b]`` holds the input projection, ``r[i]`` the recurrent product;
    ``cell`` is ``(bias, peep, peephole, coupled)``, ``bias`` being both
    biases summed and ``peep`` the peephole weights. ``m[i]`` receives
    ``o * tanh(c)``. Each loop touches few arrays and has no branch, so that
    LLVM vectorises it. Each loop also counts from zero and adds the gate
    offset to the index: over ``range(start, stop)`` LLVM cannot prove the
    signed index non-negative, keeps Numba's negative-index wraparound, and
    leaves the loop scalar. Arrays are indexed, never sliced: a view would
    update its parent's reference count atomically, and the threads working
    on other rows share those parents.
    """
    bias, peep, peephole, coupled = cell
    H = m.shape[1]
    G = r.shape[1]
    one = a.dtype.type(1)
    g_off = H if coupled else 2 * H
    o_off = g_off + H
    for k in range(G):
        a[t, b, k] += r[i, k] + bias[k]
    if peephole:
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
    if peephole:
        o_row = peep.shape[0] - 1
        for j in range(H):
            a[t, b, o_off + j] += peep[o_row, j] * c[b, j]
    for j in range(H):
        a[t, b, o_off + j] = sigmoid(a[t, b, o_off + j])
    for j in range(H):
        m[i, j] = a[t, b, o_off + j] * tanh(c[b, j])


@njit(inline="always", **JIT_OPTIONS)
def _step_backward(a, dgx, dgh, t, b, d, i, dh, hs, cs, prev, new, dc, cell):
    """Row ``b`` of step ``t`` backward; ``d[i]`` is the gradient of ``o * tanh(c)``.

    ``a[t, b]`` holds the step's gate activations, ``cs[prev, b]`` and
    ``cs[new, b]`` the previous and new cell state. ``dc[b]`` holds the
    gradient of the new cell state on entry and of the previous one on exit;
    ``dgx[t, b]`` receives the pre-activation gradients. ``cell`` is
    ``(peep, dpeep, ms, peephole, coupled)``: ``dpeep[b]`` accumulates row
    ``b``'s share of the peephole gradient and, with a projection,
    ``ms[t, b]`` receives ``o * tanh(c)`` for the ``W_hr`` gradient.
    Indexed, never sliced, as in ``_step``.
    """
    peep, dpeep, ms, peephole, coupled = cell
    H = dc.shape[1]
    one = a.dtype.type(1)
    g_off = H if coupled else 2 * H
    o_off = g_off + H
    project = ms.shape[0] > 0
    for j in range(H):
        og = a[t, b, o_off + j]
        tc = tanh(cs[new, b, j])
        dgx[t, b, o_off + j] = d[i, j] * tc * og * (one - og)
        dc[b, j] += d[i, j] * og * (one - tc * tc)
    if project:
        for j in range(H):
            ms[t, b, j] = a[t, b, o_off + j] * tanh(cs[new, b, j])
    if peephole:
        o_row = peep.shape[0] - 1
        for j in range(H):
            dc[b, j] += dgx[t, b, o_off + j] * peep[o_row, j]
            dpeep[b, o_row, j] += dgx[t, b, o_off + j] * cs[new, b, j]
    if coupled:
        for j in range(H):
            ig, gg = a[t, b, j], a[t, b, H + j]
            dgx[t, b, j] = dc[b, j] * (gg - cs[prev, b, j]) * ig * (one - ig)
            dgx[t, b, H + j] = dc[b, j] * ig * (one - gg * gg)
            dc[b, j] *= one - ig
    else:
        for j in range(H):
            ig, fg, gg = a[t, b, j], a[t, b, H + j], a[t, b, 2 * H + j]
            dgx[t, b, j] = dc[b, j] * gg * ig * (one - ig)
            dgx[t, b, H + j] = dc[b, j] * cs[prev, b, j] * fg * (one - fg)
            dgx[t, b, 2 * H + j] = dc[b, j] * ig * (one - gg * gg)
            dc[b, j] *= fg
    if peephole:
        for j in range(H):
            dc[b, j] += dgx[t, b, j] * peep[0, j]
            dpeep[b, 0, j] += dgx[t, b, j] * cs[prev, b, j]
        if not coupled:
            for j in range(H):
                dc[b, j] += dgx[t, b, H + j] * peep[1, j]
                dpeep[b, 1, j] += dgx[t, b, H + j] * cs[prev, b, j]


@njit(inline="always", **JIT_OPTIONS)
def _gather(cell, n_gates, H, j0, j1):
    """The forward ``cell`` tuple of units ``j0:j1``, gate rows packed (see the driver)."""
    bias, peep, peephole, coupled = cell
    n = j1 - j0
    bp = np.empty(n_gates * n, bias.dtype)
    for g in range(n_gates):
        for j in range(n):
            bp[g * n + j] = bias[g * H + j0 + j]
    return bp, np.ascontiguousarray(peep[:, j0:j1]), peephole, coupled


def _forward_cell(p, shape, store, peephole=False, coupled=False):
    return (p["bias_ih"] + p["bias_hh"], p["weight_peephole"], peephole, coupled), ()


def _backward_cell(p, extras, shape, peephole=False, coupled=False):
    T, B, H = shape
    # one share of the peephole gradient per row, summed in row order in _cell_grads: a sum per
    # thread would depend on the thread count
    dpeep = np.zeros((B,) + p["weight_peephole"].shape, p["weight_ih"].dtype)
    ms = np.zeros((T, B, H) if p["weight_hr"].shape[0] else (0, B, H), p["weight_ih"].dtype)
    return p["weight_peephole"], dpeep, ms, peephole, coupled


def _cell_grads(p, cell, dhp):
    _, dpeep, ms, _, _ = cell
    grads = {"weight_peephole": dpeep.sum(axis=0)}
    if ms.shape[0]:
        T, B, P = dhp.shape
        grads["weight_hr"] = matmul(dhp.reshape(T * B, P).T, ms.reshape(T * B, ms.shape[2]))
    else:
        grads["weight_hr"] = np.zeros_like(p["weight_hr"])
    return grads


def gate_states(cache, reverse, peephole=False, coupled=False):
    """Per-step gates and states, (T, B, size) each, from a forward cache."""
    _, gates, hs, cs = cache
    H = cs.shape[2]
    i = gates[..., :H]
    if coupled:  # the gates are (i, g, o); f = 1 - i
        f, g, o = 1 - i, gates[..., H:2 * H], gates[..., 2 * H:]
    else:
        f, g, o = gates[..., H:2 * H], gates[..., 2 * H:3 * H], gates[..., 3 * H:]
    return {"input_gate": i, "forget_gate": f, "cell_candidate": g, "output_gate": o,
            "cell": new_states(cs, reverse), "hidden": new_states(hs, reverse)}


driver.install(globals(), SPECS["lstm"], _step, _step_backward, _forward_cell, _backward_cell,
               _cell_grads, gather=_gather)
