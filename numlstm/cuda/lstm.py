"""LSTM family on the GPU: standard, peephole, coupled-gate (CIFG) and projected.

The CUDA twin of :mod:`numlstm.cells.lstm`: same functions, signatures and
equations (see there). Arguments may be host NumPy arrays or device arrays;
everything is staged on the device once per call and stays there for the
whole sequence.

Per step the forward pass launches the tiled GEMM ``h @ W_hh.T`` and one
fused pointwise kernel (one thread per (row, unit)) that applies the gate
nonlinearities, the peepholes, the cell update and the packed-sequence
masking; a projected cell adds the masked GEMM ``h = m @ W_hr.T`` and a small
kernel that writes the output. The input projection for every step and the
weight gradients are single GEMMs over all ``T * B`` rows; the peephole
gradient is a column sum of per-step terms, so no atomics are needed and the
result is deterministic.
"""

import functools

import numpy as np
from numba import cuda

from numlstm.cells import lstm as _cpu
from numlstm.cuda import _arrays, _kernels
from numlstm.cuda.common import (Staged, input_projection, launch, results, slots,
                                 weight_gradients)
from numlstm.cuda._kernels import colsum, gemm

__all__ = ["forward", "backward", "gate_states"]


def _sources(dtype):
    """The pointwise kernels for ``dtype`` as plain Python functions, by name."""
    zero = np.dtype(dtype).type(0)
    one = np.dtype(dtype).type(1)
    sigmoid, tanh = _kernels.activations(np.dtype(dtype).name)

    def step_forward(gates, hh, peep, lengths, t, h, c, m, project, hs, cs, new, store,
                     out, off):
        """One step of the gate math for every (row b, unit j)."""
        idx = cuda.grid(1)
        B = c.shape[0]
        H = c.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        coupled = gates.shape[2] == 3 * H
        has_peep = peep.shape[0] > 0
        o_row = peep.shape[0] - 1
        g_off = H if coupled else 2 * H
        o_off = 2 * H if coupled else 3 * H
        active = t < lengths[b]
        if active:
            cp = c[b, j]
            ai = gates[t, b, j] + hh[b, j]
            ag = gates[t, b, g_off + j] + hh[b, g_off + j]
            ao = gates[t, b, o_off + j] + hh[b, o_off + j]
            if has_peep:
                ai += peep[0, j] * cp
            ig = sigmoid(ai)
            if coupled:
                fg = one - ig
            else:
                af = gates[t, b, H + j] + hh[b, H + j]
                if has_peep:
                    af += peep[1, j] * cp
                fg = sigmoid(af)
                gates[t, b, H + j] = fg
            gg = tanh(ag)
            cn = fg * cp + ig * gg
            if has_peep:
                ao += peep[o_row, j] * cn
            og = sigmoid(ao)
            gates[t, b, j] = ig
            gates[t, b, g_off + j] = gg
            gates[t, b, o_off + j] = og
            c[b, j] = cn
            mj = og * tanh(cn)
            if project:
                m[b, j] = mj
            else:
                h[b, j] = mj
        if store:
            cs[new, b, j] = c[b, j]
        if not project:
            out[t, b, off + j] = h[b, j] if active else zero
            if store:
                hs[new, b, j] = h[b, j]

    def commit_projection(h, lengths, t, hs, new, store, out, off):
        """After ``h = m @ W_hr.T``: the output and the stored state, per (b, j)."""
        idx = cuda.grid(1)
        B = h.shape[0]
        P = h.shape[1]
        if idx >= B * P:
            return
        b = idx // P
        j = idx - b * P
        out[t, b, off + j] = h[b, j] if t < lengths[b] else zero
        if store:
            hs[new, b, j] = h[b, j]

    def grad_projected_output(grad_out, off, lengths, t, dh, dhp):
        """Projected cell: add the output gradient to dh and keep it for the W_hr gradient."""
        idx = cuda.grid(1)
        B = dh.shape[0]
        P = dh.shape[1]
        if idx >= B * P:
            return
        b = idx // P
        j = idx - b * P
        if t < lengths[b]:
            v = dh[b, j] + grad_out[t, b, off + j]
            dh[b, j] = v
            dhp[t, b, j] = v
        else:
            dhp[t, b, j] = zero

    def step_backward(gates, cs, peep, lengths, t, prev, new, grad_out, off, dh, dm, project,
                      dc, dgates, ptmp, ms):
        """One step back: gate pre-activation gradients and dc, for every (b, j)."""
        idx = cuda.grid(1)
        B = dc.shape[0]
        H = dc.shape[1]
        if idx >= B * H:
            return
        b = idx // H
        j = idx - b * H
        coupled = gates.shape[2] == 3 * H
        n_peep = peep.shape[0]
        has_peep = n_peep > 0
        o_row = n_peep - 1
        g_off = H if coupled else 2 * H
        o_off = 2 * H if coupled else 3 * H
        if t >= lengths[b]:
            dgates[t, b, j] = zero
            dgates[t, b, g_off + j] = zero
            dgates[t, b, o_off + j] = zero
            if not coupled:
                dgates[t, b, H + j] = zero
            if project:
                ms[t, b, j] = zero
            for r in range(n_peep):
                ptmp[t, b, r * H + j] = zero
            return
        cp = cs[prev, b, j]
        cn = cs[new, b, j]
        ig = gates[t, b, j]
        gg = gates[t, b, g_off + j]
        og = gates[t, b, o_off + j]
        fg = one - ig if coupled else gates[t, b, H + j]
        tc = tanh(cn)
        if project:
            dmj = dm[b, j]
            ms[t, b, j] = og * tc
        else:
            dmj = dh[b, j] + grad_out[t, b, off + j]
        dao = dmj * tc * og * (one - og)
        dcn = dc[b, j] + dmj * og * (one - tc * tc)
        if has_peep:
            dcn += dao * peep[o_row, j]
            ptmp[t, b, o_row * H + j] = dao * cn
        dag = dcn * ig * (one - gg * gg)
        dcp = dcn * fg
        if coupled:
            dai = dcn * (gg - cp) * ig * (one - ig)
        else:
            dai = dcn * gg * ig * (one - ig)
            daf = dcn * cp * fg * (one - fg)
            dgates[t, b, H + j] = daf
            if has_peep:
                dcp += daf * peep[1, j]
                ptmp[t, b, H + j] = daf * cp
        if has_peep:
            dcp += dai * peep[0, j]
            ptmp[t, b, j] = dai * cp
        dgates[t, b, j] = dai
        dgates[t, b, g_off + j] = dag
        dgates[t, b, o_off + j] = dao
        dc[b, j] = dcp

    return dict(step_forward=step_forward, commit_projection=commit_projection,
                grad_projected_output=grad_projected_output, step_backward=step_backward)


