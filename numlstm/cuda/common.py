"""Pieces shared by the CUDA cell modules: argument staging, batched GEMMs, the recurrences.

The cell functions take host NumPy arrays or device arrays alike (see
``numlstm.cuda._arrays``). ``Staged`` moves what is on the host to
the device once per call, and at the end writes the in-place results
(``out``, the state) back to whichever host arrays they came from; device
arguments are used, and updated, where they are.
"""

import numpy as np
from numba import cuda

from numlstm.cuda import _kernels, _recurrence
from numlstm.cuda._arrays import ascontiguous, copy, is_device_array, to_device
from numlstm.cuda._kernels import colsum, gemm


class Staged:
    """Device views of a call's arguments, with write-back to host originals.

    ``dtype`` is the dtype every floating argument must have.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._writeback = []

    def array(self, a, inplace=False):
        """``a`` on the device; if ``inplace`` and ``a`` is a host array, copy back in ``finish``.

        A strided device array that is only read is copied to a contiguous one
        (the batched GEMMs view it as 2-D); one updated in place is used as it is.
        """
        if is_device_array(a):
            return to_device(a, self.dtype) if inplace else ascontiguous(to_device(a, self.dtype))
        d = to_device(np.asarray(a, dtype=self.dtype))
        if inplace:
            if not isinstance(a, np.ndarray) or a.dtype != self.dtype:
                raise TypeError("an in-place argument must be a NumPy array of the input's "
                                f"dtype {self.dtype} or a device array")
            self._writeback.append((d, a))
        return d

    def lengths(self, lengths):
        if is_device_array(lengths):
            return to_device(lengths, np.int64)
        return to_device(np.asarray(lengths, dtype=np.int64))

    def params(self, p):
        """Every weight of ``p`` on the device (device weights are used in place)."""
        return {name: self.array(value) for name, value in p.items()}

    def finish(self):
        for d, host in self._writeback:
            host[...] = d.copy_to_host()
        self._writeback.clear()


def recur_forward(step, n_gates, gates, w_hh, h, lengths, reverse, store, out, off, cell,
                  w_hr=None):
    """Run every step of one direction in one persistent launch; returns the state slots.

    ``gates`` (T, B, n_gates H) holds the input projections and is turned into
    the gate activations; ``h`` (B, P) is the initial state and gets the
    final one. ``step`` and ``cell`` are the cell's pointwise device function
    and its arrays (see ``numlstm.cuda._recurrence.forward_kernel``);
    ``w_hr`` (P, H) projects an LSTM's output. The result ``hs`` holds every
    step's state, (T + 1, B, P), with ``store``, else two working slots.
    """
    T, B, G = gates.shape
    H = G // n_gates
    P = h.shape[1]
    dtype = np.dtype(gates.dtype)
    hs = cuda.device_array((T + 1 if store else 2, B, P), dtype)
    hs[_recurrence.first_slot(T, reverse, store)].copy_to_device(h)
    if w_hr is None:
        w_hr = cuda.device_array((0, H), dtype)
    m = cuda.device_array((B, H) if w_hr.shape[0] else (0, H), dtype)
    tile = _kernels.TILE
    kernel = _recurrence.forward_kernel(dtype.name, tile, n_gates, step)
    tiles = max(_recurrence.n_tiles(B, H, tile), _recurrence.n_tiles(B, P, tile))
    _recurrence.launch(kernel, tiles, (gates, w_hh, hs, h, lengths, bool(reverse), bool(store),
                                       out, int(off), w_hr, m, cell))
    return hs


def recur_backward(step, n_gates, accumulate, dgx, dgh, w_hh, dh, lengths, reverse, grad_out,
                   off, cell, w_hr=None):
    """Take one direction's gradient back through every step in one persistent launch.

    Fills the pre-activation gradients ``dgx`` and ``dgh`` (T, B, n_gates H)
    and updates ``dh`` (B, P) in place; see
    ``numlstm.cuda._recurrence.backward_kernel`` for ``step``, ``cell``
    and ``accumulate``. With a projection ``w_hr`` (P, H), returns the
    gradient of every step's projected output, (T, B, P); else None.
    """
    T, B, G = dgx.shape
    H = G // n_gates
    P = dh.shape[1]
    dtype = np.dtype(dgx.dtype)
    if w_hr is None:
        w_hr = cuda.device_array((0, H), dtype)
    dhp = cuda.device_array((T, B, P) if w_hr.shape[0] else (0, B, P), dtype)
    tile = _kernels.TILE
    kernel = _recurrence.backward_kernel(dtype.name, tile, n_gates, step, accumulate)
    tiles = max(_recurrence.n_tiles(B, H, tile), _recurrence.n_tiles(B, P, tile))
    _recurrence.launch(kernel, tiles, (dgx, dgh, w_hh, dh, lengths, bool(reverse), grad_out,
                                       int(off), w_hr, dhp, cell))
    return dhp if w_hr.shape[0] else None


def input_projection(x, weight_ih, bias):
    """``x @ weight_ih.T + bias`` for every step: one GEMM, (T, B, G) on the device."""
    T, B, I = x.shape
    G = weight_ih.shape[0]
    gates = gemm(x.reshape(T * B, I), weight_ih, trans_b=True, bias=bias)
    return gates.reshape(T, B, G)


def previous_states(hs, reverse):
    """The state each step started from, (T, B, P), from the stored slots."""
    return hs[1:] if reverse else hs[:-1]


def new_states(hs, reverse):
    """The state each step produced, (T, B, P), from the stored slots."""
    return hs[:-1] if reverse else hs[1:]


def weight_gradients(x, hs, reverse, dgx, dgh, weight_ih, need_dx=True):
    """Input gradient and weight gradients, each one GEMM (or reduction) over every step.

    The input gradient is None without ``need_dx``.
    """
    T, B, I = x.shape
    G = dgx.shape[2]
    P = hs.shape[2]
    dgx2 = dgx.reshape(T * B, G)
    dgh2 = dgh.reshape(T * B, G)
    prev = previous_states(hs, reverse).reshape(T * B, P)
    bias_ih = colsum(dgx2)
    grads = {
        "weight_ih": gemm(dgx2, x.reshape(T * B, I), trans_a=True),
        "weight_hh": gemm(dgh2, prev, trans_a=True),
        "bias_ih": bias_ih,
        # one gradient for both biases when the cell does not tell dgx and dgh apart
        "bias_hh": copy(bias_ih) if dgh is dgx else colsum(dgh2),
    }
    dx = gemm(dgx2, weight_ih).reshape(T, B, I) if need_dx else None
    return dx, grads


def results(host, dx, grads):
    """``(dx, grads)`` as NumPy arrays when the call came with host arrays."""
    if not host:
        return dx, grads
    return (None if dx is None else dx.copy_to_host()), {name: g.copy_to_host()
                                                        for name, g in grads.items()}
