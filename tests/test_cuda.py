"""The CUDA kernels (numlstm.cuda) against the CPU kernels (numlstm.cells).

How these tests run
-------------------
``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is first imported, and the
rest of the suite imports Numba in the same pytest process. So:

* With a real GPU, or when this process already runs under the simulator
  (``NUMBA_ENABLE_CUDASIM=1 pytest tests/test_cuda.py``), the comparison tests
  below run right here.
* Otherwise (a plain ``pytest`` on a machine without a GPU), they are skipped
  here and :func:`test_cuda_simulator` runs this same file again in a child
  ``python -m pytest`` with ``NUMBA_ENABLE_CUDASIM=1``; it fails with the
  child's report when any simulated test fails.

Every test patches the launch geometry small (4 threads per block, 4x4
thread tiles, 2x2 outputs per GEMM thread) so that the tiny shapes (T = 4, B = 3, I = H = 3) span several
blocks and partial tiles. Everything skips when ``numba.cuda`` cannot be
imported.
"""

import importlib.util
import os
import subprocess
import sys
import time

import numpy as np
import pytest

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


def _cuda_importable():
    try:
        return importlib.util.find_spec("numba.cuda") is not None
    except (ImportError, ValueError):
        return False


def _cuda_usable():
    """A real GPU, or the simulator when it is enabled in this process."""
    if not _cuda_importable():
        return False
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:  # a broken driver or toolkit is "not usable", not a failure
        return False


CUDA_IMPORTABLE = _cuda_importable()
RUN_HERE = _cuda_usable()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

needs_cuda = pytest.mark.skipif(
    not RUN_HERE, reason="no GPU here: these run in the CUDA simulator, in a child process "
                         "started by test_cuda_simulator")

TOL = {np.float64: 1e-9, np.float32: 1e-5}


# ---- the child process -------------------------------------------------------------------

