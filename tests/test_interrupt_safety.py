"""The thread machinery survives Ctrl-C and concurrent callers.

A ``KeyboardInterrupt`` may land at any bytecode of the main thread, also
inside :func:`numlstm.cells.sync.run_parts`; afterwards every call must still
run, on the unit split, and give the same numbers. Layers trained from
several threads at once keep each thread's forward for its own backward, and
the BLAS thread limit that concurrent backward passes share is restored when
the last of them leaves.
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numba
import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

import numlstm
from numlstm import _config
from numlstm.cells import common, lstm, sync

needs_two_threads = pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2,
                                       reason="needs two numba threads")

_STORM_CHILD = textwrap.dedent("""
    import os, signal, sys
    import numba, numpy as np
    import numlstm
    from numlstm.cells import common, lstm, sync

    numba.set_num_threads(2)
    common.UNIT_SPLIT_MIN_WEIGHTS = 0
    common.usable_cores = lambda: 2
    numlstm._config.CROWDED_PAUSE_S = 0.0  # as tests/conftest.py: the machine's load must not matter
    split = []
    original = lstm._forward_by_units
    lstm._forward_by_units = lambda *args: split.append(original(*args)) or split[-1]
    layer = numlstm.LSTM(3, 16, seed=0)
    x = np.random.default_rng(0).standard_normal((40, 2, 3)).astype(np.float32)

    def infer():
        with numlstm.no_grad():
            out, (h, c) = layer(x)
        return out, h, c

    reference = infer()
    assert split == [True]
    # SIGINT raises KeyboardInterrupt, as by default, but only while armed: inside the try
    # below, not at the loop's backward jump, where the loop itself could not catch it
    armed = False

    def interrupt(signum, frame):
        if armed:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    stop, caught, calls = sys.argv[1], 0, 0
    print("ready", flush=True)
    while not os.path.exists(stop):
        try:
            armed = True
            infer()
            armed = False
            calls += 1
        except KeyboardInterrupt:
            armed = False
            caught += 1
    split.clear()
    after = infer()
    assert split == [True], split  # the unit split still runs, not its fallback
    assert not sync.busy()
    for a, b in zip(after, reference):
        assert np.array_equal(a, b)
    print("ok", caught, calls, flush=True)
