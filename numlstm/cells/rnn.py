"""Elman RNN on the CPU, with a tanh or ReLU nonlinearity.

Notes
-----
As in ``torch.nn.RNN`` (Elman 1990, "Finding structure in time"):

.. math:: h_t = \\phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
          \\quad \\phi \\in \\{\\tanh, \\mathrm{ReLU}\\}
"""

import numpy as np
from numba import njit

from numlstm._config import JIT_OPTIONS, rows_per_thread, run_on_rows
from numlstm.cells.activations import tanh
from numlstm.cells.gemm import matmul_nt, packed
from numlstm.cells.common import emit_output, new_states, slots, weight_gradients


@njit(**JIT_OPTIONS)
def _rnn_forward(x, w_ih, panels_ih, bias, gates, w_hh, panels_hh, relu, lengths, reverse, h, hs,
                 out, off, b0, b1):
    """Run the recurrence over every step, in place.

    Each step projects its input rows ``x[t] @ w_ih.T`` in the same thread,
    just before the recurrent product (see
    ``numlstm.cells.lstm._lstm_forward``); ``bias`` holds both biases,
    summed, and ``gates`` (T, B, H) receives the new states. ``h`` (B, H) is
    the initial state on entry and the final one on exit; ``hs`` (T + 1, B,
    H) stores every state for backward, or is empty for inference. Only
    batch rows ``b0:b1`` are touched, so calls on disjoint rows may run
    concurrently.
    """
    T, _, H = gates.shape
    zero = gates.dtype.type(0)
    store = hs.shape[0] > 0
    hh = np.empty((b1 - b0, H), gates.dtype)
    if store:
        hs[T if reverse else 0, b0:b1] = h[b0:b1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        matmul_nt(x[t, b0:b1], w_ih, panels_ih, gates[t, b0:b1])
        matmul_nt(h[b0:b1], w_hh, panels_hh, hh)
        for b in range(b0, b1):
            active = t < lengths[b]
            if active:
                if relu:
                    for j in range(H):
                        gates[t, b, j] = max(gates[t, b, j] + hh[b - b0, j] + bias[j], zero)
                else:
                    for j in range(H):
                        gates[t, b, j] = tanh(gates[t, b, j] + hh[b - b0, j] + bias[j])
            if active:
                for j in range(H):
                    h[b, j] = gates[t, b, j]
            emit_output(out, t, b, off, h, active)
        if store:
            _, new = slots(t, reverse)
            hs[new, b0:b1] = h[b0:b1]


@njit(**JIT_OPTIONS)
def _rnn_backward(gates, w_hh_t, panels_hh_t, relu, lengths, reverse, grad_out, off, dh, dgates,
                  b0, b1):
    """Back-propagate through every step.

    ``w_hh_t`` is the transposed recurrent weight, C-contiguous. ``dh``
    (B, H) holds the gradient of the final state on entry and of the initial
    state on exit; ``dgates`` (T, B, H) receives the gradient of the
    pre-activations (zero on finished rows). Only batch rows ``b0:b1`` are
    touched.
    """
    off = max(off, 0)  # provably non-negative, so the loops reading grad_out vectorise
    T, _, H = gates.shape
    one = gates.dtype.type(1)
    zero = gates.dtype.type(0)
    dh_prev = np.empty((b1 - b0, H), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        for b in range(b0, b1):
            active = t < lengths[b]
            for j in range(H):
                a = gates[t, b, j]
                d = dh[b, j] + grad_out[t, b, off + j]
                grad = (d if a > zero else zero) if relu else d * (one - a * a)
                dgates[t, b, j] = grad if active else zero
        matmul_nt(dgates[t, b0:b1], w_hh_t, panels_hh_t, dh_prev)
        for b in range(b0, b1):
            if t < lengths[b]:
                for j in range(H):
                    dh[b, j] = dh_prev[b - b0, j]


def forward(p, x, state, lengths, reverse, out, off, store, relu=False):
    """Run one direction of one RNN layer; see ``numlstm.cells.lstm.forward``.

    ``state`` is ``(h,)``; ``relu`` picks ReLU over tanh.
    """
    (h,) = state
    T, B, _ = x.shape
    uses = rows_per_thread(B) * T
    w_ih, panels_ih = packed(p["weight_ih"], uses)
    w_hh, panels_hh = packed(p["weight_hh"], uses)
    gates = np.empty((T, B, w_hh.shape[0]), x.dtype)
    hs = np.empty(((T + 1) if store else 0,) + h.shape, x.dtype)
    bias = p["bias_ih"] + p["bias_hh"]
    run_on_rows(lambda b0, b1: _rnn_forward(x, w_ih, panels_ih, bias, gates, w_hh, panels_hh, relu,
                                            lengths, reverse, h, hs, out, off, b0, b1), B)
    return (x, gates, hs) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate, relu=False):
    """Gradients of one direction of one RNN layer; ``dstate`` is ``(dh,)``."""
    x, gates, hs = cache
    T, B = gates.shape[:2]
    (dh,) = dstate
    dgates = np.empty_like(gates)
    w_hh_t, panels_hh_t = packed(p["weight_hh"].T, rows_per_thread(B) * T)
    run_on_rows(lambda b0, b1: _rnn_backward(gates, w_hh_t, panels_hh_t, relu, lengths, reverse,
                                             grad_out, off, dh, dgates, b0, b1), B)
    return weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"])


def gate_states(cache, reverse):
    """Per-step hidden states, (T, B, H), from a forward cache."""
    return {"hidden": new_states(cache[2], reverse)}
