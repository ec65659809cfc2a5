"""Save and load fitted estimators in a safe, versioned file format.

This module holds both the file format (``write_model``, ``read_model``) and
the estimators' schema: what of a fitted estimator is saved and how each
value is checked when read back (``estimator_payload``,
``estimator_from_payload``, ``ATTRIBUTE_KINDS``). Estimator classes make
themselves loadable with the ``loadable`` decorator; ``load`` rebuilds only
those, by the name the file gives.

File format
-----------
A model file is a NumPy ``.npz`` archive: an uncompressed (``ZIP_STORED``)
zip of ``.npy`` members, as ``numpy.savez`` writes it. Besides the
weights and other numeric arrays it holds one 0-d unicode array,
``__metadata__``: JSON with the format name (``"format"``), the version
(``"format_version"``), the estimator class, its hyper-parameters and its
scalar fitted attributes. The estimator class is looked up in a fixed table,
never imported by name from the file. Nothing is ever unpickled.

Version 2 (written now) adds a ``"manifest"`` to the metadata: for every
array, its dtype string and its shape. Version 1 files, which have no
manifest, still load; their manifest is built from the members' ``.npy``
headers.

Reading
-------
``read_model`` reads only what the manifest names, and checks before it
allocates anything for the arrays:

- the path is a regular file (a FIFO or a device is refused, never opened
  for a blocking read);
- member names are unique, every member is stored uncompressed, and no
  member is missing or unexpected;
- the metadata member is at most ``MAX_METADATA_BYTES`` and is valid JSON
  of the expected types;
- every ``.npy`` header is small, agrees with the manifest, and declares a
  plain boolean, numeric or string dtype (no object or structured dtypes);
- the member sizes agree with the headers, fit in the file, and add up to at
  most ``MAX_MODEL_BYTES`` (or the ``max_bytes`` given).

Arrays are then read with bounded reads. Every failure of a file that exists
is a ``ValueError`` naming the path.

Writing
-------
``write_model`` never writes the target in place: it writes a hidden
temporary sibling, ``.<name>.<random>.tmp``, flushes and fsyncs it, moves it
over the target with ``os.replace`` and then fsyncs the directory. A
crash or a full disk therefore leaves either the old file or the new one,
never a mix. An error or ``KeyboardInterrupt`` removes the temporary file;
a writer killed outright (``SIGKILL``, power loss) can leave it behind, and
it is then safe to delete. Readers never look at it.
"""

import errno
import importlib
import io
import json
import os
import secrets
import stat
import zipfile
import zlib
from contextlib import suppress
from numbers import Integral

import numpy as np
from numpy.lib import format as npy_format
from sklearn.utils import check_random_state

from numlstm._config import MAX_MODEL_BYTES  # the default cap on a model file's arrays, in bytes
from numlstm._net import SequenceNet, check_size, loadable_config
from numlstm.cells.registry import SPECS as CELLS
from numlstm.data import MISSING, Standardizer

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_MODEL_BYTES",
    "MAX_METADATA_BYTES",
    "write_model",
    "read_model",
    "load",
]

FORMAT_NAME = "numlstm-model"
FORMAT_VERSION = 2
MAX_METADATA_BYTES = 16 * 1024**2
"""Cap on the size of the ``__metadata__`` member, in bytes."""

_METADATA_KEY = "__metadata__"
_RESERVED_KEYS = ("format", "format_version", "manifest")
# dtype kinds a model file may hold: bool, integers, floats, complex, bytes and unicode strings.
_PLAIN_KINDS = "biufcSU"
# The .npy header versions numpy writes for plain dtypes, and the size of their length field.
_NPY_LENGTH_BYTES = {(1, 0): 2, (2, 0): 4}
_MAX_NPY_HEADER = 10_000  # numpy's own default cap
_CHUNK = 16 * 1024**2
# What a damaged or hostile archive can raise while being read.
_READ_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    EOFError,
    OSError,
    OverflowError,
    MemoryError,
    RuntimeError,  # includes RecursionError and NotImplementedError (unsupported zip features)
    UnicodeError,
    zipfile.BadZipFile,
    zlib.error,
)


