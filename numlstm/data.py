"""Sequence data for the estimators: validation, lengths, gaps, scaling and windows.

Sequences come in four forms:

* a 3-D array ``(n_samples, n_timesteps, n_features)``;
* a 2-D array ``(n_samples, n_timesteps)``, read as univariate sequences;
* a list of per-sequence arrays of different lengths, each ``(time,)`` or
  ``(time, feature)`` (``pad`` turns one into a padded array);
* an ``xarray.DataArray`` with named dims, in any order.

The alignment rule: a time step whose features are all NaN, before a
sequence's first observed step or after its last, is padding. So sequences
may be start-aligned (trailing NaN, what aligning DataArrays of different
lengths produces), end-aligned (leading NaN, records that end on the same
date but start on different ones), or both. The one exception is a plain 2-D
array, whose columns scikit-learn treats as a fixed set: there column ``t``
is step ``t`` of every sequence, so only trailing NaN pads. A NaN between a sequence's first
and last observed steps, or in some but not all features of a step, is a
missing value: the ``missing`` argument of ``check_sequences`` says
whether that is an error (the default) or a gap that ``fill_missing``
fills. An infinite value is always an error.

``check_sequences`` turns any of the forms into a ``Sequences``: a
C-contiguous float array in which every sequence starts at step 0 (the
kernels' layout), with zeros at the padded steps, the valid length and the
leading padding of each sequence, and the DataArray coords needed to label
the outputs.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from numba import njit
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_array

from numlstm._config import BRIEF_JIT_OPTIONS, BRIEF_MAX_VALUES, EXACT_BRIEF_JIT_OPTIONS

__all__ = [
    "DEFAULT_DIMS",
    "MISSING",
    "ChunkedSequences",
    "Sequences",
    "Targets",
    "Standardizer",
    "check_chunked_sequences",
    "check_sequences",
    "check_targets",
    "check_tokens",
    "fill_missing",
    "is_lazy",
    "map_lazily",
    "pad",
    "to_output",
    "sliding_windows",
]

DEFAULT_DIMS = ("sample", "time", "feature")
"""Default names of the sample, time and feature dims of a DataArray."""

FLOAT_DTYPES = (np.float64, np.float32)

MISSING = ("error", "mask", "ffill")
"""What a NaN inside a sequence may mean: see ``check_sequences`` and ``fill_missing``."""

LAYOUTS = (None, "stf", "sft")
"""Axis orders of a 3-D array X: (sample, time, feature) or sktime's (instance, channel, time)."""


@dataclass(frozen=True)
class Sequences:
    """Validated sequences.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_timesteps, n_features)
        C-contiguous float32 or float64 values, 0 at padded steps.
    lengths : ndarray of shape (n_samples,), dtype int64
        Number of valid leading steps of each sequence, at least 1.
    dims : tuple of str or None
        ``(sample, time, feature)`` dim names when the input was a DataArray,
        None otherwise.
    coords : dict
        Coordinate values of the dims that the input DataArray had coords
        for, keyed by dim name.
    offsets : ndarray of shape (n_samples,), dtype int64
        Padded steps that led each sequence in the input (0 for a
        start-aligned one): input step ``offsets[i] + t`` is step ``t`` of
        ``values[i]``.
    n_columns : int or None
        The column count of a plain 2-D array X (its time steps), None for
        the other forms.
    has_gaps : bool
        Whether ``values`` holds NaN at missing values inside sequences.
    """

    values: np.ndarray
    lengths: np.ndarray
    dims: tuple | None = None
    coords: dict = field(default_factory=dict)
    offsets: np.ndarray | None = None
    n_columns: int | None = None
    has_gaps: bool = False

    @property
    def mask(self):
        """Boolean ndarray of shape (n_samples, n_timesteps), True at valid steps (start-aligned)."""
        return np.arange(self.values.shape[1]) < self.lengths[:, None]

    def to_input_steps(self, values):
        """Per-step ``values`` (n_samples, n_timesteps, ...) moved from start-aligned to the input's steps."""
        return _shift(values, self.offsets, back=True)


@dataclass(frozen=True)
class ChunkedSequences(Sequences):
    """Sequences of a Dask-backed DataArray, read one chunk of samples at a time.

    ``check_chunked_sequences`` makes one after a streaming pass that checks
    every chunk, finds the lengths and offsets and gathers the per-feature
    moments for scaling; no more than one chunk is in memory at a time.

    Attributes
    ----------
    values : dask.array.Array of shape (n_samples, n_timesteps, n_features)
        The sequences as given (NaN padding, not start-aligned), chunked
        along samples only.
    bounds : ndarray of int
        Start of each chunk of samples, then ``n_samples``.
    moments : tuple of ndarray or None
        Per-feature ``(weight, mean, sum of squared deviations)`` of the valid
        steps, in float64, for ``Standardizer.from_moments``; None when not
        gathered.
    """

    bounds: np.ndarray = None
    moments: tuple = None

    def load(self, k):
        """Chunk ``k`` as in-memory, start-aligned ``Sequences``."""
        start, stop = self.bounds[k], self.bounds[k + 1]
        values = np.asarray(self.values[start:stop].compute())
        lengths, offsets = self.lengths[start:stop], self.offsets[start:stop]
        values = _start_aligned(values, _inside(lengths, offsets, values.shape[1]), offsets)
        return Sequences(values, lengths, self.dims, self.coords, offsets, None, self.has_gaps)


