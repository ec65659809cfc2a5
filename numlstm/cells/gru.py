"""GRU on the CPU, with PyTorch's equations.

This module holds the cell's pointwise math; ``numlstm.cells.driver``
generates the time loops and ``forward``/``backward`` around it, and the
spec is ``numlstm.cells.registry.SPECS["gru"]``.

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

from numlstm._config import JIT_OPTIONS
from numlstm.cells import driver
from numlstm.cells.activations import sigmoid, tanh
from numlstm.cells.common import new_states
from numlstm.cells.registry import SPECS


@njit(inline="always", **JIT_OPTIONS)
def _step(a, t, b, r, i, h, c, m, cell):
    """Row ``b`` of step ``t``: activations (r, z, n) into ``a[t, b]``, the new state into ``m[i]``.

    ``a[t, b]`` holds the input projection and ``r[i]`` the hidden one;
    ``cell`` is ``(b_ih, b_hh, hn)``. The biases are added here, apart, and
    ``hn[t, b]`` (empty for inference) keeps ``W_hn h + b_hn`` for backward.
    Arrays are indexed, never sliced: a view would update its parent's
    reference count atomically, and the threads working on other rows share
    those parents.
    """
    b_ih, b_hh, hn = cell
    H = m.shape[1]
    one = a.dtype.type(1)
    for k in range(3 * H):
        a[t, b, k] += b_ih[k]
        r[i, k] += b_hh[k]
    for k in range(2 * H):
        a[t, b, k] = sigmoid(a[t, b, k] + r[i, k])
    for j in range(H):
        a[t, b, 2 * H + j] += a[t, b, j] * r[i, 2 * H + j]
    for j in range(H):
        a[t, b, 2 * H + j] = tanh(a[t, b, 2 * H + j])
    for j in range(H):
        z = a[t, b, H + j]
        m[i, j] = (one - z) * a[t, b, 2 * H + j] + z * h[b, j]
    if hn.shape[0] > 0:
        for j in range(H):
            hn[t, b, j] = r[i, 2 * H + j]


@njit(inline="always", **JIT_OPTIONS)
def _step_backward(a, dgx, dgh, t, b, d, i, dh, hs, cs, prev, new, dc, cell):
    """Row ``b`` of step ``t`` backward; ``d[i]`` is the gradient of the new state.

    ``a[t, b]`` holds the activations (r, z, n), ``hs[prev, b]`` the previous
    state and ``hn[t, b]`` (``cell`` is ``(hn,)``) the hidden n-row
    projection. ``dh[b]`` receives the direct share ``z * d`` of the
    previous state's gradient; ``dgx[t, b]``/``dgh[t, b]`` the input-side and
    hidden-side pre-activation gradients, which differ in the n rows only.
    """
    (hn,) = cell
    H = dh.shape[1]
    one = a.dtype.type(1)
    for j in range(H):
        rg, zg, ng = a[t, b, j], a[t, b, H + j], a[t, b, 2 * H + j]
        dan = d[i, j] * (one - zg) * (one - ng * ng)
        dar = dan * hn[t, b, j] * rg * (one - rg)
        daz = d[i, j] * (hs[prev, b, j] - ng) * zg * (one - zg)
        dgx[t, b, j] = dgh[t, b, j] = dar
        dgx[t, b, H + j] = dgh[t, b, H + j] = daz
        dgx[t, b, 2 * H + j] = dan
        dgh[t, b, 2 * H + j] = dan * rg
        dh[b, j] = d[i, j] * zg


def _forward_cell(p, shape, store):
    T, B, H = shape
    hn = np.empty((T if store else 0, B, H), p["weight_ih"].dtype)
    return (p["bias_ih"], p["bias_hh"], hn), (hn,)


def _backward_cell(p, extras, shape):
    return extras


def _cell_grads(p, cell, dhp):
    return {}


def gate_states(cache, reverse, **options):
    """Per-step gates and states, (T, B, H) each, from a forward cache (no options matter)."""
    _, gates, hs, _ = cache
    H = hs.shape[2]
    return {"reset_gate": gates[..., :H], "update_gate": gates[..., H:2 * H],
            "candidate": gates[..., 2 * H:], "hidden": new_states(hs, reverse)}


driver.install(globals(), SPECS["gru"], _step, _step_backward, _forward_cell, _backward_cell,
               _cell_grads)
