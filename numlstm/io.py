"""Save and load fitted estimators in a safe, versioned file format.

A model file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) read with
``allow_pickle=False``, so that loading never executes code. Besides the
weights and other numeric arrays it holds one string array, ``__metadata__``:
JSON with the format name and version, the estimator class, its
hyper-parameters and its scalar fitted attributes. The estimator class is
looked up in a fixed table, never imported by name from the file.

A truncated, corrupted or crafted file raises ``ValueError``.
"""

import json
import zipfile
import zlib

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "write_model", "read_model", "load"]

FORMAT_NAME = "numlstm-model"
FORMAT_VERSION = 1
_METADATA_KEY = "__metadata__"
# What a damaged or hostile archive can raise while being read.
_READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    OverflowError,
    MemoryError,
    UnicodeError,
    zipfile.BadZipFile,
    zlib.error,
)


def _portable(name, values):
    """``values`` as an array that ``np.load(allow_pickle=False)`` can read back.

    Object arrays of strings become unicode arrays; any other object array
    raises ``ValueError``.
    """
    values = np.asarray(values)
    if values.dtype != object:
        return values
    as_text = np.asarray(values.tolist())
    if as_text.dtype.kind != "U" or as_text.shape != values.shape:
        raise ValueError(f"{name} holds Python objects that cannot be saved without pickle")
    return as_text


def write_model(path, metadata, arrays):
    """Write ``metadata`` (JSON-able dict) and ``arrays`` (str -> ndarray) to ``path``.

    ``path`` is used as given (no ``.npz`` is appended).
    """
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    payload = {name: _portable(name, value) for name, value in arrays.items()}
    payload[_METADATA_KEY] = np.array(json.dumps(header, allow_nan=True))
    with open(path, "wb") as f:
        np.savez(f, **payload)


def read_model(path):
    """Read a file written by :func:`write_model`.

    Returns
    -------
    metadata : dict
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable model file of a supported version.
    """
    with open(path, "rb") as f:
        try:
            with np.load(f, allow_pickle=False) as archive:
                if not isinstance(archive, np.lib.npyio.NpzFile) or _METADATA_KEY not in archive.files:
                    raise ValueError("no metadata entry")
                metadata = json.loads(str(archive[_METADATA_KEY][()]))
                arrays = {name: archive[name] for name in archive.files if name != _METADATA_KEY}
        except _READ_ERRORS as exc:
            raise ValueError(f"{path!s} is not a readable numlstm model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{path!s} is not a numlstm model file")
    version = metadata.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{path!s} has model format version {version!r}; this numlstm reads versions 1 to {FORMAT_VERSION}"
        )
    return metadata, arrays


def load(path):
    """Load an estimator saved with ``est.save(path)``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    LSTMRegressor or LSTMClassifier
        A fitted estimator whose predictions are bit-identical to the saved one's.

    Raises
    ------
    ValueError
        If the file is truncated, corrupted, crafted or of an unknown version.
    """
    from numlstm.estimators import ESTIMATORS  # estimators import this module

    metadata, arrays = read_model(path)
    cls = ESTIMATORS.get(metadata.get("estimator"))
    if cls is None:
        raise ValueError(f"{path!s} holds an unknown estimator {metadata.get('estimator')!r}")
    try:
        return cls._from_saved(metadata, arrays)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{path!s} holds an invalid model ({type(exc).__name__}: {exc})") from exc
