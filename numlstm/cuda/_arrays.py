"""Host/device array helpers for the layers and for the cell modules.

Device arrays are Numba device arrays. Any object with
``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors, Numba device
arrays) is wrapped without a copy; NumPy arrays and other array-likes are
copied to the device. Under the CUDA simulator the device arrays are the
simulator's ``FakeCUDAArray``.
"""

import numpy as np
from numba import cuda

from numlstm.cuda import _kernels

__all__ = ["is_device_array", "to_device", "asnumpy", "empty", "zeros", "copy", "add",
           "multiply", "swap01", "all_finite"]


def is_device_array(a):
    """Whether ``a`` lives on the device (a Numba device array or any CUDA-array-interface object)."""
    # The CUDA simulator's arrays have no __cuda_array_interface__, only __cuda_ndarray__.
    return hasattr(a, "__cuda_array_interface__") or _is_numba_device_array(a)


def _is_numba_device_array(a):
    return bool(getattr(a, "__cuda_ndarray__", False))


def to_device(a, dtype=None):
    """``a`` as a Numba device array of ``dtype``.

    A device array of the right dtype is returned as it is (a CUDA-array-
    interface object is wrapped, not copied), so kernels writing into the
    result write into ``a``. A host array is copied to the device (C order).

    Raises
    ------
    TypeError
        If ``a`` is a device array of another dtype: casting would need a
        copy, and the caller would silently lose in-place updates.
    """
    if is_device_array(a):
        if not _is_numba_device_array(a):
            a = cuda.as_cuda_array(a)
        if dtype is not None and np.dtype(a.dtype) != np.dtype(dtype):
            raise TypeError(f"device array has dtype {np.dtype(a.dtype)}, expected "
                            f"{np.dtype(dtype)}; cast it on the device first")
        return a
    return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))


def asnumpy(a):
    """A NumPy copy of a device array; host arrays are returned as NumPy arrays."""
    if is_device_array(a):
        return to_device(a).copy_to_host()
    return np.asarray(a)


def empty(shape, dtype):
    """An uninitialised device array."""
    return cuda.device_array(shape, np.dtype(dtype))


def _flat(a):
    return a.reshape(a.size)


def zeros(shape, dtype):
    """A device array of zeros, filled on the device."""
    out = cuda.device_array(shape, np.dtype(dtype))
    if out.size:
        dt = np.dtype(dtype)
        _kernels.helpers(dt.name)["fill"][_kernels.blocks(out.size),
                                          _kernels.THREADS_PER_BLOCK](_flat(out), dt.type(0))
    return out


def copy(a):
    """A device copy of a contiguous device array."""
    a = to_device(a)
    out = cuda.device_array(a.shape, a.dtype)
    if a.size:
        out.copy_to_device(a)
    return out


def _binary(name, a, b):
    a, b = to_device(a), to_device(b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: shapes differ, {a.shape} and {b.shape}")
    out = cuda.device_array(a.shape, a.dtype)
    if a.size:
        _kernels.helpers(np.dtype(a.dtype).name)[name][
            _kernels.blocks(a.size), _kernels.THREADS_PER_BLOCK](_flat(a), _flat(b), _flat(out))
    return out


def add(a, b):
    """``a + b`` for two contiguous device arrays of one shape and dtype, as a new array."""
    return _binary("add", a, b)


def multiply(a, b):
    """``a * b`` for two contiguous device arrays of one shape and dtype, as a new array."""
    return _binary("multiply", a, b)


def swap01(a):
    """A C-contiguous device copy of a 3-D array with its first two axes swapped.

    Turns batch-first ``(B, T, F)`` into time-major ``(T, B, F)`` and back.
    ``a`` may be any strided device array.
    """
    a = to_device(a)
    n0, n1, n2 = a.shape
    out = cuda.device_array((n1, n0, n2), a.dtype)
    if out.size:
        _kernels.helpers(np.dtype(a.dtype).name)["swap01"][
            _kernels.blocks(out.size), _kernels.THREADS_PER_BLOCK](a, out)
    return out


def all_finite(a):
    """Whether a contiguous device array holds no NaN or infinity (one scalar comes back)."""
    a = to_device(a)
    if a.size == 0:
        return True
    count = cuda.to_device(np.zeros(1, np.int64))
    _kernels.helpers(np.dtype(a.dtype).name)["count_nonfinite"][
        _kernels.blocks(a.size), _kernels.THREADS_PER_BLOCK](_flat(a), count)
    return int(count.copy_to_host()[0]) == 0
