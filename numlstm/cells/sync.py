"""A per-step barrier for time loops whose threads split one step's work.

When a batch has too few rows to share between threads, the threads split
the hidden units instead (see ``numlstm.cells.lstm.forward``). Each step
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
Numba has no atomics on the CPU, so the loads, stores and the
compare-and-swap are written in LLVM IR through
``numba.extending.intrinsic``.

``run_parts`` runs the parts: the first on the calling thread, the others
on threads of their own (part threads). Every call has a number of its own,
drawn from a counter that never repeats. A part thread's lines hold the
number of the call last posted to it, last released to it and last done by
it, and whether it sleeps; the last line holds the lock (the number of the
call that holds it, or 0), the abort flag, which a part that fails raises so
that the others stop spinning and return, the number of parts and the
number of the running call. Between calls the part threads spin for about
0.1 ms before they sleep, so that back-to-back calls (the layers and
directions of one forward, or a loop over batches) skip the wake-up of a
sleeping thread, which costs tens of microseconds, longer than a hundred
steps of the barrier. They spin only while their caller is the only
thread in numlstm's kernels: beside other callers (a Dask threaded
scheduler, say) a spinning thread takes a core from them, and those callers
hold their share of the cores, so the next call would not get the part
threads anyway. For the same reason as the spin, a part thread starts its job only
once the caller's kernel releases it (``enter``), the caller having let
go of the Python interpreter lock, and the caller returns only once the part
threads wait for their next job without it (``finish``): a thread that
asked for the lock while another held it would sleep until woken.

Interrupts. A ``KeyboardInterrupt`` (Ctrl-C) reaches Python code of the main
thread only, between its bytecodes, never inside a Numba call. So every step
of the protocol that must not stop half-way is one Numba call: taking the
lock together with posting the call (``_begin``), releasing the part
threads (``enter``, inside the first part's kernel), and waiting for
them, aborting them first if the first part left early, together with
giving the lock back (``_end``). ``run_parts`` calls ``_end``
first thing in a ``finally`` that covers everything after ``_begin``:
CPython looks for a pending signal on entering a function, on a backward
jump and after a call returns, so no interrupt lands between entering that
block and the end of ``_end``. A part thread runs a job only when it
was released for that job's call number, and a caller waits only for its
own call number, so a job posted by a call that was interrupted before it
released anything never runs. An interrupt while a thread starts or while
a sleeping thread is woken leaves at worst an extra thread, which finds
its part served and exits, or a thread asleep, which the next call wakes:
waking goes through ``queue.SimpleQueue``, whose ``put`` is one C call, so
no lock is left held. And ``_begin`` aborts and waits for any part
thread that still runs a job of an earlier call before it resets the
barrier, so whatever an earlier call left behind, every call starts from
the same state. The share of the cores that the call takes before
``_begin`` is keyed by thread, so an interrupt leaves at worst the main
thread's own share behind, which its next call replaces (see
``numlstm._config.take_share``).
"""

import itertools
import os
import platform
import queue
import threading
import time

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from numlstm._config import JIT_OPTIONS, active_callers, give_back_share, record_split, take_share

FLAG_STRIDE = 16  # int64 slots between two counters: 128 bytes, two cache lines
PART_LINES = 6  # a part's step; for a part thread also its posted, released, done, sleep, server
PART_SLOTS = PART_LINES * FLAG_STRIDE
STEP, POSTED, RELEASED, DONE, SLEEPING, SERVED = (line * FLAG_STRIDE for line in range(PART_LINES))
# the last line: the lock, the abort flag, the part count and the running call's number
LOCK, ABORT, N_PARTS, CALL = (-FLAG_STRIDE + slot for slot in range(4))
SPINS_BEFORE_YIELD = 256
SPINS_BEFORE_SLEEP = 4096  # about 0.1 ms of spin-wait hints
MAX_PARTS = os.cpu_count() or 1
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
def _swap(typingctx, flags, index, expected, value):
    """Set ``flags[index]`` to ``value`` if it holds ``expected``, atomically; whether it did."""
    if not _is_counter_array(flags):
        return None

    def codegen(context, builder, sig, args):
        ptr = _flag_pointer(context, builder, sig.args[0], args[0], args[1])
        old = context.cast(builder, args[2], sig.args[2], types.int64)
        new = context.cast(builder, args[3], sig.args[3], types.int64)
        pair = builder.cmpxchg(ptr, old, new, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)

    return types.boolean(flags, index, expected, value), codegen


