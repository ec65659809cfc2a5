"""CPU kernels, one module per cell family of ``numlstm.cells.registry.SPECS``.

Each module offers ``forward(p, x, state, lengths, reverse, out, off, store,
**options)``, ``backward(p, cache, lengths, reverse, grad_out, off, dstate,
need_dx=True, **options)`` and ``gate_states(cache, reverse, **options)`` for
one direction of one layer (``numlstm.cells.driver`` generates the first two
from the module's step functions); ``numlstm.cuda`` mirrors them for the
GPU, together with the array helpers re-exported here.
"""

from numlstm.cells._arrays import (add, all_finite, ascontiguous, asnumpy, assign, copy, empty,
                                   is_device_array, multiply, swap01, to_device, zeros)
from numlstm.cells.registry import SPECS, load_modules

load_modules(__name__)

__all__ = [*SPECS, "is_device_array", "to_device", "asnumpy", "empty", "zeros", "copy", "assign",
           "ascontiguous", "add", "multiply", "swap01", "all_finite"]
