"""Shared helpers for the asv suite and ``compare.py``.

Nothing here may be named with an asv benchmark prefix (``time_``, ``track_``,
``peakmem_``, ``mem_``, ``timeraw_``): asv imports this module too.
"""

import contextlib
import math
import os
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    # An installed numlstm (pip install -e .) wins; otherwise use this checkout.
    sys.path.append(REPO)

# (T, B, I, H), smallest to largest, as issue 4 lists them.
SIZES = [
    (100, 1, 8, 32),
    (100, 1, 32, 128),
    (100, 8, 32, 128),
    (100, 32, 32, 128),
    (100, 64, 128, 256),
    (50, 128, 256, 512),
]
CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
THREADS = 2


def size_label(size):
    return "x".join(str(v) for v in size)


def parse_size(label):
    parts = tuple(int(v) for v in str(label).lower().replace(",", "x").split("x"))
    if len(parts) != 4:
        raise ValueError(f"size must be TxBxIxH, got {label!r}")
    return parts


def gemm_flops(cell, size, mode):
    """Floating-point operations of the GEMMs of one layer, one direction.

    Forward: the input projection (T*B, I) x (I, G*H) plus T recurrent products
    (B, H) x (H, G*H), each multiply-add counted as 2 flops:
    ``2 * T * B * G * H * (I + H)`` with G = 4 (LSTM) or 3 (GRU).
    Backward needs two GEMMs per forward GEMM (gradient w.r.t. the input or
    hidden state, and w.r.t. the weights), so forward+backward counts 3x the
    forward. Pointwise gate work, biases and reductions are not counted.
    """
    T, B, I, H = size
    fwd = 2.0 * T * B * GATES[cell] * H * (I + H)
    return fwd if mode == "inference" else 3.0 * fwd


def import_numlstm():
    import numlstm

    return numlstm


def require(*modules):
    """Import numlstm and ``modules``, or raise ``NotImplementedError``, which asv reports as a skip."""
    import importlib

    try:
        for name in ("numlstm", *modules):
            importlib.import_module(name)
    except ImportError as exc:
        raise NotImplementedError(str(exc)) from exc


def import_torch():
    """Return torch, or None when it is not installed (it is never required)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def have_layers():
    try:
        numlstm = import_numlstm()
    except ImportError:
        return False
    return hasattr(numlstm, "LSTM") and hasattr(numlstm, "GRU")


@contextlib.contextmanager
def limited_threads(n=THREADS, torch=None):
    """Numba threads, BLAS threads (threadpoolctl) and torch threads set to ``n``."""
    import numba
    from threadpoolctl import threadpool_limits

    prev_numba = numba.get_num_threads()
    prev_torch = torch.get_num_threads() if torch is not None else None
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=n):
            if torch is not None:
                torch.set_num_threads(n)
            yield
    finally:
        numba.set_num_threads(prev_numba)
        if torch is not None:
            torch.set_num_threads(prev_torch)


class ThreadGuard:
    """Non-context-manager form of ``limited_threads`` for asv setup/teardown."""

    def __init__(self, n=THREADS, torch=None):
        self._cm = limited_threads(n, torch)
        self._cm.__enter__()

    def close(self):
        if self._cm is not None:
            self._cm.__exit__(None, None, None)
            self._cm = None


def make_input(size, seed=0):
    T, B, I, _ = size
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    return x


def make_grad_out(size, seed=1):
    T, B, _, H = size
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, B, H)).astype(np.float32)


def make_numlstm_layer(cell, size, seed=0, device="cpu"):
    numlstm = import_numlstm()
    _, _, I, H = size
    cls = {"lstm": numlstm.LSTM, "gru": numlstm.GRU}[cell]
    return cls(I, H, dtype="float32", seed=seed, device=device)


def make_torch_layer(torch, cell, size, seed=0):
    _, _, I, H = size
    torch.manual_seed(seed)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    return cls(I, H).float()


def copy_weights(torch_layer, layer):
    layer.load_state_dict({k: v.detach().numpy().copy() for k, v in torch_layer.state_dict().items()})


class Workload:
    """The four callables (numlstm / torch x inference / forward+backward) for one cell and size.

    With ``device="cuda"`` both libraries run on the GPU with their inputs already there (Numba
    device arrays for numlstm, CUDA tensors for torch), and every callable ends with a device
    synchronisation, so that a timing covers the work and not just its launch.
    """

    def __init__(self, cell, size, with_torch=True, seed=0, device="cpu"):
        self.cell, self.size, self.device = cell, size, device
        numlstm = import_numlstm()
        self.numlstm = numlstm
        self.torch = import_torch() if with_torch else None
        x, g = make_input(size, seed), make_grad_out(size, seed + 1)
        self.layer = make_numlstm_layer(cell, size, seed, device)
        if device == "cuda":
            from numba import cuda

            self._sync_numlstm = cuda.synchronize
            self.x, self.g = cuda.to_device(x), cuda.to_device(g)
        else:
            self._sync_numlstm = lambda: None
            self.x, self.g = x, g
        if self.torch is not None:
            tlayer = make_torch_layer(self.torch, cell, size, seed)
            copy_weights(tlayer, self.layer)
            self.tlayer = tlayer.to(device)
            self._sync_torch = self.torch.cuda.synchronize if device == "cuda" else lambda: None
            self.xt = self.torch.from_numpy(x.copy()).to(device)
            self.xt_grad = self.xt.clone().requires_grad_(True)
            self.gt = self.torch.from_numpy(g.copy()).to(device)

    # numlstm
    def nl_inference(self):
        with self.numlstm.no_grad():
            out = self.layer(self.x)
        self._sync_numlstm()
        return out

    def nl_fwd_bwd(self):
        self.layer(self.x)
        grads = self.layer.backward(self.g)
        self._sync_numlstm()
        return grads

    # torch
    def pt_inference(self):
        with self.torch.inference_mode():
            out = self.tlayer(self.xt)
        self._sync_torch()
        return out

    def pt_fwd_bwd(self):
        self.xt_grad.grad = None
        for p in self.tlayer.parameters():
            p.grad = None
        out, _ = self.tlayer(self.xt_grad)
        out.backward(self.gt)
        self._sync_torch()

    def fn(self, lib, mode):
        prefix = {"numlstm": "nl_", "torch": "pt_"}[lib]
        return getattr(self, prefix + {"inference": "inference", "fwd_bwd": "fwd_bwd"}[mode])

    def max_abs_diff(self):
        """Largest |numlstm - torch| over the inference output (a sanity check, not a test)."""
        out = self.nl_inference()[0]
        out = out.copy_to_host() if self.device == "cuda" else out
        ref = self.pt_inference()[0].cpu().numpy()
        return float(np.max(np.abs(out - ref)))


def _one_sample(fn, number):
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def calibrate(fn, min_time):
    """Inner-loop count so that one sample of ``fn`` lasts at least ``min_time`` seconds."""
    t = _one_sample(fn, 1)
    if t <= 0:
        return 1000
    return max(1, int(math.ceil(min_time / t)))


def measure_alternating(fns, repeats=7, min_time=0.05, warmup=2, pause=0.02):
    """Median seconds per call for each callable, alternating between them.

    ``fns`` is a dict name -> callable. Every callable is warmed up, then each
    repeat runs one sample of every callable in turn (the order rotates between
    repeats), so slow drifts of the machine hit all of them alike. ``pause``
    seconds of sleep separate the samples, so OpenMP/BLAS threads spinning after
    one library cannot steal cycles from the next.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    numbers = {name: calibrate(fns[name], min_time) for name in names}
    samples = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if pause:
                time.sleep(pause)
            samples[name].append(_one_sample(fns[name], numbers[name]))
    return {name: statistics.median(samples[name]) for name in names}


