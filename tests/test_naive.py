"""Tests of the NumPy reference (tests/naive.py) against the PyTorch golden
fixtures and against properties that follow from the equations.  No torch."""

import math
import warnings

import numpy as np
import pytest

import naive
from golden_io import golden_hx, golden_names, golden_params, load_golden

NAMES = golden_names()


def run_golden(config, arrays, params=None, x=None, hx=None):
    """naive.forward on a fixture (optionally with replaced inputs)."""
    return naive.forward(
        config["cell"],
        arrays["x"] if x is None else x,
        golden_params(arrays) if params is None else params,
        num_layers=config["num_layers"],
        bidirectional=config["bidirectional"],
        hx=golden_hx(config, arrays) if hx is None else hx,
        lengths=arrays.get("lengths"),
        nonlinearity=config["nonlinearity"],
        proj_size=config["proj_size"],
    )


def split(config, result):
    out, state = result
    if config["cell"] == "lstm":
        return {"out": out, "h_n": state[0], "c_n": state[1]}
    return {"out": out, "h_n": state}


# --------------------------------------------------------------------------
# golden fixtures
# --------------------------------------------------------------------------
def test_fixtures_present():
    assert len(NAMES) == 18
    assert {n.rsplit("_", 1)[1] for n in NAMES} == {"f32", "f64"}


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_torch(name):
    config, arrays = load_golden(name)
    tol = 1e-10 if config["dtype"] == "float64" else 1e-5
    got = split(config, run_golden(config, arrays))
    for key, value in got.items():
        assert value.dtype == np.dtype(config["dtype"]), key
        assert value.shape == arrays[key].shape, key
        np.testing.assert_allclose(value, arrays[key], rtol=0, atol=tol,
                                   err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", NAMES)
def test_init_params_names_and_shapes(name):
    config, arrays = load_golden(name)
    ref = golden_params(arrays)
    params = naive.init_params(
        config["cell"], config["input_size"], config["hidden_size"],
        num_layers=config["num_layers"], bidirectional=config["bidirectional"],
        proj_size=config["proj_size"], bias=config["bias"],
        rng=np.random.default_rng(0))
    assert list(params) == list(ref)   # same names, torch's order
    assert list(params) == naive.param_names(
        config["cell"], num_layers=config["num_layers"],
        bidirectional=config["bidirectional"], proj_size=config["proj_size"],
        bias=config["bias"])
    for k in ref:
        assert params[k].shape == ref[k].shape, k
        bound = 1 / math.sqrt(config["hidden_size"])
        assert np.all(np.abs(params[k]) <= bound)


def _loss(config, arrays, result):
    got = split(config, result)
    total = np.sum(got["out"] * arrays["grad_out"])
    total += np.sum(got["h_n"] * arrays["grad_h_n"])
    if config["cell"] == "lstm":
        total += np.sum(got["c_n"] * arrays["grad_c_n"])
    return total


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("_f64")])
def test_golden_gradients_by_finite_differences(name):
    """The stored torch gradients agree with central differences of naive."""
    config, arrays = load_golden(name)
    rng = np.random.default_rng(0)
    params = golden_params(arrays)
    inputs = {"x": arrays["x"], "h0": arrays["h0"]}
    if config["cell"] == "lstm":
        inputs["c0"] = arrays["c0"]
    eps = 1e-6

    def loss(p=params, inp=inputs):
        hx = (inp["h0"], inp["c0"]) if config["cell"] == "lstm" else inp["h0"]
        return _loss(config, arrays, run_golden(config, arrays, p, inp["x"], hx))

    targets = [("param", k) for k in params] + [("input", k) for k in inputs]
    for kind, key in targets:
        base = params if kind == "param" else inputs
        grad = arrays[f"grad/{key}"]
        for flat in rng.choice(grad.size, size=min(4, grad.size), replace=False):
            idx = np.unravel_index(flat, grad.shape)
            vals = []
            for sign in (1, -1):
                moved = dict(base)
                moved[key] = base[key].copy()
                moved[key][idx] += sign * eps
                vals.append(loss(moved, inputs) if kind == "param"
                            else loss(params, moved))
            fd = (vals[0] - vals[1]) / (2 * eps)
            assert abs(fd - grad[idx]) < 1e-6, (name, key, idx, fd, grad[idx])


