"""Callers that run numlstm from several threads at once share the cores.

Each kernel takes a share of the usable cores for its duration
(``numlstm._config.take_share``): helper threads only for cores that no
other caller holds, never fewer than the caller's own thread. A caller that
left a kernel a moment ago still holds its thread. Concurrent
predicts equal serial ones bit for bit, whatever threads each got.
"""

import threading
import time

import numba
import numpy as np
import pytest

import numlstm
from numlstm import _config
from numlstm.cells import common, sync

needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                       reason="needs two numba threads")
# the stand-down on a busy machine measures thread time, and is off where that clock is coarse
needs_fine_thread_clock = pytest.mark.skipif(not _config._FINE_THREAD_CLOCK,
                                             reason="the thread clock is too coarse to tell a wait for a core")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def two_cores(monkeypatch):
    """Two numba threads on two usable cores, and the unit split for any size."""
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    monkeypatch.setattr(_config, "usable_cores", lambda: 2)
    monkeypatch.setattr(common, "usable_cores", lambda: 2)
    monkeypatch.setattr(common, "UNIT_SPLIT_MIN_WEIGHTS", 0)
    monkeypatch.setattr(_config, "RECENT_CALLER_S", 0.0)  # a caller that left is gone at once
    yield
    numba.set_num_threads(previous)


@pytest.fixture
def held_caller():
    """Another thread inside ``run_on_rows`` on all its threads, until the test ends."""
    entered, leave = threading.Event(), threading.Event()

    def hold(b0, b1):
        entered.set()
        leave.wait(30)

    thread = threading.Thread(target=_config.run_on_rows, args=(hold, 8))
    thread.start()
    assert entered.wait(30)
    yield
    leave.set()
    thread.join(30)
    assert not thread.is_alive()


def _fitted_regressor(cell):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 6, 2))
    y = X[:, -1, 0] + X[:, :, 1].mean(axis=1)
    return numlstm.LSTMRegressor(cell=cell, hidden_size=16, max_iter=2, random_state=0).fit(X, y)


def _ranges(n_rows):
    """The row ranges that ``run_on_rows`` splits ``n_rows`` into when called now."""
    ranges = []
    _config.run_on_rows(lambda b0, b1: ranges.append((b0, b1)), n_rows)
    return sorted(ranges)


@pytest.mark.parametrize("cores,others,recent,wanted,expected", [
    (8, {}, 0, 8, 8),  # alone: every core it asks for
    (8, {}, 0, 3, 3),
    (8, {"a": 3, "b": 1}, 0, 8, 2),  # a third of the cores for each of three callers
    (8, {"a": 6}, 0, 8, 2),  # only the cores the other caller and its helpers leave free
    (8, {"a": 8}, 0, 8, 1),  # none free: its own thread, no helper
    (2, {"a": 1, "b": 1, "c": 1}, 0, 2, 1),
    (8, {}, 1, 8, 4),  # a caller between two kernels holds its thread and its claim
    (8, {"a": 2}, 2, 8, 2),
    (2, {}, 1, 2, 1),
])
def test_share_of_the_cores(cores, others, recent, wanted, expected, monkeypatch):
    now = time.monotonic()
    left = {f"r{k}": now for k in range(recent)}
    left["long gone"] = now - 10 * _config.RECENT_CALLER_S
    monkeypatch.setattr(_config, "usable_cores", lambda: cores)
    monkeypatch.setattr(_config, "_shares", dict(others))
    monkeypatch.setattr(_config, "_left", left)
    assert _config.active_callers() == len(others) + recent
    assert _config.take_share(wanted) == expected
    assert _config.last_thread_count() == expected
    # helpers only for free cores: with them, every caller's threads together fit the cores
    assert expected == 1 or sum(_config._shares.values()) + recent <= cores
    assert "long gone" not in _config._left  # forgotten
    _config.give_back_share()
    assert _config._shares == others


