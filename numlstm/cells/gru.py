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

from numlstm._config import JIT_OPTIONS, run_on_rows
from numlstm.cells.activations import sigmoid_inplace, tanh_inplace
from numlstm.cells.gemm import matmul_nt
from numlstm.cells.common import input_projection, new_states, slots, weight_gradients


@njit(**JIT_OPTIONS)
def _gru_cell(a, r, h):
    """One row of one step: activations (r, z, n) into ``a`` and the new ``h``.

    ``a`` holds the input projection and ``r`` the hidden projection with its
    bias; ``r[2H:]`` is left holding ``W_hn h + b_hn`` for backward.
    """
    H = h.shape[0]
    one = a.dtype.type(1)
    for k in range(2 * H):
        a[k] += r[k]
    sigmoid_inplace(a[:2 * H])
    for j in range(H):
        a[2 * H + j] += a[j] * r[2 * H + j]
    tanh_inplace(a[2 * H:])
    for j in range(H):
        z = a[H + j]
        h[j] = (one - z) * a[2 * H + j] + z * h[j]


@njit(**JIT_OPTIONS)
def _gru_forward(gates, w_hh, b_hh, lengths, reverse, h, hs, hn, out, off, b0, b1):
    """Run the recurrence over every step, in place.

    ``gates`` (T, B, 3H) holds ``x @ W_ih.T + b_ih`` and is overwritten with
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
        matmul_nt(h[b0:b1], w_hh, hh)
        for b in range(b0, b1):
            o = out[t, b, off:off + H]
            if t >= lengths[b]:
                o[:] = 0
                continue
            r = hh[b - b0]
            for k in range(G):
                r[k] += b_hh[k]
            _gru_cell(gates[t, b], r, h[b])
            if store:
                hn[t, b] = r[2 * H:]
            o[:] = h[b]
        if store:
            _, new = slots(t, reverse)
            hs[new, b0:b1] = h[b0:b1]


@njit(**JIT_OPTIONS)
def _gru_cell_backward(a, hp, hn, dh, dgx, dgh):
    """One row of one step backward.

    ``a`` holds the activations (r, z, n), ``hp`` the previous state and
    ``hn`` the hidden n-row projection. ``dh`` holds the gradient of the new
    state on entry and its direct share of the previous state's on exit.
    ``dgx``/``dgh`` receive the input-side and hidden-side pre-activation
    gradients.
    """
    H = dh.shape[0]
    one = a.dtype.type(1)
    for j in range(H):
        rg, zg, ng = a[j], a[H + j], a[2 * H + j]
        dan = dh[j] * (one - zg) * (one - ng * ng)
        dgx[j] = dan * hn[j] * rg * (one - rg)
        dgx[H + j] = dh[j] * (hp[j] - ng) * zg * (one - zg)
        dgx[2 * H + j] = dan
    for j in range(2 * H):
        dgh[j] = dgx[j]
    for j in range(H):
        dgh[2 * H + j] = dgx[2 * H + j] * a[j]
        dh[j] *= a[H + j]


@njit(**JIT_OPTIONS)
def _gru_backward(gates, w_hh_t, lengths, reverse, hs, hn, grad_out, off, dh, dgx, dgh, b0, b1):
    """Back-propagate through every step.

    ``w_hh_t`` (H, 3H) is the transposed recurrent weight, C-contiguous.
    ``dh`` (B, H) holds the gradient of the final state on entry and of the
    initial state on exit. ``dgx`` and ``dgh`` (T, B, 3H) receive the
    gradients of the input-side and hidden-side pre-activations; they differ
    only in the n rows, where the hidden side is scaled by r. Only batch
    rows ``b0:b1`` are touched.
    """
    T = gates.shape[0]
    H = dh.shape[1]
    dh_prev = np.empty((b1 - b0, H), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, _ = slots(t, reverse)
        for b in range(b0, b1):
            if t >= lengths[b]:
                dgx[t, b] = 0
                dgh[t, b] = 0
                continue
            dh[b] += grad_out[t, b, off:off + H]
            _gru_cell_backward(gates[t, b], hs[prev, b], hn[t, b], dh[b], dgx[t, b], dgh[t, b])
        matmul_nt(dgh[t, b0:b1], w_hh_t, dh_prev)
        for b in range(b0, b1):
            if t < lengths[b]:
                dh[b] += dh_prev[b - b0]


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one GRU layer; see :func:`numlstm.cells.lstm.forward`.

    ``state`` is ``(h,)``.
    """
    (h,) = state
    T = x.shape[0]
    gates = input_projection(x, p["weight_ih"], p["bias_ih"])
    hs = np.empty(((T + 1) if store else 0,) + h.shape, x.dtype)
    hn = np.empty((T if store else 0,) + h.shape, x.dtype)
    run_on_rows(lambda b0, b1: _gru_forward(gates, p["weight_hh"], p["bias_hh"], lengths, reverse,
                                            h, hs, hn, out, off, b0, b1), h.shape[0])
    return (x, gates, hs, hn) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate):
    """Gradients of one direction of one GRU layer; ``dstate`` is ``(dh,)``."""
    x, gates, hs, hn = cache
    (dh,) = dstate
    dgx = np.empty_like(gates)
    dgh = np.empty_like(gates)
    w_hh_t = np.ascontiguousarray(p["weight_hh"].T)
    run_on_rows(lambda b0, b1: _gru_backward(gates, w_hh_t, lengths, reverse, hs, hn,
                                             grad_out, off, dh, dgx, dgh, b0, b1), dh.shape[0])
    return weight_gradients(x, hs, reverse, dgx, dgh, p["weight_ih"])


def gate_states(cache, reverse):
    """Per-step gates and states, (T, B, H) each, from a forward cache."""
    _, gates, hs, _ = cache
    H = hs.shape[2]
    return {"reset_gate": gates[..., :H], "update_gate": gates[..., H:2 * H],
            "candidate": gates[..., 2 * H:], "hidden": new_states(hs, reverse)}
