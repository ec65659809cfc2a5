"""GRU on the CPU, with PyTorch's equations.

Notes
-----
With gate rows ordered (r, z, n) as in ``torch.nn.GRU`` (Cho et al. 2014,
"Learning phrase representations using RNN encoder-decoder"):

.. math::

    r_t &= \\sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\\\
    z_t &= \\sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\\\
    n_t &= \\tanh(W_{in} x_t + b_{in} + r_t \\odot (W_{hn} h_{t-1} + b_{hn})) \\\\
    h_t &= (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

The hidden bias :math:`b_{hn}` sits inside the reset product, so the input
and hidden projections are kept apart for the n row.
"""

import numpy as np
from numba import njit

from numlstm._config import JIT_OPTIONS, rows_per_thread, run_on_rows
from numlstm.cells.activations import sigmoid, tanh
from numlstm.cells.gemm import matmul_nt, packed
from numlstm.cells.common import emit_output, new_states, slots, weight_gradients


@njit(inline="always", **JIT_OPTIONS)
def _gru_cell(a, t, b, r, i, h):
    """Row ``b`` of step ``t``: activations (r, z, n) into ``a[t, b]``, new ``h[b]``.

    ``a[t, b]`` holds the input projection and ``r[i]`` the hidden projection
    with its bias; ``r[i, 2H:]`` is left holding ``W_hn h + b_hn`` for
    backward. Arrays are indexed, never sliced: a view would update its
    parent's reference count atomically, and the threads working on other
    rows share those parents.
    """
    H = h.shape[1]
    one = a.dtype.type(1)
    for k in range(2 * H):
        a[t, b, k] = sigmoid(a[t, b, k] + r[i, k])
    for j in range(H):
        a[t, b, 2 * H + j] += a[t, b, j] * r[i, 2 * H + j]
    for j in range(H):
        a[t, b, 2 * H + j] = tanh(a[t, b, 2 * H + j])
    for j in range(H):
        z = a[t, b, H + j]
        h[b, j] = (one - z) * a[t, b, 2 * H + j] + z * h[b, j]


