"""Layer API: errors, state_dict, modes, no_grad, dtypes and extreme inputs."""

import warnings

import numpy as np
import pytest

import naive
import numlstm
from layer_cases import CLASSES, as_tuple

CELLS = list(CLASSES)


@pytest.fixture
def lstm():
    return numlstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=0)


# ---- constructor ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    ({"input_size": 0}, ValueError, "input_size"),
    ({"input_size": 2.5}, TypeError, "input_size"),
    ({"hidden_size": True}, TypeError, "hidden_size"),
    ({"num_layers": 0}, ValueError, "num_layers"),
    ({"dropout": 1.0}, ValueError, "dropout"),
    ({"dropout": "0.1"}, ValueError, "dropout"),
    ({"bidirectional": "yes"}, TypeError, "bidirectional"),
    ({"batch_first": 1}, TypeError, "batch_first"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"dtype": "int32"}, ValueError, "dtype"),
    ({"device": "tpu"}, ValueError, "device"),
    ({"seed": "abc"}, TypeError, "seed"),
    ({"proj_size": 4}, ValueError, "proj_size"),
    ({"proj_size": -1}, ValueError, "proj_size"),
    ({"peephole": None}, TypeError, "peephole"),
    ({"forget_bias": float("nan")}, ValueError, "forget_bias"),
    ({"forget_bias": 1.0, "bias": False}, ValueError, "forget_bias"),
])
def test_invalid_constructor_arguments(kwargs, error, match):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(error, match=match):
        numlstm.LSTM(**args)


def test_invalid_rnn_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        numlstm.RNN(3, 4, nonlinearity="sigmoid")


def test_cuda_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("numlstm._backend.cuda_available", lambda: False)
    with pytest.raises(ValueError, match="cuda"):
        numlstm.GRU(3, 4, device="cuda")


# ---- weights -------------------------------------------------------------------------------

def test_state_dict_names_shapes_and_init_bounds():
    layer = numlstm.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, peephole=True,
                         seed=0)
    sd = layer.state_dict()
    assert list(sd) == naive.param_names("lstm", num_layers=2, bidirectional=True, proj_size=2,
                                         peephole=True, bias=True)
    assert sd["weight_ih_l0"].shape == (16, 3)
    assert sd["weight_ih_l1_reverse"].shape == (16, 4)
    assert sd["weight_hh_l1"].shape == (16, 2)
    assert sd["weight_hr_l0"].shape == (2, 4)
    assert sd["weight_peephole_l1_reverse"].shape == (3, 4)
    for value in sd.values():
        assert value.dtype == np.float32
        assert np.abs(value).max() <= 0.5
    sd["weight_ih_l0"][:] = 7  # a copy: the layer is untouched
    assert np.abs(layer.params["weight_ih_l0"]).max() <= 0.5


def test_same_seed_same_weights_and_gru_rnn_names():
    a, b = numlstm.GRU(3, 4, seed=1), numlstm.GRU(3, 4, seed=1)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert list(a.params) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert a.params["weight_ih_l0"].shape == (12, 3)
    assert numlstm.RNN(3, 4, bias=False).params["weight_hh_l0"].shape == (4, 4)