@dataclass(frozen=True)
class Targets:
    """Validated targets, aligned with a ``Sequences``.

    Attributes
    ----------
    values : ndarray of shape (n_samples, n_outputs) or (n_samples, n_timesteps, n_outputs)
        Targets, per step when ``per_step``; padded steps hold 0 (numeric
        targets) or whatever the input had there (labels, to be ignored).
    per_step : bool
        Whether there is one target per time step.
    output_dim : str or None
        Name of the outputs axis to restore on predictions, or None when y had
        no outputs axis (predictions then drop it).
    output_coord : ndarray or None
        Coordinate values of the outputs axis of a DataArray y.
    observed : ndarray of shape (n_samples, n_timesteps) or None
        For per-step targets: True at the valid steps whose target is known.
        A NaN target (or a None label) at a valid step is left out of the
        loss and the scores.
    """

    values: np.ndarray
    per_step: bool
    output_dim: str | None = None
    output_coord: np.ndarray | None = None
    observed: np.ndarray | None = None


def _check_dims(dims, roles="(sample, time, feature)"):
    if (
        not isinstance(dims, tuple)
        or len(dims) != 3
        or not all(isinstance(d, str) for d in dims)
        or len(set(dims)) != 3
    ):
        raise ValueError(
            f"dims must be a tuple of three distinct dim names {roles}, got {dims!r}"
        )
    return dims


def _ordered_dataarray(X, dims, input_name="X"):
    """X transposed to (sample, time[, feature]), and the coords of those dims."""
    sample, time, feature = dims
    present = set(X.dims)
    if present == {sample, time, feature}:
        order = (sample, time, feature)
    elif present == {sample, time}:
        order = (sample, time)
    else:
        raise ValueError(
            f"{input_name} has dims {X.dims}; expected ({sample!r}, {time!r}, {feature!r}) or "
            f"({sample!r}, {time!r}) in any order. Pass dims=(sample, time, feature) "
            "to name yours."
        )
    X = X.transpose(*order)
    return X, {d: np.asarray(X[d].values) for d in order if d in X.coords}


def _from_dataarray(X, dims):
    X, coords = _ordered_dataarray(X, dims)
    return X.values, coords


def _shift(values, offsets, *, back=False):
    """Roll each sequence's steps left by its offset (start-aligned), or right again with ``back``."""
    if offsets is None or not offsets.any():
        return values
    steps = np.arange(values.shape[1])
    index = (steps - offsets[:, None] if back else steps + offsets[:, None]) % values.shape[1]
    return np.take_along_axis(values, index.reshape(index.shape + (1,) * (values.ndim - 2)), axis=1)


def _is_sequence_list(X):
    """Whether X is a list or tuple of per-sequence arrays: arrays of any lengths, or nested lists
    of different lengths (nested lists of one length are a plain 2-D or 3-D array)."""
    if not isinstance(X, (list, tuple)) or not X:
        return False
    if all(isinstance(x, (np.ndarray, xr.DataArray)) for x in X):
        return True
    return (all(isinstance(x, (np.ndarray, list, tuple, xr.DataArray)) for x in X)
            and len({np.shape(x) for x in X}) > 1)


def pad(sequences, *, align="start", dims=None, dtype=None):
    """Stack sequences of different lengths into one NaN-padded array.

    Parameters
    ----------
    sequences : list of array-like
        One array per sequence, each ``(time,)`` or ``(time, feature)``, with
        the same number of features.
    align : {"start", "end"}, default="start"
        Where the sequences line up: at their first step (padding trails) or
        at their last (padding leads, as for records that end on one date).
    dims : tuple of str or None, default=None
        If given, the ``(sample, time, feature)`` names of a DataArray to
        return instead of an array (univariate sequences keep a feature dim
        of size 1).
    dtype : dtype or None, default=None
        Of the result; by default float64, or float32 if every sequence is
        float32.

    Returns
    -------
    ndarray of shape (n_sequences, max_time, n_features), or xarray.DataArray
        NaN at the padded steps. Univariate sequences give ``(n_sequences,
        max_time, 1)``.

    Examples
    --------
    >>> pad([np.array([1.0, 2.0, 3.0]), np.array([4.0])])[..., 0]
    array([[ 1.,  2.,  3.],
           [ 4., nan, nan]])
    """
    if align not in ("start", "end"):
        raise ValueError(f"align must be 'start' or 'end', got {align!r}")
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError("sequences must be a non-empty list of arrays, one per sequence")
    arrays = [np.asarray(x) for x in sequences]
    for i, a in enumerate(arrays):
        if a.ndim not in (1, 2) or a.shape[0] == 0 or a.dtype.kind not in "fiub":
            raise ValueError(
                f"sequence {i} must be a non-empty numeric (time,) or (time, feature) array, got "
                f"dtype {a.dtype} and shape {a.shape}"
            )
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    n_features = {a.shape[1] for a in arrays}
    if len(n_features) > 1:
        raise ValueError(f"sequences must have the same number of features, got {sorted(n_features)}")
    if dtype is None:
        dtype = np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64
    out = np.full((len(arrays), max(len(a) for a in arrays), n_features.pop()), np.nan, dtype)
    for row, a in zip(out, arrays):
        if align == "start":
            row[: len(a)] = a
        else:
            row[len(row) - len(a) :] = a
    if dims is None:
        return out
    return xr.DataArray(out, dims=_check_dims(dims))


