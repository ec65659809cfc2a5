"""Results do not depend on threads, paths or on what the caller does to its arrays.

Outputs and gradients are bit-identical for one thread and for two, and for
the unit split and the row split that replaces it when the split's threads
are busy. A layer owns what it keeps for backward. Bad arguments get a
message that names them and says what is wrong.
"""

import numba
import numpy as np
import pytest

import numlstm
from layer_cases import CLASSES
from numlstm.cells import common, gemm, lstm, sync

CASES = [
    ("lstm", {}),
    ("lstm", {"peephole": True}),
    ("lstm", {"proj_size": 3}),
    ("lstm", {"coupled": True, "peephole": True}),
    ("gru", {}),
    ("rnn", {}),
]

needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                       reason="needs two numba threads")


@pytest.fixture
def small_splits(monkeypatch):
    """Split even tiny products and tiny inference the way large ones are split."""
    monkeypatch.setattr(gemm, "SPLIT_MIN_MACS", 0)
    monkeypatch.setattr(gemm, "SPLIT_BLOCK_ROWS", 8)
    monkeypatch.setattr(common, "UNIT_SPLIT_MIN_WEIGHTS", 0)
    monkeypatch.setattr(common, "usable_cores", lambda: 2)


def _parts(state):
    return list(state) if isinstance(state, tuple) else [state]


def _train_and_infer(cell, options, dtype, threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        layer = CLASSES[cell](3, 16, seed=0, dtype=dtype, bidirectional=True, **options)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((9, 5, 3)).astype(dtype)
        lengths = [9, 4, 7, 1, 9]
        out, final = layer(x, lengths=lengths)
        grad_x, grad_hx = layer.backward(rng.standard_normal(out.shape).astype(dtype))
        with numlstm.no_grad():  # two rows: the unit split for an LSTM with two threads
            infer, _ = layer(x[:, :2])
        return [out, *_parts(final), grad_x, *_parts(grad_hx), infer, *layer.grads.values()]
    finally:
        numba.set_num_threads(previous)


@needs_two_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cell,options", CASES, ids=str)
def test_results_do_not_depend_on_thread_count(cell, options, dtype, small_splits):
    one, two = (_train_and_infer(cell, options, dtype, n) for n in (1, 2))
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


@needs_two_threads
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", [{}, {"peephole": True}, {"coupled": True}], ids=str)
def test_unit_split_equals_its_fallback_bitwise(options, dtype, small_splits, monkeypatch):
    """A call that finds the split's threads busy gets exactly the unit split's numbers."""
    outcomes = []
    original = lstm._forward_by_units
    monkeypatch.setattr(lstm, "_forward_by_units",
                        lambda *args: outcomes.append(original(*args)) or outcomes[-1])
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        layer = numlstm.LSTM(5, 24, seed=1, dtype=dtype, **options)  # parts of 16 and 8 units
        x = np.random.default_rng(1).standard_normal((13, 3, 5)).astype(dtype)
        with numlstm.no_grad():
            split = layer(x, lengths=[13, 6, 1])
            assert sync._begin(sync._flags, -1, 1)  # another call holds the threads
            try:
                fallback = layer(x, lengths=[13, 6, 1])
            finally:
                sync._end(sync._flags, -1)
    finally:
        numba.set_num_threads(previous)
    assert outcomes == [True, False]
    np.testing.assert_array_equal(split[0], fallback[0])
    for a, b in zip(split[1], fallback[1]):
        np.testing.assert_array_equal(a, b)


def test_changing_x_after_forward_leaves_gradients_unchanged():
    layer = numlstm.LSTM(3, 4, seed=0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)  # used as is: no conversion copies it
    grad_out = rng.standard_normal((5, 2, 4)).astype(np.float32)
    layer(x)
    want_x, _ = layer.backward(grad_out)
    want = {k: v.copy() for k, v in layer.grads.items()}
    layer(x)
    x[:] = 100
    grad_x, _ = layer.backward(grad_out)
    np.testing.assert_array_equal(grad_x, want_x)
    for key, value in layer.grads.items():
        np.testing.assert_array_equal(value, want[key])


def test_float32_overflow_is_named_as_such():
    layer = numlstm.LSTM(3, 4, seed=0)
    x = np.ones((5, 2, 3))
    x[1, 1, 1] = 1e300
    with pytest.raises(ValueError, match="x holds values out of float32 range"):
        layer(x)
    with pytest.raises(ValueError, match=r"hx\[0\] \(h0\) holds values out of float32"):
        layer(np.ones((5, 2, 3)), (np.full((1, 2, 4), -1e300), np.zeros((1, 2, 4))))
    x[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        layer(x)
    state = layer.state_dict()
    state["weight_ih_l0"] = state["weight_ih_l0"].astype(np.float64) * 1e300
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] holds values out of"):
        layer.load_state_dict(state)


@pytest.mark.parametrize("lengths", [[2**63 + 5, 1], [1e30, 1], [2**70, 1], [-2**63, 1]])
def test_huge_lengths_are_reported_as_given(lengths):
    layer = numlstm.GRU(3, 4, seed=0)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\]") as info:
        layer(np.ones((5, 2, 3)), lengths=lengths)
    assert "-9223372036854775808" not in str(info.value) or lengths[0] == -2**63


def test_negative_seed_is_named():
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        numlstm.RNN(3, 4, seed=-1)
    with pytest.raises(TypeError, match="seed"):
        numlstm.RNN(3, 4, seed=True)


def test_non_finite_grad_out_is_rejected_like_grad_h_n():
    layer = numlstm.LSTM(3, 4, seed=0)
    out, _ = layer(np.ones((5, 2, 3)))
    grad = np.ones_like(out)
    grad[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="grad_out contains NaN or inf"):
        layer.backward(grad)
    with pytest.raises(ValueError, match="grad_out holds values out of float32 range"):
        layer.backward(np.full(out.shape, 1e300))
    with pytest.raises(ValueError, match="grad_h_n"):
        layer.backward(np.ones_like(out), (np.full((1, 2, 4), np.inf), np.zeros((1, 2, 4))))