@pytest.mark.parametrize("name", [n for n in NAMES if "lengths" in n])
def test_golden_grad_x_zero_past_lengths(name):
    _, arrays = load_golden(name)
    T = arrays["x"].shape[0]
    past = np.arange(T)[:, None] >= arrays["lengths"][None, :]
    assert np.all(arrays["grad/x"][past] == 0)
    assert np.all(arrays["out"][past] == 0)


# --------------------------------------------------------------------------
# properties of the reference itself
# --------------------------------------------------------------------------
CASES = [
    ("lstm", {}),
    ("lstm", dict(proj_size=2)),
    ("lstm", dict(peephole=True)),
    ("lstm", dict(coupled=True)),
    ("lstm", dict(peephole=True, coupled=True, proj_size=2)),
    ("gru", {}),
    ("rnn", dict(nonlinearity="tanh")),
    ("rnn", dict(nonlinearity="relu")),
]
T, B, I, H = 6, 4, 3, 5


def _setup(cell, opts, *, num_layers=2, bidirectional=True, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    init_opts = {k: v for k, v in opts.items() if k != "nonlinearity"}
    params = naive.init_params(cell, I, H, num_layers=num_layers,
                               bidirectional=bidirectional, bias=bias,
                               rng=rng, **init_opts)
    D = 2 if bidirectional else 1
    Hout = opts.get("proj_size", 0) or H
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((num_layers * D, B, Hout))
    hx = (h0, rng.standard_normal((num_layers * D, B, H))) if cell == "lstm" else h0
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, **opts)
    return params, x, hx, kw


def _states(cell, result):
    out, state = result
    return [out] + (list(state) if cell == "lstm" else [state])


def _select(cell, hx, b):
    """The initial state of batch entry b only."""
    if cell == "lstm":
        return hx[0][:, b:b + 1], hx[1][:, b:b + 1]
    return hx[:, b:b + 1]


@pytest.mark.parametrize("cell,opts", CASES)
def test_lengths_equal_truncated_sequences(cell, opts):
    """Each sequence with length L gives what its first L steps give alone,
    in every layer and both directions; outputs past L are zero."""
    params, x, hx, kw = _setup(cell, opts)
    lengths = np.array([3, 6, 1, 4])
    out, *finals = _states(cell, naive.forward(cell, x, params, hx=hx,
                                               lengths=lengths, **kw))
    for b, L in enumerate(lengths):
        alone = _states(cell, naive.forward(cell, x[:L, b:b + 1], params,
                                            hx=_select(cell, hx, b), **kw))
        np.testing.assert_allclose(out[:L, b], alone[0][:, 0], atol=1e-14)
        assert np.all(out[L:, b] == 0)
        for got, ref in zip(finals, alone[1:]):
            np.testing.assert_allclose(got[:, b], ref[:, 0], atol=1e-14)


@pytest.mark.parametrize("cell,opts", CASES)
def test_reverse_direction_is_forward_on_flipped_input(cell, opts):
    """One bidirectional layer: the reverse half equals a unidirectional run
    with the _reverse weights on the time-flipped truncated sequence."""
    params, x, hx, kw = _setup(cell, opts, num_layers=1)
    lengths = np.array([2, 6, 5, 3])
    out, *finals = _states(cell, naive.forward(cell, x, params, hx=hx,
                                               lengths=lengths, **kw))
    Hout = out.shape[2] // 2
    rev = {k.replace("_reverse", ""): v for k, v in params.items()
           if k.endswith("_reverse")}
    kw1 = dict(kw, bidirectional=False)
    for b, L in enumerate(lengths):
        hx_b = _select(cell, hx, b)
        hx_rev = (tuple(s[1:2] for s in hx_b) if cell == "lstm" else hx_b[1:2])
        ref = _states(cell, naive.forward(cell, x[:L, b:b + 1][::-1], rev,
                                          hx=hx_rev, **kw1))
        np.testing.assert_allclose(out[:L, b, Hout:], ref[0][::-1, 0], atol=1e-14)
        for got, r in zip(finals, ref[1:]):
            np.testing.assert_allclose(got[1, b], r[0, 0], atol=1e-14)