def _check_single_series(X, input_name):
    """ValueError with advice for a 1-D X; a warning for a one-column DataFrame."""
    if isinstance(X, (list, tuple)) and not X:
        raise ValueError(f"{input_name} is empty: it needs at least one sequence")
    ndim = getattr(X, "ndim", None)
    if ndim is None and isinstance(X, (list, tuple)):
        ndim = np.ndim(X) if all(np.ndim(x) == 0 for x in X) else None
    if ndim == 1:
        raise ValueError(
            f"{input_name} is 1-D, one value per step of a single series; numlstm learns from many "
            "sequences (sample, time[, feature]). Reshape your data: to forecast a single series, cut it into windows "
            "with numlstm.data.sliding_windows(series, window); to pass it as one sequence, use "
            f"{input_name}[None, :]"
        )
    if getattr(X, "columns", None) is not None and len(X.columns) == 1:
        warnings.warn(
            f"{input_name} is a one-column DataFrame, read as {len(X)} sequences of one step each. "
            "For a single series, cut it into windows with numlstm.data.sliding_windows; for "
            f"sequences, pass a 2-D array (sample, time) or a 3-D one",
            UserWarning,
            stacklevel=4,
        )


def check_sequences(X, *, dims=DEFAULT_DIMS, dtype=FLOAT_DTYPES, input_name="X", missing="error", layout=None):
    """Validate sequences and find where each starts and ends from its NaN padding.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps[, n_features]), list of arrays or xarray.DataArray
        The sequences. A DataArray must have the sample and time dims and may
        have the feature dim, in any order. A list holds one ``(time,)`` or
        ``(time, feature)`` array per sequence (see ``pad``).
    dims : tuple of str, default=("sample", "time", "feature")
        Names of the sample, time and feature dims of a DataArray.
    dtype : dtype or tuple of dtypes, default=(float64, float32)
        Accepted float dtype(s); other inputs are converted to the first.
    input_name : str, default="X"
        Name used in error messages.
    missing : {"error", "mask", "ffill"}, default="error"
        What a NaN inside a sequence (between its first and last observed
        steps, or in some but not all features of a step) is: an error, or
        a gap that stays NaN in ``values`` for ``fill_missing``.
    layout : {None, "stf", "sft"}, default=None
        Axis order of a 3-D array X: ``"stf"`` is (sample, time, feature),
        ``"sft"`` is sktime's (instance, channel, time). None reads
        (sample, time, feature) and warns when the shape looks like sktime's
        layout (far more features than steps). A DataArray's dims decide for
        it, whatever ``layout`` says.

    Returns
    -------
    Sequences
        Start-aligned: step 0 of each sequence is its first observed step.

    Raises
    ------
    TypeError
        For sparse or non-numeric input.
    ValueError
        For wrong dims or shapes, a 1-D X, an empty input, an infinite value,
        a NaN inside a sequence with ``missing="error"``, or a sequence with
        no observed step.
    """
    dims = _check_dims(dims)
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    coords = {}
    from_xarray = isinstance(X, xr.DataArray)
    plain = not from_xarray
    if from_xarray:
        X, coords = _from_dataarray(X, dims)
    elif isinstance(X, xr.Dataset):
        raise TypeError(f"{input_name} must be an array or a DataArray, not a Dataset; select one variable")
    elif _is_sequence_list(X):
        X, plain = pad(list(X)), False
    else:
        _check_single_series(X, input_name)
    values = _float_array(X, dtype, input_name)
    n_columns = None
    if values.ndim == 2:
        n_columns = values.shape[1] if plain else None
        values = values[:, :, None]
    elif values.ndim != 3:
        raise ValueError(
            f"{input_name} must be 2-D (sample, time) or 3-D (sample, time, feature); "
            f"got an array of shape {values.shape}"
        )
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "sft" and plain and n_columns is None:
        values = values.transpose(0, 2, 1)  # _locate makes it contiguous
    n_samples, n_timesteps, n_features = values.shape
    if layout is None and plain and n_columns is None and n_features >= 10 * max(n_timesteps, 1):
        warnings.warn(
            f"{input_name} has shape {values.shape}, read as (sample, time, feature): {n_timesteps} "
            f"step(s) of {n_features} features. If it is sktime's (instance, channel, time) layout, "
            f"pass layout='sft' (or {input_name}.transpose(0, 2, 1)); layout='stf' confirms this "
            "reading, and a DataArray with named dims (see dims) leaves no doubt",
            UserWarning,
            stacklevel=3,
        )
    values, lengths, offsets, has_gaps = _locate(values, input_name, missing, n_columns)
    return Sequences(values, lengths, dims if from_xarray else None, coords, offsets, n_columns, has_gaps)


def _float_array(X, dtype, input_name):
    """``X`` as an array of an accepted float ``dtype`` (the first one if it must be converted).

    A NumPy array that already is one, with a sample and a step, is taken as
    it is: scikit-learn's ``check_array`` would only confirm that, at a cost
    as large as a small predict's kernels. Anything else goes through it.
    """
    accepted = dtype if isinstance(dtype, (tuple, list)) else (dtype,)
    if type(X) is np.ndarray and X.ndim in (2, 3) and X.size and any(X.dtype == d for d in accepted):
        return X
    return check_array(
        X,
        dtype=dtype,
        ensure_all_finite=False,
        allow_nd=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        input_name=input_name,
    )


