"""Numba settings and thread policy shared by every kernel, in one place.

``FASTMATH`` is a set of LLVM fast-math flags that leaves out ``nnan`` and
``ninf``, so NaN and infinity checks inside kernels keep working.
``ORDERED_JIT_OPTIONS`` also leaves out ``reassoc``, for the dot products,
so that each sum runs in one fixed order whatever the thread split.
``BRIEF_JIT_OPTIONS`` keeps the GIL, for kernels called from Python that run
a few microseconds (packing weights, checking and scaling a small input):
beside other threads that wait for the GIL, letting it go and taking it back
costs more than such a kernel, and NumPy lets it go in every operation on
more than a few hundred values. ``EXACT_BRIEF_JIT_OPTIONS`` does so without
fast-math, for arithmetic that must give NumPy's bits. ``CACHE``
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
``numba.set_num_threads`` sets it, up to the usable cores. Callers that run
numlstm from several threads at once share the cores: each kernel takes a
share of them for its duration (``take_share``), so that numlstm's helper
threads never outnumber the cores the callers leave free.

Cores that other programs keep busy are not numlstm's to count, so every
split call measures itself (``record_split``): when a call's threads spend
much of it waiting for a core rather than working, ``SLOW_SPLITS_IN_A_ROW``
times in a row, the kernels use half as many threads (on two cores, the
calling thread alone) for the next ``CROWDED_PAUSE_S`` seconds, and then
try all of them again. On a machine whose cores are busy with other work,
helper threads that wait for a core make a small call several times slower
than one thread does.
"""

import atexit
import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
CACHE = os.environ.get("NUMLSTM_DISABLE_CACHE", "0") not in ("1", "true", "True")
SUPPORTED_DTYPES = (np.float32, np.float64)
MAX_MODEL_BYTES = 2 * 1024**3
"""The cap on a network's weights, in bytes: at construction and when a model file is read (``numlstm.io``)."""

JIT_OPTIONS = {"nogil": True, "cache": CACHE, "fastmath": FASTMATH, "error_model": "numpy"}
# For sums whose order must not depend on the thread split (see numlstm.cells.gemm.matmul_nt):
# without "reassoc", LLVM keeps each sum in program order.
ORDERED_JIT_OPTIONS = dict(JIT_OPTIONS, fastmath=FASTMATH - {"reassoc"})
BRIEF_JIT_OPTIONS = dict(JIT_OPTIONS, nogil=False)
EXACT_BRIEF_JIT_OPTIONS = dict(BRIEF_JIT_OPTIONS, fastmath=False)
#: Inputs of at most this many values are checked and scaled by the brief kernels above; larger
#: ones by NumPy, which lets other threads run meanwhile (numlstm.data).
BRIEF_MAX_VALUES = 1 << 16

_pool = None
_blas = None
_blas_lock = threading.Lock()
_blas_users = 0
_blas_limiter = None
_shares = {}  # thread id -> threads granted to the threaded kernel it runs now, itself included
_slow_splits = 0  # split calls in a row whose threads waited for a core (record_split)
_crowded_until = 0.0  # time.monotonic() until which kernels use at most _crowded_threads threads
_crowded_threads = 1
# a thread clock that ticks in milliseconds would call every split call slow: Windows' does (its
# reported resolution is 100 ns, but GetThreadTimes advances with the scheduler's 15.6 ms tick)
_FINE_THREAD_CLOCK = os.name != "nt" and time.get_clock_info("thread_time").resolution <= 1e-5
_left = {}  # thread id -> time.monotonic() when it left its last threaded kernel
_shares_lock = threading.Lock()
_last_share = threading.local()
# A thread that left a kernel less than this long ago still counts as a caller: between its
# kernels it runs Python on a core of its own (a predict's checks, a Dask task's slicing).
RECENT_CALLER_S = 0.002


def usable_cores():
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _recent_callers(me, now):
    """Threads other than ``me`` that left a kernel less than ``RECENT_CALLER_S`` ago."""
    return sum(1 for ident, left in list(_left.items())
               if ident != me and now - left < RECENT_CALLER_S and ident not in _shares)