def test_all_or_none_share_and_own_stale_entry(monkeypatch):
    me = threading.get_ident()
    monkeypatch.setattr(_config, "usable_cores", lambda: 8)
    monkeypatch.setattr(_config, "_shares", {"a": 1})
    monkeypatch.setattr(_config, "_left", {})
    assert _config.take_share(8, all_or_none=True) == 0  # half the cores is not all
    assert _config._shares == {"a": 1}  # a refused share is not registered
    monkeypatch.setattr(_config, "_shares", {me: 5})  # left behind by an interrupted call
    assert _config.take_share(8, all_or_none=True) == 8  # this thread's own entry is replaced
    _config.give_back_share()
    assert _config._shares == {}


@needs_two_threads
def test_a_call_beside_another_caller_uses_its_own_thread_only(two_cores):
    assert _ranges(6) == [(0, 3), (3, 6)]
    assert _config.last_thread_count() == 2
    assert _config.num_threads() == 2
    entered, leave = threading.Event(), threading.Event()
    done = []

    def hold(b0, b1):
        entered.set()
        leave.wait(30)
        done.append((b0, b1))

    other = threading.Thread(target=_config.run_on_rows, args=(hold, 6))
    other.start()
    try:
        assert entered.wait(30)
        assert _config.active_callers() == 1
        assert _config.num_threads() == 1
        assert _config.rows_per_thread(6) == 6
        assert _ranges(6) == [(0, 6)]  # no helper: the other caller holds both cores
        assert _config.last_thread_count() == 1
        # nor the part threads of a unit split: the cores for its two parts are taken
        assert not sync.run_parts(lambda k, flags: pytest.fail("a part ran"), 2)
        assert _config.last_thread_count() == 1
    finally:
        leave.set()
        other.join(30)
    assert sorted(done) == [(0, 3), (3, 6)]  # the other caller took both cores, being alone
    assert _config.active_callers() == 0
    assert _ranges(6) == [(0, 3), (3, 6)]


@needs_two_threads
def test_a_caller_between_two_kernels_keeps_its_core(two_cores, monkeypatch):
    monkeypatch.setattr(_config, "_left", {})
    monkeypatch.setattr(_config, "RECENT_CALLER_S", 3600.0)
    other = threading.Thread(target=_ranges, args=(6,))
    other.start()
    other.join(30)
    assert _config.active_callers() == 1
    assert _ranges(6) == [(0, 6)]
    monkeypatch.setattr(_config, "RECENT_CALLER_S", 0.0)  # the other caller has gone for good
    assert _config.active_callers() == 0
    assert _ranges(6) == [(0, 3), (3, 6)]


@needs_two_threads
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_predict_beside_another_caller_uses_one_thread_and_equals_alone(cell, two_cores,
                                                                        request):
    est = _fitted_regressor(cell)
    X = np.random.default_rng(1).standard_normal((4, 9, 2))
    alone = est.predict(X)
    assert _config.last_thread_count() == 2  # the unit split (LSTM) or the row split (GRU)
    request.getfixturevalue("held_caller")
    beside = est.predict(X)
    assert _config.last_thread_count() == 1
    np.testing.assert_array_equal(beside, alone)


