"""Elman RNN on the GPU, with a tanh or ReLU nonlinearity.

The CUDA twin of ``numlstm.cells.rnn`` (equation there). The time loop,
forward and backward, is one persistent launch each
(``numlstm.cuda._recurrence``) in which every thread computes the
recurrent product of its (row, unit) and then its pointwise step.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import rnn as _cpu
from numlstm.cells.registry import SPECS
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, recur_backward, recur_forward,
                                 results, weight_gradients)

__all__ = ["forward", "backward", "gate_states"]

_SPEC = SPECS["rnn"]
# argument codes of the forward and backward ``cell`` tuples, for numlstm.cuda._ptx
CELL_ARGS = ("b", "A3 b")


@functools.cache
def _steps(dtype):
    """The (forward, backward) pointwise device functions for ``dtype``.

    See ``numlstm.cuda._recurrence.forward_kernel`` and
    ``numlstm.cuda._recurrence.backward_kernel`` for the signatures.
    """
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    _, tanh = _kernels.activations(np.dtype(dtype).name)

    @cuda.jit(device=True)
    def forward_step(acc, gates, t, b, j, active, h_prev, new, store, cell):
        """The new state of unit (b, j); ``cell`` is ``(relu,)``."""
        hj = zero
        if active:
            v = gates[t, b, j] + acc[0]
            if cell[0]:
                hj = v if v > zero else zero
            else:
                hj = tanh(v)
            gates[t, b, j] = hj
        return hj

    @cuda.jit(device=True)
    def backward_step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell):
        """Pre-activation gradient of unit (b, j); ``cell`` is ``(gates, relu)``."""
        gates, relu = cell
        if not active:
            dgx[t, b, j] = zero
            return
        a = gates[t, b, j]
        if relu:
            dgx[t, b, j] = d if a > zero else zero
        else:
            dgx[t, b, j] = d * (one - a * a)

    return forward_step, backward_step


def forward(p, x, state, lengths, reverse, out, off, store, relu=False):
    """Run one direction of one RNN layer on the GPU; see ``numlstm.cuda.lstm.forward``.

    ``state`` is ``(h,)``; ``relu`` picks ReLU over tanh.
    """
    dtype = np.dtype(x.dtype)
    st = Staged(dtype)
    x = st.array(x)
    p = st.params(p)
    h = st.array(state[0], inplace=True)
    lengths = st.lengths(lengths)
    out = st.array(out, inplace=True)
    gates = input_projection(x, p["weight_ih"], _arrays.add(p["bias_ih"], p["bias_hh"]))
    hs = recur_forward(_steps(dtype.name)[0], _SPEC.n_gates(), gates, p["weight_hh"], h, lengths,
                       reverse, store, out, off, (bool(relu),))
    st.finish()
    return (x, gates, hs) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate, need_dx=True, relu=False):
    """Gradients of one direction of one RNN layer on the GPU; ``dstate`` is ``(dh,)``.

    See ``numlstm.cuda.lstm.backward``.
    """
    host = not _arrays.is_device_array(grad_out)
    x, gates, hs = cache
    dtype = np.dtype(gates.dtype)
    st = Staged(dtype)
    p = st.params(p)
    grad_out = st.array(grad_out)
    dh = st.array(dstate[0], inplace=True)
    lengths = st.lengths(lengths)
    dgates = cuda.device_array(gates.shape, dtype)
    recur_backward(_steps(dtype.name)[1], _SPEC.n_gates(), _SPEC.accumulate, dgates, dgates,
                   p["weight_hh"], dh, lengths, reverse, grad_out, off, (gates, bool(relu)))
    dx, grads = weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"], need_dx)
    st.finish()
    return results(host, dx, grads)


def gate_states(cache, reverse, **options):
    """Per-step hidden states, (T, B, H), as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse, **options)
