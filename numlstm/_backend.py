"""The one place that picks the kernels for a device."""

import functools
import importlib

from numlstm import cells

DEVICES = ("cpu", "cuda")


def get_backend(device):
    """Return the package of cell modules for ``device``, one per registered cell family.

    The modules are named like the specs of ``numlstm.cells.registry.SPECS``.

    Raises
    ------
    ValueError
        If ``device`` is unknown, or is ``"cuda"`` and no usable CUDA GPU
        (or the ``numba-cuda`` package) is present.
    """
    if device == "cpu":
        return cells
    if device == "cuda":
        if not cuda_available():
            raise ValueError(
                "device='cuda' was requested but no usable CUDA GPU was found; "
                "install the 'gpu' extra (numba-cuda) on a machine with an NVIDIA GPU, "
                "or use device='cpu'")
        return importlib.import_module("numlstm.cuda")
    raise ValueError(f"device must be one of {DEVICES}, got {device!r}")


@functools.cache
def cuda_available():
    """Whether ``device='cuda'`` can run here (a GPU, or the CUDA simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        importlib.import_module("numlstm.cuda")
    except ImportError:
        return False
    return bool(cuda.is_available())