def _all_finite(values):
    """Whether every value of the 3-D float array ``values`` is finite.

    A small array (a predict of a few sequences) is checked by a kernel that
    keeps the GIL: NumPy would let it go and take it back, and beside other
    threads calling ``predict`` each such hand-off waits for one of them.
    """
    if values.size <= BRIEF_MAX_VALUES:
        return _all_finite_small(values)
    return bool(np.isfinite(values).all())


@njit(**BRIEF_JIT_OPTIONS)
def _all_finite_small(values):
    """``_all_finite`` for small arrays: any inf or NaN turns the sum of ``value * 0`` into NaN."""
    total = values.dtype.type(0)
    for b in range(values.shape[0]):
        for t in range(values.shape[1]):
            for f in range(values.shape[2]):
                total += values[b, t, f] * 0
    return total == 0


@njit(**EXACT_BRIEF_JIT_OPTIONS)
def _standardize_small(values, mean, scale):
    """``Standardizer.transform`` of a small 3-D array, with NumPy's arithmetic, keeping the GIL."""
    out = np.empty(values.shape, values.dtype)
    for b in range(values.shape[0]):
        for t in range(values.shape[1]):
            for f in range(values.shape[2]):
                out[b, t, f] = (values[b, t, f] - mean[f]) / scale[f]
    return out


def _locate(values, input_name, missing, n_columns, first_sample=0):
    """Lengths, offsets and gaps of 3-D ``values``, checked; the values start-aligned, 0 past the ends.

    Returns ``(values, lengths, offsets, has_gaps)``. ``first_sample``
    numbers the samples in messages (the index of ``values[0]`` in the whole
    X).
    """
    n_samples, n_timesteps, n_features = values.shape
    if n_timesteps == 0 or n_features == 0:
        raise ValueError(
            f"{input_name} has shape {values.shape}: sequences need at least one time step "
            "and one feature"
        )
    lengths = np.full(n_samples, n_timesteps, dtype=np.int64)
    offsets = np.zeros(n_samples, dtype=np.int64)
    has_gaps = False
    if not _all_finite(values):  # one pass in the common case, with no padding
        if np.isinf(values).any():
            raise ValueError(f"{input_name} contains inf; only finite values and NaN padding are allowed")
        nan = np.isnan(values)
        observed = ~nan.all(axis=2)
        if not observed.any(axis=1).all():
            i = int(np.argmin(observed.any(axis=1)))
            raise ValueError(f"{input_name} contains a sequence that is all NaN (sample {first_sample + i})")
        # the columns of a plain 2-D X are fixed steps from each sequence's start (see pad for
        # end-aligned ones): a leading NaN there is a missing value, not padding
        offsets = np.zeros(n_samples, np.int64) if n_columns is not None else observed.argmax(axis=1)
        lengths = n_timesteps - observed[:, ::-1].argmax(axis=1) - offsets
        inside = _inside(lengths, offsets, n_timesteps)
        gaps = nan.any(axis=2) & inside
        if gaps.any():
            if missing == "error":
                i, t = np.argwhere(gaps)[0]
                where = ("the end of a sequence: the columns of a 2-D X are steps from each sequence's "
                         "start (for end-aligned sequences pass a 3-D X, a list or a DataArray)"
                         if n_columns is not None else "the start or the end of a sequence")
                raise ValueError(
                    f"{input_name} contains NaN inside a sequence (sample {first_sample + i}, step {t}). "
                    f"NaN may pad {where}, in every feature of a step; for gaps in the data, set "
                    "missing='mask' or missing='ffill'"
                )
            has_gaps = True
        values = _start_aligned(values, inside, offsets)
    return np.ascontiguousarray(values), lengths, offsets, has_gaps


def _inside(lengths, offsets, n_timesteps):
    """Boolean (n_samples, n_timesteps): True at the steps between each sequence's first and last."""
    steps = np.arange(n_timesteps)
    return (steps >= offsets[:, None]) & (steps < (offsets + lengths)[:, None])


def _start_aligned(values, inside, offsets):
    """``values`` with 0 outside the sequences, each moved to start at step 0 (C-contiguous, same dtype)."""
    return np.ascontiguousarray(_shift(np.where(inside[:, :, None], values, 0), offsets), values.dtype)