@pytest.mark.parametrize("cell,opts", CASES)
def test_single_steps_match_forward(cell, opts):
    params, x, hx, kw = _setup(cell, opts, num_layers=1, bidirectional=False)
    p = {k[:-3]: v for k, v in params.items()}   # drop "_l0"
    h = hx[0][0] if cell == "lstm" else hx[0]
    out, *finals = _states(cell, naive.forward(cell, x[:1], params, hx=hx, **kw))
    if cell == "lstm":
        h1, c1 = naive.lstm_step(x[0], h, hx[1][0], p["weight_ih"],
                                 p["weight_hh"], p["bias_ih"], p["bias_hh"],
                                 w_hr=p.get("weight_hr"),
                                 w_peephole=p.get("weight_peephole"),
                                 coupled=opts.get("coupled", False))
        np.testing.assert_array_equal(finals[1][0], c1)
    elif cell == "gru":
        h1 = naive.gru_step(x[0], h, p["weight_ih"], p["weight_hh"],
                            p["bias_ih"], p["bias_hh"])
    else:
        h1 = naive.rnn_step(x[0], h, p["weight_ih"], p["weight_hh"],
                            p["bias_ih"], p["bias_hh"], opts["nonlinearity"])
    np.testing.assert_array_equal(out[0], h1)
    np.testing.assert_array_equal(finals[0][0], h1)


def _scalar_lstm(x, h, c, w_ih, w_hh, b, peep, coupled):
    """A second, scalar spelling of the peephole / coupled LSTM (H=1, B=1)."""
    def sig(v):
        return 1 / (1 + math.exp(-v))

    z = [w_ih[k] @ x + w_hh[k, 0] * h + b[k] for k in range(len(b))]
    if coupled:
        zi, zg, zo = z
        pi, po = peep
        i = sig(zi + pi * c)
        f = 1 - i
    else:
        zi, zf, zg, zo = z
        pi, pf, po = peep
        i = sig(zi + pi * c)
        f = sig(zf + pf * c)
    c = f * c + i * math.tanh(zg)
    o = sig(zo + po * c)
    return o * math.tanh(c), c


@pytest.mark.parametrize("coupled", [False, True])
def test_peephole_and_coupled_by_scalar_loop(coupled):
    rng = np.random.default_rng(3)
    params = naive.init_params("lstm", 2, 1, peephole=True, coupled=coupled,
                               rng=rng)
    params = {k: 3 * v for k, v in params.items()}    # make peepholes matter
    x = rng.standard_normal((7, 1, 2))
    h0, c0 = rng.standard_normal((1, 1, 1)), rng.standard_normal((1, 1, 1))
    out, (h_n, c_n) = naive.forward("lstm", x, params, hx=(h0, c0),
                                    peephole=True, coupled=coupled)
    h, c = h0[0, 0, 0], c0[0, 0, 0]
    b = params["bias_ih_l0"] + params["bias_hh_l0"]
    for t in range(7):
        h, c = _scalar_lstm(x[t, 0], h, c, params["weight_ih_l0"],
                            params["weight_hh_l0"], b,
                            params["weight_peephole_l0"][:, 0], coupled)
        assert abs(out[t, 0, 0] - h) < 1e-14
    assert abs(h_n[0, 0, 0] - h) < 1e-14 and abs(c_n[0, 0, 0] - c) < 1e-14


def test_zero_peephole_is_plain_lstm():
    params, x, hx, kw = _setup("lstm", dict(peephole=True))
    plain = {k: v for k, v in params.items() if "peephole" not in k}
    zeroed = {k: (0 * v if "peephole" in k else v) for k, v in params.items()}
    a = _states("lstm", naive.forward("lstm", x, zeroed, hx=hx, **kw))
    kw.pop("peephole")
    ref = _states("lstm", naive.forward("lstm", x, plain, hx=hx, **kw))
    for u, v in zip(a, ref):
        np.testing.assert_array_equal(u, v)


