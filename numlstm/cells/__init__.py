"""CPU kernels, one module per cell family: ``lstm``, ``gru`` and ``rnn``.

Each module offers ``forward(p, x, state, lengths, reverse, out, off, store)``
and ``backward(p, cache, lengths, reverse, grad_out, off, dstate)`` for one
direction of one layer; ``numlstm.cuda`` mirrors them for the GPU.
"""

from numlstm.cells import gru, lstm, rnn

__all__ = ["lstm", "gru", "rnn"]
