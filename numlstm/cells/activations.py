"""Scalar activations for the kernels, specialised on the float width.

``tanh`` and ``sigmoid`` are plain Python functions with Numba overloads:
inside a kernel, a float32 argument takes a branch-free rational
approximation that LLVM can vectorise (pip's llvmlite has no SVML, so
``math.tanh`` and ``math.exp`` stay scalar calls), while a float64 argument
takes the exact libm path so that float64 results match PyTorch to 1e-10.

Notes
-----
For float32 the approximation is

.. math:: \\tanh(x) \\approx x\\,P(x^2)/Q(x^2), \\quad |x| \\le 9,

with :math:`P` and :math:`Q` of degree 4 in :math:`x^2`, fitted here by
reweighted least squares on [0, 9]. Its maximum error, evaluated in float32
arithmetic, is 3.3e-7; the result is clipped to [-1, 1]. The sigmoid uses
:math:`\\sigma(x) = \\tfrac12\\tanh(x/2) + \\tfrac12`, so both stay finite for
every finite input.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

_CLIP = 9.0
_P = (0.9999999063603988, 0.13373194344274694, 0.0034865779530375784,
      2.0471767318865335e-05, 1.3184139391331229e-08)
_Q = (1.0, 0.4670649120555091, 0.02584196409701201,
      0.00032713790134140377, 7.702628248180965e-07)


def tanh(x):
    """Hyperbolic tangent (exact for float64, rational approximation for float32)."""
    return math.tanh(x)


def sigmoid(x):
    """Logistic sigmoid, stable for any finite input."""
    return 0.5 * math.tanh(0.5 * x) + 0.5


def _is_float32(x):
    return isinstance(x, types.Float) and x.bitwidth == 32


@overload(tanh)
def _tanh_overload(x):
    if _is_float32(x):
        clip = np.float32(_CLIP)
        p0, p1, p2, p3, p4 = (np.float32(c) for c in _P)
        q0, q1, q2, q3, q4 = (np.float32(c) for c in _Q)
        one = np.float32(1.0)

        def tanh_f32(x):
            x = min(max(x, -clip), clip)
            s = x * x
            p = (((p4 * s + p3) * s + p2) * s + p1) * s + p0
            q = (((q4 * s + q3) * s + q2) * s + q1) * s + q0
            return min(max(x * p / q, -one), one)

        return tanh_f32
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid)
def _sigmoid_overload(x):
    if _is_float32(x):
        half = np.float32(0.5)
        return lambda x: half * tanh(half * x) + half
    if isinstance(x, types.Float):
        def sigmoid_f64(x):
            if x >= 0.0:
                return 1.0 / (1.0 + math.exp(-x))
            e = math.exp(x)
            return e / (1.0 + e)

        return sigmoid_f64
    return None