def test_identity_projection_is_plain_lstm():
    params, x, hx, kw = _setup("lstm", {})
    proj = dict(params)
    for k in params:
        if k.startswith("weight_hh"):
            proj[k.replace("weight_hh", "weight_hr")] = np.eye(H)
    a = _states("lstm", naive.forward("lstm", x, proj, hx=hx, proj_size=H, **kw))
    ref = _states("lstm", naive.forward("lstm", x, params, hx=hx, **kw))
    for u, v in zip(a, ref):
        np.testing.assert_allclose(u, v, atol=1e-15)


@pytest.mark.parametrize("cell,opts", CASES)
def test_hx_none_is_zeros_and_bias_false(cell, opts):
    params, x, hx, kw = _setup(cell, opts, bias=False)
    assert not any(k.startswith("bias") for k in params)
    zeros = (tuple(np.zeros_like(s) for s in hx) if cell == "lstm"
             else np.zeros_like(hx))
    a = _states(cell, naive.forward(cell, x, params, **kw))
    ref = _states(cell, naive.forward(cell, x, params, hx=zeros, **kw))
    for u, v in zip(a, ref):
        np.testing.assert_array_equal(u, v)
    # bias=False is the same as zero biases
    with_bias = dict(params)
    for k in list(params):
        if k.startswith("weight_ih"):
            n = params[k].shape[0]
            with_bias[k.replace("weight_ih", "bias_ih")] = np.zeros(n)
            with_bias[k.replace("weight_ih", "bias_hh")] = np.zeros(n)
    ref = _states(cell, naive.forward(cell, x, with_bias, **kw))
    for u, v in zip(a, ref):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("cell,opts", CASES)
def test_unbatched_and_dtype(cell, opts):
    params, x, hx, kw = _setup(cell, opts)
    hx1 = _select(cell, hx, 0)
    batched = _states(cell, naive.forward(cell, x[:, :1], params, hx=hx1, **kw))
    hx_unb = (tuple(s[:, 0] for s in hx1) if cell == "lstm" else hx1[:, 0])
    unb = _states(cell, naive.forward(cell, x[:, 0], params, hx=hx_unb, **kw))
    for u, v in zip(unb, batched):
        np.testing.assert_array_equal(u, v[:, 0])
    p32 = {k: v.astype(np.float32) for k, v in params.items()}
    res32 = _states(cell, naive.forward(cell, x.astype(np.float32), p32, **kw))
    assert all(r.dtype == np.float32 for r in res32)


@pytest.mark.parametrize("cell,opts", CASES)
def test_no_overflow_for_huge_inputs(cell, opts):
    params, x, hx, kw = _setup(cell, opts)
    big = 1e4 * np.sign(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            res = _states(cell, naive.forward(cell, big, params, hx=hx, **kw))
            s = naive.sigmoid(np.array([-1e4, 0.0, 1e4]))
    assert all(np.all(np.isfinite(r)) for r in res)
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


def test_bidirectional_layout():
    """out = [fwd | rev] on the feature axis, h_n layer-major (l0f, l0r, l1f...)."""
    params, x, hx, kw = _setup("gru", {})
    out, h_n = naive.forward("gru", x, params, hx=hx, **kw)
    assert out.shape == (T, B, 2 * H) and h_n.shape == (4, B, H)
    np.testing.assert_array_equal(h_n[2], out[-1, :, :H])   # l1 fwd ends at T-1
    np.testing.assert_array_equal(h_n[3], out[0, :, H:])    # l1 rev ends at 0


def test_rejects_bad_arguments():
    params, x, hx, kw = _setup("rnn", {})
    with pytest.raises(ValueError):
        naive.forward("rnn", x, params, lengths=[1, 2, 3, 99], **kw)
    with pytest.raises(ValueError):
        naive.forward("rnn", x, params, nonlinearity="sigmoid", **kw)
    with pytest.raises(ValueError):
        naive.forward("lstmx", x, params, **kw)
