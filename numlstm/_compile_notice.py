"""Say when a first use of a cell's kernels is about to compile them.

Numba compiles each kernel on its first call in a process, or loads it from
the on-disk cache (see ``numlstm._config``). Compiling a cell family's
kernels takes seconds to tens of seconds, which looks like a hang to someone
running numlstm for the first time. Before a layer first runs a cell family
in a dtype, ``announce`` looks at that cell module's kernels: if none of
them has a version for the dtype, compiled in this process or in its cache
index on disk, the call is about to compile, and it says so once, as an INFO
message on the ``"numlstm"`` logger and on stderr (above a progress bar, if
one is showing), so that a first run on a new machine does not sit silent.

The cache check reads Numba's cache index, an internal of Numba's; when it
cannot be read, a kernel counts as not cached, so the worst case is a notice
where none was needed, never silence during a compile.
"""

import logging
import sys

import numpy as np
from numba.core.registry import CPUDispatcher
from numba.np.numpy_support import from_dtype

from numlstm import _config

__all__ = ["announce", "is_compiled", "message", "uncompiled"]

logger = logging.getLogger("numlstm")

_announced = set()


def _kernels(module):
    """The Numba CPU kernels that ``module`` defines and that are compiled on their own (not inlined)."""
    return [obj for obj in vars(module).values()
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == module.__name__
            and obj.targetoptions.get("inline", "never") == "never"]


def _has_version(kernel, dtype):
    """Whether ``kernel`` has a version for ``dtype`` arrays, in this process or in its disk cache."""
    def for_dtype(signature):
        return any(getattr(arg, "dtype", None) == dtype for arg in signature)

    if any(for_dtype(signature) for signature in kernel.signatures):
        return True
    try:  # Numba internals: a disabled cache (NullCache) has no _cache_file
        index = kernel._cache._cache_file._load_index()
        magic = kernel.targetctx.codegen().magic_tuple()
    except AttributeError:
        return False
    return any(key[1] == magic and for_dtype(key[0]) for key in index)


def is_compiled(module, dtype):
    """Whether a call of ``module``'s kernels in ``dtype`` will find them compiled or cached.

    Parameters
    ----------
    module : module
        A cell module, e.g. ``numlstm.cells.lstm``.
    dtype : dtype-like
        float32 or float64.

    Returns
    -------
    bool
        True when at least one of the module's kernels already has a version
        for ``dtype``, in this process or in Numba's on-disk cache, or when
        the module has no Numba CPU kernels (CUDA modules); False when the
        call will compile.
    """
    kernels = _kernels(module)
    return not kernels or len(uncompiled(module, dtype)) < len(kernels)


def uncompiled(module, dtype):
    """Names of ``module``'s Numba CPU kernels with no ``dtype`` version yet, in this process or on disk."""
    numba_dtype = from_dtype(np.dtype(dtype))
    return [kernel.__name__ for kernel in _kernels(module) if not _has_version(kernel, numba_dtype)]


def announce(module, cell_name, dtype):
    """Say once per process, on the logger and stderr, if the first call of ``module``'s kernels in
    ``dtype`` will compile them.

    Parameters
    ----------
    module : module
        The cell module whose kernels are about to run.
    cell_name : str
        The name users know the cell by, e.g. ``"LSTM"``.
    dtype : dtype-like
        float32 or float64.
    """
    key = (module.__name__, np.dtype(dtype))  # not .name: a property in Python, on every forward
    if key in _announced:
        return
    _announced.add(key)
    if is_compiled(module, dtype):
        return
    text = message(cell_name, dtype)
    logger.info(text)
    tqdm = sys.modules.get("tqdm")  # a progress bar may be on screen: write above it
    if tqdm is None:
        print(f"numlstm: {text}", file=sys.stderr, flush=True)
    else:
        tqdm.tqdm.write(f"numlstm: {text}", file=sys.stderr)


def message(cell_name, dtype):
    """The notice that ``cell_name``'s kernels are compiling in ``dtype``.

    For example "compiling float32 LSTM kernels (...)".
    """
    if _config.CACHE:
        why = "first use only; later runs load them from the cache"
    else:
        why = "the disk cache is off, NUMLSTM_DISABLE_CACHE is set: every new process compiles"
    return f"compiling {np.dtype(dtype).name} {cell_name} kernels ({why})"
