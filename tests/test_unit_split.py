"""Inference with the hidden units split across threads, and the barrier it rests on.

Small batches run each step's hidden units on several threads that meet at a
spinning barrier every step (``numlstm.cells.common.unit_split``). The layer
tests elsewhere run with gradients on, which never takes this path; these
tests force it and compare it with the readable NumPy reference.
"""

import multiprocessing
import os
import threading

import numba
import numpy as np
import pytest
from numba import njit

import numlstm
from layer_cases import build, random_state
from numlstm.cells import common, driver, lstm, sync
from numlstm.cells.sync import ABORT, arrive_and_wait, enter, finish, run_parts

LSTM_CASES = [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"peephole": True},
    {"coupled": True},
    {"peephole": True, "coupled": True, "bidirectional": True},
    {"bias": False},
]


@pytest.fixture
def two_threads():
    previous = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@pytest.fixture
def counted_splits(monkeypatch):
    """Count the calls that ran as a unit split; make the split apply to any size."""
    calls = []
    original = lstm._forward_by_units

    def counting(*args):
        done = original(*args)
        calls.append(done)
        return done

    monkeypatch.setattr(lstm, "_forward_by_units", counting)
    monkeypatch.setattr(common, "UNIT_SPLIT_MIN_WEIGHTS", 0)
    monkeypatch.setattr(common, "usable_cores", lambda: 2)
    return calls


def run_inference(layer, x, hx, lengths):
    with numlstm.no_grad():
        return layer(x, hx, lengths)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", LSTM_CASES, ids=str)
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_unit_split_matches_reference(options, dtype, batch, two_threads, counted_splits):
    rng = np.random.default_rng(batch)
    T, I, H = 11, 5, 24  # splits into 16 + 8 units: uneven parts, one a whole vector pair
    layer, reference = build("lstm", options, I, H, dtype)
    x = rng.standard_normal((T, batch, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, batch)
    lengths[0] = T
    hx = random_state(layer, batch, rng)
    out, (h_n, c_n) = run_inference(layer, x, hx, lengths)
    assert counted_splits and all(counted_splits)
    ref_out, (ref_h, ref_c) = reference(x, hx, lengths)
    tol = 1e-10 if dtype == "float64" else 2e-6
    assert out.dtype == h_n.dtype == c_n.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=tol)
    np.testing.assert_allclose(h_n, ref_h, rtol=0, atol=tol)
    np.testing.assert_allclose(c_n, ref_c, rtol=0, atol=tol)
    for t in range(T):  # finished sequences emit zeros
        assert not out[t, lengths <= t].any()


