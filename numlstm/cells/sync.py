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

The last slot of the array is an abort flag: when the thread that runs
the first share fails before its kernel starts, it sets the flag so that the
others stop spinning and return (see :func:`numlstm._config.run_parts`).
"""

import os
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from numlstm._config import JIT_OPTIONS

FLAG_STRIDE = 16  # int64 slots between two counters: 128 bytes, two cache lines
SPINS_BEFORE_YIELD = 256
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
def arrive_and_wait(flags, part, step):
    """Publish that ``part`` finished ``step`` (>= 1), then wait for every other part.

    Returns False when the abort flag was raised instead.
    """
    n_parts = flags.shape[0] // FLAG_STRIDE - 1
    abort = flags.shape[0] - 1
    _publish(flags, part * FLAG_STRIDE, step)
    for q in range(n_parts):
        spins = 0
        while _observe(flags, q * FLAG_STRIDE) < step:
            if _observe(flags, abort) != 0:
                return False
            if spins < SPINS_BEFORE_YIELD:
                spins += 1
                _relax()
            else:
                _yield_core()
    return True
