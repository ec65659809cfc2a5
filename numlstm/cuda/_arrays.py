"""Host/device array helpers for the layers and for the cell modules.

Device arrays are Numba device arrays. Any object with
``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors, Numba device
arrays) is wrapped without a copy; NumPy arrays and other array-likes are
copied to the device. Under the CUDA simulator the device arrays are the
simulator's ``FakeCUDAArray``.
"""

import math

import numpy as np
from numba import cuda

from numlstm.cuda import _kernels

__all__ = ["is_device_array", "to_device", "asnumpy", "empty", "zeros", "copy", "assign",
           "ascontiguous", "add", "multiply", "swap01", "all_finite", "scale", "sum_squares",
           "sgd_update", "adam_update"]


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


def assign(dst, src):
    """Copy ``src`` (host or device, same shape) into the contiguous device array ``dst``."""
    if is_device_array(src):
        src = to_device(src, dst.dtype)
        if src.shape != dst.shape:
            raise ValueError(f"assign: shapes differ, {dst.shape} and {src.shape}")
        if dst.size:
            dst.copy_to_device(ascontiguous(src))
        return dst
    src = np.ascontiguousarray(src, dtype=dst.dtype)
    if src.shape != dst.shape:
        raise ValueError(f"assign: shapes differ, {dst.shape} and {src.shape}")
    if dst.size:
        dst.copy_to_device(src)
    return dst


def ascontiguous(a):
    """``a`` itself if it is a C-contiguous device array, else a contiguous device copy (1-3 D)."""
    a = to_device(a)
    if a.is_c_contiguous() or a.size == 0:
        return a
    if a.ndim not in (2, 3):
        raise ValueError(f"ascontiguous supports 2-D and 3-D arrays, got {a.ndim}-D")
    out = cuda.device_array(a.shape, a.dtype)
    name = "copy2d" if a.ndim == 2 else "copy3d"
    _kernels.helpers(np.dtype(a.dtype).name)[name][
        _kernels.blocks(a.size), _kernels.THREADS_PER_BLOCK](a, out)
    return out


def scale(a, factor):
    """``a *= factor`` in place, for a contiguous device array."""
    a = to_device(a)
    if a.size:
        dt = np.dtype(a.dtype)
        _kernels.helpers(dt.name)["scale"][_kernels.blocks(a.size), _kernels.THREADS_PER_BLOCK](
            _flat(a), dt.type(factor))
    return a


def sum_squares(a):
    """The sum of squares of a contiguous device array, as a Python float (float64 sum)."""
    a = to_device(a)
    total = cuda.to_device(np.zeros(1, np.float64))
    if a.size:
        _kernels.helpers(np.dtype(a.dtype).name)["sum_squares"][
            _kernels.blocks(a.size), _kernels.THREADS_PER_BLOCK](_flat(a), total)
    return float(total.copy_to_host()[0])


def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov, weight_decay=0.0):
    """One fused ``torch.optim.SGD`` step on device arrays, in place.

    ``v = momentum * v + (g + weight_decay * param)``, then
    ``param -= learning_rate * (g + momentum * v if nesterov else v)``, as
    ``numlstm.optim.SGD`` does on the host.
    """
    dt = np.dtype(param.dtype)
    if param.size:
        _kernels.helpers(dt.name)["sgd_update"][
            _kernels.blocks(param.size), _kernels.THREADS_PER_BLOCK](
            _flat(param), _flat(to_device(grad, dt)), _flat(velocity), dt.type(learning_rate),
            dt.type(momentum), bool(nesterov), dt.type(weight_decay))
    return param


def adam_update(param, grad, m, v, step, learning_rate, beta_1, beta_2, epsilon,
                weight_decay=0.0):
    """One fused ``torch.optim.Adam`` step (``step`` counts from 1) on device arrays, in place.

    Same arithmetic as ``numlstm.optim.Adam``: moments updated in place,
    ``param -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.
    """
    dt = np.dtype(param.dtype)
    step_size = learning_rate / (1 - beta_1 ** step)
    root_correction = math.sqrt(1 - beta_2 ** step)
    if param.size:
        _kernels.helpers(dt.name)["adam_update"][
            _kernels.blocks(param.size), _kernels.THREADS_PER_BLOCK](
            _flat(param), _flat(to_device(grad, dt)), _flat(m), _flat(v), dt.type(step_size),
            dt.type(beta_1), dt.type(beta_2), dt.type(root_correction), dt.type(epsilon),
            dt.type(weight_decay))
    return param
