"""LSTM family on the GPU: standard, peephole, coupled-gate (CIFG) and projected.

The CUDA twin of ``numlstm.cells.lstm``: same functions, signatures and
equations (see there). Arguments may be host NumPy arrays or device arrays;
everything is staged on the device once per call and stays there for the
whole sequence.

The input projection for every step is one GEMM over all ``T * B`` rows.
The time loop is one persistent launch (``numlstm.cuda._recurrence``):
per step each thread computes the four (three when coupled) recurrent
products of its (row, unit) and then the gate nonlinearities, the
peepholes, the cell update and the packed-sequence masking; a projected cell
adds the phase ``h = m W_hr^T``. Backward is one persistent launch too,
followed by single GEMMs over all ``T * B`` rows for the weight gradients;
the peephole gradient is a column sum of per-step terms, so no atomics are
needed and the result is deterministic.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import lstm as _cpu
from numlstm.cells.registry import SPECS
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, recur_backward, recur_forward,
                                 results, weight_gradients)
from numlstm.cuda._kernels import colsum, gemm

__all__ = ["forward", "backward", "gate_states"]


_SPEC = SPECS["lstm"]
# argument codes of the forward and backward ``cell`` tuples, for numlstm.cuda._ptx
CELL_ARGS = ("A2 A3 A2", "A3 A3 A2 A2 A3 A3")


@functools.cache
def _steps(dtype, coupled=False):
    """The (forward, backward) pointwise device functions for ``dtype``.

    Gate rows are (i, f, g, o), or (i, g, o) for a ``coupled`` cell, whose
    forget gate is ``1 - i``. See ``numlstm.cuda._recurrence.forward_kernel``
    and ``numlstm.cuda._recurrence.backward_kernel`` for the signatures.
    """
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    sigmoid, tanh = _kernels.activations(np.dtype(dtype).name)
    n_gates = _SPEC.n_gates(coupled=coupled)
    gi, gf = 0, 1
    gg, go = (1, 2) if coupled else (2, 3)

    @cuda.jit(device=True)
    def forward_step(acc, gates, t, b, j, active, h_prev, new, store, cell):
        """The gate math of unit (b, j); ``cell`` is ``(c, cs, peep)``."""
        c, cs, peep = cell
        H = c.shape[1]
        has_peep = peep.shape[0] > 0
        o_row = peep.shape[0] - 1
        mj = zero
        if active:
            cp = c[b, j]
            ai = gates[t, b, gi * H + j] + acc[gi]
            ag = gates[t, b, gg * H + j] + acc[gg]
            ao = gates[t, b, go * H + j] + acc[go]
            if has_peep:
                ai += peep[0, j] * cp
            ig = sigmoid(ai)
            if coupled:
                fg = one - ig
            else:
                af = gates[t, b, gf * H + j] + acc[gf]
                if has_peep:
                    af += peep[1, j] * cp
                fg = sigmoid(af)
                gates[t, b, gf * H + j] = fg
            gt = tanh(ag)
            cn = fg * cp + ig * gt
            if has_peep:
                ao += peep[o_row, j] * cn
            og = sigmoid(ao)
            gates[t, b, gi * H + j] = ig
            gates[t, b, gg * H + j] = gt
            gates[t, b, go * H + j] = og
            c[b, j] = cn
            mj = og * tanh(cn)
        if store:
            cs[new, b, j] = c[b, j]
        return mj

    @cuda.jit(device=True)
    def backward_step(d, t, b, j, active, prev, new, dgx, dgh, dh, cell):
        """Pre-activation gradients and ``dc`` of unit (b, j); ``d`` reaches its ``m``.

        ``cell`` is ``(gates, cs, peep, dc, ptmp, ms)``: ``ptmp`` gets the
        per-step peephole terms, ``ms`` (empty unless projected) each ``m``.
        """
        gates, cs, peep, dc, ptmp, ms = cell
        H = dc.shape[1]
        n_peep = peep.shape[0]
        o_row = n_peep - 1
        project = ms.shape[0] > 0
        if not active:
            for g in range(n_gates):
                dgx[t, b, g * H + j] = zero
            if project:
                ms[t, b, j] = zero
            for r in range(n_peep):
                ptmp[t, b, r * H + j] = zero
            return
        cp = cs[prev, b, j]
        cn = cs[new, b, j]
        ig = gates[t, b, gi * H + j]
        gt = gates[t, b, gg * H + j]
        og = gates[t, b, go * H + j]
        fg = one - ig if coupled else gates[t, b, gf * H + j]
        tc = tanh(cn)
        if project:
            ms[t, b, j] = og * tc
        dao = d * tc * og * (one - og)
        dcn = dc[b, j] + d * og * (one - tc * tc)
        if n_peep:
            dcn += dao * peep[o_row, j]
            ptmp[t, b, o_row * H + j] = dao * cn
        dag = dcn * ig * (one - gt * gt)
        dcp = dcn * fg
        if coupled:
            dai = dcn * (gt - cp) * ig * (one - ig)
        else:
            dai = dcn * gt * ig * (one - ig)
            daf = dcn * cp * fg * (one - fg)
            dgx[t, b, gf * H + j] = daf
            if n_peep:
                dcp += daf * peep[1, j]
                ptmp[t, b, H + j] = daf * cp
        if n_peep:
            dcp += dai * peep[0, j]
            ptmp[t, b, j] = dai * cp
        dgx[t, b, gi * H + j] = dai
        dgx[t, b, gg * H + j] = dag
        dgx[t, b, go * H + j] = dao
        dc[b, j] = dcp

    return forward_step, backward_step


def forward(p, x, state, lengths, reverse, out, off, store, peephole=False, coupled=False):
    """Run one direction of one LSTM layer on the GPU.

    Same contract as ``numlstm.cells.lstm.forward``. Every array may be a
    host NumPy array or a device array; ``state`` and ``out`` are updated in
    place wherever they live. The returned cache holds device arrays.
    """
    dtype = np.dtype(x.dtype)
    st = Staged(dtype)
    x = st.array(x)
    p = st.params(p)
    h = st.array(state[0], inplace=True)
    c = st.array(state[1], inplace=True)
    lengths = st.lengths(lengths)
    out = st.array(out, inplace=True)
    T, B, _ = x.shape
    H = c.shape[1]
    n_gates = _SPEC.n_gates(coupled=coupled)
    gates = input_projection(x, p["weight_ih"], _arrays.add(p["bias_ih"], p["bias_hh"]))
    cs = cuda.device_array((T + 1 if store else 0, B, H), dtype)
    if store:
        cs[T if reverse else 0].copy_to_device(c)
    hs = recur_forward(_steps(dtype.name, coupled)[0], n_gates, gates, p["weight_hh"], h,
                       lengths, reverse, store, out, off, (c, cs, p["weight_peephole"]),
                       w_hr=p["weight_hr"])
    st.finish()
    return (x, gates, hs, cs) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate, need_dx=True, peephole=False,
             coupled=False):
    """Gradients of one direction of one LSTM layer on the GPU.

    Same contract as ``numlstm.cells.lstm.backward``; ``dstate`` is
    updated in place wherever it lives. ``dx`` and the gradients are device
    arrays, or NumPy arrays when ``grad_out`` is a NumPy array.
    """
    host = not _arrays.is_device_array(grad_out)
    x, gates, hs, cs = cache
    dtype = np.dtype(gates.dtype)
    st = Staged(dtype)
    p = st.params(p)
    grad_out = st.array(grad_out)
    dh = st.array(dstate[0], inplace=True)
    dc = st.array(dstate[1], inplace=True)
    lengths = st.lengths(lengths)
    T, B, G = gates.shape
    H = dc.shape[1]
    P = dh.shape[1]
    n_gates = _SPEC.n_gates(coupled=coupled)
    peep = p["weight_peephole"]
    n_peep = peep.shape[0]
    project = p["weight_hr"].shape[0] > 0
    dgates = cuda.device_array((T, B, G), dtype)
    ptmp = cuda.device_array((T, B, n_peep * H), dtype)
    ms = cuda.device_array((T, B, H) if project else (0, B, H), dtype)
    dhp = recur_backward(_steps(dtype.name, coupled)[1], n_gates, _SPEC.accumulate, dgates, dgates,
                         p["weight_hh"], dh, lengths, reverse, grad_out, off,
                         (gates, cs, peep, dc, ptmp, ms), w_hr=p["weight_hr"])
    dx, grads = weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"], need_dx)
    if n_peep:
        grads["weight_peephole"] = colsum(ptmp.reshape(T * B, n_peep * H)).reshape(n_peep, H)
    else:
        grads["weight_peephole"] = _arrays.zeros(peep.shape, dtype)
    if project:
        grads["weight_hr"] = gemm(dhp.reshape(T * B, P), ms.reshape(T * B, H), trans_a=True)
    else:
        grads["weight_hr"] = _arrays.zeros(p["weight_hr"].shape, dtype)
    st.finish()
    return results(host, dx, grads)


def gate_states(cache, reverse, **options):
    """Per-step gates and states, (T, B, size) each, as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse, **options)
