"""GRU on the GPU, with PyTorch's equations.

The CUDA twin of ``numlstm.cells.gru`` (equations there). The time loop
is one persistent launch (``numlstm.cuda._recurrence``): per step each
thread computes the three recurrent products of its (row, unit), adds
``b_hh`` (so that ``b_hn`` stays inside the reset product) and applies the
gate math. Backward is one persistent launch too: each thread takes
``dh += dgh_{t'} W_hh`` from the step done before, on the rows that ran it,
then its own pointwise gradient.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import gru as _cpu
from numlstm.cells.registry import SPECS
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, recur_backward, recur_forward,
                                 results, weight_gradients)

__all__ = ["forward", "backward", "gate_states"]

_SPEC = SPECS["gru"]
# argument codes of the forward and backward ``cell`` tuples, for numlstm.cuda._ptx
CELL_ARGS = ("A1 A3", "A3 A3 A3")


@functools.cache
def _steps(dtype):
    """The (forward, backward) pointwise device functions for ``dtype``.

    See ``numlstm.cuda._recurrence.forward_kernel`` and
    ``numlstm.cuda._recurrence.backward_kernel`` for the signatures.
    """
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    sigmoid, tanh = _kernels.activations(np.dtype(dtype).name)

    @cuda.jit(device=True)
    def forward_step(acc, gates, t, b, j, active, h_prev, new, store, cell):
        """The gate math of unit (b, j); ``cell`` is ``(bias_hh, hn)``."""
        bias_hh, hn = cell
        H = h_prev.shape[1]
        hj = zero
        if active:
            rg = sigmoid(gates[t, b, j] + acc[0] + bias_hh[j])
            zg = sigmoid(gates[t, b, H + j] + acc[1] + bias_hh[H + j])
            hnj = acc[2] + bias_hh[2 * H + j]
            ng = tanh(gates[t, b, 2 * H + j] + rg * hnj)
            hj = (one - zg) * ng + zg * h_prev[b, j]
            gates[t, b, j] = rg
            gates[t, b, H + j] = zg
            gates[t, b, 2 * H + j] = ng
            if store:
                hn[t, b, j] = hnj
        return hj

    @cuda.jit(device=True)
    def backward_step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell):
        """Pre-activation gradients of unit (b, j), and ``dh = d * z``; ``cell`` is
        ``(gates, hs, hn)``."""
        gates, hs, hn = cell
        H = dh.shape[1]
        if not active:
            for k in range(3):
                dgx[t, b, k * H + j] = zero
                dgh[t, b, k * H + j] = zero
            return
        rg = gates[t, b, j]
        zg = gates[t, b, H + j]
        ng = gates[t, b, 2 * H + j]
        dan = d * (one - zg) * (one - ng * ng)
        daz = d * (hs[prev, b, j] - ng) * zg * (one - zg)
        dar = dan * hn[t, b, j] * rg * (one - rg)
        dgx[t, b, j] = dar
        dgx[t, b, H + j] = daz
        dgx[t, b, 2 * H + j] = dan
        dgh[t, b, j] = dar
        dgh[t, b, H + j] = daz
        dgh[t, b, 2 * H + j] = dan * rg
        dh[b, j] = d * zg

    return forward_step, backward_step


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one GRU layer on the GPU; see ``numlstm.cuda.lstm.forward``.

    ``state`` is ``(h,)``.
    """
    dtype = np.dtype(x.dtype)
    st = Staged(dtype)
    x = st.array(x)
    p = st.params(p)
    h = st.array(state[0], inplace=True)
    lengths = st.lengths(lengths)
    out = st.array(out, inplace=True)
    T, B, _ = x.shape
    H = h.shape[1]
    gates = input_projection(x, p["weight_ih"], p["bias_ih"])
    hn = cuda.device_array((T if store else 0, B, H), dtype)
    hs = recur_forward(_steps(dtype.name)[0], _SPEC.n_gates(), gates, p["weight_hh"], h, lengths,
                       reverse, store, out, off, (p["bias_hh"], hn))
    st.finish()
    return (x, gates, hs, hn) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate, need_dx=True):
    """Gradients of one direction of one GRU layer on the GPU; ``dstate`` is ``(dh,)``.

    See ``numlstm.cuda.lstm.backward``.
    """
    host = not _arrays.is_device_array(grad_out)
    x, gates, hs, hn = cache
    dtype = np.dtype(gates.dtype)
    st = Staged(dtype)
    p = st.params(p)
    grad_out = st.array(grad_out)
    dh = st.array(dstate[0], inplace=True)
    lengths = st.lengths(lengths)
    dgx = cuda.device_array(gates.shape, dtype)
    dgh = cuda.device_array(gates.shape, dtype)
    recur_backward(_steps(dtype.name)[1], _SPEC.n_gates(), _SPEC.accumulate, dgx, dgh,
                   p["weight_hh"], dh, lengths, reverse, grad_out, off, (gates, hs, hn))
    dx, grads = weight_gradients(x, hs, reverse, dgx, dgh, p["weight_ih"], need_dx)
    st.finish()
    return results(host, dx, grads)


def gate_states(cache, reverse, **options):
    """Per-step gates and states, (T, B, H) each, as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse, **options)