@intrinsic
def _fence(typingctx):
    """A full memory fence: no load after it moves before a store ahead of it."""

    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


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
def _global(flags, slot):
    """The index of ``slot`` (``LOCK``, ``ABORT``, ``N_PARTS`` or ``CALL``) in ``flags``."""
    return flags.shape[0] + slot


@njit(inline="always", **JIT_OPTIONS)
def _n_parts(flags):
    """The number of parts of the running call (set by ``_begin``)."""
    return _observe(flags, _global(flags, N_PARTS))


@njit(inline="always", **JIT_OPTIONS)
def _await_slot(flags, index, target):
    """Wait until ``flags[index]`` reads at least ``target``; False if the abort flag rises first.

    Spins, and yields the core after ``SPINS_BEFORE_YIELD`` turns.
    """
    spins = 0
    while _observe(flags, index) < target:
        if _observe(flags, _global(flags, ABORT)) != 0:
            return False
        if spins < SPINS_BEFORE_YIELD:
            spins += 1
            _relax()
        else:
            _yield_core()
    return True


@njit(inline="always", **JIT_OPTIONS)
def _stop_unfinished_jobs(flags, n_parts):
    """Stop the jobs released to parts ``1:n_parts`` and not done; wait until they return.

    Only for jobs whose first part has left its kernel, or whose call has
    ended: they may wait at the barrier for a part that never comes, so the
    abort flag rises first.
    """
    unfinished = False
    for q in range(1, n_parts):
        unfinished |= (_observe(flags, q * PART_SLOTS + DONE)
                       < _observe(flags, q * PART_SLOTS + RELEASED))
    if not unfinished:
        return
    _publish(flags, _global(flags, ABORT), 1)
    for q in range(1, n_parts):
        spins = 0
        while _observe(flags, q * PART_SLOTS + DONE) < _observe(flags, q * PART_SLOTS + RELEASED):
            if spins < SPINS_BEFORE_YIELD:
                spins += 1
                _relax()
            else:
                _yield_core()


@njit(inline="always", **JIT_OPTIONS)
def enter(flags, part):
    """The first call of a kernel under ``run_parts``.

    In the first part, the caller's, it lets the part threads start their
    jobs: from here, with the interpreter lock released, so that they take
    the lock, call their kernels and pack their weights while this part
    packs its own.
    """
    if part == 0:
        call = _observe(flags, _global(flags, CALL))
        for q in range(1, _n_parts(flags)):
            _publish(flags, q * PART_SLOTS + RELEASED, call)


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
    """The last call of a kernel under ``run_parts``, after the part's last write.

    Publishes that ``part`` finished ``step``. The first part, the caller's,
    then waits until every part thread is done with its job and waits for
    the next one: the caller returns to Python only then, so that no part
    thread asks for the interpreter lock while the caller holds it (see
    ``run_parts``). That also makes every part's writes visible to the
    caller.
    """
    _publish(flags, part * PART_SLOTS + STEP, step)
    if part == 0:
        call = _observe(flags, _global(flags, CALL))
        for q in range(1, _n_parts(flags)):
            if not _await_slot(flags, q * PART_SLOTS + DONE, call):
                return


