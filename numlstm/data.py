"""Sequence data for the estimators: validation, lengths, scaling and windows.

Sequences come in three forms:

* a 3-D array ``(n_samples, n_timesteps, n_features)``;
* a 2-D array ``(n_samples, n_timesteps)``, read as univariate sequences;
* an :class:`xarray.DataArray` with named dims, in any order.

A time step whose features are all NaN is padding. Padding may only trail a
sequence, which is what aligning DataArrays of different lengths produces; a
NaN anywhere else, or an infinite value, is an error. :func:`check_sequences`
turns any of the forms into a :class:`Sequences`: a C-contiguous float array
with zeros at the padded steps, the valid length of each sequence, and the
DataArray coords needed to label the outputs.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_array

__all__ = [
    "DEFAULT_DIMS",
    "Sequences",
    "Targets",
    "Standardizer",
    "check_sequences",
    "check_targets",
    "to_output",
    "sliding_windows",
]

DEFAULT_DIMS = ("sample", "time", "feature")
"""Default names of the sample, time and feature dims of a DataArray."""

FLOAT_DTYPES = (np.float64, np.float32)


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
    """

    values: np.ndarray
    lengths: np.ndarray
    dims: tuple | None = None
    coords: dict = field(default_factory=dict)

    @property
    def mask(self):
        """Boolean ndarray of shape (n_samples, n_timesteps), True at valid steps."""
        return np.arange(self.values.shape[1]) < self.lengths[:, None]


@dataclass(frozen=True)
class Targets:
    """Validated targets, aligned with a :class:`Sequences`.

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
    """

    values: np.ndarray
    per_step: bool
    output_dim: str | None = None
    output_coord: np.ndarray | None = None


def _check_dims(dims):
    if (
        not isinstance(dims, tuple)
        or len(dims) != 3
        or not all(isinstance(d, str) for d in dims)
        or len(set(dims)) != 3
    ):
        raise ValueError(
            f"dims must be a tuple of three distinct dim names (sample, time, feature), got {dims!r}"
        )
    return dims


def _from_dataarray(X, dims):
    sample, time, feature = dims
    present = set(X.dims)
    if present == {sample, time, feature}:
        order = (sample, time, feature)
    elif present == {sample, time}:
        order = (sample, time)
    else:
        raise ValueError(
            f"X has dims {X.dims}; expected ({sample!r}, {time!r}, {feature!r}) or "
            f"({sample!r}, {time!r}) in any order. Pass dims=(sample, time, feature) "
            "to name yours."
        )
    X = X.transpose(*order)
    coords = {d: np.asarray(X[d].values) for d in order if d in X.coords}
    return X.values, coords


