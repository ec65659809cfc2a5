"""Compile every kernel to PTX without a GPU: a type check for the real CUDA target.

The CUDA simulator runs kernels as plain Python, so it cannot catch code that
Numba's CUDA compiler rejects. ``compile_all`` compiles every kernel, for
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
}

FORWARD_SIGNATURE = "A3 A2 A3 A2 L b b A3 I A2 A2"
BACKWARD_SIGNATURE = "A3 A3 A2 A2 L b A3 I A2 A3"
GEMM_SIGNATURE = "A2 A2 A2 b b A1 b L I"


def recurrences():
    """The persistent recurrences (``numlstm.cuda._recurrence``) to compile, from the registry.

    One per cell family and CUDA variant (``spec.cuda_variants``), named like
    ``lstm_coupled``: ``{name: (spec, variant, module)}``. A cell module's
    ``CELL_ARGS`` gives the argument codes of its forward and backward
    ``cell`` tuples.
    """
    import importlib

    from numlstm.cells.registry import SPECS
    found = {}
    for spec in SPECS.values():
        module = importlib.import_module(f"numlstm.cuda.{spec.name}")
        for variant in spec.cuda_variants():
            name = "_".join([spec.name, *(k for k, v in variant.items() if v)])
            found[name] = (spec, variant, module)
    return found


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


def compile_all(cc=(8, 0), tile=16, work=4):
    """Compile every kernel for both dtypes; return ``{name: ptx}``.

    ``tile`` and ``work`` are the launch geometry (``numlstm.cuda._kernels.TILE``
    and ``GEMM_WORK``) to compile for.

    Raises
    ------
    AssertionError
        If a float32 kernel's PTX contains float64 arithmetic.
    """
    with _no_device(cc):
        return _compile_all(cc, tile, work)


def _compile_all(cc, tile, work):
    from numba import cuda

    from numba import types

    from numlstm.cuda import _kernels, _recurrence
    cells = recurrences()
    ptx = {}
    for dtype in ("float32", "float64"):
        sources = {("gemm", "gemm"): (_kernels._gemm_source(tile, work, dtype),
                                      _signature(GEMM_SIGNATURE, dtype)),
                   ("_kernels", "colsum"): (_kernels._colsum_source(tile, dtype),
                                            _signature("A2 A1", dtype))}
        helpers = _kernels._helper_sources(dtype)
        assert set(helpers) == set(SIGNATURES["_kernels"]), sorted(helpers)
        for name, codes in SIGNATURES["_kernels"].items():
            sources[("_kernels", name)] = (helpers[name], _signature(codes, dtype))
        for cell, (spec, variant, module) in cells.items():
            fwd_step, bwd_step = module._steps(dtype, **variant)
            fwd_cell, bwd_cell = module.CELL_ARGS
            n_gates = spec.n_gates(**variant)
            fwd = _recurrence.forward_kernel(dtype, tile, n_gates, fwd_step)
            bwd = _recurrence.backward_kernel(dtype, tile, n_gates, bwd_step, spec.accumulate)
            sources[(cell, "forward")] = (fwd.py_func, _signature(FORWARD_SIGNATURE, dtype) + (
                types.Tuple(_signature(fwd_cell, dtype)),))
            sources[(cell, "backward")] = (bwd.py_func, _signature(BACKWARD_SIGNATURE, dtype) + (
                types.Tuple(_signature(bwd_cell, dtype)),))
        for (mod_name, name), (fn, signature) in sources.items():
            text, _ = cuda.compile_ptx(fn, signature, cc=cc)
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
