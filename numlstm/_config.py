"""Numba settings shared by every kernel, in one place.

``FASTMATH`` is a set of LLVM fast-math flags that leaves out ``nnan`` and
``ninf``, so NaN and infinity checks inside kernels keep working. ``CACHE``
turns on Numba's on-disk cache so that a fresh process does not recompile.
Set ``NUMLSTM_DISABLE_CACHE=1`` in the environment to compile in memory only.
"""

import contextlib
import os

import numba
import numpy as np

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("NUMLSTM_DISABLE_CACHE", "0") not in ("1", "true", "True")
DEFAULT_DTYPE = np.float32
SUPPORTED_DTYPES = (np.float32, np.float64)

JIT_OPTIONS = {"nogil": True, "cache": CACHE, "fastmath": FASTMATH, "error_model": "numpy"}


@contextlib.contextmanager
def num_threads(n):
    """Run a block with ``n`` Numba threads, restoring the previous count afterwards."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