def check_sequences(X, *, dims=DEFAULT_DIMS, dtype=FLOAT_DTYPES, input_name="X"):
    """Validate sequences and find their lengths from trailing-NaN padding.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_timesteps[, n_features]) or xarray.DataArray
        The sequences. A DataArray must have the sample and time dims and may
        have the feature dim, in any order.
    dims : tuple of str, default=("sample", "time", "feature")
        Names of the sample, time and feature dims of a DataArray.
    dtype : dtype or tuple of dtypes, default=(float64, float32)
        Accepted float dtype(s); other inputs are converted to the first.
    input_name : str, default="X"
        Name used in error messages.

    Returns
    -------
    Sequences

    Raises
    ------
    TypeError
        For sparse or non-numeric input.
    ValueError
        For wrong dims or shapes, an empty input, an infinite value, a NaN that
        does not pad the end of a sequence, or a sequence with no valid step.
    """
    dims = _check_dims(dims)
    coords = {}
    from_xarray = isinstance(X, xr.DataArray)
    if from_xarray:
        X, coords = _from_dataarray(X, dims)
    elif isinstance(X, xr.Dataset):
        raise TypeError(f"{input_name} must be an array or a DataArray, not a Dataset; select one variable")
    values = check_array(
        X,
        dtype=dtype,
        ensure_all_finite=False,
        allow_nd=True,
        ensure_min_samples=1,
        ensure_min_features=1,
        input_name=input_name,
    )
    if values.ndim == 2:
        values = values[:, :, None]
    elif values.ndim != 3:
        raise ValueError(
            f"{input_name} must be 2-D (sample, time) or 3-D (sample, time, feature); "
            f"got an array of shape {values.shape}"
        )
    n_samples, n_timesteps, n_features = values.shape
    if n_timesteps == 0 or n_features == 0:
        raise ValueError(
            f"{input_name} has shape {values.shape}: sequences need at least one time step "
            "and one feature"
        )
    if np.isinf(values).any():
        raise ValueError(f"{input_name} contains inf; only finite values and trailing NaN padding are allowed")
    nan = np.isnan(values)
    lengths = np.full(n_samples, n_timesteps, dtype=np.int64)
    if nan.any():
        padded = nan.all(axis=2)
        partial = nan.any(axis=2) & ~padded
        if partial.any():
            i, t = np.argwhere(partial)[0]
            raise ValueError(
                f"{input_name} contains NaN in some but not all features of a time step "
                f"(sample {i}, step {t}); a padded step must be NaN in every feature"
            )
        lengths = (~padded).sum(axis=1)
        valid = np.arange(n_timesteps) < lengths[:, None]
        if (valid == padded).any():
            i, t = np.argwhere(valid == padded)[0]
            raise ValueError(
                f"{input_name} contains NaN inside a sequence (sample {i}, step {t}); NaN may "
                "only pad the end of a sequence"
            )
        if (lengths == 0).any():
            i = int(np.argmin(lengths))
            raise ValueError(f"{input_name} contains a sequence that is all NaN (sample {i})")
        values = np.where(padded[:, :, None], 0, values).astype(values.dtype, copy=False)
    values = np.ascontiguousarray(values)
    return Sequences(values, lengths, dims if from_xarray else None, coords)


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
    array ``(n_samples, n_timesteps, n_outputs)``. Per-step values at padded
    steps are ignored.

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
    if numeric:
        values = check_array(
            values.reshape(values.shape[0], -1),
            dtype=seqs.values.dtype,
            ensure_all_finite=False,
            input_name="y",
        ).reshape(values.shape)
        valid = values[seqs.mask] if per_step else values
        if np.isnan(valid).any():
            raise ValueError("Input y contains NaN")
        if np.isinf(valid).any():
            raise ValueError("Input y contains inf")
        if per_step:
            values = np.where(seqs.mask[:, :, None], values, 0).astype(values.dtype, copy=False)
    return Targets(values, per_step, output_dim, output_coord)


def to_output(values, seqs, *, per_step, output_dim=None, output_coord=None):
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

    Returns
    -------
    ndarray or xarray.DataArray
    """
    if output_dim is None:
        values = values[..., 0]
    if seqs.dims is None:
        return values
    sample, time, _ = seqs.dims
    out_dims = (sample,) + ((time,) if per_step else ()) + ((output_dim,) if output_dim else ())
    coords = {d: c for d, c in seqs.coords.items() if d in out_dims}
    if output_dim is not None and output_coord is not None:
        coords[output_dim] = output_coord
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
    def fit(cls, rows):
        """Learn mean and scale from ``rows`` of shape (n_rows, n_features) (padding left out)."""
        rows = np.asarray(rows)
        mean = rows.mean(axis=0)
        scale = rows.std(axis=0)
        tiny = 10 * np.finfo(rows.dtype).eps * np.maximum(1, np.abs(mean))
        return cls(mean, np.where(scale > tiny, scale, 1).astype(rows.dtype))

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
        return ((values - self.mean) / self.scale).astype(values.dtype, copy=False)

    def inverse_transform(self, values):
        """Undo :meth:`transform`."""
        return (values * self.scale + self.mean).astype(values.dtype, copy=False)


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
