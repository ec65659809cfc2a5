"""Pieces shared by the CUDA cell modules: argument staging, batched GEMMs, state slots.

The cell functions take host NumPy arrays or device arrays alike (see
:mod:`numlstm.cuda._arrays`). :class:`Staged` moves what is on the host to
the device once per call, and at the end writes the in-place results
(``out``, the state) back to whichever host arrays they came from; device
arguments are used, and updated, where they are.
"""

import numpy as np

from numlstm.cuda import _kernels
from numlstm.cuda._arrays import ascontiguous, is_device_array, to_device
from numlstm.cuda._kernels import colsum, gemm


def slots(t, reverse):
    """The stored-state slots read and written at step ``t``; see ``numlstm.cells.common``."""
    if reverse:
        return t + 1, t
    return t, t + 1


class Staged:
    """Device views of a call's arguments, with write-back to host originals.

    ``dtype`` is the dtype every floating argument must have.
    """

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self._writeback = []

    def array(self, a, inplace=False):
        """``a`` on the device; if ``inplace`` and ``a`` is a host array, copy back in :meth:`finish`.

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


def launch(kernel, n, *args):
    """Launch a one-dimensional kernel over ``n`` threads (nothing when ``n == 0``)."""
    if n:
        kernel[_kernels.blocks(n), _kernels.THREADS_PER_BLOCK](*args)


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


def weight_gradients(x, hs, reverse, dgx, dgh, weight_ih):
    """Input gradient and weight gradients, each one GEMM (or reduction) over every step."""
    T, B, I = x.shape
    G = dgx.shape[2]
    P = hs.shape[2]
    dgx2 = dgx.reshape(T * B, G)
    dgh2 = dgh.reshape(T * B, G)
    prev = previous_states(hs, reverse).reshape(T * B, P)
    grads = {
        "weight_ih": gemm(dgx2, x.reshape(T * B, I), trans_a=True),
        "weight_hh": gemm(dgh2, prev, trans_a=True),
        "bias_ih": colsum(dgx2),
        "bias_hh": colsum(dgh2),
    }
    dx = gemm(dgx2, weight_ih).reshape(T, B, I)
    return dx, grads


def results(host, dx, grads):
    """``(dx, grads)`` as NumPy arrays when the call came with host arrays."""
    if not host:
        return dx, grads
    return dx.copy_to_host(), {name: g.copy_to_host() for name, g in grads.items()}