# ---- writing -------------------------------------------------------------------------------


def _portable(name, values):
    """``values`` as an array of a plain dtype that ``read_model`` accepts.

    Object arrays of strings become unicode arrays; any other object array,
    and any structured or non-numeric dtype, raises ``ValueError``.
    """
    values = np.asarray(values)
    if values.dtype == object:
        as_text = np.asarray(values.tolist())
        if as_text.dtype.kind != "U" or as_text.shape != values.shape:
            raise ValueError(f"arrays[{name!r}] holds Python objects that cannot be saved without pickle")
        values = as_text
    if not _is_plain(values.dtype):
        raise ValueError(f"arrays[{name!r}] has dtype {values.dtype}, which a model file cannot hold")
    return values


def _is_plain(dtype):
    return dtype.kind in _PLAIN_KINDS and dtype.names is None and dtype.subdtype is None


def write_model(path, metadata, arrays):
    """Write a model file atomically.

    Parameters
    ----------
    path : str or path-like
        The target, used as given (no ``.npz`` is appended). Its directory must
        exist. An existing file there is replaced only once the new one is
        complete and on disk, and keeps its permission bits; a new file gets
        ``0o666`` less the umask. A symbolic link is followed.
    metadata : dict
        JSON-able metadata. The keys ``"format"``, ``"format_version"`` and
        ``"manifest"`` are reserved.
    arrays : dict of str to array-like
        The arrays to store. Object arrays must hold strings only.

    Raises
    ------
    TypeError
        If ``metadata`` is not a dict or ``arrays`` is not a dict with str keys.
    ValueError
        If ``metadata`` uses a reserved key or ``arrays`` cannot be stored
        without pickle. Nothing is written then.
    FileNotFoundError, IsADirectoryError, PermissionError
        If the target cannot be written; nothing is written then.
    OSError
        If writing fails (a full disk, say); the target is left as it was.
    """
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    if not isinstance(arrays, dict) or not all(isinstance(name, str) for name in arrays):
        raise TypeError("arrays must be a dict with str keys")
    reserved = [key for key in _RESERVED_KEYS if key in metadata]
    if reserved:
        raise ValueError(f"metadata must not use the reserved keys {reserved}")
    if _METADATA_KEY in arrays:
        raise ValueError(f"arrays must not use the reserved name {_METADATA_KEY!r}")
    payload = {name: _portable(name, value) for name, value in arrays.items()}
    manifest = {name: {"dtype": value.dtype.str, "shape": list(value.shape)} for name, value in payload.items()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata, "manifest": manifest}
    payload[_METADATA_KEY] = np.array(json.dumps(header, allow_nan=True))
    _write_atomically(path, lambda f: np.savez(f, **payload))


def _write_atomically(path, write):
    """Call ``write(f)`` on a temporary sibling of ``path``, then move it over ``path``."""
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "cannot save a model over a directory", os.fspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "the directory to save the model in does not exist", directory)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # the 0o666 given to os.open below, less the umask
    else:
        if not os.access(target, os.W_OK):
            raise PermissionError(errno.EACCES, "the model file is not writable", os.fspath(path))
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            if mode is not None:
                os.chmod(temp, mode)
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename in ``directory`` durable, where the platform can open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):  # some file systems refuse to fsync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


# ---- reading -------------------------------------------------------------------------------


def read_model(path, *, max_bytes=MAX_MODEL_BYTES):
    """Read a file written by ``write_model``.

    Parameters
    ----------
    path : str or path-like
    max_bytes : int, default MAX_MODEL_BYTES
        The largest total size of the arrays to accept, in bytes. It is checked
        against the sizes the file declares, before any array is read.

    Returns
    -------
    metadata : dict
        The metadata given to ``write_model``, plus ``"format"`` and
        ``"format_version"``.
    arrays : dict of str to ndarray

    Raises
    ------
    FileNotFoundError, PermissionError
        If ``path`` cannot be opened.
    TypeError
        If ``max_bytes`` is not an int.
    ValueError
        If the file is not a regular file, or not a readable model file of a
        supported version within the size caps.
    """
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool):
        raise TypeError(f"max_bytes must be an int, not {type(max_bytes).__name__}")
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused just below.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        raise ValueError(f"{path!s} is not a regular file")
    with open(fd, "rb") as f:
        try:
            return _read_archive(f, status.st_size, max_bytes)
        except _READ_ERRORS as exc:
            raise ValueError(f"{path!s} is not a readable numlstm model file ({type(exc).__name__}: {exc})") from exc