@needs_two_threads
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_concurrent_predicts_equal_serial_ones(cell, two_cores):
    """Four threads predict at once, a Dask threaded scheduler's pattern, and get the serial bits."""
    est = _fitted_regressor(cell)
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((b, 8, 2)) for b in (1, 2, 3, 4, 5, 8)]
    serial = [est.predict(x) for x in inputs]
    n_callers, rounds = 4, 5
    start = threading.Barrier(n_callers)
    results = {}

    def caller(k):
        start.wait(30)
        for r in range(rounds):
            for i, x in enumerate(inputs):
                results[k, r, i] = est.predict(x)

    workers = [threading.Thread(target=caller, args=(k,)) for k in range(n_callers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert len(results) == n_callers * rounds * len(inputs)
    for (_, _, i), out in results.items():
        np.testing.assert_array_equal(out, serial[i])
    assert _config.active_callers() == 0  # every share was given back
    assert not sync.busy()


@needs_two_threads
@needs_fine_thread_clock
def test_helpers_that_wait_for_a_core_send_the_next_calls_to_one_thread(two_cores, monkeypatch):
    """A helper part that sleeps stands for a core that another program keeps busy."""
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 3600.0)

    def slow_helper(b0, b1):
        if b0 > 0:
            time.sleep(0.01)  # wall time, no thread time: waiting for a core
        return b0, b1

    for _ in range(_config.SLOW_SPLITS_IN_A_ROW):
        assert not _config.crowded()
        assert _config.run_on_rows(slow_helper, 6) == [(0, 3), (3, 6)]
    assert _config.crowded()
    assert _config.num_threads() == 1
    assert _ranges(6) == [(0, 6)]  # the calling thread alone
    est = _fitted_regressor("lstm")
    X = np.random.default_rng(1).standard_normal((4, 9, 2))
    crowded = est.predict(X)
    assert _config.last_thread_count() == 1
    monkeypatch.setattr(_config, "_crowded_until", 0.0)  # the pause is over: threads again
    np.testing.assert_array_equal(est.predict(X), crowded)
    assert _config.last_thread_count() == 2
    assert _ranges(6) == [(0, 3), (3, 6)]


@needs_two_threads
@needs_fine_thread_clock
def test_one_slow_call_among_fast_ones_keeps_the_threads(two_cores, monkeypatch):
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 3600.0)
    n = _config.SLOW_SPLITS_IN_A_ROW
    for k in range(4 * n):  # slow, slow, fast, slow, slow, fast, ...
        _config.record_split(0.001 if k % n == n - 1 else 0.01, 0.001, 2)
    assert not _config.crowded()
    # waits below the floor never count, however long against the work
    for _ in range(2 * _config.SLOW_SPLITS_IN_A_ROW):
        _config.record_split(_config.SLOW_SPLIT_MIN_WAIT_S / 2, 0.0, 2)
    assert not _config.crowded()
    for _ in range(_config.SLOW_SPLITS_IN_A_ROW):  # while the same calls, all slow, do trip it
        _config.record_split(0.01, 0.001, 2)
    assert _config.crowded()


@needs_two_threads
@needs_fine_thread_clock
def test_a_unit_split_whose_part_thread_waits_for_a_core_counts_as_slow(two_cores, monkeypatch):
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 3600.0)
    est = _fitted_regressor("lstm")
    X = np.random.default_rng(1).standard_normal((4, 9, 2))
    alone = est.predict(X)
    assert _config.last_thread_count() == 2
    monkeypatch.setattr(sync, "_times", _SlowPartTimes(sync._times))
    for _ in range(_config.SLOW_SPLITS_IN_A_ROW):
        np.testing.assert_array_equal(est.predict(X), alone)
    assert _config.crowded()
    np.testing.assert_array_equal(est.predict(X), alone)
    assert _config.last_thread_count() == 1


class _SlowPartTimes(list):
    """``sync._times`` as if each part thread had waited 10 ms for a core during its job."""

    def __setitem__(self, part, times):
        call, wall, cpu = times
        super().__setitem__(part, (call, wall + 0.01, cpu))


@needs_fine_thread_clock
def test_a_crowded_machine_halves_the_threads_until_the_calls_run_freely(monkeypatch):
    monkeypatch.setattr(_config, "usable_cores", lambda: 8)
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 3600.0)
    me = threading.get_ident()
    assert _config._fair_share(8, me) == 8
    for threads, halved in ((8, 4), (4, 2), (2, 1)):  # still slow at half: half again
        for _ in range(_config.SLOW_SPLITS_IN_A_ROW):
            _config.record_split(0.01, 0.001, threads)
        assert _config._fair_share(8, me) == halved
    monkeypatch.setattr(_config, "_crowded_until", 0.0)  # the pause is over: every core again
    assert _config._fair_share(8, me) == 8


@numba.njit(nogil=True)
def _spin(seconds_of_work):
    """About ``seconds_of_work`` of arithmetic without the GIL."""
    total = 0.0
    for k in range(int(seconds_of_work * 2e8)):
        total += k * 1e-9
    return total


@needs_two_threads
def test_an_uneven_row_split_is_not_a_busy_machine(two_cores, monkeypatch):
    """Three rows on two threads: the caller's range has one row, the helper's two, and the caller
    waits for the helper without working; that wait is the helper's work, not a wait for a core."""
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 3600.0)
    _spin(1e-6)
    for _ in range(3 * _config.SLOW_SPLITS_IN_A_ROW):
        _config.run_on_rows(lambda b0, b1: _spin(1e-3 * (b1 - b0)), 3)
    assert not _config.crowded()