@njit(**JIT_OPTIONS)
def _begin(flags, call, n_parts):
    """Take the lock for ``call`` and post it to parts ``1:n_parts``; False if the lock is taken.

    A part thread still running a job of an earlier call (one whose
    ``_end`` never ran) is aborted and awaited first, so the barrier
    starts afresh whatever came before.
    """
    if not _swap(flags, _global(flags, LOCK), 0, call):
        return False
    _stop_unfinished_jobs(flags, MAX_PARTS)
    for k in range(n_parts):
        _publish(flags, k * PART_SLOTS + STEP, 0)
    _publish(flags, _global(flags, ABORT), 0)
    _publish(flags, _global(flags, N_PARTS), n_parts)
    _publish(flags, _global(flags, CALL), call)
    for q in range(1, n_parts):
        _publish(flags, q * PART_SLOTS + POSTED, call)
    _fence()  # a part thread that reads no new post has published that it sleeps (see _sleep)
    return True


@njit(**JIT_OPTIONS)
def _end(flags, call):
    """Finish ``call`` if it holds the lock: stop and await its released jobs, then unlock.

    A job released and not done when this runs waits for a first part that
    left its kernel early; the abort flag lets it return.
    """
    if _observe(flags, _global(flags, LOCK)) != call:
        return
    _stop_unfinished_jobs(flags, _n_parts(flags))
    _publish(flags, _global(flags, LOCK), 0)


@njit(**JIT_OPTIONS)
def _raise_abort(flags):
    """Raise the abort flag: a part failed, and the others stop waiting for it."""
    _publish(flags, _global(flags, ABORT), 1)


@njit(**JIT_OPTIONS)
def _claim(flags, part):
    """Make the calling thread the one that serves ``part``; False if another already does."""
    return _swap(flags, part * PART_SLOTS + SERVED, 0, 1)


@njit(inline="always", **JIT_OPTIONS)
def _pending(flags, part, done):
    """Whether ``part``'s thread has a job coming: released, or posted by the lock's holder.

    A call posted and never released, its caller having been interrupted,
    no longer holds the lock: its job never comes.
    """
    posted = _observe(flags, part * PART_SLOTS + POSTED)
    return (_observe(flags, part * PART_SLOTS + RELEASED) > done
            or posted > done and _observe(flags, _global(flags, LOCK)) == posted)


@njit(**JIT_OPTIONS)
def _finish_and_await_release(flags, part, done, spins):
    """Publish that ``part``'s thread is done with call ``done``; await a later release.

    Returns the number of the call released, or 0 when ``spins`` turns pass
    with no job coming (see ``_pending``); while one is coming it waits
    on, yielding the core. Publishing from here, without the interpreter
    lock, lets the first part wait for it without the lock too (see
    ``finish``).
    """
    _publish(flags, part * PART_SLOTS + DONE, done)
    turn = 0
    while _observe(flags, part * PART_SLOTS + RELEASED) <= done:
        if turn < spins:
            _relax()
        elif _pending(flags, part, done):
            _yield_core()
        else:
            return 0
        turn += 1
    return _observe(flags, part * PART_SLOTS + RELEASED)


@njit(**JIT_OPTIONS)
def _sleep(flags, part, done, sleeping):
    """Publish whether ``part``'s thread sleeps; whether no job is coming (see ``_pending``).

    With ``sleeping``, the fence orders the store before the loads, and
    ``_begin`` orders its post before its caller reads the sleep flag,
    so either the thread sees the post or the caller sees the thread
    asleep and wakes it.
    """
    _publish(flags, part * PART_SLOTS + SLEEPING, 1 if sleeping else 0)
    _fence()
    return not _pending(flags, part, done)


def _serve(flags, part, bell):
    """The loop of a part thread: run each job released to ``part``, sleep when idle."""
    if not _claim(flags, part):
        return  # an earlier thread, started by an interrupted call, serves this part
    done = 0
    while True:
        # say the last job is done and spin for the next one without the interpreter lock: a
        # thread that took the lock as soon as a job was posted would sleep until the caller
        # let it go. Spin only while this part's caller is numlstm's only one: a spinning thread
        # would take a core from the other callers
        spins = SPINS_BEFORE_SLEEP if active_callers() <= 1 else 0
        released = _finish_and_await_release(flags, part, done, spins)
        if not released:
            while _sleep(flags, part, done, True):
                bell.get()
            _sleep(flags, part, done, False)
            continue
        call, job = _jobs[part]
        if call == released:  # else the job's call never released it: it must not run
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                job(part, flags)
            except BaseException as exc:  # handed to the caller of run_parts
                _errors[part] = (call, exc)
                _raise_abort(flags)
            _times[part] = (call, time.perf_counter() - start, time.thread_time() - cpu)
        done = released