def check_chunked_sequences(X, *, dims=DEFAULT_DIMS, dtype=FLOAT_DTYPES, input_name="X", missing="error",
                            sample_weight=None, with_moments=True):
    """Validate a Dask-backed DataArray of sequences in one streaming pass over its sample chunks.

    Each chunk is computed, checked as ``check_sequences`` checks an
    in-memory X, and dropped; what stays is one length and one offset per
    sequence and the per-feature moments that scaling needs.

    Parameters
    ----------
    X : xarray.DataArray
        Dask-backed, with the sample and time dims and maybe the feature dim.
        Chunks along time or features are merged: a sequence needs all its
        steps and features at once.
    dims, dtype, input_name, missing
        As for ``check_sequences``.
    sample_weight : ndarray of shape (n_samples,) or None
        Weights of the sequences in the moments.
    with_moments : bool, default=True
        Gather the moments; without, ``moments`` is None (for a caller that
        does not scale with them).

    Returns
    -------
    ChunkedSequences
    """
    dims = _check_dims(dims)
    if missing not in MISSING:
        raise ValueError(f"missing must be one of {MISSING}, got {missing!r}")
    X, coords = _ordered_dataarray(X, dims, input_name)
    if X.ndim == 2:
        X = X.expand_dims(dims[2], axis=-1)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{input_name} must hold numbers, got dtype {X.dtype}")
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    target = X.dtype if X.dtype in dtypes else np.dtype(dtypes[0])
    values = X.data.astype(target).rechunk({1: -1, 2: -1})
    if 0 in values.shape:
        raise ValueError(f"{input_name} has shape {values.shape}: it needs sequences, steps and features")
    bounds = np.concatenate([[0], np.cumsum(values.chunks[0])])
    lengths, offsets, has_gaps = [], [], False
    moments = _Moments(values.shape[2]) if with_moments else None
    for k in range(len(bounds) - 1):
        start, stop = bounds[k], bounds[k + 1]
        part, part_lengths, part_offsets, gaps = _locate(np.asarray(values[start:stop].compute()), input_name,
                                                         missing, None, first_sample=start)
        if moments is not None:
            mask = np.arange(part.shape[1]) < part_lengths[:, None]
            weights = None if sample_weight is None else np.repeat(sample_weight[start:stop], part_lengths)
            moments.add(part[mask], weights)
        lengths.append(part_lengths)
        offsets.append(part_offsets)
        has_gaps |= gaps
    return ChunkedSequences(values, np.concatenate(lengths), dims, coords, np.concatenate(offsets), None, has_gaps,
                            bounds, None if moments is None else moments.result())


class _Moments:
    """Per-feature weighted count, mean and sum of squared deviations, merged chunk by chunk.

    Chan, Golub and LeVeque (1979): merging two sets of weights ``w_a, w_b``,
    means ``m_a, m_b`` and sums ``s_a, s_b`` gives weight ``w = w_a + w_b``,
    mean ``m_a + (m_b - m_a) w_b / w`` and sum
    ``s_a + s_b + (m_b - m_a)^2 w_a w_b / w``. NaN (gaps) are left out.
    """

    def __init__(self, n_features):
        self.weight = np.zeros(n_features)
        self.mean = np.zeros(n_features)
        self.squares = np.zeros(n_features)

    def add(self, rows, weights=None):
        nan = np.isnan(rows)
        w = (np.ones(len(rows)) if weights is None else weights)[:, None] * ~nan
        values = np.where(nan, 0, rows).astype(np.float64)
        weight = w.sum(axis=0)
        safe = np.where(weight > 0, weight, 1)
        mean = (w * values).sum(axis=0) / safe
        squares = (w * (values - mean) ** 2).sum(axis=0)
        total = self.weight + weight
        share = np.divide(weight, total, out=np.zeros_like(total), where=total > 0)
        delta = mean - self.mean
        self.squares += squares + delta ** 2 * self.weight * share
        self.mean += delta * share
        self.weight = total

    def result(self):
        return self.weight, self.mean, self.squares


def check_tokens(X, *, padding_token=-1, dims=DEFAULT_DIMS, input_name="X"):
    """Validate token sequences: integer ids, padded with ``padding_token``.

    Parameters
    ----------
    X : array-like of int of shape (n_samples, n_timesteps), list of int arrays or xarray.DataArray
        Token ids (words, symbols, categories), one per step. A list holds
        one ``(time,)`` array per sequence; a DataArray has the sample and
        time dims.
    padding_token : int, default=-1
        The id that pads shorter sequences, at their end or their start (the
        alignment rule of ``check_sequences``); it may not appear inside a
        sequence.
    dims, input_name
        As in ``check_sequences``.

    Returns
    -------
    Sequences
        Start-aligned, ``values`` of shape (n_samples, n_timesteps, 1) and
        dtype int64, holding ``padding_token`` at the padded steps.
    """
    dims = _check_dims(dims)
    coords = {}
    from_xarray = isinstance(X, xr.DataArray)
    if from_xarray:
        X, coords = _from_dataarray(X, dims)
    elif _is_sequence_list(X):
        arrays = [np.asarray(x) for x in X]
        if any(a.ndim != 1 for a in arrays):
            raise ValueError(f"a list of token sequences holds 1-D arrays, got shapes {[a.shape for a in arrays]}")
        tokens = np.full((len(arrays), max(len(a) for a in arrays)), padding_token, np.int64)
        for row, a in zip(tokens, arrays):
            row[: len(a)] = _as_tokens(a, input_name)
        X = tokens
    tokens = _as_tokens(np.asarray(X), input_name)
    if tokens.ndim != 2 or 0 in tokens.shape:
        raise ValueError(f"{input_name} of tokens must be 2-D (sample, time), non-empty, got shape {tokens.shape}")
    observed = tokens != padding_token
    if not observed.any(axis=1).all():
        i = int(np.argmin(observed.any(axis=1)))
        raise ValueError(f"{input_name} contains a sequence of padding tokens only (sample {i})")
    offsets = observed.argmax(axis=1)
    lengths = tokens.shape[1] - observed[:, ::-1].argmax(axis=1) - offsets
    inside = _inside(lengths, offsets, tokens.shape[1])
    if (inside & ~observed).any():
        i, t = np.argwhere(inside & ~observed)[0]
        raise ValueError(f"{input_name} has padding_token={padding_token} inside a sequence (sample {i}, "
                         f"step {t}); it may only pad the start or the end")
    values = np.ascontiguousarray(_shift(tokens, offsets)[:, :, None])
    return Sequences(values, lengths, dims if from_xarray else None, coords, offsets)