@njit(**JIT_OPTIONS)
def _gru_forward(x, w_ih, panels_ih, b_ih, gates, w_hh, panels_hh, b_hh, lengths, reverse, h, hs,
                 hn, out, off, b0, b1):
    """Run the recurrence over every step, in place.

    Each step projects its input rows ``x[t] @ w_ih.T + b_ih`` in the same
    thread, just before the recurrent product (see
    ``numlstm.cells.lstm._lstm_forward``); ``gates`` (T, B, 3H) receives
    the activations (r, z, n). ``h`` (B, H) is the initial state on entry and
    the final state on exit. ``hs`` (T + 1, B, H) stores every state and
    ``hn`` (T, B, H) the hidden n-row projection ``W_hn h + b_hn``, both for
    backward; both are empty along axis 0 for inference. Only batch rows
    ``b0:b1`` are touched, so calls on disjoint rows may run concurrently.
    """
    T, _, G = gates.shape
    H = h.shape[1]
    store = hs.shape[0] > 0
    hh = np.empty((b1 - b0, G), gates.dtype)
    if store:
        hs[T if reverse else 0, b0:b1] = h[b0:b1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        matmul_nt(x[t, b0:b1], w_ih, panels_ih, gates[t, b0:b1])
        matmul_nt(h[b0:b1], w_hh, panels_hh, hh)
        for b in range(b0, b1):
            i = b - b0
            active = t < lengths[b]
            if active:
                for k in range(G):
                    gates[t, b, k] += b_ih[k]
                    hh[i, k] += b_hh[k]
                _gru_cell(gates, t, b, hh, i, h)
                if store:
                    for j in range(H):
                        hn[t, b, j] = hh[i, 2 * H + j]
            emit_output(out, t, b, off, h, active)
        if store:
            _, new = slots(t, reverse)
            hs[new, b0:b1] = h[b0:b1]


@njit(inline="always", **JIT_OPTIONS)
def _gru_cell_backward(a, t, b, hs, prev, hn, dh, dgx, dgh):
    """Row ``b`` of step ``t`` backward.

    ``a[t, b]`` holds the activations (r, z, n), ``hs[prev, b]`` the previous
    state and ``hn[t, b]`` the hidden n-row projection. ``dh[b]`` holds the
    gradient of the new state on entry and its direct share of the previous
    state's on exit. ``dgx[t, b]``/``dgh[t, b]`` receive the input-side and
    hidden-side pre-activation gradients.
    """
    H = dh.shape[1]
    one = a.dtype.type(1)
    for j in range(H):
        rg, zg, ng = a[t, b, j], a[t, b, H + j], a[t, b, 2 * H + j]
        dan = dh[b, j] * (one - zg) * (one - ng * ng)
        dar = dan * hn[t, b, j] * rg * (one - rg)
        daz = dh[b, j] * (hs[prev, b, j] - ng) * zg * (one - zg)
        dgx[t, b, j] = dgh[t, b, j] = dar
        dgx[t, b, H + j] = dgh[t, b, H + j] = daz
        dgx[t, b, 2 * H + j] = dan
        dgh[t, b, 2 * H + j] = dan * rg
        dh[b, j] *= zg


@njit(**JIT_OPTIONS)
def _gru_backward(gates, w_hh_t, panels_hh_t, lengths, reverse, hs, hn, grad_out, off, dh, dgx,
                  dgh, b0, b1):
    """Back-propagate through every step.

    ``w_hh_t`` (H, 3H) is the transposed recurrent weight, C-contiguous.
    ``dh`` (B, H) holds the gradient of the final state on entry and of the
    initial state on exit. ``dgx`` and ``dgh`` (T, B, 3H) receive the
    gradients of the input-side and hidden-side pre-activations; they differ
    only in the n rows, where the hidden side is scaled by r. Only batch
    rows ``b0:b1`` are touched.
    """
    off = max(off, 0)  # provably non-negative, so the loops reading grad_out vectorise
    T, _, G = gates.shape
    H = dh.shape[1]
    dh_prev = np.empty((b1 - b0, H), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, _ = slots(t, reverse)
        for b in range(b0, b1):
            if t >= lengths[b]:
                for k in range(G):
                    dgx[t, b, k] = 0
                    dgh[t, b, k] = 0
                continue
            for j in range(H):
                dh[b, j] += grad_out[t, b, off + j]
            _gru_cell_backward(gates, t, b, hs, prev, hn, dh, dgx, dgh)
        matmul_nt(dgh[t, b0:b1], w_hh_t, panels_hh_t, dh_prev)
        for b in range(b0, b1):
            if t < lengths[b]:
                for j in range(H):
                    dh[b, j] += dh_prev[b - b0, j]


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one GRU layer; see ``numlstm.cells.lstm.forward``.

    ``state`` is ``(h,)``.
    """
    (h,) = state
    T, B, _ = x.shape
    uses = rows_per_thread(B) * T
    w_ih, panels_ih = packed(p["weight_ih"], uses)
    w_hh, panels_hh = packed(p["weight_hh"], uses)
    gates = np.empty((T, B, w_hh.shape[0]), x.dtype)
    hs = np.empty(((T + 1) if store else 0,) + h.shape, x.dtype)
    hn = np.empty((T if store else 0,) + h.shape, x.dtype)
    run_on_rows(lambda b0, b1: _gru_forward(x, w_ih, panels_ih, p["bias_ih"], gates, w_hh,
                                            panels_hh, p["bias_hh"], lengths, reverse, h, hs, hn,
                                            out, off, b0, b1), B)
    return (x, gates, hs, hn) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate):
    """Gradients of one direction of one GRU layer; ``dstate`` is ``(dh,)``."""
    x, gates, hs, hn = cache
    T, B = gates.shape[:2]
    (dh,) = dstate
    dgx = np.empty_like(gates)
    dgh = np.empty_like(gates)
    w_hh_t, panels_hh_t = packed(p["weight_hh"].T, rows_per_thread(B) * T)
    run_on_rows(lambda b0, b1: _gru_backward(gates, w_hh_t, panels_hh_t, lengths, reverse, hs, hn,
                                             grad_out, off, dh, dgx, dgh, b0, b1), B)
    return weight_gradients(x, hs, reverse, dgx, dgh, p["weight_ih"])


def gate_states(cache, reverse):
    """Per-step gates and states, (T, B, H) each, from a forward cache."""
    _, gates, hs, _ = cache
    H = hs.shape[2]
    return {"reset_gate": gates[..., :H], "update_gate": gates[..., H:2 * H],
            "candidate": gates[..., 2 * H:], "hidden": new_states(hs, reverse)}