def _read_archive(f, file_size, max_bytes):
    with zipfile.ZipFile(f) as archive:
        members = _members(archive, file_size)
        if _METADATA_KEY not in members:
            raise ValueError("no metadata entry")
        metadata = _read_metadata(archive, members.pop(_METADATA_KEY))
        manifest = _manifest(metadata, members) if metadata["format_version"] >= 2 else dict.fromkeys(members)
        headers = {name: _read_header(archive, info, manifest[name]) for name, info in members.items()}
        total = sum(nbytes for _, _, _, nbytes in headers.values())
        if total > max_bytes:
            raise ValueError(f"its arrays declare {total} bytes, more than the cap of {max_bytes} bytes")
        return metadata, {name: _read_array(archive, members[name], header) for name, header in headers.items()}


def _members(archive, file_size):
    """The archive's members by array name, after checks that read no member data."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise ValueError("duplicate member names")
    if sum(info.compress_size for info in infos) > file_size:
        raise ValueError("its members declare more bytes than the file holds")
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise ValueError(f"unexpected member {info.filename!r}")
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise ValueError(f"member {info.filename!r} is compressed; numlstm writes stored members only")
        members[info.filename[: -len(".npy")]] = info
    return members


def _read_metadata(archive, info):
    """The parsed and type-checked metadata JSON."""
    if info.file_size > MAX_METADATA_BYTES:
        raise ValueError(f"the metadata is {info.file_size} bytes, more than the cap of {MAX_METADATA_BYTES}")
    dtype, shape, _, _ = header = _read_header(archive, info, None)
    if dtype.kind != "U" or shape != ():
        raise ValueError("the metadata entry is not a text scalar")
    metadata = json.loads(str(_read_array(archive, info, header)[()]))
    if not isinstance(metadata, dict):
        raise ValueError(f"the metadata is a JSON {type(metadata).__name__}, not an object")
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"the metadata does not name the format {FORMAT_NAME!r}")
    version = metadata.get("format_version")
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"model format version {version!r}; this numlstm reads versions 1 to {FORMAT_VERSION}")
    return metadata


def _manifest(metadata, members):
    """Pop the manifest of a version-2 file and check that it names exactly the members stored."""
    manifest = metadata.pop("manifest", None)
    if not isinstance(manifest, dict) or not all(isinstance(entry, dict) for entry in manifest.values()):
        raise ValueError("the metadata has no valid manifest")
    if set(manifest) != set(members):
        raise ValueError(f"the manifest names {sorted(manifest)} but the file stores {sorted(members)}")
    return manifest


def _read_header(archive, info, declared):
    """The checked ``.npy`` header of a member: (dtype, shape, fortran_order, data bytes).

    Reads at most the header's bytes, whatever the member claims. ``declared``
    is the member's manifest entry, or None where the file has no manifest.
    """
    with archive.open(info) as member:
        header = _parse_header(member, info)
    dtype, shape, _, _ = header
    stored = {"dtype": dtype.str, "shape": list(shape)}
    if declared is not None and declared != stored:
        raise ValueError(f"member {info.filename!r} is stored as {stored}, but the manifest says {declared}")
    return header


def _parse_header(member, info):
    prefix = _read_exact(member, len(npy_format.MAGIC_PREFIX) + 2)
    version = (prefix[-2], prefix[-1])
    if not prefix.startswith(npy_format.MAGIC_PREFIX) or version not in _NPY_LENGTH_BYTES:
        raise ValueError(f"member {info.filename!r} is not a .npy array of a supported version")
    length_field = _read_exact(member, _NPY_LENGTH_BYTES[version])
    length = int.from_bytes(length_field, "little")
    if length > _MAX_NPY_HEADER:
        raise ValueError(f"member {info.filename!r} has a {length}-byte header")
    header = io.BytesIO(prefix + length_field + _read_exact(member, length))
    npy_format.read_magic(header)
    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, fortran_order, dtype = read(header, max_header_size=_MAX_NPY_HEADER)
    if not _is_plain(dtype) or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"member {info.filename!r} declares an unsupported array: {dtype} {shape}")
    nbytes = dtype.itemsize * int(np.prod(shape, dtype=object))
    if info.file_size != header.tell() + nbytes:
        raise ValueError(
            f"member {info.filename!r} is {info.file_size} bytes, but its header declares {header.tell() + nbytes}"
        )
    return dtype, shape, fortran_order, nbytes


def _read_array(archive, info, header):
    """Read a member's array data, checked in ``_parse_header``, in bounded chunks."""
    dtype, shape, fortran_order, nbytes = header
    data = bytearray(nbytes)
    with archive.open(info) as member:
        _parse_header(member, info)
        view = memoryview(data)
        for start in range(0, nbytes, _CHUNK):
            view[start : start + _CHUNK] = _read_exact(member, min(_CHUNK, nbytes - start))
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran_order else array.reshape(shape)