_calls = itertools.count(1)
_flags = np.zeros((MAX_PARTS * PART_LINES + 1) * FLAG_STRIDE, np.int64)
_jobs = [(0, None)] * MAX_PARTS
_errors = [(0, None)] * MAX_PARTS
_times = [(0, 0.0, 0.0)] * MAX_PARTS  # per part thread: its last call, that job's wall and thread time
_bells = [queue.SimpleQueue() for _ in range(MAX_PARTS)]


def _forget_threads():
    """In a forked child the part threads are gone: start new ones when needed."""
    global _flags, _bells
    _flags = np.zeros_like(_flags)
    _bells = [queue.SimpleQueue() for _ in range(MAX_PARTS)]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def _start_part_threads(n_parts):
    """Start a thread for each part in ``1:n_parts`` that none serves yet."""
    flags = _flags
    for q in range(1, n_parts):
        if not flags[q * PART_SLOTS + SERVED]:
            threading.Thread(target=_serve, args=(flags, q, _bells[q]), daemon=True,
                             name="numlstm-part").start()


def busy():
    """Whether a call of ``run_parts`` holds the part threads."""
    return bool(_flags[LOCK])


def run_parts(fn, n_parts):
    """Call ``fn(k, flags)`` for every ``k`` in ``range(n_parts)``, all at the same time.

    For kernels whose parts wait for each other at every step: a part can
    only finish when every other part is running. So the parts other than
    the first run on threads reserved for this, one call at a time, and
    ``n_parts`` must not exceed ``numlstm._config.usable_cores``, or
    parts would spin while the part they wait for has no core. ``flags``
    are the parts' counters, to hand to the kernel; a part that fails raises
    their abort flag, so that the others stop waiting and return, and its
    error is raised here.

    ``fn(k, flags)`` must call a kernel that starts with ``enter`` and
    ends with ``finish``. The first part releases the others from its
    kernel, and returns only once the other parts' threads wait for their
    next job. It waits without the Python interpreter lock, and releases
    the others once it has let go of the lock, so no thread ever waits for
    the lock while another holds it: a part thread that did would sleep
    until the other let go of the lock, and pay a wake-up of tens of
    microseconds.

    The parts hold ``n_parts`` of the usable cores (see
    ``numlstm._config.take_share``). Returns False, without calling
    ``fn``, when another call is running or other callers of numlstm's
    kernels leave fewer cores free; the caller then does the work another
    way. An interrupt at any point leaves the part threads ready for the
    next call (see the module notes).
    """
    call = next(_calls)
    flags = _flags
    try:
        if not take_share(n_parts, all_or_none=True) or not _begin(flags, call, n_parts):
            return False
        start, cpu = time.perf_counter(), time.thread_time()
        _start_part_threads(n_parts)
        for q in range(1, n_parts):
            _jobs[q] = (call, fn)
        for q in range(1, n_parts):
            if flags[q * PART_SLOTS + SLEEPING]:
                _bells[q].put(None)
        fn(0, flags)
        # every part spins while it waits for the others, so a part shows its wait for a core
        # as wall time beyond its thread time; the longest such wait counts (record_split)
        parts = [(time.perf_counter() - start, time.thread_time() - cpu)]
    finally:
        try:
            _end(flags, call)
        finally:
            give_back_share()
    for q in range(1, n_parts):
        failed, error = _errors[q]
        if failed == call:
            raise error
    parts += [times[1:] for times in _times[1:n_parts] if times[0] == call]
    record_split(*max(parts, key=lambda times: times[0] - times[1]), n_parts)
    return True