def _busy_jiffies():
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat; None where unavailable."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]) - idle, sum(v[:8])


class ForeignLoad:
    """Average number of cores kept busy by *other* processes between ``start()`` and ``stop()``.

    Machine-wide busy CPU time from /proc/stat minus this process's own CPU time
    (and its children's). Benchmarks on a shared machine are only as good as this is small.
    """

    def start(self):
        self._j0, self._t0, self._w0 = _busy_jiffies(), os.times(), time.perf_counter()
        return self

    def stop(self):
        j1, t1, w1 = _busy_jiffies(), os.times(), time.perf_counter()
        if self._j0 is None or j1 is None:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        machine = (j1[0] - self._j0[0]) / hz
        own = sum(t1[:4]) - sum(self._t0[:4])
        return max(0.0, (machine - own) / (w1 - self._w0))


def probe_foreign_load(seconds=1.0):
    load = ForeignLoad().start()
    time.sleep(seconds)
    return load.stop()


def measure_sgemm(n=2048, repeats=5):
    """Best achieved float32 GEMM rate in GFLOPS, numpy's and scipy's BLAS (current thread limits)."""
    import scipy.linalg.blas as sblas

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    af, bf = np.asfortranarray(a), np.asfortranarray(b)
    out = np.empty((n, n), np.float32)
    flops = 2.0 * n**3
    res = {}
    for name, fn in (
        ("numpy", lambda: np.matmul(a, b, out=out)),
        ("scipy", lambda: sblas.sgemm(1.0, af, bf)),
    ):
        fn()
        best = min(_one_sample(fn, 1) for _ in range(repeats))
        res[name] = flops / best / 1e9
    return res


# ---------------------------------------------------------------- estimators
# Shared by bench_estimators.py and compare.py: 512 sequences x 50 steps x 8 features,
# hidden_size 64, batch_size 32, Adam, no early stopping.

N_SAMPLES, N_STEPS, N_FEATURES, HIDDEN, BATCH = 512, 50, 8, 64, 32


def estimator_data(kind, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N_SAMPLES, N_STEPS, N_FEATURES)).astype(np.float32)
    signal = X[:, -10:, 0].mean(axis=1) + 0.5 * X[:, :, 1].mean(axis=1)
    if kind == "regressor":
        y = signal.astype(np.float32)
    else:
        y = (signal > 0).astype(np.int64)
    return X, y


def estimator_kwargs(cell, max_iter=1):
    return dict(
        cell=cell,
        hidden_size=HIDDEN,
        batch_size=BATCH,
        max_iter=max_iter,
        optimizer="adam",
        learning_rate=1e-3,
        early_stopping=False,
        random_state=0,
    )


def make_estimator(kind, cell, max_iter=1):
    numlstm = import_numlstm()
    name = {"regressor": "LSTMRegressor", "classifier": "LSTMClassifier"}[kind]
    if not hasattr(numlstm, name):
        raise NotImplementedError(f"numlstm.{name} not available yet")
    return getattr(numlstm, name)(**estimator_kwargs(cell, max_iter))