def _read_exact(stream, size):
    data = stream.read(size)
    if len(data) != size:
        raise EOFError(f"expected {size} bytes, got {len(data)}")
    return data


# ---- loading estimators --------------------------------------------------------------------


def load(path, *, max_bytes=MAX_MODEL_BYTES):
    """Load an estimator saved with ``est.save(path)``.

    Parameters
    ----------
    path : str or path-like
    max_bytes : int, default MAX_MODEL_BYTES
        The largest total size of the model's arrays to accept, in bytes; see
        ``read_model``.

    Returns
    -------
    LSTMRegressor or LSTMClassifier
        A fitted estimator whose predictions are bit-identical to the saved one's.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a regular file, or is truncated, corrupted, crafted,
        too large or of an unknown version.
    """
    importlib.import_module("numlstm.estimators")  # its classes register themselves (see loadable)
    metadata, arrays = read_model(path, max_bytes=max_bytes)
    name = metadata.get("estimator")
    cls = ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{path!s} holds an unknown estimator {name!r}")
    try:
        return estimator_from_payload(cls, metadata, arrays)
    except _READ_ERRORS as exc:
        raise ValueError(f"{path!s} holds an invalid model ({type(exc).__name__}: {exc})") from exc


# ---- the estimators' schema ------------------------------------------------------------------

ESTIMATORS = {}
"""The estimator classes ``load`` may rebuild, by name (see ``loadable``)."""


def loadable(cls):
    """Class decorator: let ``load`` rebuild estimators of class ``cls`` from files naming it."""
    ESTIMATORS[cls.__name__] = cls
    return cls


def estimator_payload(est, weights=None, progress=None):
    """The metadata and arrays that ``est.save`` writes for the fitted estimator ``est``.

    ``weights`` (a ``SequenceNet.state_dict``) and ``progress`` (a dict
    of fitted attributes) stand in for the current ones: a checkpoint
    saves the estimator as it was at its best epoch.
    """
    params = est.get_params()
    params["dims"] = list(est.dims)
    params["random_state"] = int(est.random_state) if isinstance(est.random_state, Integral) else None
    params["checkpoint_path"] = None  # a file never says where training writes
    if isinstance(est.class_weight, dict):  # as pairs: JSON keys would turn labels into strings
        params["class_weight"] = {"pairs": [[label, weight] for label, weight in est.class_weight.items()]}
    attrs, arrays = {}, {}
    for name in est._SAVED:
        if not hasattr(est, name):
            continue
        value = getattr(est, name) if progress is None else progress.get(name, getattr(est, name))
        if isinstance(value, SequenceNet):
            attrs[name] = {"kind": "net", "config": jsonable(value.config)}
            state = value.state_dict() if weights is None else weights
            arrays.update({f"{name}/{k}": v for k, v in state.items()})
        elif isinstance(value, Standardizer):
            attrs[name] = {"kind": "standardizer"}
            arrays[f"{name}/mean"], arrays[f"{name}/scale"] = value.mean, value.scale
        elif isinstance(value, np.ndarray):
            attrs[name] = {"kind": "array", "object": value.dtype == object}
            arrays[name] = value
        else:
            attrs[name] = {"kind": "json", "value": jsonable(value)}
    metadata = {"estimator": type(est).__name__, "params": jsonable(params), "attributes": attrs}
    return metadata, arrays

