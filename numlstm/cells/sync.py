"""A per-step barrier for time loops whose threads split one step's work.

When a batch has too few rows to share between threads, the threads split
the hidden units instead (see :func:`numlstm.cells.lstm.forward`). Each step
then needs every thread's share of the new hidden state before any thread
can start the next step, so the threads meet at a barrier once per step.
A step lasts a few microseconds, far less than waking a sleeping thread, so
the barrier spins. After ``SPINS_BEFORE_YIELD`` turns it also gives up the
core at every turn: the operating system sometimes wakes a part's thread on
the core where the part it waits for runs, or preempts a part, and a thread
that only spun would then keep the core from the part it waits for until
the scheduler steps in, milliseconds later.

The barrier is a row of counters, one per thread, each on a cache line of
its own (``FLAG_STRIDE`` int64 apart). A thread that finishes step ``s``
publishes ``s`` in its counter with a release store, then spins until every
other counter reads at least ``s``, with acquire loads. Release and acquire
order the hidden-state writes before the counter, so the reader sees them.
Numba has no atomics on the CPU, so the loads and stores are written in
LLVM IR through :func:`numba.extending.intrinsic`.

The second slot of each counter's line says that the part has entered its
kernel (:func:`enter`), the third that its thread is back waiting for its
next job (see :func:`finish`), and the last slot of the array is an abort
flag: a part that fails sets it, so that the others stop spinning and return
(see :func:`run_parts`).

:func:`run_parts` runs the parts: the first on the calling thread, the others
on threads of their own. Between calls those threads spin for about 0.1 ms
before they sleep, so that back-to-back calls (the layers and directions of
one forward, or a loop over batches) skip the wake-up of a sleeping thread,
which costs tens of microseconds, longer than a hundred steps of the barrier.
For the same reason a thread starts its job only once the caller has let go
of the Python interpreter lock, and the caller returns only once the threads
wait for their next job without it: a thread that asked for the lock while
another held it would sleep until woken.
"""

import os
import platform
import threading

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from numlstm._config import JIT_OPTIONS

FLAG_STRIDE = 16  # int64 slots between two counters: 128 bytes, two cache lines
ENTERED, RETURNED = 1, 2  # slots of a part's line after its step counter
SPINS_BEFORE_YIELD = 256
SPINS_BEFORE_SLEEP = 4096  # about 0.1 ms of spin-wait hints
SIGNAL_SLOTS = 3  # per part thread: jobs posted, jobs released, jobs done; a line apart
POSTED, RELEASED, DONE = 0, FLAG_STRIDE, 2 * FLAG_STRIDE
_YIELD = "sched_yield" if os.name == "posix" else "SwitchToThread"
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _flag_pointer(context, builder, flags_type, flags, index):
    arr = context.make_array(flags_type)(context, builder, flags)
    return builder.gep(arr.data, [index])


def _is_counter_array(flags):
    return isinstance(flags, types.Array) and flags.ndim == 1 and flags.dtype == types.int64


@intrinsic
def _publish(typingctx, flags, index, value):
    """``flags[index] = value`` as an atomic store with release ordering."""
    if not _is_counter_array(flags):
        return None

    def codegen(context, builder, sig, args):
        ptr = _flag_pointer(context, builder, sig.args[0], args[0], args[1])
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(value, ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(flags, index, value), codegen


@intrinsic
def _observe(typingctx, flags, index):
    """``flags[index]`` as an atomic load with acquire ordering."""
    if not _is_counter_array(flags):
        return None

    def codegen(context, builder, sig, args):
        ptr = _flag_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(flags, index), codegen


@intrinsic
def _relax(typingctx):
    """A spin-wait hint to the CPU (``pause`` on x86), nothing elsewhere."""

    def codegen(context, builder, sig, args):
        if _X86:
            pause = builder.module.declare_intrinsic("llvm.x86.sse2.pause", fnty=ir.FunctionType(
                ir.VoidType(), []))
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield_core(typingctx):
    """Let the operating system run another thread on this core (``sched_yield``)."""

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            _YIELD)
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


