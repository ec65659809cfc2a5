"""GRU on the GPU, with PyTorch's equations.

The CUDA twin of :mod:`numlstm.cells.gru` (equations there). Per step: the
tiled GEMM ``h @ W_hh.T + b_hh`` (the hidden bias rides in the GEMM, so that
``b_hn`` stays inside the reset product) and one fused pointwise kernel.
Backward per step: one pointwise kernel and the masked GEMM
``dh += dgh_t @ W_hh`` on the rows still running.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import gru as _cpu
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, launch, results, slots,
                                 weight_gradients)
from numlstm.cuda._kernels import gemm

__all__ = ["forward", "backward", "gate_states"]


def _sources(dtype):
    """The pointwise kernels for ``dtype`` as plain Python functions, by name."""
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    sigmoid, tanh = _kernels.activations(np.dtype(dtype).name)

    def step_forward(gates, hh, lengths, t, h, hs, hn, new, store, out, off):
        """One step for every (row b, unit j); ``hh`` already holds ``W_hh h + b_hh``."""
        idx = cuda.grid(1)
        B = h.shape[0]
        H = h.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        if t < lengths[b]:
            rg = sigmoid(gates[t, b, j] + hh[b, j])
            zg = sigmoid(gates[t, b, H + j] + hh[b, H + j])
            hnj = hh[b, 2 * H + j]
            ng = tanh(gates[t, b, 2 * H + j] + rg * hnj)
            hj = (one - zg) * ng + zg * h[b, j]
            gates[t, b, j] = rg
            gates[t, b, H + j] = zg
            gates[t, b, 2 * H + j] = ng
            if store:
                hn[t, b, j] = hnj
            h[b, j] = hj
            out[t, b, off + j] = hj
        else:
            out[t, b, off + j] = zero
        if store:
            hs[new, b, j] = h[b, j]

    def step_backward(gates, hs, hn, lengths, t, prev, grad_out, off, dh, dgx, dgh):
        """One step back for every (b, j): pre-activation gradients, and ``dh * z``."""
        idx = cuda.grid(1)
        B = dh.shape[0]
        H = dh.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        if t >= lengths[b]:
            for k in range(3):
                dgx[t, b, k * H + j] = zero
                dgh[t, b, k * H + j] = zero
            return
        dhj = dh[b, j] + grad_out[t, b, off + j]
        rg = gates[t, b, j]
        zg = gates[t, b, H + j]
        ng = gates[t, b, 2 * H + j]
        hp = hs[prev, b, j]
        dan = dhj * (one - zg) * (one - ng * ng)
        daz = dhj * (hp - ng) * zg * (one - zg)
        dar = dan * hn[t, b, j] * rg * (one - rg)
        dgx[t, b, j] = dar
        dgx[t, b, H + j] = daz
        dgx[t, b, 2 * H + j] = dan
        dgh[t, b, j] = dar
        dgh[t, b, H + j] = daz
        dgh[t, b, 2 * H + j] = dan * rg
        dh[b, j] = dhj * zg

    return dict(step_forward=step_forward, step_backward=step_backward)


@functools.lru_cache(maxsize=None)
def _compiled(dtype):
    return {name: cuda.jit(fn) for name, fn in _sources(dtype).items()}


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one GRU layer on the GPU; see :func:`numlstm.cuda.lstm.forward`.

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
    k = _compiled(dtype.name)
    gates = input_projection(x, p["weight_ih"], p["bias_ih"])
    hs = cuda.device_array(((T + 1) if store else 0, B, H), dtype)
    hn = cuda.device_array((T if store else 0, B, H), dtype)
    if store:
        hs[T if reverse else 0].copy_to_device(h)
    hh = cuda.device_array((B, 3 * H), dtype)
    for s in range(T):
        t = T - 1 - s if reverse else s
        _, new = slots(t, reverse)
        gemm(h, p["weight_hh"], hh, trans_b=True, bias=p["bias_hh"])
        launch(k["step_forward"], B * H, gates, hh, lengths, t, h, hs, hn, new, store, out, off)
    st.finish()
    return (x, gates, hs, hn) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate):
    """Gradients of one direction of one GRU layer on the GPU; ``dstate`` is ``(dh,)``.

    See :func:`numlstm.cuda.lstm.backward`.
    """
    host = not _arrays.is_device_array(grad_out)
    x, gates, hs, hn = cache
    dtype = np.dtype(gates.dtype)
    st = Staged(dtype)
    p = st.params(p)
    grad_out = st.array(grad_out)
    dh = st.array(dstate[0], inplace=True)
    lengths = st.lengths(lengths)
    T, B, G = gates.shape
    k = _compiled(dtype.name)
    dgx = cuda.device_array((T, B, G), dtype)
    dgh = cuda.device_array((T, B, G), dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, _ = slots(t, reverse)
        launch(k["step_backward"], dh.size, gates, hs, hn, lengths, t, prev, grad_out, off, dh,
               dgx, dgh)
        gemm(dgh[t], p["weight_hh"], dh, accumulate=True, lengths=lengths, t=t)
    dx, grads = weight_gradients(x, hs, reverse, dgx, dgh, p["weight_ih"])
    st.finish()
    return results(host, dx, grads)


def gate_states(cache, reverse):
    """Per-step gates and states, (T, B, H) each, as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse)