def estimator_from_payload(cls, metadata, arrays):
    """Rebuild a fitted estimator of class ``cls`` from ``read_model`` output.

    Every value is checked against the schema (``ATTRIBUTE_KINDS``)
    before anything is built from it; ``checkpoint_path`` is never taken
    from the file. The estimator then cross-checks what it restored
    (``_check_restored``).
    """
    for key, kind in (("params", dict), ("attributes", dict)):
        if not isinstance(metadata.get(key), kind):
            raise ValueError(f"the model's {key!r} must be a mapping")
    params = dict(metadata["params"])
    if not isinstance(params.get("dims"), list):
        raise ValueError("the saved dims must be a list")
    params["dims"] = tuple(params["dims"])
    params["checkpoint_path"] = None
    weights = params.get("class_weight")
    if isinstance(weights, dict):
        pairs = weights.get("pairs")
        if set(weights) != {"pairs"} or not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and isinstance(p[1], (int, float)) for p in pairs):
            raise ValueError("the saved class_weight must be label-weight pairs")
        params["class_weight"] = {label: weight for label, weight in pairs}
    est = cls(**params)
    est._check_params()
    attributes = dict(metadata["attributes"])
    if "_net" in attributes and "network_" not in attributes:  # saved before network_ was public
        attributes["network_"] = attributes.pop("_net")
        arrays = {("network_/" + k[len("_net/"):] if k.startswith("_net/") else k): v for k, v in arrays.items()}
    optional = {"feature_names_in_", "_missing", "_fit_columns", "_quantiles", "vocabulary_"}
    for name in cls._SAVED:
        if name not in optional and name not in attributes:
            raise ValueError(f"the model lacks {name!r}")
    for name, spec in attributes.items():
        if name not in cls._SAVED or name not in ATTRIBUTE_KINDS:
            raise ValueError(f"unexpected attribute {name!r}")
        kind = spec.get("kind") if isinstance(spec, dict) else None
        if kind not in ATTRIBUTE_KINDS[name][0]:
            raise ValueError(f"attribute {name!r} must be saved as one of {ATTRIBUTE_KINDS[name][0]}, not {kind!r}")
        if kind == "net":
            prefix = f"{name}/"
            state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            config = checked_net_config(spec.get("config"))
            check_size(config, saved_count=sum(v.size for v in state.values()))
            value = SequenceNet(loadable_config(config))
            value.load_state_dict(state)
        elif kind == "standardizer":
            value = (arrays[f"{name}/mean"], arrays[f"{name}/scale"])  # checked once sizes are known
        elif kind == "array":
            if not isinstance(spec.get("object"), bool):
                raise ValueError(f"attribute {name!r} lacks its 'object' flag")
            value = arrays[name].astype(object) if spec["object"] else arrays[name]
        else:
            value = spec.get("value")
        if not ATTRIBUTE_KINDS[name][1](value):
            raise ValueError(f"attribute {name!r} has an invalid value {value!r}")
        setattr(est, name, value)
    if "_missing" not in attributes:  # written before missing values were accepted
        est._missing, est._fit_columns = "error", False
    if "n_outputs_" in cls._SAVED and "_quantiles" not in attributes:  # before quantile losses
        est._quantiles = None
    est._check_restored()
    est._rng = check_random_state(est.random_state)
    est.device_ = est.network_.device
    return est


def _is_int(value, minimum=0):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _is_float_list(value):
    return isinstance(value, list) and all(isinstance(v, float) for v in value)


def _is_1d(value, kinds):
    return isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in kinds