def test_forget_bias_shifts_forget_rows_only():
    plain = numlstm.LSTM(2, 3, seed=4)
    shifted = numlstm.LSTM(2, 3, seed=4, forget_bias=1.0)
    diff = shifted.params["bias_ih_l0"] - plain.params["bias_ih_l0"]
    np.testing.assert_allclose(diff, [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(shifted.params["bias_hh_l0"], plain.params["bias_hh_l0"])
    coupled = numlstm.LSTM(2, 3, seed=4, coupled=True, forget_bias=1.0)
    coupled_plain = numlstm.LSTM(2, 3, seed=4, coupled=True)
    np.testing.assert_allclose(coupled.params["bias_ih_l0"] - coupled_plain.params["bias_ih_l0"],
                               [-1, -1, -1, 0, 0, 0, 0, 0, 0], atol=1e-6)


def test_load_state_dict_accepts_array_likes_and_copies(lstm):
    other = numlstm.LSTM(3, 4, num_layers=2, bidirectional=True, seed=9, dtype="float64")
    source = {k: v.tolist() for k, v in other.state_dict().items()}
    before = {k: id(v) for k, v in lstm.params.items()}
    lstm.load_state_dict(source)
    for k, v in lstm.params.items():
        assert id(v) == before[k] and v.dtype == np.float32
        np.testing.assert_allclose(v, other.params[k], rtol=1e-6)


@pytest.mark.parametrize("change, match", [
    (lambda sd: sd.update(extra=np.zeros(3)), "unknown keys \\['extra'\\]"),
    (lambda sd: sd.pop("bias_hh_l1"), "missing keys \\['bias_hh_l1'\\]"),
    (lambda sd: sd.update(weight_hh_l0=np.zeros((16, 3))), "weight_hh_l0.*shape \\(16, 4\\)"),
    (lambda sd: sd["bias_ih_l0"].__setitem__(0, np.nan), "bias_ih_l0.*NaN"),
    (lambda sd: sd["bias_ih_l0"].__setitem__(0, np.inf), "bias_ih_l0.*inf"),
])
def test_load_state_dict_rejects_bad_input_atomically(lstm, change, match):
    sd = lstm.state_dict()
    sd["weight_ih_l0"] = sd["weight_ih_l0"] + 1
    change(sd)
    before = lstm.state_dict()
    with pytest.raises(ValueError, match=match):
        lstm.load_state_dict(sd)
    for k, v in lstm.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_rejects_non_numeric(lstm):
    sd = lstm.state_dict()
    sd["bias_ih_l0"] = np.array(["a"] * 16)
    with pytest.raises(TypeError, match="bias_ih_l0"):
        lstm.load_state_dict(sd)
    with pytest.raises(TypeError, match="mapping"):
        lstm.load_state_dict([1, 2])


# ---- call arguments ------------------------------------------------------------------------

@pytest.mark.parametrize("make_args, error, match", [
    (lambda: (np.zeros((5, 2)),), ValueError, "input_size=3"),
    (lambda: (np.zeros((5, 2, 4)),), ValueError, "input_size=3"),
    (lambda: (np.zeros((5, 2, 3, 1)),), ValueError, "3-D"),
    (lambda: (np.zeros(3),), ValueError, "3-D"),
    (lambda: (np.zeros((0, 2, 3)),), ValueError, "at least one"),
    (lambda: (np.array([[["a", "b", "c"]]]),), TypeError, "x must hold real numbers"),
    (lambda: (np.zeros((5, 2, 3), bool),), TypeError, "x must hold real numbers"),
    (lambda: (np.full((5, 2, 3), np.nan),), ValueError, "NaN"),
    (lambda: (np.zeros((5, 2, 3)), np.zeros((4, 2, 4))), TypeError, "tuple"),
    (lambda: (np.zeros((5, 2, 3)), (np.zeros((4, 2, 4)), np.zeros((4, 3, 4)))), ValueError,
     "c0.*\\(4, 2, 4\\)"),
    (lambda: (np.zeros((5, 2, 3)), (np.zeros((2, 2, 4)), np.zeros((4, 2, 4)))), ValueError,
     "h0.*\\(4, 2, 4\\)"),
    (lambda: (np.zeros((5, 2, 3)), None, [5, 6]), ValueError, "lengths.*\\[1, 5\\]"),
    (lambda: (np.zeros((5, 2, 3)), None, [0, 3]), ValueError, "lengths.*\\[1, 5\\]"),
    (lambda: (np.zeros((5, 2, 3)), None, [5]), ValueError, "lengths.*\\(2,\\)"),
    (lambda: (np.zeros((5, 2, 3)), None, [2.5, 3]), TypeError, "lengths"),
    (lambda: (np.zeros((5, 2, 3)), None, ["a", "b"]), TypeError, "lengths"),
])
def test_bad_call_arguments(lstm, make_args, error, match):
    with pytest.raises(error, match=match):
        lstm(*make_args())


def test_caller_arrays_are_never_mutated(lstm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((4, 2, 4)).astype(np.float32)
    c0 = rng.standard_normal((4, 2, 4)).astype(np.float32)
    lengths = np.array([5, 3])
    grad_out = rng.standard_normal((5, 2, 8)).astype(np.float32)
    grad_h, grad_c = np.ones((4, 2, 4), np.float32), np.ones((4, 2, 4), np.float32)
    copies = [a.copy() for a in (x, h0, c0, lengths, grad_out, grad_h, grad_c)]
    lstm(x, (h0, c0), lengths)
    lstm.backward(grad_out, (grad_h, grad_c))
    for a, b in zip((x, h0, c0, lengths, grad_out, grad_h, grad_c), copies):
        np.testing.assert_array_equal(a, b)


def test_backward_needs_a_recorded_forward(lstm):
    with pytest.raises(ValueError, match="forward"):
        lstm.backward(np.zeros((5, 2, 8)))
    with numlstm.no_grad():
        lstm(np.zeros((5, 2, 3)))
    assert lstm._cache is None
    with pytest.raises(ValueError, match="forward"):
        lstm.backward(np.zeros((5, 2, 8)))
    lstm(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match="grad_out.*\\(5, 2, 8\\)"):
        lstm.backward(np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="grad_h_n"):
        lstm.backward(np.zeros((5, 2, 8)), (np.zeros((4, 2, 3)), np.zeros((4, 2, 4))))


def test_no_grad_gives_the_same_numbers_and_nests(lstm):
    x = np.random.default_rng(1).standard_normal((6, 3, 3))
    out, (h, c) = lstm(x)
    assert numlstm.is_grad_enabled()
    with numlstm.no_grad():
        with numlstm.no_grad():
            assert not numlstm.is_grad_enabled()
        assert not numlstm.is_grad_enabled()
        out_ng, (h_ng, c_ng) = lstm(x)
    assert numlstm.is_grad_enabled()
    np.testing.assert_array_equal(out, out_ng)
    np.testing.assert_array_equal(h, h_ng)
    np.testing.assert_array_equal(c, c_ng)


# ---- modes and dtypes ----------------------------------------------------------------------

def test_dropout_only_in_training_and_only_between_layers():
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    layer = numlstm.GRU(3, 4, num_layers=2, dropout=0.5, seed=0, dtype="float64")
    plain = numlstm.GRU(3, 4, num_layers=2, seed=0, dtype="float64")
    assert layer.training
    train_out, _ = layer(x)
    assert layer.eval() is layer and not layer.training
    eval_out, _ = layer(x)
    np.testing.assert_array_equal(eval_out, plain(x)[0])
    assert not np.allclose(train_out, eval_out)
    single = numlstm.GRU(3, 4, dropout=0.5, seed=0, dtype="float64")
    np.testing.assert_array_equal(single(x)[0], numlstm.GRU(3, 4, seed=0, dtype="float64")(x)[0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(cell, dtype):
    layer = CLASSES[cell](3, 4, bidirectional=True, dtype=dtype, seed=0)
    out, final = layer(np.ones((4, 2, 3), np.float64 if dtype == "float32" else np.float32))
    gx, ghx = layer.backward(np.ones_like(out))
    for a in (out, gx, *as_tuple(final), *as_tuple(ghx), *layer.grads.values()):
        assert a.dtype == np.dtype(dtype)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_finite_inputs_give_finite_outputs_without_warnings(cell, dtype):
    layer = CLASSES[cell](3, 4, num_layers=2, dtype=dtype, seed=0)
    x = np.array([1e4, -1e4, 3e3])[None, None, :] * np.ones((6, 2, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, final = layer(x)
        gx, ghx = layer.backward(np.ones_like(out) * 1e4)
    for a in (out, gx, *as_tuple(final), *as_tuple(ghx), *layer.grads.values()):
        assert np.isfinite(a).all()
    assert np.abs(out).max() <= 1 + 1e-6  # every output here passes through tanh


# ---- gate states ---------------------------------------------------------------------------

def test_gate_states_reproduce_the_outputs():
    rng = np.random.default_rng(3)
    layer = numlstm.LSTM(3, 4, num_layers=2, bidirectional=True, dtype="float64", seed=1,
                         batch_first=True)
    x = rng.standard_normal((2, 5, 3))
    lengths = [5, 3]
    out, (h_n, c_n) = layer(x, lengths=lengths)
    states = layer.gate_states(x, lengths=lengths)
    assert set(states) == {"input_gate", "forget_gate", "cell_candidate", "output_gate", "cell",
                           "hidden"}
    assert states["hidden"].shape == (2, 2, 5, 2, 4)
    np.testing.assert_allclose(states["hidden"][1, 0, :, 0], out[0, :, :4], rtol=0, atol=1e-14)
    np.testing.assert_allclose(states["hidden"][1, 1, :3, 1], out[1, :3, 4:], rtol=0, atol=1e-14)
    assert np.isnan(states["cell"][:, :, 3:, 1]).all()
    np.testing.assert_allclose(states["cell"][1, 0, 2, 1], c_n[2, 1], rtol=0, atol=1e-14)
    np.testing.assert_allclose(states["cell"][1, 1, 0, 1], c_n[3, 1], rtol=0, atol=1e-14)
    h, c = states["hidden"], states["cell"]
    np.testing.assert_allclose(h, states["output_gate"] * np.tanh(c), rtol=0, atol=1e-14)
    gates = np.stack([states[k] for k in ("input_gate", "forget_gate", "output_gate")])
    valid = ~np.isnan(gates)
    assert np.all((gates[valid] > 0) & (gates[valid] < 1))


def test_gate_states_gru_rnn_and_coupled_keys():
    x = np.zeros((3, 1, 2))
    assert set(numlstm.GRU(2, 3).gate_states(x)) == {"reset_gate", "update_gate", "candidate",
                                                     "hidden"}
    assert set(numlstm.RNN(2, 3).gate_states(x)) == {"hidden"}
    s = numlstm.LSTM(2, 3, coupled=True, dtype="float64").gate_states(x)
    np.testing.assert_allclose(s["forget_gate"], 1 - s["input_gate"])


def test_repr():
    assert repr(numlstm.LSTM(3, 4, proj_size=2, bidirectional=True)) == \
        "LSTM(3, 4, bidirectional=True, dtype='float32', proj_size=2)"


@pytest.mark.parametrize("cell", CELLS)
def test_batch_split_across_threads_matches_one_thread(cell):
    """The time loops run on slices of the batch in several threads; one thread agrees."""
    import numba

    rng = np.random.default_rng(5)
    layer = CLASSES[cell](3, 4, bidirectional=True, dtype="float64", seed=0,
                          **({"peephole": True} if cell == "lstm" else {}))
    x = rng.standard_normal((6, 5, 3))
    lengths = [6, 2, 5, 4, 1]
    results = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            out, final = layer(x, lengths=lengths)
            grads = layer.backward(np.ones_like(out))
            results.append((out, *as_tuple(final), grads[0], *layer.grads.values()))
        finally:
            numba.set_num_threads(previous)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_layers_pickle_with_weights_cache_and_mode(lstm):
    import pickle

    x = np.random.default_rng(6).standard_normal((4, 2, 3)).astype(np.float32)
    out, _ = lstm.eval()(x)
    clone = pickle.loads(pickle.dumps(lstm))
    assert not clone.training
    np.testing.assert_array_equal(clone(x)[0], out)