@pytest.mark.skipif(not CUDA_IMPORTABLE, reason="numba.cuda cannot be imported")
@pytest.mark.skipif(RUN_HERE, reason="the CUDA tests run directly in this process")
def test_cuda_simulator():
    """Run this file under ``NUMBA_ENABLE_CUDASIM=1`` in a child pytest."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q", "-p", "no:cacheprovider",
         "-o", "addopts=-ra"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    report = proc.stdout[-12000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, f"simulated CUDA tests failed ({elapsed:.0f} s):\n{report}"
    assert " passed" in proc.stdout, report


@pytest.mark.skipif(SIMULATOR or not CUDA_IMPORTABLE,
                    reason="the simulator cannot compile PTX (or numba.cuda is missing)")
def test_kernels_compile_to_ptx():
    """Every kernel, float32 and float64, through Numba's real CUDA compiler (no GPU needed).

    The simulator runs kernels as Python, so this is what catches code the CUDA
    target rejects. It needs NVVM (``numba-cuda[cu12]``); skipped without it.
    """
    from numba import cuda, types

    def probe(a):
        a[0] = 0

    try:
        cuda.compile_ptx(probe, (types.float32[:],), cc=(8, 0))
    except Exception as exc:  # no NVVM / toolkit: nothing to check with
        pytest.skip(f"cannot compile PTX here: {type(exc).__name__}: {str(exc)[:200]}")
    from numlstm.cuda import _ptx
    ptx = _ptx.compile_all()
    assert len(ptx) == 2 * (1 + 12 + 2 * 4)


# ---- fixtures and helpers ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def small_launches(monkeypatch):
    """Few threads per block and small tiles, so that several blocks and tile edges run."""
    if not RUN_HERE:
        yield
        return
    from numlstm.cuda import _kernels
    monkeypatch.setattr(_kernels, "THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(_kernels, "TILE", 4)
    monkeypatch.setattr(_kernels, "GEMM_WORK", 2)
    yield


# (name, cell module, kernel options, projection size)
CASES = {
    "lstm": ("lstm", {}, 0),
    "lstm_peephole": ("lstm", dict(peephole=True), 0),
    "lstm_coupled": ("lstm", dict(coupled=True), 0),
    "lstm_coupled_peephole": ("lstm", dict(coupled=True, peephole=True), 0),
    "lstm_proj": ("lstm", {}, 2),
    "lstm_proj_peephole": ("lstm", dict(peephole=True), 2),
    "gru": ("gru", {}, 0),
    "rnn_tanh": ("rnn", {"relu": False}, 0),
    "rnn_relu": ("rnn", {"relu": True}, 0),
}

T, B, I, H = 4, 3, 3, 3


def make_problem(case, dtype, reverse, seed=0, lengths=None):
    """Weights, input, states and output gradients for one direction of one layer."""
    from numlstm.cells.registry import SPECS
    cell, options, proj = CASES[case]
    spec = SPECS[cell]
    rng = np.random.default_rng(seed)
    P = proj or H
    G = spec.n_gates(**options) * H

    def w(*shape):
        return (0.6 * rng.standard_normal(shape)).astype(dtype)

    p = {"weight_ih": w(G, I), "weight_hh": w(G, P), "bias_ih": w(G), "bias_hh": w(G)}
    p.update({name: np.zeros((0, H), dtype) for name in spec.kernel_params})
    if proj:
        p["weight_hr"] = w(P, H)
    p.update({name: w(*shape) for name, shape in spec.extra_params(H, **options).items()})
    state = (w(B, P), w(B, H)) if len(spec.states) == 2 else (w(B, H),)
    if lengths is None:
        lengths = np.array([3, 4, 1] if reverse else [4, 2, 3], np.int64)
    return dict(cell=cell, options=options, p=p, x=w(T, B, I), state=state,
                lengths=np.asarray(lengths, np.int64), grad_out=w(T, B, 2 * P),
                dstate=tuple(w(*s.shape) for s in state), P=P, dtype=dtype)


def run(backend, prob, reverse, store=True):
    """Forward then backward (this direction writes the second half of ``out``)."""
    import importlib
    mod = importlib.import_module(f"{backend}.{prob['cell']}")
    P, dtype = prob["P"], prob["dtype"]
    state = tuple(s.copy() for s in prob["state"])
    out = np.full((T, B, 2 * P), 7.0, dtype)  # the other direction's columns must survive
    cache = mod.forward(prob["p"], prob["x"], state, prob["lengths"], reverse, out, P, store,
                        **prob["options"])
    res = {"out": out}
    res.update({f"state{i}": s for i, s in enumerate(state)})
    if not store:
        assert cache is None
        return res, None
    dstate = tuple(s.copy() for s in prob["dstate"])
    dx, grads = mod.backward(prob["p"], cache, prob["lengths"], reverse, prob["grad_out"], P,
                             dstate, **prob["options"])
    res["dx"] = dx
    res.update({f"dstate{i}": s for i, s in enumerate(dstate)})
    res.update({f"grad_{k}": v for k, v in grads.items()})
    res["gate_states"] = mod.gate_states(cache, reverse, **prob["options"])
    return res, cache


def max_errors(case, dtype, reverse, **kw):
    """Largest absolute cuda-vs-cpu difference of every result, by name."""
    prob = make_problem(case, dtype, reverse, **kw)
    cpu, _ = run("numlstm.cells", prob, reverse)
    gpu, _ = run("numlstm.cuda", prob, reverse)
    errors = {}
    # Past a sequence's length the gate values are unspecified (the layers show NaN there).
    steps = prob["x"].shape[0]
    running = np.arange(steps)[:, None] < prob["lengths"][None, :]
    for key, want in cpu.items():
        if key == "gate_states":
            for name, value in want.items():
                errors[f"gates:{name}"] = _maxdiff(np.asarray(gpu[key][name])[running],
                                                   np.asarray(value)[running])
        else:
            assert isinstance(gpu[key], np.ndarray), key
            assert gpu[key].dtype == want.dtype and gpu[key].shape == want.shape, key
            errors[key] = _maxdiff(gpu[key], want)
    return errors


def _maxdiff(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    return float(np.abs(got - want).max()) if want.size else 0.0


# ---- the cells against the CPU -----------------------------------------------------------

def _combinations():
    """Every (case, dtype, direction); under the simulator, a covering half of them.

    The simulator is slow, so by default each case runs twice there, once
    per dtype, with the direction alternating between cases: every case still
    meets both dtypes and both directions, and every (dtype, direction) pair
    meets both LSTM and RNN. ``NUMLSTM_CUDA_FULL=1`` runs the whole grid (as
    does a real GPU).
    """
    full = not SIMULATOR or os.environ.get("NUMLSTM_CUDA_FULL", "0") == "1"
    combos = []
    for n, case in enumerate(CASES):
        for dtype, name in ((np.float64, "f64"), (np.float32, "f32")):
            for reverse in (False, True):
                if full or reverse == ((n + (dtype is np.float32)) % 2 == 1):
                    combos.append(pytest.param(case, dtype, reverse,
                                               id=f"{case}-{name}-{'rev' if reverse else 'fwd'}"))
    return combos


@needs_cuda
@pytest.mark.parametrize("case, dtype, reverse", _combinations())
def test_cell_matches_cpu(case, dtype, reverse):
    errors = max_errors(case, dtype, reverse)
    bad = {k: v for k, v in errors.items() if not v <= TOL[dtype]}
    assert not bad, f"{case} {dtype.__name__} reverse={reverse}: {bad}"


@needs_cuda
@pytest.mark.skipif(SIMULATOR, reason="the simulator syncs a grid of one block only")
@pytest.mark.parametrize("case", ["lstm_proj_peephole", "lstm_coupled", "gru", "rnn_relu"])
def test_persistent_kernels_across_many_blocks(case, monkeypatch):
    """On a GPU: 37 rows and 45 units in 4x4 tiles give 120 blocks that meet at every step."""
    module = sys.modules[__name__]
    for name, value in dict(T=6, B=37, I=5, H=45).items():
        monkeypatch.setattr(module, name, value)
    lengths = np.random.default_rng(1).integers(1, 7, size=37)
    for reverse in (False, True):
        errors = max_errors(case, np.float64, reverse, lengths=lengths)
        assert max(errors.values()) < TOL[np.float64], errors


@needs_cuda
@pytest.mark.parametrize("case", ["lstm_proj_peephole", "gru", "rnn_relu"])
def test_full_lengths(case):
    """Every sequence at full length (no masking at all)."""
    errors = max_errors(case, np.float64, True, lengths=[T, T, T])
    assert max(errors.values()) <= 1e-9, errors


@needs_cuda
@pytest.mark.parametrize("case", ["lstm_coupled_peephole", "gru", "rnn_tanh"])
def test_inference_matches_cpu(case):
    """``store=False``: same outputs and states, and no cache."""
    prob = make_problem(case, np.float32, True)
    cpu, _ = run("numlstm.cells", prob, True, store=False)
    gpu, _ = run("numlstm.cuda", prob, True, store=False)
    for key in cpu:
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=0, atol=1e-5, err_msg=key)


@needs_cuda
@pytest.mark.parametrize("case", ["lstm_proj", "gru", "rnn_tanh"])
def test_device_arrays_in_place(case):
    """Device arguments are updated where they live; backward then returns device arrays."""
    import importlib

    import numlstm.cuda as nc
    prob = make_problem(case, np.float64, False)
    cpu, _ = run("numlstm.cells", prob, False)
    mod = importlib.import_module(f"numlstm.cuda.{prob['cell']}")
    P = prob["P"]
    p = {k: nc.to_device(v) for k, v in prob["p"].items()}
    # the layers hold every direction's states in one (L*D, B, size) array and pass views
    states = [nc.to_device(np.stack([np.zeros_like(s), s])) for s in prob["state"]]
    out = nc.to_device(np.full((T, B, 2 * P), 7.0))
    cache = mod.forward(p, nc.to_device(prob["x"]), tuple(s[1] for s in states),
                        nc.to_device(prob["lengths"]), False, out, P, True, **prob["options"])
    np.testing.assert_allclose(nc.asnumpy(out), cpu["out"], rtol=0, atol=1e-12)
    for i, s in enumerate(states):
        np.testing.assert_allclose(nc.asnumpy(s)[1], cpu[f"state{i}"], rtol=0, atol=1e-12)
        assert not nc.asnumpy(s)[0].any()
    dstate = tuple(nc.to_device(s) for s in prob["dstate"])
    dx, grads = mod.backward(p, cache, prob["lengths"], False, nc.to_device(prob["grad_out"]), P,
                             dstate, **prob["options"])
    assert nc.is_device_array(dx) and all(nc.is_device_array(g) for g in grads.values())
    np.testing.assert_allclose(nc.asnumpy(dx), cpu["dx"], rtol=0, atol=1e-12)
    for i, s in enumerate(dstate):
        np.testing.assert_allclose(nc.asnumpy(s), cpu[f"dstate{i}"], rtol=0, atol=1e-12)
    for k, g in grads.items():
        np.testing.assert_allclose(nc.asnumpy(g), cpu[f"grad_{k}"], rtol=0, atol=1e-12)


@needs_cuda
def test_wrong_device_dtype_is_rejected():
    import numlstm.cuda as nc
    prob = make_problem("rnn_tanh", np.float64, False)
    h = nc.to_device(prob["state"][0].astype(np.float32))
    out = np.zeros((T, B, 2 * H))
    with pytest.raises(TypeError, match="dtype"):
        nc.rnn.forward(prob["p"], prob["x"], (h,), prob["lengths"], False, out, 0, True)


# ---- the building blocks -----------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("M, K, N", [(5, 7, 6), (19, 13, 21)], ids=["one-block", "3x3-blocks"])
def test_gemm_variants(dtype, M, K, N):
    """Every transpose combination, bias, accumulation and the row mask, on ragged shapes.

    With the patched geometry a block computes an 8x8 tile in steps of 4
    along ``k``: the second shape spans 3x3 blocks, partial at the bottom
    and right edges, and its last step along ``k`` is partial too.
    """
    from numlstm.cuda import _kernels, to_device
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    tol = TOL[dtype] * 10
    for ta in (False, True):
        for tb in (False, True):
            da = to_device(np.ascontiguousarray(a.T) if ta else a)
            db = to_device(np.ascontiguousarray(b.T) if tb else b)
            got = _kernels.gemm(da, db, trans_a=ta, trans_b=tb, bias=to_device(bias))
            np.testing.assert_allclose(got.copy_to_host(), a @ b + bias, rtol=tol, atol=tol)
    c0 = rng.standard_normal((M, N)).astype(dtype)
    lengths = rng.integers(0, 4, size=M)
    assert 0 < (2 < lengths).sum() < M  # some rows masked, some updated
    c = to_device(c0)
    _kernels.gemm(to_device(a), to_device(b), c, accumulate=True, lengths=to_device(lengths), t=2)
    want = np.where((2 < lengths)[:, None], c0 + a @ b, c0)
    np.testing.assert_allclose(c.copy_to_host(), want, rtol=tol, atol=tol)


@needs_cuda
def test_array_helpers():
    import numlstm.cuda as nc
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2, 3, 5))
    b = rng.standard_normal((2, 3, 5))
    da = nc.to_device(a)
    assert nc.is_device_array(da) and not nc.is_device_array(a)
    assert nc.to_device(da) is da
    np.testing.assert_array_equal(nc.asnumpy(nc.add(da, b)), a + b)
    np.testing.assert_array_equal(nc.asnumpy(nc.multiply(da, nc.to_device(b))), a * b)
    np.testing.assert_array_equal(nc.asnumpy(nc.swap01(da)), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(nc.asnumpy(nc.zeros((3, 4), np.float32)), np.zeros((3, 4)))
    assert nc.zeros((3, 4), np.float32).dtype == np.float32
    assert nc.empty((2, 2), np.float64).shape == (2, 2)
    c = nc.copy(da)
    np.testing.assert_array_equal(nc.asnumpy(c), a)
    assert nc.all_finite(da)
    a[1, 2, 3] = np.nan
    assert not nc.all_finite(nc.to_device(a))
    a[1, 2, 3] = -np.inf
    assert not nc.all_finite(nc.to_device(a))


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_optimizer_kernels_match_numlstm_optim(dtype):
    """The fused SGD/Adam kernels take the steps numlstm.optim takes on the host."""
    import numlstm.cuda as nc
    from numlstm.optim import SGD, Adam
    rng = np.random.default_rng(3)
    shapes = [(5, 3), (7,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(2)]
    tol = 1e-12 if dtype is np.float64 else 1e-6
    for nesterov in (False, True):
        host = [p.copy() for p in params]
        dev = [nc.to_device(p) for p in params]
        vel = [nc.zeros(s, dtype) for s in shapes]
        opt = SGD(host, 0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01)
        for g in grads:
            opt.update_params(host, g)
            for p, gi, v in zip(dev, g, vel):
                nc.sgd_update(p, nc.to_device(gi), v, 0.1, 0.9, nesterov, 0.01)
        for p, d in zip(host, dev):
            np.testing.assert_allclose(nc.asnumpy(d), p, rtol=tol, atol=tol)
    host = [p.copy() for p in params]
    dev = [nc.to_device(p) for p in params]
    ms = [nc.zeros(s, dtype) for s in shapes]
    vs = [nc.zeros(s, dtype) for s in shapes]
    opt = Adam(host, 0.01, weight_decay=0.01)
    for step, g in enumerate(grads, 1):
        opt.update_params(host, g)
        for p, gi, m, v in zip(dev, g, ms, vs):
            nc.adam_update(p, nc.to_device(gi), m, v, step, 0.01, 0.9, 0.999, 1e-8, 0.01)
    for p, d in zip(host, dev):
        np.testing.assert_allclose(nc.asnumpy(d), p, rtol=tol, atol=tol)
    g = nc.to_device(grads[0][0])
    assert abs(nc.sum_squares(g) - float(np.sum(grads[0][0].astype(np.float64) ** 2))) < 1e-5
    nc.scale(g, 0.5)
    np.testing.assert_allclose(nc.asnumpy(g), grads[0][0] * dtype(0.5), rtol=tol)


@needs_cuda
def test_assign_and_ascontiguous():
    import numlstm.cuda as nc
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4, 5))
    d = nc.zeros((3, 4, 5), np.float64)
    nc.assign(d, a)
    np.testing.assert_array_equal(nc.asnumpy(d), a)
    strided = d[:, 1:3, ::2]
    assert not strided.is_c_contiguous()
    c = nc.ascontiguous(strided)
    assert c.is_c_contiguous()
    np.testing.assert_array_equal(nc.asnumpy(c), a[:, 1:3, ::2])
    np.testing.assert_array_equal(nc.asnumpy(nc.ascontiguous(d[1, :, ::2])), a[1, :, ::2])
    assert nc.ascontiguous(d) is d


# ---- the layers with device="cuda" -------------------------------------------------------

# (layer, arguments, dtype, whether the caller passes device arrays)
LAYER_CASES = [
    ("LSTM", dict(bidirectional=True, proj_size=2, peephole=True), "float64", False),
    ("GRU", dict(num_layers=2, batch_first=True, bias=False), "float32", True),
    ("RNN", dict(nonlinearity="relu", bidirectional=True), "float64", True),
]


@needs_cuda
@pytest.mark.parametrize("name, kwargs, dtype, device_io", LAYER_CASES,
                         ids=[c[0] for c in LAYER_CASES])
def test_layer_on_cuda_matches_cpu(name, kwargs, dtype, device_io):
    """End to end through the layer: host arrays in give host arrays out, device give device."""
    import numlstm
    import numlstm.cuda as nc
    cls = getattr(numlstm, name)
    cpu = cls(3, 3, dtype=dtype, seed=1, **kwargs)
    gpu = cls(3, 3, dtype=dtype, seed=1, device="cuda", **kwargs)
    if not nc.is_device_array(next(iter(gpu.params.values()))):
        pytest.skip("numlstm.layers does not keep device='cuda' weights on the device yet")
    tol = TOL[np.dtype(dtype).type]
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 3) if kwargs.get("batch_first") else (3, 2, 3)).astype(dtype)
    lengths = np.array([3, 2])

    def flat(v):
        return list(v) if isinstance(v, tuple) else [v]

    out_c, st_c = cpu(x, lengths=lengths)
    go = rng.standard_normal(out_c.shape).astype(dtype)
    gx_c, gh_c = cpu.backward(go)
    wrap = nc.to_device if device_io else (lambda a: a)
    out_g, st_g = gpu(wrap(x), lengths=lengths)
    gx_g, gh_g = gpu.backward(wrap(go))
    for want, got in zip([out_c, *flat(st_c), gx_c, *flat(gh_c)],
                         [out_g, *flat(st_g), gx_g, *flat(gh_g)]):
        assert nc.is_device_array(got) == device_io
        np.testing.assert_allclose(nc.asnumpy(got), want, rtol=tol, atol=tol)
    for key, want in cpu.grads.items():
        np.testing.assert_allclose(nc.asnumpy(gpu.grads[key]), want, rtol=tol, atol=tol,
                                   err_msg=key)
    for key, want in cpu.state_dict().items():
        np.testing.assert_array_equal(gpu.state_dict()[key], want)


@needs_cuda
@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_optimizers_and_clipping_on_mixed_device_and_host_params(name):
    """numlstm.optim updates device params on the device, host params as before; state follows params."""
    import numlstm.cuda as nc
    from numlstm import optim
    rng = np.random.default_rng(7)
    shapes = [(4, 3), (5,), (2, 3)]
    start = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(2)]
    kwargs = dict(learning_rate=0.1, weight_decay=0.01) | (
        dict(momentum=0.9, nesterov=True) if name == "SGD" else {})
    host = [p.copy() for p in start]
    mixed = [nc.to_device(start[0]), nc.to_device(start[1]), start[2].copy()]  # head on the host
    opt_host = getattr(optim, name)(host, **kwargs)
    opt_mixed = getattr(optim, name)(mixed, **kwargs)
    for g in grads:
        g_host = [a.copy() for a in g]
        g_mixed = [nc.to_device(g[0]), nc.to_device(g[1]), g[2].copy()]
        norm = optim.clip_grad_norm(g_host, 1.0)
        assert optim.clip_grad_norm(g_mixed, 1.0) == pytest.approx(norm, rel=1e-12)
        for a, b in zip(g_host, g_mixed):
            np.testing.assert_allclose(nc.asnumpy(b), a, rtol=1e-12, atol=1e-15)
        opt_host.update_params(host, g_host)
        opt_mixed.update_params(mixed, g_mixed)
    for a, b in zip(host, mixed):
        np.testing.assert_allclose(nc.asnumpy(b), a, rtol=1e-12, atol=1e-14)
    buffers = opt_mixed.velocities if name == "SGD" else opt_mixed.ms
    assert [nc.is_device_array(b) for b in buffers] == [True, True, False]


# ---- the estimators with device="cuda" ---------------------------------------------------

# Tiny: 4 float64 sequences of <= 3 steps (one padded), one batch per epoch, 2 epochs.
ESTIMATOR_KW = dict(hidden_size=3, max_iter=2, batch_size=4, learning_rate=0.05, random_state=0)


def _estimator_data():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((4, 3, 2))
    X[1, 2:] = np.nan
    return X, X[:, 0, 0] + rng.standard_normal(4), np.array(["a", "b", "a", "b"])


def test_auto_device_takes_the_gpu():
    if not RUN_HERE:
        pytest.skip("no GPU here: runs in the CUDA simulator child process")
    from numlstm import LSTMRegressor
    assert LSTMRegressor(device="auto")._resolve_device() == "cuda"
    assert LSTMRegressor(device="cuda")._resolve_device() == "cuda"


@needs_cuda
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["LSTMRegressor", "LSTMClassifier"])
def test_estimator_on_cuda_matches_cpu(name, tmp_path, monkeypatch):
    """fit/predict with device="cuda" against device="cpu"; saved and pickled models load on a CPU."""
    import pickle

    import numlstm
    import numlstm.cuda as nc
    from numlstm import _backend
    cls = getattr(numlstm, name)
    X, y_reg, y_clf = _estimator_data()
    y = y_reg if name == "LSTMRegressor" else y_clf
    cpu = cls(device="cpu", **ESTIMATOR_KW).fit(X, y)
    gpu = cls(device="cuda", **ESTIMATOR_KW).fit(X, y)
    assert gpu.device == "cuda" and gpu.device_ == "cuda"
    assert all(nc.is_device_array(p) for p in gpu.network_.layer.params.values())
    assert all(nc.is_device_array(b) for b in gpu._optimizer.ms[:-2])  # Adam moments of the layer
    tol = TOL[np.float64]
    np.testing.assert_allclose(gpu.loss_curve_, cpu.loss_curve_, rtol=tol, atol=tol)
    for key, want in cpu.network_.state_dict().items():
        np.testing.assert_allclose(gpu.network_.state_dict()[key], want, rtol=tol, atol=tol, err_msg=key)
    predict = "predict" if name == "LSTMRegressor" else "predict_proba"
    got = getattr(gpu, predict)(X)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_allclose(got, getattr(cpu, predict)(X), rtol=tol, atol=tol)
    if name == "LSTMClassifier":
        np.testing.assert_array_equal(gpu.classes_[got.argmax(axis=1)], cpu.predict(X))
        blob = pickle.dumps(gpu)  # host copies of the weights and of the optimizer state
        restored = pickle.loads(blob)
        assert restored.device_ == "cuda"
        assert all(nc.is_device_array(p) for p in restored.network_.layer.params.values())
        np.testing.assert_array_equal(getattr(restored, predict)(X), got)
    else:
        gpu.save(tmp_path / "model.npz")
        restored = numlstm.load(tmp_path / "model.npz")
        assert restored.device_ == "cuda"
        np.testing.assert_array_equal(getattr(restored, predict)(X), got)
    # Where no GPU is usable, the same file or pickle comes back on the CPU.
    monkeypatch.setattr(_backend, "cuda_available", lambda: False)
    restored = (pickle.loads(blob) if name == "LSTMClassifier"
                else numlstm.load(tmp_path / "model.npz"))
    assert restored.device == "cuda" and restored.device_ == "cpu"
    assert not any(nc.is_device_array(p) for p in restored.network_.parameters())
    np.testing.assert_allclose(getattr(restored, predict)(X), got, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="device='cuda'"):
        cls(device="cuda", **ESTIMATOR_KW).fit(X, y)