def _as_tokens(values, input_name):
    """``values`` as int64 token ids; TypeError for anything but whole numbers, ValueError out of range."""
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise TypeError(f"{input_name} of tokens must hold integer ids; pad them with padding_token, not NaN")
    whole = values.dtype.kind in "iub" or (
        values.dtype.kind == "f" and np.isfinite(values).all() and (values == np.round(values)).all())
    if not whole:
        raise TypeError(f"{input_name} of tokens must hold integer ids, got dtype {values.dtype}")
    limit = 2**53 if values.dtype.kind == "f" else np.iinfo(np.int64).max  # exact as floats, or int64
    if values.size and values.dtype != bool and (values.max() > limit or values.min() < -limit):
        raise ValueError(f"{input_name} holds token ids beyond +-{limit}, which numlstm cannot tell apart")
    return values.astype(np.int64)


def fill_missing(values, mask, how):
    """Fill the NaN gaps that ``check_sequences`` left in start-aligned ``values``.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_timesteps, n_features)
        Standardized values, NaN at missing values (0 at padding).
    mask : ndarray of shape (n_samples, n_timesteps)
        True at the valid steps.
    how : {"error", "mask", "ffill"}
        ``"mask"``: missing values become 0 (the feature's mean once
        standardized) and a missingness indicator per feature, 1 where the
        value was observed, is appended to the features, as GRU-D does (Che
        et al. 2018). ``"ffill"``: each missing value takes the feature's last
        observed value in its sequence, or, before the first, the next one;
        0 if the feature is never observed in the sequence. ``"error"``:
        ``values`` has no gaps and comes back as it is.

    Returns
    -------
    ndarray
        ``(n_samples, n_timesteps, 2 * n_features)`` for ``"mask"``, else
        the shape of ``values``; no NaN.
    """
    if how == "error":
        return values
    nan = np.isnan(values)
    if how == "mask":
        indicator = (~nan & mask[:, :, None]).astype(values.dtype)
        return np.ascontiguousarray(np.concatenate([np.where(nan, 0, values), indicator], axis=2))
    steps = np.arange(values.shape[1])[None, :, None]
    last = np.maximum.accumulate(np.where(nan, 0, steps), axis=1)
    filled = np.take_along_axis(values, last, axis=1)
    following = np.minimum.accumulate(np.where(np.isnan(filled), values.shape[1] - 1, steps)[:, ::-1], axis=1)[:, ::-1]
    filled = np.take_along_axis(filled, following, axis=1)
    filled = np.where(np.isnan(filled) | ~mask[:, :, None], 0, filled)
    return np.ascontiguousarray(filled.astype(values.dtype, copy=False))


def _targets_from_dataarray(y, seqs, dims):
    sample, time, _ = dims
    if sample not in y.dims:
        raise ValueError(f"y has dims {y.dims} but no sample dim {sample!r}")
    per_step = time in y.dims
    extra = [d for d in y.dims if d not in (sample, time)]
    if len(extra) > 1:
        raise ValueError(
            f"y has dims {y.dims}; besides {sample!r} and {time!r} it may have at most one "
            "outputs dim"
        )
    y = y.transpose(sample, *((time,) if per_step else ()), *extra)
    for d in (sample, time) if per_step else (sample,):
        if d in y.coords and d in seqs.coords and not np.array_equal(y[d].values, seqs.coords[d]):
            raise ValueError(f"the {d!r} coords of y differ from those of X; align them first")
    output_dim = extra[0] if extra else None
    output_coord = np.asarray(y[output_dim].values) if extra and output_dim in y.coords else None
    return np.asarray(y.values), per_step, output_dim, output_coord


