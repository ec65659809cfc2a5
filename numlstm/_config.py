"""Numba settings and thread policy shared by every kernel, in one place.

``FASTMATH`` is a set of LLVM fast-math flags that leaves out ``nnan`` and
``ninf``, so NaN and infinity checks inside kernels keep working.
``ORDERED_JIT_OPTIONS`` also leaves out ``reassoc``, for the dot products,
so that each sum runs in one fixed order whatever the thread split. ``CACHE``
turns on Numba's on-disk cache so that a fresh process does not recompile.
Set ``NUMLSTM_DISABLE_CACHE=1`` in the environment to compile in memory only.

Threads: the recurrence of one sequence is sequential, but the rows of a
batch are independent for the whole sequence. So the time-loop kernels run on
slices of the batch in ``num_threads()`` Python threads (the kernels release
the GIL), each with single-threaded BLAS for its per-step products. That needs
no synchronisation per step. The large GEMMs over every step at once (the
input projection and the weight gradients) split their rows across the same
threads (see ``numlstm.cells.gemm.matmul``), so BLAS's own thread pool is
never woken to spin beside them. When a batch has too few rows to share, a
time loop can split each step's hidden units instead; its threads then meet
at a spinning barrier every step (see ``numlstm.cells.sync``). ``num_threads()`` follows
``numba.get_num_threads()``, so ``NUMBA_NUM_THREADS`` or
``numba.set_num_threads`` sets it.
"""

import atexit
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("NUMLSTM_DISABLE_CACHE", "0") not in ("1", "true", "True")
SUPPORTED_DTYPES = (np.float32, np.float64)

JIT_OPTIONS = {"nogil": True, "cache": CACHE, "fastmath": FASTMATH, "error_model": "numpy"}
# For sums whose order must not depend on the thread split (see numlstm.cells.gemm.matmul_nt):
# without "reassoc", LLVM keeps each sum in program order.
ORDERED_JIT_OPTIONS = dict(JIT_OPTIONS, fastmath=FASTMATH - {"reassoc"})

_pool = None
_blas = None
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None


def num_threads():
    """Threads numlstm uses for its time loops: ``numba.get_num_threads()``."""
    return numba.get_num_threads()


def _thread_pool():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                   thread_name_prefix="numlstm")
        atexit.register(_pool.shutdown)
    return _pool


def _forget_pool():
    """In a forked child the pool's threads are gone: start a new pool when one is needed.

    The BLAS limit's lock may have been held by one of those threads, so the
    child gets a fresh one, and no users of the limit.
    """
    global _pool, _blas_lock, _blas_users
    _pool = None
    _blas_lock, _blas_users = threading.Lock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@contextlib.contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread, restoring the previous setting when the last user leaves.

    The BLAS thread count is one setting for the whole process, and several
    threads may hold the limit at once (layers called from several threads).
    So the first to enter sets the limit, later ones only count themselves,
    and the last to leave restores what the first found, all under a lock:
    a thread that restored "its" previous setting could otherwise restore
    another thread's limit of one for good.
    """
    global _blas, _blas_users, _blas_limiter
    counted = False
    try:
        with _blas_lock:
            _blas_users += 1  # counted before the limit is set, so the finally undoes both
            counted = True
            if _blas_users == 1:
                if _blas is None:
                    from threadpoolctl import ThreadpoolController

                    _blas = ThreadpoolController()
                _blas_limiter = _blas.limit(limits=1, user_api="blas")
        yield
    finally:
        if counted:
            with _blas_lock:
                _blas_users -= 1
                if _blas_users == 0:
                    _blas_limiter.restore_original_limits()


def _thread_count(n_rows):
    """Threads that ``run_on_rows`` splits ``n_rows`` rows across."""
    return max(1, min(num_threads(), n_rows))


def _row_bounds(n_rows):
    """Bounds of the contiguous row ranges, one per thread, that cover ``range(n_rows)``."""
    n = _thread_count(n_rows)
    return [n_rows * k // n for k in range(n + 1)]


def rows_per_thread(n_rows):
    """The most rows that one range of ``run_on_rows`` gets."""
    return -(-n_rows // _thread_count(n_rows))


def run_on_rows(fn, n_rows, calls_blas=False):
    """Call ``fn(b0, b1)`` on contiguous row ranges covering ``range(n_rows)``.

    The ranges run concurrently in ``num_threads()`` threads. When ``fn``
    calls BLAS (``calls_blas``), BLAS is held to one thread so that the
    threads do not oversubscribe the cores; the limit costs tens of
    microseconds, so the time loops, whose per-step products are numlstm's
    own, skip it. Returns the list of results, in row order.
    """
    bounds = _row_bounds(n_rows)
    n = len(bounds) - 1
    with single_threaded_blas() if calls_blas else contextlib.nullcontext():
        if n == 1:
            return [fn(0, n_rows)]
        futures = [_thread_pool().submit(fn, bounds[k], bounds[k + 1]) for k in range(1, n)]
        return [fn(bounds[0], bounds[1])] + [f.result() for f in futures]


def usable_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ---- kernel tunables ---------------------------------------------------------------------------
# The sizes the CPU kernels are built and split by, in one place. Measurements behind each value
# are in docs/performance.md.

#: Bytes of one SIMD vector register (AVX2), and vectors per column panel of the packed weights:
#: a panel is PANEL_VECTORS * VECTOR_BYTES // itemsize columns wide (numlstm.cells.gemm).
VECTOR_BYTES = 32
PANEL_VECTORS = 2
#: Rows of the largest register tile of ``matmul_nt``.
TILE_ROWS = 4
#: Below this many rows multiplied by one weight per call (rows per thread times steps), the
#: weights are not packed into panels: plain loops are cheaper than the packing.
PACK_MIN_USES = 16
#: ``matmul`` splits a product across threads from this many multiply-adds up, in blocks of
#: this many rows (fixed, so that every number is the same for any thread count).
SPLIT_MIN_MACS = 1 << 22
SPLIT_BLOCK_ROWS = 128
#: The unit split of inference (numlstm.cells.common.unit_split): units per range at least (and
#: the multiple of the inner bounds), weights per step from which one row is split, and rows of
#: input that each part projects at once.
UNIT_SPLIT_MIN_UNITS = 8
UNIT_SPLIT_MIN_WEIGHTS = 40_000
UNIT_SPLIT_PROJECTION_ROWS = 32