def _fair_share(wanted, me):
    """Threads for a kernel of thread ``me`` that wants ``wanted``, given the other callers.

    The other callers are the threads inside threaded kernels, which hold
    their shares, and those that left one a moment ago, which hold their
    own thread (``RECENT_CALLER_S``). Each caller may use ``usable_cores()
    // callers`` threads, and no more than the cores that the other
    callers and their helper threads leave free, but always at least its
    own. Called under ``_shares_lock``, or for an estimate.
    """
    if crowded():
        wanted = min(wanted, _crowded_threads)
    inside = [n for ident, n in list(_shares.items()) if ident != me]
    recent = _recent_callers(me, time.monotonic())
    cores = usable_cores()
    callers = len(inside) + recent + 1
    return max(1, min(wanted, cores // callers, cores - sum(inside) - recent))


def record_split(wall, cpu, threads):
    """Count a call split across ``threads`` that took ``wall`` seconds while its slowest thread worked ``cpu``.

    ``cpu`` is the thread time (``time.thread_time``) of the part whose wait
    for a core was longest. A call whose wait exceeds both
    ``SLOW_SPLIT_WAIT`` times ``cpu`` and ``SLOW_SPLIT_MIN_WAIT_S`` is slow;
    after ``SLOW_SPLITS_IN_A_ROW`` slow calls in a row, which one hiccup of
    the operating system does not make, the kernels use half the threads
    they may use now (``numba.get_num_threads()``, or the cap of a pause
    still running) for ``CROWDED_PAUSE_S`` seconds (see the module notes).
    Whichever call trips it, the cap halves once. The counts are updated
    without a lock: a count lost to a race between two callers only delays
    a pause by a call.
    """
    global _slow_splits, _crowded_until, _crowded_threads
    if not _FINE_THREAD_CLOCK or wall - cpu <= max(SLOW_SPLIT_WAIT * cpu, SLOW_SPLIT_MIN_WAIT_S):
        _slow_splits = 0
        return
    _slow_splits += 1
    if _slow_splits >= SLOW_SPLITS_IN_A_ROW:
        _slow_splits = 0
        allowed = _crowded_threads if crowded() else max(numba.get_num_threads(), threads)
        _crowded_threads = max(1, allowed // 2)
        _crowded_until = time.monotonic() + CROWDED_PAUSE_S


def crowded():
    """Whether the kernels use fewer threads for now, other programs keeping the cores busy (``record_split``)."""
    return time.monotonic() < _crowded_until


def num_threads():
    """Threads a kernel called now from this thread would use.

    ``numba.get_num_threads()`` (set by ``NUMBA_NUM_THREADS`` or
    ``numba.set_num_threads``), held to this caller's share of the usable
    cores while other threads run numlstm's kernels (see ``run_on_rows``).
    """
    return _fair_share(numba.get_num_threads(), threading.get_ident())


def active_callers():
    """Threads inside numlstm's threaded kernels, or that left one a moment ago."""
    return len(_shares) + _recent_callers(None, time.monotonic())


def last_thread_count():
    """Threads the calling thread's last threaded kernel ran on, itself included; 0 before any."""
    return getattr(_last_share, "threads", 0)


def take_share(wanted, all_or_none=False):
    """Register the calling thread as a caller; return the threads it may use (see ``_fair_share``).

    With ``all_or_none``, a share below ``wanted`` is refused: the caller
    gets 0, and nothing is registered. The share stays registered until
    ``give_back_share``, which callers call in a ``finally``. A
    ``KeyboardInterrupt`` that lands even so between the two (on entering
    ``give_back_share``, say) can only leave the calling thread's own
    entry behind, until that thread's next kernel replaces it: the share is
    keyed by thread, and a thread's share is left out of its own count.
    """
    me = threading.get_ident()
    with _shares_lock:
        n = 1 if wanted <= 1 else _fair_share(wanted, me)  # a caller always has its own thread
        if all_or_none and n < wanted:
            return 0
        _shares[me] = n
        now = time.monotonic()
        for ident, left in list(_left.items()):  # forget threads long gone, and this one
            if ident == me or now - left >= RECENT_CALLER_S:
                _left.pop(ident, None)
    _last_share.threads = n
    return n


def give_back_share():
    """End the calling thread's share of the cores (see ``take_share``)."""
    me = threading.get_ident()
    _left[me] = time.monotonic()
    _shares.pop(me, None)


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
    child gets a fresh one, and no users of the limit; likewise the shares
    of the cores belong to the parent's threads.
    """
    global _pool, _blas_lock, _blas_users, _shares_lock, _slow_splits, _crowded_until
    _pool = None
    _blas_lock, _blas_users = threading.Lock(), 0
    _shares_lock = threading.Lock()
    _shares.clear()
    _left.clear()
    _slow_splits, _crowded_until = 0, 0.0  # the child measures its own calls


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


def _thread_count(n_rows, n_threads=None):
    """Threads that ``run_on_rows`` would split ``n_rows`` rows across if called now.

    ``n_threads`` is ``num_threads()``, for a caller that has it already.
    """
    if n_rows <= 1:
        return 1
    return min(num_threads() if n_threads is None else n_threads, n_rows)


def _row_bounds(n_rows, n_threads):
    """Bounds of the contiguous row ranges, one per thread, that cover ``range(n_rows)``."""
    return [n_rows * k // n_threads for k in range(n_threads + 1)]


def rows_per_thread(n_rows, n_threads=None):
    """The most rows that one range of ``run_on_rows`` gets, were it called now (see ``_thread_count``)."""
    return -(-n_rows // _thread_count(n_rows, n_threads))


def run_on_rows(fn, n_rows, calls_blas=False):
    """Call ``fn(b0, b1)`` on contiguous row ranges covering ``range(n_rows)``.

    The ranges run concurrently: one on the calling thread, the others on
    numlstm's pool of helper threads. There are ``num_threads()`` ranges at
    most, fewer while other threads run numlstm's kernels: each caller gets
    its share of the usable cores, and helper threads only for cores that
    no other caller or helper holds (see ``take_share``). So concurrent
    callers, such as the workers of a Dask threaded scheduler, do not
    oversubscribe the cores. When ``fn`` calls BLAS (``calls_blas``), BLAS
    is held to one thread for the same reason; the limit costs tens of
    microseconds, so the time loops, whose per-step products are numlstm's
    own, skip it. Returns the list of results, in row order.
    """
    futures = []
    try:
        n = take_share(min(numba.get_num_threads(), n_rows))
        bounds = _row_bounds(n_rows, n)
        with single_threaded_blas() if calls_blas else contextlib.nullcontext():
            if n == 1:
                return [fn(0, n_rows)]
            start = time.perf_counter()

            def timed(b0, b1):
                """``fn`` on a range, with the part's wall time since the call began and its thread time."""
                cpu = time.thread_time()
                result = fn(b0, b1)
                return result, (time.perf_counter() - start, time.thread_time() - cpu)

            futures = [_thread_pool().submit(timed, bounds[k], bounds[k + 1]) for k in range(1, n)]
            parts = [timed(bounds[0], bounds[1])] + [f.result() for f in futures]
            # each part measures its own wait for a core (its start included), so that a range
            # longer than the caller's does not count as one
            record_split(*max((times for _, times in parts), key=lambda times: times[0] - times[1]), n)
            return [result for result, _ in parts]
    finally:
        try:
            if futures:
                wait(futures)  # the helpers' share ends with their ranges, even if the first one failed
        finally:
            give_back_share()


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
#: Products of at most this many multiply-adds run on one thread inside BLAS anyway (OpenBLAS, which
#: NumPy's wheels ship, threads only above 4 * 65536), so ``matmul`` does not pay to limit BLAS for them.
BLAS_ALONE_MACS = 4 * 65536
SPLIT_BLOCK_ROWS = 128
#: When other programs keep the cores busy (``record_split``): a split call is slow when its
#: threads waited for a core longer than SLOW_SPLIT_WAIT times their work and SLOW_SPLIT_MIN_WAIT_S;
#: after SLOW_SPLITS_IN_A_ROW such calls the kernels use half the threads for CROWDED_PAUSE_S seconds.
SLOW_SPLIT_WAIT = 0.5
SLOW_SPLIT_MIN_WAIT_S = 200e-6
SLOW_SPLITS_IN_A_ROW = 3
CROWDED_PAUSE_S = 1.0
#: The unit split of inference (numlstm.cells.common.unit_split): units per range at least (and
#: the multiple of the inner bounds), weights per step from which one row is split, and rows of
#: input that each part projects at once.
UNIT_SPLIT_MIN_UNITS = 8
UNIT_SPLIT_MIN_WEIGHTS = 40_000
UNIT_SPLIT_PROJECTION_ROWS = 32