def new_flags(n_parts):
    """Zeroed counters for ``n_parts`` threads, with the abort flag last."""
    return np.zeros((n_parts + 1) * FLAG_STRIDE, np.int64)


@njit(inline="always", **JIT_OPTIONS)
def enter(flags, part):
    """Say that ``part`` runs its kernel: the first thing a kernel under :func:`run_parts` does."""
    _publish(flags, part * FLAG_STRIDE + ENTERED, 1)


@njit(nogil=True, cache=JIT_OPTIONS["cache"])
def _release_and_await_entered(signals, flags):
    """Let the part threads go, then wait until each has entered its kernel; False on abort.

    Called by the first part with the interpreter lock released: each part
    thread, having seen its job posted, waits for its ``RELEASED`` signal
    before it takes the lock (see :class:`_PartThread`), so it never has to
    sleep until this thread lets go of the lock.
    """
    for w in range(flags.shape[0] // FLAG_STRIDE - 2):  # the part threads: all parts but one
        row = w * SIGNAL_SLOTS * FLAG_STRIDE
        _publish(signals, row + RELEASED, _observe(signals, row + POSTED))
    return _await_parts(flags, ENTERED, 1, 1)


@njit(inline="always", **JIT_OPTIONS)
def _await_parts(flags, slot, target, first):
    """Wait until slot ``slot`` of every part from ``first`` on reads at least ``target``.

    Returns False when the abort flag was raised instead. Spins, and yields
    the core after ``SPINS_BEFORE_YIELD`` turns.
    """
    n_parts = flags.shape[0] // FLAG_STRIDE - 1
    abort = flags.shape[0] - 1
    for q in range(first, n_parts):
        spins = 0
        while _observe(flags, q * FLAG_STRIDE + slot) < target:
            if _observe(flags, abort) != 0:
                return False
            if spins < SPINS_BEFORE_YIELD:
                spins += 1
                _relax()
            else:
                _yield_core()
    return True


@njit(inline="always", **JIT_OPTIONS)
def arrive_and_wait(flags, part, step):
    """Publish that ``part`` finished ``step`` (>= 1), then wait for every other part.

    Returns False when the abort flag was raised instead.
    """
    _publish(flags, part * FLAG_STRIDE, step)
    return _await_parts(flags, 0, step, 0)


@njit(inline="always", **JIT_OPTIONS)
def finish(flags, part, step):
    """The last call of a kernel under :func:`run_parts`, after the part's last write.

    Publishes that ``part`` finished ``step``. The first part, the caller's,
    then waits until every other part's thread is back waiting for its next
    job: the caller returns to Python only then, so that no part thread asks
    for the interpreter lock while the caller holds it (see :func:`run_parts`).
    That also makes every part's writes visible to the caller.
    """
    _publish(flags, part * FLAG_STRIDE, step)
    if part == 0:
        _await_parts(flags, RETURNED, 1, 1)


@njit(nogil=True, cache=JIT_OPTIONS["cache"])
def _await_count(counters, index, target, spins):
    """Spin until ``counters[index] >= target``; False if ``spins`` turns pass first.

    With ``spins < 0`` it never gives up, and yields the core after
    ``SPINS_BEFORE_YIELD`` turns.
    """
    turn = 0
    while _observe(counters, index) < target:
        if 0 <= spins <= turn:
            return False
        turn += 1
        if spins >= 0 or turn < SPINS_BEFORE_YIELD:
            _relax()
        else:
            _yield_core()
    return True


@njit(nogil=True, cache=JIT_OPTIONS["cache"])
def _finish_and_await_release(signals, row, done, flags, part, spins):
    """Publish that a part thread has finished ``done`` jobs, then await the release of the next.

    The last job was ``part`` of the call whose counters are ``flags``.
    Publishing from here, without the interpreter lock, lets the caller of
    :func:`run_parts` wait for it without the lock too (see :func:`finish`).
    ``spins`` as in :func:`_await_count`.
    """
    _publish(flags, part * FLAG_STRIDE + RETURNED, 1)
    _publish(signals, row + DONE, done)
    return _await_count(signals, row + RELEASED, done + 1, spins)


class _PartThread:
    """A thread that runs part ``w + 1`` of :func:`run_parts`, one call at a time.

    Its counters are the slots ``POSTED``, ``RELEASED`` and ``DONE`` of row
    ``w`` of ``_signals``. It waits for the next job spinning, then asleep.
    A job starts when the caller releases it, which the caller does from
    code that runs without the interpreter lock.
    """

    def __init__(self, w):
        self.row = w * SIGNAL_SLOTS * FLAG_STRIDE
        self.job = None
        self.error = None
        self.wake = threading.Condition()
        threading.Thread(target=self._serve, args=(_signals,), daemon=True,
                         name="numlstm-part").start()

    def _serve(self, signals):
        row, done = self.row, 0
        flags, k = new_flags(0), 0  # no job yet
        while True:
            # say the last job is done and spin for the next one without the interpreter lock:
            # a thread that took the lock as soon as a job was posted would sleep until the
            # caller let it go
            if not _finish_and_await_release(signals, row, done, flags, k, SPINS_BEFORE_SLEEP):
                with self.wake:
                    self.wake.wait_for(lambda: signals[row + POSTED] > done)
                _await_count(signals, row + RELEASED, done + 1, -1)
            fn, k, flags = self.job
            try:
                fn(k)
            except BaseException as exc:  # handed to the caller of run_parts
                self.error = exc
            done += 1

    def post(self, fn, k, flags):
        self.job, self.error = (fn, k, flags), None
        with self.wake:
            _signals[self.row + POSTED] += 1
            self.wake.notify()

    def result(self):
        """Wait for the job posted last; raise what it raised."""
        _await_count(_signals, self.row + DONE, _signals[self.row + POSTED], -1)
        if self.error is not None:
            raise self.error


_lock = threading.Lock()
_threads = []
_signals = np.zeros((os.cpu_count() or 1) * SIGNAL_SLOTS * FLAG_STRIDE, np.int64)


def _forget_threads():
    """In a forked child the part threads are gone: start new ones when needed."""
    global _lock, _threads, _signals
    _lock, _threads, _signals = threading.Lock(), [], np.zeros_like(_signals)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def run_parts(fn, n_parts, flags):
    """Call ``fn(k)`` for every ``k`` in ``range(n_parts)``, all at the same time.

    For kernels whose parts wait for each other at every step: a part can
    only finish when every other part is running. So the parts other than
    the first run on threads reserved for this, one call at a time, and
    ``n_parts`` must not exceed :func:`numlstm._config.usable_cores`, or
    parts would spin while the part they wait for has no core. ``flags``
    are the parts' counters (:func:`new_flags`); a part that fails raises
    their abort flag, so that the others stop waiting and return, and its
    error is raised here.

    ``fn(k)`` must call a kernel that starts with :func:`enter` and ends
    with :func:`finish`. The first part starts only once the others have
    entered their kernels, and it returns only once the other parts' threads
    wait for their next job. It waits for both without the Python
    interpreter lock, so no thread ever waits for the lock while another
    holds it: a part thread that did so after its job would sleep until the
    caller let go of the lock, and the next call would pay its wake-up,
    tens of microseconds.

    Returns False, without calling ``fn``, when another call is running;
    the caller then does the work another way.
    """
    if not _lock.acquire(blocking=False):
        return False
    try:
        while len(_threads) < n_parts - 1:
            _threads.append(_PartThread(len(_threads)))

        def guarded(k):
            try:
                fn(k)
            except BaseException:
                flags[-1] = 1  # the abort flag: the other parts stop waiting for this one
                raise

        for k in range(1, n_parts):
            _threads[k - 1].post(guarded, k, flags)
        try:
            if _release_and_await_entered(_signals, flags):
                guarded(0)
        finally:
            for k in range(1, n_parts):  # raises what a part raised
                _threads[k - 1].result()
    finally:
        _lock.release()
    return True
