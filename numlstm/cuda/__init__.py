"""GPU kernels (``numba.cuda``), one module per registered cell family (``lstm``, ``gru``, ...).

Each module mirrors ``numlstm.cells`` (same function names and
signatures), so ``numlstm._backend.get_backend`` can hand either package
to the layers. The functions accept host NumPy arrays or device arrays (any
object with ``__cuda_array_interface__`` is used without a copy) and keep
every intermediate on the device for the whole sequence.

The array helpers below let the layers allocate and combine arrays on the
device without knowing about Numba.

Launch geometry lives in ``numlstm.cuda._kernels`` (``THREADS_PER_BLOCK``
and ``TILE``); tests patch both small.
"""

from numlstm.cuda._arrays import (adam_update, add, all_finite, ascontiguous, asnumpy, assign,
                                  copy, empty, is_device_array, multiply, scale, sgd_update,
                                  sum_squares, swap01, to_device, zeros)
from numlstm.cells.registry import SPECS, load_modules

load_modules(__name__, ("forward", "backward", "gate_states", "_steps"))

__all__ = [*SPECS, "is_device_array", "to_device", "asnumpy", "empty", "zeros",
           "copy", "assign", "ascontiguous", "add", "multiply", "swap01", "all_finite", "scale",
           "sum_squares", "sgd_update", "adam_update"]