def check_targets(y, seqs, *, dims=DEFAULT_DIMS, numeric=True, multi_output=True):
    """Validate targets against validated sequences.

    Sequence-to-one targets are ``(n_samples,)`` or ``(n_samples, n_outputs)``.
    Per-step targets have a time dim: a DataArray with the time dim, or a 3-D
    array ``(n_samples, n_timesteps, n_outputs)``, on the input's steps (they
    are start-aligned here like the sequences). Per-step values at padded
    steps are ignored, and a NaN (or None label) at a valid step is a target
    that is not known: ``Targets.observed`` leaves it out.

    Parameters
    ----------
    y : array-like or xarray.DataArray
        The targets.
    seqs : Sequences
        The validated inputs that ``y`` belongs to.
    dims : tuple of str, default=("sample", "time", "feature")
        Names of the sample, time and feature dims.
    numeric : bool, default=True
        Whether targets are numbers (regression: converted to the dtype of
        ``seqs.values`` and checked finite) or labels (kept as they are).
    multi_output : bool, default=True
        Whether several outputs are allowed. When not, a column vector
        ``(n_samples, 1)`` is raveled with a ``DataConversionWarning``.

    Returns
    -------
    Targets
    """
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    dims = _check_dims(dims)
    output_coord = None
    if isinstance(y, xr.DataArray):
        values, per_step, output_dim, output_coord = _targets_from_dataarray(y, seqs, dims)
        values = values[..., None] if output_dim is None else values
    else:
        values = np.asarray(y)
        if values.ndim == 0 or values.ndim > 3:
            raise ValueError(f"y must be 1-D, 2-D or 3-D; got an array of shape {values.shape}")
        per_step = values.ndim == 3
        output_dim = None if values.ndim == 1 else "output"
        values = values[:, None] if values.ndim == 1 else values
    n_samples, n_timesteps = seqs.values.shape[:2]
    if values.shape[0] != n_samples:
        raise ValueError(
            "Found input variables with inconsistent numbers of samples: "
            f"[{n_samples}, {values.shape[0]}]"
        )
    if per_step and values.shape[1] != n_timesteps:
        raise ValueError(
            f"per-step y has {values.shape[1]} time steps but X has {n_timesteps}"
        )
    if values.shape[-1] == 0:
        raise ValueError(f"y has shape {values.shape}: it needs at least one output")
    if not multi_output and values.shape[-1] != 1:
        raise ValueError(
            f"y has {values.shape[-1]} outputs but multi-output targets are not supported; "
            "per-step targets need a time dim (a 3-D array or a DataArray with the time dim)"
        )
    if not multi_output and output_dim is not None:
        if not per_step:
            warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel().",
                DataConversionWarning,
                stacklevel=3,
            )
        output_dim, output_coord = None, None
    observed = None
    if per_step:
        values = _shift(values, seqs.offsets)
        unknown = _is_missing(values).any(axis=2) if values.dtype.kind in "fcO" else np.zeros(seqs.mask.shape, bool)
        observed = seqs.mask & ~unknown
        if not observed.any():
            raise ValueError("y has no known target at any valid step (all NaN)")
    if numeric:
        values = check_array(
            values.reshape(values.shape[0], -1),
            dtype=seqs.values.dtype if seqs.values.dtype.kind == "f" else np.float32,  # tokens: float32 nets
            ensure_all_finite=False,
            input_name="y",
        ).reshape(values.shape)
        valid = values[observed] if per_step else values
        if np.isnan(valid).any():
            raise ValueError("Input y contains NaN: a target per sequence must be known (per-step targets may be NaN)")
        if np.isinf(valid).any():
            raise ValueError("Input y contains inf")
        if per_step:
            values = np.where(observed[:, :, None], values, 0).astype(values.dtype, copy=False)
    return Targets(values, per_step, output_dim, output_coord, observed)


def _is_missing(values):
    """NaN, or None in an object array: an unknown target."""
    if values.dtype.kind != "O":
        return np.isnan(values)
    return np.vectorize(lambda v: v is None or (isinstance(v, float) and v != v), otypes=[bool])(values)


def to_output(values, seqs, *, per_step, output_dim=None, output_coord=None, quantiles=None):
    """Give predictions the form of the input: squeezed, and a DataArray for a DataArray.

    Parameters
    ----------
    values : ndarray of shape (n_samples[, n_timesteps], n_outputs)
        Predictions.
    seqs : Sequences
        The inputs the predictions were made for.
    per_step : bool
        Whether ``values`` has a time axis.
    output_dim : str or None, default=None
        Name of the outputs axis; None drops it (it must then have size 1).
    output_coord : array-like or None, default=None
        Coordinate values of the outputs axis.
    quantiles : sequence of float or None, default=None
        When given, ``values`` has a last axis of one value per quantile,
        after the outputs axis; it becomes a ``quantile`` dim.

    Returns
    -------
    ndarray or xarray.DataArray
    """
    if output_dim is None:
        values = values[..., 0] if quantiles is None else values[..., 0, :]
    if seqs.dims is None:
        return values
    sample, time, _ = seqs.dims
    out_dims = (sample,) + ((time,) if per_step else ()) + ((output_dim,) if output_dim else ())
    out_dims += ("quantile",) if quantiles is not None else ()
    coords = {d: c for d, c in seqs.coords.items() if d in out_dims}
    if output_dim is not None and output_coord is not None:
        coords[output_dim] = output_coord
    if quantiles is not None:
        coords["quantile"] = np.asarray(quantiles)
    return xr.DataArray(values, dims=out_dims, coords=coords)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature standardization: ``(values - mean) / scale`` along the last axis.

    Attributes
    ----------
    mean : ndarray of shape (n_features,)
    scale : ndarray of shape (n_features,)
        Standard deviations, with 1 in place of (near) 0 so that constant
        features pass through centred.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, rows, weights=None):
        """Learn mean and scale from ``rows`` of shape (n_rows, n_features) (padding left out).

        ``weights`` (one per row) make them a weighted mean and standard
        deviation, so that a weight of 2 acts as a repeated row. NaN
        (missing values) are left out; a feature never observed gets mean 0
        and scale 1.
        """
        rows = np.asarray(rows)
        nan = np.isnan(rows)
        if weights is None and not nan.any():
            mean, scale = rows.mean(axis=0), rows.std(axis=0)
        else:
            w = (np.ones(len(rows)) if weights is None else np.asarray(weights, np.float64))[:, None] * ~nan
            values = np.where(nan, 0, rows)
            total = w.sum(axis=0)
            total = np.where(total > 0, total, 1)
            mean = (w * values).sum(axis=0) / total
            scale = np.sqrt((w * (values - mean) ** 2).sum(axis=0) / total)
            mean, scale = mean.astype(rows.dtype), scale.astype(rows.dtype)
        return cls._finished(mean, scale)

    @classmethod
    def from_moments(cls, moments, dtype):
        """From per-feature ``(weight, mean, sum of squared deviations)`` (see ``ChunkedSequences``)."""
        weight, mean, squares = moments
        scale = np.sqrt(squares / np.where(weight > 0, weight, 1))
        return cls._finished(mean.astype(dtype), scale.astype(dtype))

    @classmethod
    def _finished(cls, mean, scale):
        """Scale 1 in place of a scale too close to 0 for its dtype."""
        tiny = 10 * np.finfo(mean.dtype).eps * np.maximum(1, np.abs(mean))
        return cls(mean, np.where(scale > tiny, scale, 1).astype(mean.dtype))

    @classmethod
    def restored(cls, mean, scale, size):
        """A Standardizer from saved arrays, checked: ValueError unless they fit ``size`` features.

        Both must be finite float arrays of shape ``(size,)`` and of one dtype,
        with every scale above 0, so that a damaged file fails here rather
        than turning predictions into NaN.
        """
        mean, scale = np.asarray(mean), np.asarray(scale)
        for name, value in (("mean", mean), ("scale", scale)):
            if value.shape != (size,) or value.dtype not in FLOAT_DTYPES or not np.isfinite(value).all():
                raise ValueError(f"the saved scaling {name} must be {size} finite floats, got {value!r}")
        if mean.dtype != scale.dtype or not (scale > 0).all():
            raise ValueError(f"the saved scaling needs a scale above 0 of the mean's dtype, got {scale!r}")
        return cls(mean, scale)

    def transform(self, values):
        """Standardize ``values`` along their last axis, keeping their dtype."""
        if (values.ndim == 3 and values.size <= BRIEF_MAX_VALUES  # a small batch: see _all_finite
                and self.mean.shape == values.shape[2:]):
            return _standardize_small(values, self.mean, self.scale)
        return ((values - self.mean) / self.scale).astype(values.dtype, copy=False)

    def inverse_transform(self, values):
        """Undo ``transform``."""
        return (values * self.scale + self.mean).astype(values.dtype, copy=False)


