"""Where a numlstm forward spends its time: input GEMM, per-step recurrent GEMM, the rest.

    python benchmarks/breakdown.py                       # LSTM and GRU at B=1 and B=64
    python benchmarks/breakdown.py --sizes 100x8x32x128 --cells lstm

For one cell and size it times, with the thread limits of compare.py (2 threads):
- the whole inference forward (``numlstm.no_grad()``);
- the input projection alone: one (T*B, I) x (I, G*H) GEMM through NumPy, plus the bias;
- the recurrent GEMMs alone: T calls of ``np.dot(h, W_hh.T, out)`` with (B, H) x (H, G*H)
  inside a Numba loop, as the kernel issues them;
and reports "pointwise and overhead" as the whole minus both GEMM parts. This is a model of
the kernel, not an instrumentation of it: if the kernel stops doing per-step ``np.dot``
(e.g. its own micro-kernel), the split is an estimate of what the GEMMs alone would cost.
"""

import argparse
import os
import sys

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C  # noqa: E402
else:
    from . import _common as C

_recurrent = None


def _recurrent_kernel():
    global _recurrent
    if _recurrent is None:
        import numba

        @numba.njit(nogil=True)
        def recurrent(h, w_t, hh, T):
            for _ in range(T):
                np.dot(h, w_t, hh)
            return hh

        _recurrent = recurrent
    return _recurrent


def breakdown(cell, size, repeats=7, min_time=0.05):
    T, B, I, H = size
    G = C.GATES[cell] * H
    w = C.Workload(cell, size, with_torch=False)
    rng = np.random.default_rng(0)
    w_ih = rng.standard_normal((G, I)).astype(np.float32)
    w_hh = rng.standard_normal((G, H)).astype(np.float32)
    bias = rng.standard_normal(G).astype(np.float32)
    h = rng.standard_normal((B, H)).astype(np.float32)
    hh = np.empty((B, G), np.float32)
    x2 = w.x.reshape(T * B, I)
    rec = _recurrent_kernel()

    def input_gemm():
        g = x2 @ w_ih.T
        g += bias
        return g

    def recurrent():
        rec(h, w_hh.T, hh, T)

    res = C.measure_alternating(
        {"forward": w.nl_inference, "input": input_gemm, "recurrent": recurrent},
        repeats=repeats, min_time=min_time, warmup=2, pause=0.0,
    )
    rest = res["forward"] - res["input"] - res["recurrent"]
    return res, rest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100x1x32x128,100x64x128x256")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--threads", type=int, default=C.THREADS)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    sizes = [C.parse_size(s) for s in args.sizes.split(",")]
    print(f"{'cell':>4} {'T x B x I x H':>15} {'forward ms':>11} {'input GEMM':>14} {'recurrent GEMM':>16} "
          f"{'pointwise+other':>17}")
    with C.limited_threads(args.threads):
        for cell in args.cells.split(","):
            for size in sizes:
                res, rest = breakdown(cell, size, args.repeats)
                f = res["forward"]
                print(f"{cell:>4} {C.size_label(size):>15} {f * 1e3:11.3f} "
                      f"{res['input'] * 1e3:8.3f} {100 * res['input'] / f:3.0f}% "
                      f"{res['recurrent'] * 1e3:10.3f} {100 * res['recurrent'] / f:3.0f}% "
                      f"{rest * 1e3:11.3f} {100 * rest / f:3.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
