"""Elman RNN on the CPU, with a tanh or ReLU nonlinearity.

This module holds the cell's pointwise math; ``numlstm.cells.driver``
generates the time loops and ``forward``/``backward`` around it, and the
spec is ``numlstm.cells.registry.SPECS["rnn"]``.

Notes
-----
As in ``torch.nn.RNN`` (Elman 1990, "Finding structure in time"):

.. math:: h_t = \\phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}),
          \\quad \\phi \\in \\{\\tanh, \\mathrm{ReLU}\\}
"""

from numba import njit

from numlstm._config import JIT_OPTIONS
from numlstm.cells import driver
from numlstm.cells.activations import tanh
from numlstm.cells.common import new_states
from numlstm.cells.registry import SPECS


@njit(inline="always", **JIT_OPTIONS)
def _step(a, t, b, r, i, h, c, m, cell):
    """Row ``b`` of step ``t``: the new state into ``a[t, b]`` and ``m[i]``.

    ``a[t, b]`` holds the input projection and ``r[i]`` the recurrent
    product; ``cell`` is ``(bias, relu)``, ``bias`` being both biases summed.
    """
    bias, relu = cell
    H = m.shape[1]
    zero = a.dtype.type(0)
    if relu:
        for j in range(H):
            v = max(a[t, b, j] + r[i, j] + bias[j], zero)
            a[t, b, j] = v
            m[i, j] = v
    else:
        for j in range(H):
            v = tanh(a[t, b, j] + r[i, j] + bias[j])
            a[t, b, j] = v
            m[i, j] = v


@njit(inline="always", **JIT_OPTIONS)
def _step_backward(a, dgx, dgh, t, b, d, i, dh, hs, cs, prev, new, dc, cell):
    """Row ``b`` of step ``t`` backward: the pre-activation gradient into ``dgx[t, b]``.

    ``a[t, b]`` holds the new state, ``d[i]`` its gradient; ``cell`` is
    ``(relu,)``.
    """
    (relu,) = cell
    H = dh.shape[1]
    one = a.dtype.type(1)
    zero = a.dtype.type(0)
    for j in range(H):
        v = a[t, b, j]
        dgx[t, b, j] = (d[i, j] if v > zero else zero) if relu else d[i, j] * (one - v * v)


def _forward_cell(p, shape, store, relu=False):
    return (p["bias_ih"] + p["bias_hh"], relu), ()


def _backward_cell(p, extras, shape, relu=False):
    return (relu,)


def _cell_grads(p, cell, dhp):
    return {}


def gate_states(cache, reverse, relu=False):
    """Per-step hidden states, (T, B, H), from a forward cache."""
    return {"hidden": new_states(cache[2], reverse)}


driver.install(globals(), SPECS["rnn"], _step, _step_backward, _forward_cell, _backward_cell,
               _cell_grads)