def is_lazy(X):
    """Whether X is a DataArray whose data is a Dask array (not yet computed)."""
    return isinstance(X, xr.DataArray) and X.chunks is not None


def map_lazily(func, X, sample_dim, fill=0):
    """``func(X)``, built lazily block by block along the sample dim of a Dask-backed DataArray.

    ``func`` maps an in-memory DataArray of sequences to a DataArray or
    Dataset whose only dim shared with X's sample chunks is ``sample_dim``.
    Nothing of X is computed here: ``func`` on one sequence of ``fill``
    values (with X's coords) gives the result's dims, dtypes and coords. Chunks along the
    other dims are merged first: a sequence needs all its steps and features
    at once.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        Dask-backed, chunked along ``sample_dim`` as X is.
    """
    import dask.array as da

    if sample_dim not in X.dims:
        raise ValueError(f"X has dims {X.dims} but no sample dim {sample_dim!r}")
    # the in-memory answer keeps only the dims' coords; others (maybe chunked unlike X) go
    X = X.reset_coords(drop=True).chunk({d: -1 for d in X.dims if d != sample_dim})
    probe = func(xr.full_like(X.isel({sample_dim: slice(0, 1)}), fill).compute())
    sample_chunks = X.chunksizes[sample_dim]

    def lazy_like(var):
        shape = tuple(X.sizes[sample_dim] if d == sample_dim else var.sizes[d] for d in var.dims)
        chunks = tuple(sample_chunks if d == sample_dim else -1 for d in var.dims)
        coords = {k: c for k, c in var.coords.items() if sample_dim not in c.dims}
        return xr.DataArray(da.empty(shape, dtype=var.dtype, chunks=chunks), dims=var.dims, coords=coords)

    if isinstance(probe, xr.Dataset):
        template = xr.Dataset({k: lazy_like(v) for k, v in probe.data_vars.items()}, attrs=probe.attrs)
    else:
        template = lazy_like(probe).rename(probe.name)
    if sample_dim in X.coords:
        template = template.assign_coords({sample_dim: X[sample_dim]})
    return xr.map_blocks(func, X, template=template)


def sliding_windows(series, window, horizon=1):
    """Cut a series into overlapping input windows and the value ``horizon`` steps later.

    Parameters
    ----------
    series : array-like of shape (n_timesteps,) or (n_timesteps, n_features)
        The series.
    window : int
        Steps in each input window.
    horizon : int, default=1
        How far past the end of a window the target lies.

    Returns
    -------
    X : ndarray of shape (n_windows, window) or (n_windows, window, n_features)
        ``X[i] = series[i : i + window]``.
    y : ndarray of shape (n_windows,) or (n_windows, n_features)
        ``y[i] = series[i + window + horizon - 1]``.

    Examples
    --------
    >>> X, y = sliding_windows(np.arange(6.0), window=3)
    >>> X
    array([[0., 1., 2.],
           [1., 2., 3.],
           [2., 3., 4.]])
    >>> y
    array([3., 4., 5.])
    """
    series = np.asarray(series)
    if window < 1 or horizon < 1:
        raise ValueError(f"window and horizon must be >= 1, got {window} and {horizon}")
    n_windows = len(series) - window - horizon + 1
    if n_windows < 1:
        raise ValueError(f"a series of {len(series)} steps is too short for window={window}, horizon={horizon}")
    X = np.lib.stride_tricks.sliding_window_view(series, window, axis=0)[:n_windows]
    X = np.moveaxis(X, -1, 1) if series.ndim == 2 else X
    return np.ascontiguousarray(X), series[window + horizon - 1 :].copy()