""")


@needs_two_threads
@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_sigint_storm_leaves_unit_split_usable_and_exact(tmp_path):
    """Real SIGINTs at random instants; then a call still ends, on the unit split, bit-exact."""
    stop = tmp_path / "stop"
    child = subprocess.Popen([sys.executable, "-c", _STORM_CHILD, str(stop)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        rng = random.Random(0)
        for _ in range(50):
            time.sleep(rng.uniform(0, 0.004))
            child.send_signal(signal.SIGINT)
        time.sleep(0.05)  # the last interrupt lands before the stop
        stop.touch()
        out, err = child.communicate(timeout=30)  # a hung child fails here
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    word, caught, calls = out.split()
    assert word == "ok" and int(caught) > 0 and int(calls) > 0


@pytest.fixture
def unit_split(monkeypatch):
    """Two threads, the unit split for any size; returns the list of split outcomes."""
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    monkeypatch.setattr(common, "UNIT_SPLIT_MIN_WEIGHTS", 0)
    monkeypatch.setattr(common, "usable_cores", lambda: 2)
    outcomes = []
    original = lstm._forward_by_units

    def counting(*args):
        outcomes.append(original(*args))
        return outcomes[-1]

    monkeypatch.setattr(lstm, "_forward_by_units", counting)
    yield outcomes
    numba.set_num_threads(previous)


class Interrupt(KeyboardInterrupt):
    """An injected Ctrl-C."""


def _infer(layer, x):
    with numlstm.no_grad():
        out, (h, c) = layer(x)
    return out, h, c


def _raise_after(fn):
    def wrapped(*args):
        fn(*args)
        raise Interrupt

    return wrapped


def _raise_before(fn):
    def wrapped(*args):
        raise Interrupt

    return wrapped


def _in_part(k, inject):
    """Wrap the unit-split kernel so that part ``k`` runs ``inject`` around it."""
    kernel = lstm._lstm_forward_units

    def wrapped(*args):
        if args[-2] == k:
            return inject(kernel)(*args)
        return kernel(*args)

    return wrapped


INJECTIONS = {
    "after taking the lock": (sync, "_begin", _raise_after),
    "while starting threads": (sync, "_start_part_threads", _raise_before),
    "after starting threads": (sync, "_start_part_threads", _raise_after),
    "before part 0's kernel": (lstm, "_lstm_forward_units", lambda fn: _in_part(0, _raise_before)),
    "after part 0's kernel": (lstm, "_lstm_forward_units", lambda fn: _in_part(0, _raise_after)),
    "in part 1": (lstm, "_lstm_forward_units", lambda fn: _in_part(1, _raise_before)),
}


@needs_two_threads
@pytest.mark.parametrize("where", list(INJECTIONS))
def test_interrupt_at_each_step_of_run_parts(where, unit_split, monkeypatch):
    """An interrupt at each Python-level step of run_parts leaves the next call exact."""
    layer = numlstm.LSTM(3, 16, seed=0)
    x = np.random.default_rng(1).standard_normal((7, 2, 3)).astype(np.float32)
    reference = _infer(layer, x)
    module, name, inject = INJECTIONS[where]
    original = getattr(module, name)
    monkeypatch.setattr(module, name, inject(original))
    with pytest.raises(KeyboardInterrupt):
        _infer(layer, x)
    monkeypatch.setattr(module, name, original)
    assert not sync.busy()
    unit_split.clear()
    for _ in range(3):  # a stale job would run on the next call, or make a later one hang
        result = _infer(layer, x)
        for a, b in zip(result, reference):
            np.testing.assert_array_equal(a, b)
    assert unit_split == [True] * 3


def _blas_threads():
    """Thread counts of NumPy's BLAS, the one numlstm's products call (others may be loaded)."""
    return [lib["num_threads"] for lib in ThreadpoolController().select(user_api="blas").info()
            if "numpy" in lib["filepath"]]


def test_blas_limit_nests_across_threads():
    """Users of the BLAS limit that enter and leave interleaved leave BLAS as they found it.

    The other thread enters first and leaves first; before the fix, this
    thread then left BLAS at the one thread it had found.
    """
    before = _blas_threads()
    if not before or max(before) < 2:
        pytest.skip("BLAS runs one thread already")
    entered, leave = threading.Event(), threading.Event()

    def other_user():
        with _config.single_threaded_blas():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other_user)
    thread.start()
    entered.wait(10)
    with _config.single_threaded_blas():
        leave.set()
        thread.join(10)
        assert _config._blas_users == 1  # the other user left; this one has not
    assert _blas_threads() == before  # the last to leave restored the count it found first


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_training_from_several_threads_matches_serial(cell):
    """Each thread's backward uses its own forward; BLAS threads come back afterwards."""
    make = {"lstm": lambda: numlstm.LSTM(3, 5, seed=0, peephole=True, dtype="float64"),
            "gru": lambda: numlstm.GRU(3, 5, seed=0, dtype="float64")}[cell]
    layer = make()
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((6, 3, 3)) for _ in range(4)]
    serial = []
    for x in xs:
        out, _ = layer(x)
        grad_x, _ = layer.backward(np.ones_like(out))
        serial.append((grad_x, dict(layer.grads)))
    before = _blas_threads()
    results = [None] * len(xs)
    all_forward = threading.Barrier(len(xs))

    def train(k):
        out, _ = layer(xs[k])
        all_forward.wait(30)  # every forward before any backward
        grad_x, _ = layer.backward(np.ones_like(out))
        results[k] = (grad_x, dict(layer.grads))

    threads = [threading.Thread(target=train, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for (grad_x, grads), (want_x, want) in zip(results, serial):
        np.testing.assert_array_equal(grad_x, want_x)
        assert grads.keys() == want.keys()
        for key in grads:
            np.testing.assert_array_equal(grads[key], want[key])
    assert _blas_threads() == before