def _is_scaler(value):
    return value is None or isinstance(value, tuple)  # the arrays are checked by _check_restored


ATTRIBUTE_KINDS = {
    "n_features_in_": (("json",), lambda v: _is_int(v, 1)),
    "feature_names_in_": (("array",), lambda v: _is_1d(v, "OU") and all(isinstance(n, str) for n in v)),
    "loss_curve_": (("json",), _is_float_list),
    "validation_scores_": (("json",), lambda v: v is None or _is_float_list(v)),
    "best_loss_": (("json",), lambda v: isinstance(v, float)),
    "best_validation_score_": (("json",), lambda v: v is None or isinstance(v, float)),
    "n_iter_": (("json",), _is_int),
    "network_": (("net",), lambda v: True),  # checked by SequenceNet and load_state_dict
    "_x_scaler": (("standardizer", "json"), _is_scaler),
    "_output_dim": (("json",), lambda v: v is None or isinstance(v, str)),
    "_output_coord": (("array", "json"), lambda v: v is None or _is_1d(v, "biufUOM")),
    "_missing": (("json",), lambda v: v in MISSING),
    "_fit_columns": (("json",), lambda v: isinstance(v, bool)),
    "vocabulary_": (("array",), lambda v: _is_1d(v, "iu") and len(v) and np.array_equal(np.unique(v), v)),
    # LSTMRegressor
    "n_outputs_": (("json",), lambda v: _is_int(v, 1)),
    "_y_scaler": (("standardizer", "json"), _is_scaler),
    "_quantiles": (("json",), lambda v: v is None or (_is_float_list(v) and v and sorted(set(v)) == v
                                                        and 0 < v[0] and v[-1] < 1)),
    # LSTMClassifier
    "classes_": (("array",), lambda v: _is_1d(v, "biufUO") and len(v) >= 2 and np.array_equal(np.unique(v), v)),
}
"""The kinds each saved fitted attribute may be saved as, and a check of its value (None is saved as JSON)."""


_NET_CONFIG_TYPES = {
    "cell": str,
    "input_size": int,
    "hidden_size": int,
    "num_layers": int,
    "bidirectional": bool,
    "dropout": float,
    "dtype": str,
    "device": str,
    "seed": int,
    "n_outputs": int,
    "per_step": bool,
}

# Saved only for cell="lstm".
_LSTM_CONFIG_TYPES = {option.name: type(option.default) for option in CELLS["lstm"].options}


def checked_net_config(config):
    """A saved network config, type-checked before anything is built from it."""
    if not isinstance(config, dict):
        raise ValueError("network config must be a mapping")
    types = dict(_NET_CONFIG_TYPES)
    if config.get("cell") == "lstm":
        types.update(_LSTM_CONFIG_TYPES)
    for key, kind in types.items():
        if key not in config:
            raise ValueError(f"network config lacks {key!r}")
        value = config[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"network config {key!r} must be {kind.__name__}, got {value!r}")
    if config["cell"] not in CELLS or config["dtype"] not in ("float32", "float64"):
        raise ValueError("network config names an unknown cell or dtype")
    if config["device"] not in ("cpu", "cuda"):
        raise ValueError(f"network config names an unknown device {config['device']!r}")
    if config["n_outputs"] < 1 or not 0 <= config["seed"] < np.iinfo(np.int32).max:
        raise ValueError("network config has an invalid output count or seed")
    for key in ("input_size", "hidden_size", "num_layers"):
        if config[key] < 1:
            raise ValueError(f"network config {key!r} must be at least 1, got {config[key]}")
    if not 0 <= config["dropout"] < 1:
        raise ValueError(f"network config 'dropout' must be in [0, 1), got {config['dropout']}")
    vocabulary = config.get("vocabulary_size")
    if vocabulary is not None and not _is_int(vocabulary, 2):
        raise ValueError(f"network config 'vocabulary_size' must be an int >= 2, got {vocabulary!r}")
    return config


def jsonable(value):
    """``value`` with NumPy scalars (also inside lists, tuples and dicts) as Python ones."""
    if isinstance(value, dict):
        return {key: jsonable(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value
