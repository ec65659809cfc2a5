"""Layer benchmarks: forward inference and forward+backward, float32, 2 threads.

Every benchmark skips (NotImplementedError in setup) until ``numlstm.LSTM``
and ``numlstm.GRU`` exist; the ``track_*_ratio_torch`` ones also skip when
torch is not importable.
"""

from ._common import (
    CELLS,
    SIZES,
    ThreadGuard,
    Workload,
    gemm_flops,
    have_layers,
    import_torch,
    measure_alternating,
    parse_size,
    size_label,
)

SIZE_LABELS = [size_label(s) for s in SIZES]

try:  # imported once in asv's forkserver, not again in every benchmark process
    import numba  # noqa: F401
    import numlstm  # noqa: F401
except ImportError:
    pass


def _setup(obj, cell, size, with_torch):
    if not have_layers():
        raise NotImplementedError("numlstm.LSTM / numlstm.GRU not available yet")
    torch = import_torch() if with_torch else None
    if with_torch and torch is None:
        raise NotImplementedError("torch is not installed")
    obj.guard = ThreadGuard(torch=torch)
    obj.w = Workload(cell, parse_size(size), with_torch=with_torch)
    # compile (or load from the on-disk cache) outside the timed region
    obj.w.nl_fwd_bwd()
    obj.w.nl_inference()


def _teardown(obj):
    guard = getattr(obj, "guard", None)
    if guard is not None:
        guard.close()


class Layer:
    """``time_*``: seconds per call of the numlstm layer."""

    params = (list(CELLS), SIZE_LABELS)
    param_names = ["cell", "size"]
    timeout = 300

    def setup(self, cell, size):
        _setup(self, cell, size, with_torch=False)

    def teardown(self, cell, size):
        _teardown(self)

    def time_forward_inference(self, cell, size):
        self.w.nl_inference()

    def time_forward_backward(self, cell, size):
        self.w.nl_fwd_bwd()


class LayerGflops:
    """Achieved GEMM GFLOPS (see ``_common.gemm_flops`` for what is counted)."""

    params = (list(CELLS), SIZE_LABELS, ["inference", "fwd_bwd"])
    param_names = ["cell", "size", "mode"]
    unit = "GFLOPS"
    timeout = 300

    def setup(self, cell, size, mode):
        _setup(self, cell, size, with_torch=False)

    def teardown(self, cell, size, mode):
        _teardown(self)

    def track_gflops(self, cell, size, mode):
        sec = measure_alternating({"nl": self.w.fn("numlstm", mode)}, repeats=3, min_time=0.05, warmup=1, pause=0)["nl"]
        return gemm_flops(cell, parse_size(size), mode) / sec / 1e9


class LayerRatioTorch:
    """numlstm time / torch time (both 2 threads, alternating, median); < 1 means numlstm is faster."""

    params = (list(CELLS), SIZE_LABELS, ["inference", "fwd_bwd"])
    param_names = ["cell", "size", "mode"]
    unit = "ratio"
    timeout = 300

    def setup(self, cell, size, mode):
        _setup(self, cell, size, with_torch=True)

    def teardown(self, cell, size, mode):
        _teardown(self)

    def track_ratio_torch(self, cell, size, mode):
        res = measure_alternating(
            {"numlstm": self.w.fn("numlstm", mode), "torch": self.w.fn("torch", mode)},
            repeats=3,
            min_time=0.05,
            warmup=1,
            pause=0.02,
        )
        return res["numlstm"] / res["torch"]


class LayerPeakmem:
    """Peak resident memory of forward+backward at the largest size."""

    params = (list(CELLS), [SIZE_LABELS[-1]])
    param_names = ["cell", "size"]
    timeout = 300

    def setup(self, cell, size):
        _setup(self, cell, size, with_torch=False)

    def teardown(self, cell, size):
        _teardown(self)

    def peakmem_forward_backward(self, cell, size):
        self.w.nl_fwd_bwd()
