"""CPU kernels, one module per cell family: ``lstm``, ``gru`` and ``rnn``.

Each module offers ``forward(p, x, state, lengths, reverse, out, off, store)``
and ``backward(p, cache, lengths, reverse, grad_out, off, dstate)`` for one
direction of one layer; ``numlstm.cuda`` mirrors them for the GPU, together
with the array helpers re-exported here.
"""

from numlstm.cells._arrays import (add, all_finite, ascontiguous, asnumpy, assign, copy, empty,
                                   is_device_array, multiply, swap01, to_device, zeros)
from numlstm.cells import gru, lstm, rnn

__all__ = ["lstm", "gru", "rnn", "is_device_array", "to_device", "asnumpy", "empty", "zeros",
           "copy", "assign", "ascontiguous", "add", "multiply", "swap01", "all_finite"]