@functools.lru_cache(maxsize=None)
def _compiled(dtype):
    return {name: cuda.jit(fn) for name, fn in _sources(dtype).items()}


def forward(p, x, state, lengths, reverse, out, off, store):
    """Run one direction of one LSTM layer on the GPU.

    Same contract as :func:`numlstm.cells.lstm.forward`. Every array may be a
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
    P = h.shape[1]
    G = p["weight_hh"].shape[0]
    project = p["weight_hr"].shape[0] > 0
    k = _compiled(dtype.name)
    gates = input_projection(x, p["weight_ih"], _arrays.add(p["bias_ih"], p["bias_hh"]))
    depth = T + 1 if store else 0
    hs = cuda.device_array((depth, B, P), dtype)
    cs = cuda.device_array((depth, B, H), dtype)
    if store:
        hs[T if reverse else 0].copy_to_device(h)
        cs[T if reverse else 0].copy_to_device(c)
    hh = cuda.device_array((B, G), dtype)
    m = cuda.device_array((B, H) if project else (0, H), dtype)
    for s in range(T):
        t = T - 1 - s if reverse else s
        _, new = slots(t, reverse)
        gemm(h, p["weight_hh"], hh, trans_b=True)
        launch(k["step_forward"], B * H, gates, hh, p["weight_peephole"], lengths, t, h, c, m,
               project, hs, cs, new, store, out, off)
        if project:
            gemm(m, p["weight_hr"], h, trans_b=True, lengths=lengths, t=t)
            launch(k["commit_projection"], B * P, h, lengths, t, hs, new, store, out, off)
    st.finish()
    return (x, gates, hs, cs) if store else None


def backward(p, cache, lengths, reverse, grad_out, off, dstate):
    """Gradients of one direction of one LSTM layer on the GPU.

    Same contract as :func:`numlstm.cells.lstm.backward`; ``dstate`` is
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
    peep = p["weight_peephole"]
    n_peep = peep.shape[0]
    project = p["weight_hr"].shape[0] > 0
    k = _compiled(dtype.name)
    dgates = cuda.device_array((T, B, G), dtype)
    ptmp = cuda.device_array((T, B, n_peep * H), dtype)
    dhp = cuda.device_array((T, B, P) if project else (0, B, P), dtype)
    ms = cuda.device_array((T, B, H) if project else (0, B, H), dtype)
    dm = cuda.device_array((B, H) if project else (0, H), dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, new = slots(t, reverse)
        if project:
            launch(k["grad_projected_output"], B * P, grad_out, off, lengths, t, dh, dhp)
            gemm(dh, p["weight_hr"], dm)
        launch(k["step_backward"], B * H, gates, cs, peep, lengths, t, prev, new, grad_out, off,
               dh, dm, project, dc, dgates, ptmp, ms)
        gemm(dgates[t], p["weight_hh"], dh, lengths=lengths, t=t)
    dx, grads = weight_gradients(x, hs, reverse, dgates, dgates, p["weight_ih"])
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


def gate_states(cache, reverse):
    """Per-step gates and states, (T, B, size) each, as NumPy arrays (copied from the device)."""
    return _cpu.gate_states(tuple(_arrays.asnumpy(a) for a in cache), reverse)
