"""Elman RNN on the GPU, with a tanh or ReLU nonlinearity.

The CUDA twin of :mod:`numlstm.cells.rnn` (equation there). Per step: the
tiled GEMM ``h @ W_hh.T`` and one fused pointwise kernel; backward per step:
one pointwise kernel and the masked GEMM ``dh = dg_t @ W_hh`` on the rows
still running.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import rnn as _cpu
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, launch, results, slots,
                                 weight_gradients)
from numlstm.cuda._kernels import gemm

__all__ = ["forward", "backward", "gate_states"]


def _sources(dtype):
    """The pointwise kernels for ``dtype`` as plain Python functions, by name."""
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    _, tanh = _kernels.activations(np.dtype(dtype).name)

    def step_forward(gates, hh, relu, lengths, t, h, hs, new, store, out, off):
        """One step for every (row b, unit j)."""
        idx = cuda.grid(1)
        B = h.shape[0]
        H = h.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        if t < lengths[b]:
            v = gates[t, b, j] + hh[b, j]
            if relu:
                hj = v if v > zero else zero
            else:
                hj = tanh(v)
            gates[t, b, j] = hj
            h[b, j] = hj
            out[t, b, off + j] = hj
        else:
            out[t, b, off + j] = zero
        if store:
            hs[new, b, j] = h[b, j]

    def step_backward(gates, relu, lengths, t, grad_out, off, dh, dgates):
        """Pre-activation gradient of one step for every (b, j)."""
        idx = cuda.grid(1)
        B = dh.shape[0]
        H = dh.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        if t >= lengths[b]:
            dgates[t, b, j] = zero
            return
        dhj = dh[b, j] + grad_out[t, b, off + j]
        a = gates[t, b, j]
        if relu:
            dgates[t, b, j] = dhj if a > zero else zero
        else:
            dgates[t, b, j] = dhj * (one - a * a)

    return dict(step_forward=step_forward, step_backward=step_backward)


@functools.lru_cache(maxsize=None)
def _compiled(dtype):
    return {name: cuda.jit(fn) for name, fn in _sources(dtype).items()}


def forward(p, x, state, lengths, reverse, out, off, store, relu=False):
    """Run one direction of one RNN layer on the GPU; see :func:`numlstm.cuda.lstm.forward`.

    ``state`` is ``(h,)``; ``relu`` picks ReLU over tanh.
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
    relu = bool(relu)
    k = _compiled(dtype.name)
    gates = input_projection(x, p["weight_ih"], _arrays.add(p["bias_ih"], p["bias_hh"]))
    hs = cuda.device_array(((T + 1) if store else 0, B, H), dtype)
    if store:
        hs[T if reverse else 0].copy_to_device(h)
    hh = cuda.device_array((B, H), dtype)
    for s in range(T):
        t = T - 1 - s if reverse else s
        _, new = slots(t, reverse)
        gemm(h, p["weight_hh"], hh, trans_b=True)
        launch(k["step_forward"], B * H, gates, hh, relu, lengths, t, h, hs, new, store, out, off)
    st.finish()
    return (x, gates, hs) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate, relu=False):
    """Gradients of one direction of one RNN layer on the GPU; ``dstate`` is ``(dh,)``.

    See :func:`numlstm.cuda.lstm.backward`.
    """
    host = not _arrays.is_device_array(grad_out)
    x, gates, hs = cache
    dtype = np.dtype(gates.dtype)
    st = Staged(dtype)
    p = st.params(p)
    grad_out = st.array(grad_out)
    dh = st.array(dstate[0], inplace=True)
    lengths = st.lengths(lengths)
    T, B, H = gates.shape
    relu = bool(relu)
    k = _compiled(dtype.name)
    dgates = cuda.device_array((T, B, H), dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        launch(k["step_backward"], B * H, gates, relu, lengths, t, grad_out, off, dh, dgates)
        gemm(dgates[t], p["weight_hh"], dh, lengths=lengths, t=t)
    dx, grads = weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"])
    st.finish()
    return results(host, dx, grads)


def gate_states(cache, reverse):
    """Per-step hidden states, (T, B, H), as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse)
