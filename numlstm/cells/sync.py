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

The barrier is a row of counters, one per part, each on cache lines of its
own (``FLAG_STRIDE`` int64 apart). A part that finishes step ``s``
publishes ``s`` in its counter with a release store, then spins until every
other counter reads at least ``s``, with acquire loads. Release and acquire
order the hidden-state writes before the counter, so the reader sees them.
Numba has no atomics on the CPU, so the loads and stores are written in
LLVM IR through :func:`numba.extending.intrinsic`.

:func:`run_parts` runs the parts: the first on the calling thread, the others
on threads of their own, which count the jobs posted to them, released and
done on lines of their own beside their part's counter. The last line holds
an abort flag, which a part that fails raises so that the others stop
spinning and return, and the number of parts. There is one set of counters,
since one call runs at a time. Between calls the part threads spin for about
0.1 ms before they sleep, so that back-to-back calls (the layers and
directions of one forward, or a loop over batches) skip the wake-up of a
sleeping thread, which costs tens of microseconds, longer than a hundred
steps of the barrier. For the same reason a part thread starts its job only
once the caller's kernel releases it (:func:`enter`), the caller having let
go of the Python interpreter lock, and the caller returns only once the part
threads wait for their next job without it (:func:`finish`): a thread that
asked for the lock while another held it would sleep until woken.
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
PART_LINES = 4  # a part's lines: its step, and for a part thread its jobs posted, released, done
PART_SLOTS = PART_LINES * FLAG_STRIDE
STEP, POSTED, RELEASED, DONE = (line * FLAG_STRIDE for line in range(PART_LINES))
ABORT, N_PARTS = -FLAG_STRIDE, -FLAG_STRIDE + 1  # the last line: the abort flag, the part count
SPINS_BEFORE_YIELD = 256
SPINS_BEFORE_SLEEP = 4096  # about 0.1 ms of spin-wait hints
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


@njit(inline="always", **JIT_OPTIONS)
def _n_parts(flags):
    """The number of parts of the running call (set by :func:`run_parts`)."""
    return _observe(flags, flags.shape[0] + N_PARTS)


@njit(inline="always", **JIT_OPTIONS)
def _release(flags):
    """Let every part thread start the job posted to it."""
    for q in range(1, _n_parts(flags)):
        _publish(flags, q * PART_SLOTS + RELEASED, _observe(flags, q * PART_SLOTS + POSTED))


@njit(nogil=True, cache=JIT_OPTIONS["cache"])
def _release_after_failure(flags):
    """Raise the abort flag and release the part threads: the first part failed before it could."""
    _publish(flags, flags.shape[0] + ABORT, 1)
    _release(flags)


@njit(inline="always", **JIT_OPTIONS)
def _await_slot(flags, index, target):
    """Wait until ``flags[index]`` reads at least ``target``; False if the abort flag rises first.

    Spins, and yields the core after ``SPINS_BEFORE_YIELD`` turns.
    """
    spins = 0
    while _observe(flags, index) < target:
        if _observe(flags, flags.shape[0] + ABORT) != 0:
            return False
        if spins < SPINS_BEFORE_YIELD:
            spins += 1
            _relax()
        else:
            _yield_core()
    return True


@njit(inline="always", **JIT_OPTIONS)
def enter(flags, part):
    """The first call of a kernel under :func:`run_parts`.

    In the first part, the caller's, it lets the part threads start their
    jobs: from here, with the interpreter lock released, so that they take
    the lock, call their kernels and pack their weights while this part
    packs its own.
    """
    if part == 0:
        _release(flags)


@njit(inline="always", **JIT_OPTIONS)
def arrive_and_wait(flags, part, step):
    """Publish that ``part`` finished ``step`` (>= 1), then wait for every other part.

    Returns False when the abort flag was raised instead.
    """
    _publish(flags, part * PART_SLOTS + STEP, step)
    for q in range(_n_parts(flags)):
        if not _await_slot(flags, q * PART_SLOTS + STEP, step):
            return False
    return True


@njit(inline="always", **JIT_OPTIONS)
def finish(flags, part, step):
    """The last call of a kernel under :func:`run_parts`, after the part's last write.

    Publishes that ``part`` finished ``step``. The first part, the caller's,
    then waits until every part thread is done with its job and waits for
    the next one: the caller returns to Python only then, so that no part
    thread asks for the interpreter lock while the caller holds it (see
    :func:`run_parts`). That also makes every part's writes visible to the
    caller.
    """
    _publish(flags, part * PART_SLOTS + STEP, step)
    if part == 0:
        for q in range(1, _n_parts(flags)):
            posted = _observe(flags, q * PART_SLOTS + POSTED)
            if not _await_slot(flags, q * PART_SLOTS + DONE, posted):
                return


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
def _finish_and_await_release(flags, part, done, spins):
    """Publish that the thread of ``part`` has finished ``done`` jobs; await the next release.

    Publishing from here, without the interpreter lock, lets the first part
    wait for it without the lock too (see :func:`finish`). ``spins`` as in
    :func:`_await_count`.
    """
    _publish(flags, part * PART_SLOTS + DONE, done)
    return _await_count(flags, part * PART_SLOTS + RELEASED, done + 1, spins)


