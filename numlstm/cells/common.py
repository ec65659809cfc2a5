"""Pieces shared by every cell family: the batched GEMMs, the state slots, the unit split."""

from numba import njit

from numlstm._config import (JIT_OPTIONS, TILE_ROWS, UNIT_SPLIT_MIN_UNITS, UNIT_SPLIT_MIN_WEIGHTS,
                             num_threads, rows_per_thread, usable_cores)
from numlstm.cells.gemm import matmul


def unit_split(B, H, n_weights):
    """Bounds of the hidden-unit ranges, one per thread, when inference should split units.

    A row split (``numlstm._config.run_on_rows``) of a small batch gives
    each thread at most one register tile of rows (``TILE_ROWS``), and has
    every thread stream every weight at every step. Splitting the hidden
    units instead gives each thread a share of the weights, at the cost of a
    barrier per step. A single row runs on the calling thread alone in a row
    split, with no hand-off at all, so there the split pays off only from
    ``UNIT_SPLIT_MIN_WEIGHTS`` weights per step (``n_weights``) up.

    There are as many ranges as numlstm's threads, the usable cores and
    ``UNIT_SPLIT_MIN_UNITS`` units per range allow; inner bounds are
    multiples of that minimum, so each range's gate loops run in whole
    vectors. Returns None when the rows should be split instead.
    """
    if B == 1 and n_weights < UNIT_SPLIT_MIN_WEIGHTS:  # first: the thread share costs more to ask for
        return None
    n_threads = num_threads()
    n = min(n_threads, usable_cores(), H // UNIT_SPLIT_MIN_UNITS)
    if n < 2 or rows_per_thread(B, n_threads) > TILE_ROWS:
        return None
    q = UNIT_SPLIT_MIN_UNITS
    return [0] + [round(H * k / n / q) * q for k in range(1, n)] + [H]


@njit(inline="always", **JIT_OPTIONS)
def slots(t, reverse):
    """Slots of the stored states ``hs[0:T+1]`` read and written at step ``t``.

    The forward direction reads ``t`` and writes ``t + 1``; the reverse
    direction reads ``t + 1`` and writes ``t``. So the initial state sits at
    slot 0 (forward) or T (reverse), and ``hs[0:T]`` (forward) or
    ``hs[1:T+1]`` (reverse) is the previous state of every step.
    """
    if reverse:
        return t + 1, t
    return t, t + 1


@njit(inline="always", **JIT_OPTIONS)
def store_rows(states, slot, src, b0, b1):
    """``states[slot, b0:b1] = src[b0:b1]``, element by element.

    A slice assignment would compile Numba's shape-mismatch error message,
    whose string formatting takes longer to compile than the time loop
    itself.
    """
    for b in range(b0, b1):
        for j in range(src.shape[1]):
            states[slot, b, j] = src[b, j]


def previous_states(hs, reverse):
    """The state each step started from, (T, B, P), from the stored slots."""
    return hs[1:] if reverse else hs[:-1]


def new_states(hs, reverse):
    """The state each step produced, (T, B, P), from the stored slots."""
    return hs[:-1] if reverse else hs[1:]


def weight_gradients(x, hs, reverse, dgx, dgh, weight_ih, need_dx=True):
    """Input gradient and weight gradients, each one GEMM over every step.

    ``dgx`` is the gradient of the input-side pre-activations and ``dgh`` of
    the hidden-side ones (the same array for every cell but the GRU). The
    input gradient is None without ``need_dx``.
    """
    T, B, I = x.shape
    G = dgx.shape[2]
    P = hs.shape[2]
    dgx2 = dgx.reshape(T * B, G)
    dgh2 = dgh.reshape(T * B, G)
    bias_ih = dgx2.sum(axis=0)
    grads = {
        "weight_ih": matmul(dgx2.T, x.reshape(T * B, I)),
        "weight_hh": matmul(dgh2.T, previous_states(hs, reverse).reshape(T * B, P)),
        "bias_ih": bias_ih,
        # one sum when the cell does not tell the two apart (as numlstm.cuda.common does)
        "bias_hh": bias_ih.copy() if dgh is dgx else dgh2.sum(axis=0),
    }
    dx = matmul(dgx2, weight_ih).reshape(T, B, I) if need_dx else None
    return dx, grads