def test_unit_split_matches_row_split(two_threads, counted_splits, monkeypatch):
    rng = np.random.default_rng(0)
    layer = numlstm.LSTM(7, 40, seed=0, bidirectional=True)
    x = rng.standard_normal((23, 4, 7)).astype(np.float32)
    lengths = np.array([23, 5, 17, 1])
    x_before = x.copy()
    split = run_inference(layer, x, None, lengths)
    assert counted_splits == [True, True]  # both directions
    monkeypatch.setattr(driver, "unit_split", lambda *args: None)
    rows = run_inference(layer, x, None, lengths)
    np.testing.assert_allclose(split[0], rows[0], rtol=0, atol=1e-6)
    for a, b in zip(split[1], rows[1]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(x, x_before)


def test_busy_split_threads_fall_back_to_row_split(two_threads, counted_splits):
    """A second caller while a split runs (here: the lock held) still gets the right answer."""
    layer, reference = build("lstm", {}, 3, 16, "float64")
    x = np.random.default_rng(2).standard_normal((9, 2, 3))
    assert sync._begin(sync._flags, -1, 1)  # another call holds the part threads
    try:
        out, _ = run_inference(layer, x, None, None)
    finally:
        sync._end(sync._flags, -1)
    assert not sync.busy()
    assert counted_splits == [False]
    np.testing.assert_allclose(out, reference(x)[0], rtol=0, atol=1e-12)


def test_concurrent_callers_agree(two_threads, counted_splits):
    layer, reference = build("lstm", {}, 3, 32, "float64")
    xs = [np.random.default_rng(k).standard_normal((30, 2, 3)) for k in range(4)]
    results = [None] * len(xs)

    def call(k):
        results[k] = run_inference(layer, xs[k], None, None)[0]

    threads = [threading.Thread(target=call, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for x, out in zip(xs, results):
        np.testing.assert_allclose(out, reference(x)[0], rtol=0, atol=1e-12)


def test_unit_split_rules(monkeypatch):
    monkeypatch.setattr(common, "num_threads", lambda: 2)
    monkeypatch.setattr(common, "usable_cores", lambda: 2)
    monkeypatch.setattr(common, "rows_per_thread", lambda B, n_threads=None: -(-B // 2))
    assert common.unit_split(1, 128, 4 * 128 * 160) == [0, 64, 128]
    assert common.unit_split(8, 40, 10) == [0, 16, 40]  # inner bounds on whole vectors
    assert common.unit_split(1, 32, 4 * 32 * 40) is None  # one small row: no hand-off is cheaper
    assert common.unit_split(9, 128, 10**6) is None  # rows fill a register tile per thread
    assert common.unit_split(4, 8, 10**6) is None  # too few units for two parts
    monkeypatch.setattr(common, "usable_cores", lambda: 1)
    assert common.unit_split(1, 128, 10**6) is None


_FORK_CASE = {}


def _forward_in_child():
    layer, xs, calls = _FORK_CASE["layer"], _FORK_CASE["xs"], _FORK_CASE["calls"]
    calls.clear()
    return [run_inference(layer, x, None, None)[0] for x in xs], list(calls)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_both_splits(two_threads, counted_splits):
    """A child forked after the threads started gets threads of its own, and no hang."""
    layer = numlstm.LSTM(3, 32, seed=0)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((20, 2, 3)), rng.standard_normal((20, 16, 3))]  # unit, row split
    expected = [run_inference(layer, x, None, None)[0] for x in xs]
    assert counted_splits == [True]
    _FORK_CASE.update(layer=layer, xs=xs, calls=counted_splits)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        outs, calls = pool.apply_async(_forward_in_child).get(timeout=60)
    assert calls == [True]
    for out, exp in zip(outs, expected):
        np.testing.assert_array_equal(out, exp)


@njit(nogil=True)
def _lockstep(flags, part, slots, seen, steps):
    """Each step, write this part's slot, meet, then record the other parts' slots."""
    enter(flags, part)
    n = slots.shape[0]
    for s in range(1, steps + 1):
        slots[part] = s
        if not arrive_and_wait(flags, part, 2 * s - 1):
            return
        for q in range(n):
            seen[part, s - 1, q] = slots[q]
        if not arrive_and_wait(flags, part, 2 * s):  # all have read s before anyone writes s + 1
            return
    finish(flags, part, 2 * steps + 1)


def test_barrier_orders_every_step(two_threads):
    steps = 2000
    slots = np.zeros(2, np.int64)
    seen = np.zeros((2, steps, 2), np.int64)
    for _ in range(3):  # the counters start afresh at every call
        seen[:] = 0
        assert run_parts(lambda k, flags: _lockstep(flags, k, slots, seen, steps), 2)
        expected = np.arange(1, steps + 1)
        for part in range(2):
            for q in range(2):
                np.testing.assert_array_equal(seen[part, :, q], expected)


@pytest.mark.parametrize("failing", [0, 1])
def test_failing_part_releases_the_others(failing):
    """Whichever part fails, the others stop waiting for it, and its error comes out."""
    slots = np.zeros(2, np.int64)
    seen = np.zeros((2, 10, 2), np.int64)
    counters = []

    def part(k, flags):
        counters.append(flags)
        if k == failing:
            raise RuntimeError(f"part {k} failed")
        _lockstep(flags, k, slots, seen, 10)  # waits at its first barrier until the abort

    with pytest.raises(RuntimeError, match=f"part {failing} failed"):
        run_parts(part, 2)
    # a failing first part never releases the other; a failing other part raises the abort flag
    assert len(counters) == (1 if failing == 0 else 2)
    assert failing == 0 or counters[0][ABORT] == 1
    assert not seen.any()  # no part got past its first barrier
    assert not sync.busy()
    assert run_parts(lambda k, flags: _lockstep(flags, k, slots, seen, 10), 2)  # usable again
    assert seen[:, -1].tolist() == [[10, 10], [10, 10]]