class _PartThread:
    """A thread that runs part ``part`` of :func:`run_parts`, one call at a time.

    Its counters are the slots ``POSTED``, ``RELEASED`` and ``DONE`` of the
    part's lines in ``_flags``. It waits for the next job spinning, then
    asleep. A job starts when the first part releases it, from code that
    runs without the interpreter lock (see :func:`enter`).
    """

    def __init__(self, part):
        self.part = part
        self.job = None
        self.error = None
        self.wake = threading.Condition()
        threading.Thread(target=self._serve, args=(_flags,), daemon=True,
                         name="numlstm-part").start()

    def _serve(self, flags):
        part, posted, done = self.part, self.part * PART_SLOTS + POSTED, 0
        while True:
            # say the last job is done and spin for the next one without the interpreter lock:
            # a thread that took the lock as soon as a job was posted would sleep until the
            # caller let it go
            if not _finish_and_await_release(flags, part, done, SPINS_BEFORE_SLEEP):
                with self.wake:
                    self.wake.wait_for(lambda: flags[posted] > done)
                _await_count(flags, part * PART_SLOTS + RELEASED, done + 1, -1)
            try:
                self.job(part)
            except BaseException as exc:  # handed to the caller of run_parts
                self.error = exc
            done += 1

    def post(self, fn):
        self.job, self.error = fn, None
        with self.wake:
            _flags[self.part * PART_SLOTS + POSTED] += 1
            self.wake.notify()

    def released(self):
        at = self.part * PART_SLOTS
        return _flags[at + RELEASED] == _flags[at + POSTED]

    def result(self):
        """Wait for the job posted last; raise what it raised."""
        at = self.part * PART_SLOTS
        _await_count(_flags, at + DONE, _flags[at + POSTED], -1)
        if self.error is not None:
            raise self.error


_lock = threading.Lock()
_threads = []
_flags = np.zeros(((os.cpu_count() or 1) * PART_LINES + 1) * FLAG_STRIDE, np.int64)


def _forget_threads():
    """In a forked child the part threads are gone: start new ones when needed."""
    global _lock, _threads, _flags
    _lock, _threads, _flags = threading.Lock(), [], np.zeros_like(_flags)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def run_parts(fn, n_parts):
    """Call ``fn(k, flags)`` for every ``k`` in ``range(n_parts)``, all at the same time.

    For kernels whose parts wait for each other at every step: a part can
    only finish when every other part is running. So the parts other than
    the first run on threads reserved for this, one call at a time, and
    ``n_parts`` must not exceed :func:`numlstm._config.usable_cores`, or
    parts would spin while the part they wait for has no core. ``flags``
    are the parts' counters, to hand to the kernel; a part that fails raises
    their abort flag, so that the others stop waiting and return, and its
    error is raised here.

    ``fn(k, flags)`` must call a kernel that starts with :func:`enter` and
    ends with :func:`finish`. The first part releases the others from its
    kernel, and returns only once the other parts' threads wait for their
    next job. It waits without the Python interpreter lock, and releases
    the others once it has let go of the lock, so no thread ever waits for
    the lock while another holds it: a part thread that did would sleep
    until the other let go of the lock, and pay a wake-up of tens of
    microseconds.

    Returns False, without calling ``fn``, when another call is running;
    the caller then does the work another way.
    """
    if not _lock.acquire(blocking=False):
        return False
    try:
        while len(_threads) < n_parts - 1:
            _threads.append(_PartThread(len(_threads) + 1))
        flags = _flags
        for k in range(n_parts):
            flags[k * PART_SLOTS + STEP] = 0
        flags[ABORT] = 0
        flags[N_PARTS] = n_parts

        def guarded(k):
            try:
                fn(k, flags)
            except BaseException:
                flags[ABORT] = 1  # the other parts stop waiting for this one
                raise

        for thread in _threads[:n_parts - 1]:
            thread.post(guarded)
        try:
            guarded(0)
        finally:
            if not all(thread.released() for thread in _threads[:n_parts - 1]):
                _release_after_failure(flags)
            for thread in _threads[:n_parts - 1]:  # raises what a part raised
                thread.result()
    finally:
        _lock.release()
    return True
