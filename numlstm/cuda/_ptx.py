"""Compile every kernel to PTX without a GPU: a type check for the real CUDA target.

The CUDA simulator runs kernels as plain Python, so it cannot catch code that
Numba's CUDA compiler rejects. :func:`compile_all` compiles every kernel, for
float32 and float64, with ``numba.cuda.compile_ptx``, which needs NVVM (the
``numba-cuda[cu12]`` or ``[cu13]`` extra, or a CUDA toolkit) but no GPU or
driver. It also checks that no float32 kernel does float64 arithmetic.

Run it with ``python -m numlstm.cuda._ptx``.
"""

import contextlib

import numpy as np

# Argument codes: A1/A2/A3 float array of that many dims, L int64 vector,
# I int64 scalar, b boolean, F float scalar, D float64 vector.
SIGNATURES = {
    "_kernels": {
        "colsum": "A2 A1",
        "fill": "A1 F",
        "add": "A1 A1 A1",
        "multiply": "A1 A1 A1",
        "swap01": "A3 A3",
        "count_nonfinite": "A1 L",
        "copy2d": "A2 A2",
        "copy3d": "A3 A3",
        "scale": "A1 F",
        "sum_squares": "A1 D",
        "sgd_update": "A1 A1 A1 F F b F",
        "adam_update": "A1 A1 A1 A1 F F F F F F",
    },
    "lstm": {
        "step_forward": "A3 A2 A2 L I A2 A2 A2 b A3 A3 I b A3 I",
        "commit_projection": "A2 L I A3 I b A3 I",
        "grad_projected_output": "A3 I L I A2 A3",
        "step_backward": "A3 A3 A2 L I I I A3 I A2 A2 b A2 A3 A3 A3",
    },
    "gru": {
        "step_forward": "A3 A2 L I A2 A3 A3 I b A3 I",
        "step_backward": "A3 A3 A3 L I I A3 I A2 A3 A3",
    },
    "rnn": {
        "step_forward": "A3 A2 b L I A2 A3 I b A3 I",
        "step_backward": "A3 b L I A3 I A2 A3",
    },
}
GEMM_SIGNATURE = "A2 A2 A2 b b A1 b L I"


def _signature(codes, dtype):
    from numba import types
    ftype = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    table = {"A1": types.Array(ftype, 1, "A"), "A2": types.Array(ftype, 2, "A"),
             "A3": types.Array(ftype, 3, "A"), "L": types.Array(types.int64, 1, "A"),
             "I": types.int64, "b": types.boolean, "F": ftype,
             "D": types.Array(types.float64, 1, "A")}
    return tuple(table[c] for c in codes.split())


class _FakeDevice:
    def __init__(self, cc):
        self.compute_capability = cc


@contextlib.contextmanager
def _no_device(cc):
    """Device functions ask the current device for its compute capability; with no
    driver there is none, so answer ``cc`` while compiling."""
    try:
        from numba.cuda import dispatcher
    except ImportError:  # another numba-cuda layout: nothing to patch
        yield
        return
    saved = getattr(dispatcher, "get_current_device", None)
    if saved is None:
        yield
        return
    dispatcher.get_current_device = lambda: _FakeDevice(cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = saved


def compile_all(cc=(8, 0), tile=16):
    """Compile every kernel for both dtypes; return ``{name: ptx}``.

    Raises
    ------
    AssertionError
        If a float32 kernel's PTX contains float64 arithmetic.
    """
    with _no_device(cc):
        return _compile_all(cc, tile)


def _compile_all(cc, tile):
    from numba import cuda

    from numlstm.cuda import _kernels, gru, lstm, rnn
    modules = {"_kernels": _kernels, "lstm": lstm, "gru": gru, "rnn": rnn}
    ptx = {}
    for dtype in ("float32", "float64"):
        sources = {("gemm", "gemm"): (_kernels._gemm_source(tile, dtype), GEMM_SIGNATURE)}
        for mod_name, kernels in SIGNATURES.items():
            mod = modules[mod_name]
            found = (mod._helper_sources(dtype) if mod_name == "_kernels"
                     else mod._sources(dtype))
            assert set(found) == set(kernels), (mod_name, sorted(found))
            for name, codes in kernels.items():
                sources[(mod_name, name)] = (found[name], codes)
        for (mod_name, name), (fn, codes) in sources.items():
            text, _ = cuda.compile_ptx(fn, _signature(codes, dtype), cc=cc)
            key = f"{mod_name}.{name}[{dtype}]"
            if dtype == "float32":
                body = text[text.index("{"):]
                widened = [line for line in body.splitlines()
                           if ".f64" in line and name != "sum_squares"]
                assert not widened, f"{key} does float64 arithmetic: {widened[:3]}"
            ptx[key] = text
    return ptx


if __name__ == "__main__":
    for key, text in compile_all().items():
        print(f"{key}: {len(text)} characters of PTX")
