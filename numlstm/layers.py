"""Recurrent layers that compute exactly what ``torch.nn.LSTM``/``GRU``/``RNN`` compute.

The layers work on NumPy arrays. They validate every argument before a kernel
runs, stack layers and directions, apply dropout between layers, own the
weights under PyTorch's names, and keep what ``backward`` needs.
"""

import inspect
import math
import textwrap
import threading
from numbers import Integral, Real

import numpy as np

from numlstm import _compile_notice
from numlstm._backend import get_backend
from numlstm._config import SUPPORTED_DTYPES
from numlstm.cells.registry import SPECS, check_bool as _check_bool

__all__ = ["LSTM", "GRU", "RNN", "no_grad", "is_grad_enabled"]

_grad_mode = threading.local()


def is_grad_enabled():
    """Whether layer calls currently keep what ``backward`` needs."""
    return getattr(_grad_mode, "depth", 0) == 0


class no_grad:
    """Context manager for inference: forward passes inside store nothing for backward.

    Examples
    --------
    >>> import numpy as np, numlstm
    >>> lstm = numlstm.LSTM(3, 4, seed=0)
    >>> with numlstm.no_grad():
    ...     out, (h_n, c_n) = lstm(np.zeros((5, 2, 3), np.float32))
    """

    def __enter__(self):
        _grad_mode.depth = getattr(_grad_mode, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _grad_mode.depth -= 1
        return False


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.type not in SUPPORTED_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def _as_float_array(name, value, dtype):
    """``value`` as a contiguous float array of ``dtype``, finite, fresh or shared.

    Raises a TypeError if ``value`` does not hold real numbers, and a
    ValueError naming ``name`` if it holds NaN or inf, or numbers too large
    for ``dtype``.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore"):  # overflow is reported below, naming the argument
        converted = np.ascontiguousarray(arr, dtype=dtype)
    _check_finite(name, converted, arr)
    return converted


def _check_finite(name, converted, original):
    """A ValueError naming ``name`` unless ``converted`` is finite; says why if not.

    ``original`` is the array before its conversion to the layer's dtype: a
    finite number there that became inf did not fit the dtype.
    """
    if np.isfinite(converted).all():
        return
    if original.dtype.kind in "iu" or np.isfinite(original).all():
        limit = np.finfo(converted.dtype).max
        raise ValueError(f"{name} holds values out of {converted.dtype} range (|value| > "
                         f"{limit:.4g}), up to {np.abs(original).max():.4g}")
    raise ValueError(f"{name} contains NaN or inf")


def _documented(cls):
    """``cls`` with its spec's options documented where its docstring says ``<cell options>``.

    An option that is a parameter of the constructor (the RNN's
    ``nonlinearity``, where PyTorch has it) gets an entry of its own; the
    others come in as ``**options``, listed in that entry.
    """
    explicit = inspect.signature(cls.__init__).parameters
    lines, keywords = [], []
    for option in cls._spec.options:
        if option.choices:
            kind = "{" + ", ".join(f'"{c}"' for c in option.choices) + "}"
        else:
            kind = type(option.default).__name__
        default = f'"{option.default}"' if isinstance(option.default, str) else option.default
        if option.name in explicit:
            lines.append(f"    {option.name} : {kind}, default {default}")
            lines += textwrap.wrap(option.doc, 78, initial_indent=" " * 8,
                                   subsequent_indent=" " * 8)
        else:  # no line may start with " - " (a list item): wrap with that space held
            text = f"- ``{option.name}`` ({kind}, default {default}): {option.doc}"
            keywords += [line.replace("\N{NO-BREAK SPACE}", " ") for line in textwrap.wrap(
                text.replace(" - ", "\N{NO-BREAK SPACE}-\N{NO-BREAK SPACE}"), 78, initial_indent=" " * 8,
                subsequent_indent=" " * 10)]
    if keywords:
        lines += ["    **options", "        The cell's own options, keyword only:", ""] + keywords
    if "    <cell options>\n" not in cls.__doc__:
        raise TypeError(f"{cls.__name__}'s docstring has no place for its cell options")
    options = "".join(f"{line}\n" for line in lines)
    cls.__doc__ = cls.__doc__.replace("    <cell options>\n", options)
    return cls


class _RecurrentLayer:
    """Stacked, optionally bidirectional recurrence of any registered cell family.

    Subclasses set ``_spec`` (a ``numlstm.cells.registry.CellSpec``), which
    says everything cell-specific: gates, states, options, weights and the
    kernel module. ``options`` are the family's own constructor options.
    """

    _spec = None

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype="float32", seed=None, device="cpu",
                 proj_size=0, options=None):
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.num_layers = _check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.bidirectional = _check_bool("bidirectional", bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, Real) or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.dtype = _check_dtype(dtype)
        get_backend(device)  # fails early, with a clear message, if the device is unusable
        self.device = device
        if seed is not None and (isinstance(seed, bool)
                                 or not isinstance(seed, (Integral, np.random.Generator))):
            raise TypeError(f"seed must be None, an int or a numpy Generator, got {seed!r}")
        if isinstance(seed, Integral) and seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed}")
        self._rng = np.random.default_rng(seed)
        self.training = True
        self._training_state = threading.local()
        spec = self._spec
        self._proj_size = _check_int("proj_size", proj_size, 0)
        if self._proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size={self.hidden_size}, "
                             f"got {self._proj_size}")
        self._options = spec.check_options(options or {})
        spec.check_bias(self._options, self.bias)
        self.__dict__.update(self._options)  # public, as torch's layers show their arguments
        self._init_params()

    def _init_params(self):
        """Draw U(-1/sqrt(H), 1/sqrt(H)) weights on the host, then move them to the device once.

        Drawing on the host gives the same weights for a seed on every device.
        """
        k = 1.0 / math.sqrt(self.hidden_size)
        host = {name: self._rng.uniform(-k, k, size=shape).astype(self.dtype)
                for name, shape in self._param_shapes().items()}
        if self._spec.init is not None:
            self._spec.init(host, self.hidden_size, [sfx for _, _, sfx in self._suffixes()],
                            **self._options)
        xp = self._backend
        self.params = {name: xp.to_device(value) for name, value in host.items()}
        self._zero_bias = xp.zeros(self._gate_rows(), self.dtype)
        self._empty = xp.zeros((0, self.hidden_size), self.dtype)

    # ---- training state, one per thread ---------------------------------------------------

    @property
    def _cache(self):
        """What the calling thread's last forward kept for ``backward``, or None."""
        return getattr(self._training_state, "cache", None)

    @_cache.setter
    def _cache(self, value):
        self._training_state.cache = value

    @property
    def grads(self):
        """Parameter gradients of the calling thread's last ``backward``, keyed like the weights."""
        return getattr(self._training_state, "grads", {})

    @grads.setter
    def grads(self, value):
        self._training_state.grads = value

    def __getstate__(self):
        """Pickle the calling thread's training state with the rest of the layer."""
        state = dict(self.__dict__)
        del state["_training_state"]
        return dict(state, _cache=self._cache, grads=self.grads)

    def __setstate__(self, state):
        state = dict(state)
        cache, grads = state.pop("_cache"), state.pop("grads")
        # layers pickled before the cell registry kept their options as plain attributes
        state.setdefault("_proj_size", state.pop("proj_size", 0))
        state.setdefault("_options", {name: state.get(name, default)
                                      for name, default in self._spec.defaults().items()})
        self.__dict__.update(state, _training_state=threading.local())
        self._cache, self.grads = cache, grads

    # ---- shapes -------------------------------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @property
    def output_size(self):
        """Size of ``h``: ``proj_size`` for a projected LSTM, else ``hidden_size``."""
        return self._proj_size or self.hidden_size

    @property
    def _state_arity(self):
        return len(self._spec.states)

    def _gate_rows(self):
        return self._spec.n_gates(**self._options) * self.hidden_size

    def _state_sizes(self):
        return (self.output_size, self.hidden_size)[: self._state_arity]

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _suffixes(self):
        return [(layer, direction, self._suffix(layer, direction))
                for layer in range(self.num_layers) for direction in range(self.num_directions)]

    def _param_shapes(self):
        G, P = self._gate_rows(), self.output_size
        shapes = {}
        for layer, _, sfx in self._suffixes():
            in_size = self.input_size if layer == 0 else P * self.num_directions
            shapes["weight_ih" + sfx] = (G, in_size)
            shapes["weight_hh" + sfx] = (G, P)
            if self.bias:
                shapes["bias_ih" + sfx] = (G,)
                shapes["bias_hh" + sfx] = (G,)
            if self._proj_size:
                shapes["weight_hr" + sfx] = (self._proj_size, self.hidden_size)
            shapes.update({name + sfx: shape for name, shape in
                           self._spec.extra_params(self.hidden_size, **self._options).items()})
        return shapes

    def _direction_params(self, sfx):
        """One direction's weights under the kernels' unsuffixed names.

        A layer without biases passes zeros; the optional weights the kernels
        always take (``spec.kernel_params``) are (0, H) arrays when absent.
        """
        p = {"weight_ih": self.params["weight_ih" + sfx], "weight_hh": self.params["weight_hh" + sfx]}
        for name in ("bias_ih", "bias_hh"):
            p[name] = self.params[name + sfx] if self.bias else self._zero_bias
        for name in self._spec.kernel_params:
            p[name] = self.params.get(name + sfx, self._empty)
        return p

    # ---- weights ------------------------------------------------------------------------

    def state_dict(self):
        """Copies of the weights, under ``torch.nn`` names and in its order."""
        return {name: np.array(self._backend.asnumpy(value), copy=True)
                for name, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Load weights from any mapping of array-likes, e.g. a PyTorch ``state_dict``.

        Every key must be known, present and of the right shape, and every
        value finite; otherwise a ``ValueError`` names the problem and no weight
        changes. Values are cast to this layer's dtype and copied in place.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        unknown = sorted(set(state_dict) - set(self.params))
        missing = sorted(set(self.params) - set(state_dict))
        if unknown or missing:
            raise ValueError(f"load_state_dict: unknown keys {unknown}, missing keys {missing}")
        loaded = {}
        for name, target in self.params.items():
            value = _as_float_array(f"state_dict[{name!r}]",
                                    self._backend.asnumpy(state_dict[name]), self.dtype)
            if value.shape != target.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {target.shape}, "
                                 f"got {value.shape}")
            loaded[name] = value
        for name, value in loaded.items():
            self._backend.assign(self.params[name], value)

    def train(self, mode=True):
        """Training mode: dropout between layers is active. Returns self."""
        self.training = _check_bool("mode", mode)
        return self

    def eval(self):
        """Evaluation mode: no dropout. Returns self."""
        return self.train(False)

    # ---- input checks -------------------------------------------------------------------

    def _check_x(self, x, own=False):
        """``x`` as a contiguous time-major (T, B, I) array on the layer's device.

        Returns ``(x, batched, device_io)``: ``device_io`` says that ``x`` came
        as a device array, so results go back as device arrays. With ``own``,
        the array returned never shares memory with the caller's: a forward
        that keeps ``x`` for backward must not see the caller change it.
        """
        xp = self._backend
        if xp.is_device_array(x):
            checked, batched = self._check_device_x(x)
            return (xp.copy(checked) if own else checked), batched, True
        checked, batched = self._check_host_x(x)
        if own and np.may_share_memory(checked, x):
            checked = checked.copy()
        return xp.to_device(checked), batched, False

    def _check_device_x(self, x):
        xp = self._backend
        x = xp.to_device(x)  # wraps __cuda_array_interface__ objects without a copy
        if np.dtype(x.dtype) != self.dtype:
            raise TypeError(f"x is a device array of dtype {np.dtype(x.dtype)}; this layer "
                            f"computes in {self.dtype}: cast it on the device first")
        self._check_x_shape(tuple(x.shape))
        batched = len(x.shape) == 3
        if not batched:
            x = xp.ascontiguous(x).reshape(x.shape[0], 1, x.shape[1])
        elif self.batch_first:
            x = xp.swap01(x)
        x = xp.ascontiguous(x)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one step and one sequence, got shape {x.shape}")
        if not xp.all_finite(x):
            raise ValueError("x contains NaN or inf")
        return x, batched

    def _check_x_shape(self, shape):
        if len(shape) not in (2, 3):
            order = "(batch, seq_len, input_size)" if self.batch_first else "(seq_len, batch, input_size)"
            raise ValueError(f"x must be 3-D {order} or 2-D (seq_len, input_size), "
                             f"got shape {shape}")
        if shape[-1] != self.input_size:
            raise ValueError(f"x must have input_size={self.input_size} features on its last "
                             f"axis, got shape {shape}")

    def _check_host_x(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
        self._check_x_shape(x.shape)
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must have at least one step and one sequence, got shape {x.shape}")
        return _as_float_array("x", x, self.dtype), batched

    def _check_lengths(self, lengths, T, B):
        if lengths is None:
            return np.full(B, T, np.int64)
        arr = np.asarray(self._backend.asnumpy(lengths))
        if arr.dtype.kind == "O" and all(isinstance(v, Integral) and not isinstance(v, bool)
                                         for v in arr.flat):
            arr = arr.astype(np.float64)  # ints beyond int64: the range check below names them
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
        arr = arr.reshape(-1) if arr.ndim == 0 else arr
        if arr.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},), one per sequence, got {arr.shape}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
            raise TypeError("lengths must hold whole numbers")
        # checked before the cast to int64, which would wrap values beyond its range
        if arr.min() < 1 or arr.max() > T:
            raise ValueError(f"lengths must lie in [1, {T}] (the sequence length), "
                             f"got min {arr.min()} and max {arr.max()}")
        return arr.astype(np.int64)

    def _check_state(self, name, value, B, size, batched):
        """One initial state (``h0``/``c0``) or its gradient, as (L*D, B, size) copies."""
        LD = self.num_layers * self.num_directions
        expected = (LD, B, size) if batched else (LD, size)
        xp = self._backend
        if xp.is_device_array(value):
            arr = xp.to_device(value)
            if np.dtype(arr.dtype) != self.dtype:
                raise TypeError(f"{name} is a device array of dtype {np.dtype(arr.dtype)}, "
                                f"expected {self.dtype}")
            if tuple(arr.shape) != expected:
                raise ValueError(f"{name} must have shape {expected}, got {tuple(arr.shape)}")
            arr = xp.copy(xp.ascontiguous(arr))
            if not xp.all_finite(arr):
                raise ValueError(f"{name} contains NaN or inf")
            return arr if batched else arr.reshape(LD, 1, size)
        arr = _as_float_array(name, value, self.dtype)
        if arr.shape != expected:
            raise ValueError(f"{name} must have shape {expected}, got {arr.shape}")
        return xp.to_device((arr if batched else arr[:, None, :]).copy())

    def _zero_states(self, B):
        """Every layer's and direction's states, zeros, (L*D, B, size) each."""
        LD = self.num_layers * self.num_directions
        return tuple(self._backend.zeros((LD, B, size), self.dtype) for size in self._state_sizes())

    def _check_states(self, name, value, names, B, batched):
        """``hx``-like argument: None (zeros), an array, or an (h, c) pair for LSTM."""
        if value is None:
            return self._zero_states(B)
        if self._state_arity == 2:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise TypeError(f"{name} must be a tuple ({names[0]}, {names[1]}), "
                                f"got {type(value).__name__}")
            parts = value
        else:
            parts = (value,)
        return tuple(self._check_state(f"{name}[{i}] ({n})" if self._state_arity == 2 else name,
                                       part, B, size, batched)
                     for i, (n, part, size) in enumerate(zip(names, parts, self._state_sizes())))

    def _to_caller(self, a, device_io):
        """Device arrays for a caller who passed device arrays, NumPy arrays otherwise."""
        return a if device_io else self._backend.asnumpy(a)

    def _format_states(self, states, batched, device_io=False):
        states = states if batched else tuple(s.reshape(s.shape[0], s.shape[2]) for s in states)
        states = tuple(self._to_caller(s, device_io) for s in states)
        return states if self._state_arity == 2 else states[0]

    def _format_sequence(self, seq, batched, device_io=False):
        if not batched:
            seq = seq.reshape(seq.shape[0], seq.shape[2])
        elif self.batch_first:
            seq = self._backend.swap01(seq)
        return self._to_caller(seq, device_io)

    # ---- forward and backward -----------------------------------------------------------

    @property
    def _backend(self):
        """The kernel package of this layer's device (numlstm.cells or numlstm.cuda)."""
        return get_backend(self.device)

    def _cell(self):
        return getattr(self._backend, self._spec.name)

    def _cell_options(self):
        """The keyword arguments of the kernels (``spec.kernel_options``)."""
        return self._spec.kernel_options(**self._options)

    def _run(self, x, states, lengths, store, use_dropout):
        """Every layer and direction; returns output, final states and per-layer caches.

        ``states`` are fresh arrays (from ``_check_states``); the kernels turn
        them into the final states in place.
        """
        cell, options = self._cell(), self._cell_options()
        _compile_notice.announce(cell, type(self).__name__, self.dtype)
        xp = self._backend
        T, B, _ = x.shape
        D, P = self.num_directions, self.output_size
        final = states
        dev_lengths = xp.to_device(lengths)
        caches, masks = [], []
        inp = x
        for layer in range(self.num_layers):
            out = xp.empty((T, B, D * P), self.dtype)
            layer_caches = []
            for direction in range(D):
                sfx = self._suffix(layer, direction)
                idx = layer * D + direction
                state = tuple(s[idx] for s in final)
                layer_caches.append(cell.forward(self._direction_params(sfx), inp, state, dev_lengths,
                                                 bool(direction), out, direction * P, store,
                                                 **options))
            caches.append(layer_caches)
            mask = None
            if use_dropout and self.dropout > 0 and layer < self.num_layers - 1:
                keep = 1.0 - self.dropout
                # drawn on the host, so that a seed gives the same masks on every device
                mask = (self._rng.random(out.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                mask = xp.to_device(mask)
                out = xp.multiply(out, mask)
            masks.append(mask)
            inp = out
        return inp, final, caches, masks, dev_lengths

    def __call__(self, x, hx=None, lengths=None):
        """Run the layer.

        Parameters
        ----------
        x : array_like
            (seq_len, batch, input_size), or (batch, seq_len, input_size) when
            ``batch_first``, or unbatched (seq_len, input_size).
        hx : array_like or tuple, optional
            Initial state, zeros by default: ``h0`` of shape
            (num_layers * num_directions, batch, H_out), and for LSTM a tuple
            ``(h0, c0)`` with ``c0`` of shape (..., hidden_size).
        lengths : array_like of int, optional
            Valid length of each sequence, in [1, seq_len], with PyTorch's
            packed-sequence semantics.

        Returns
        -------
        out : ndarray
            (seq_len, batch, num_directions * H_out), in ``x``'s layout; zero
            past each sequence's length.
        h_n or (h_n, c_n) : ndarray or tuple
            Final states from each sequence's last valid step.
        """
        store = is_grad_enabled()
        x, batched, device_io = self._check_x(x, own=store)
        T, B, _ = x.shape
        lengths = self._check_lengths(lengths, T, B)
        states = self._check_states("hx", hx, ("h0", "c0"), B, batched)
        out, final = self._forward(x, states, lengths, store, batched)
        return (self._format_sequence(out, batched, device_io),
                self._format_states(final, batched, device_io))

    def _forward(self, x, states, lengths, store, batched=True):
        """Every layer and direction on checked arguments; keeps the cache when ``store``.

        ``x`` is a time-major (T, B, I) array of the layer's dtype on its
        device, ``states`` fresh arrays, ``lengths`` int64 in [1, T].
        Returns the time-major output and the final states.
        """
        T, B, _ = x.shape
        out, final, caches, masks, dev_lengths = self._run(x, states, lengths, store,
                                                           self.training)
        self._cache = dict(caches=caches, masks=masks, lengths=dev_lengths, shape=(T, B),
                           batched=batched) if store else None
        return out, final

    def _trusted_forward(self, x, lengths):
        """Forward for a caller that checked its arguments (``numlstm._net``): no copies, no checks.

        ``x`` is a time-major (T, B, I) float array holding finite numbers,
        which the cache may keep (so the caller must not change it),
        ``lengths`` int64 in [1, T]; the initial states are zeros. Stores
        what ``backward`` needs unless under ``no_grad``. Returns the
        time-major output on the host.
        """
        xp = self._backend
        x = xp.to_device(np.ascontiguousarray(x, dtype=self.dtype))
        out, _ = self._forward(x, self._zero_states(x.shape[1]), lengths, is_grad_enabled())
        return xp.asnumpy(out)

    def _trusted_backward(self, grad_out, need_input_grad=True):
        """``backward`` after ``_trusted_forward``: ``grad_out`` time-major, finite, layer's dtype.

        The final states get no gradient. Returns the time-major input
        gradient on the host, or None without ``need_input_grad`` (its GEMM
        is then skipped).
        """
        xp = self._backend
        dstates = self._zero_states(self._cache["shape"][1])
        grad_x = self._backward(xp.to_device(grad_out), dstates, need_input_grad)
        return None if grad_x is None else xp.asnumpy(grad_x)

    def backward(self, grad_out, grad_hx_n=None):
        """Back-propagate through the last forward pass.

        Parameters
        ----------
        grad_out : array_like
            Gradient of the loss with respect to ``out``, same shape as ``out``.
        grad_hx_n : array_like or tuple, optional
            Gradient with respect to ``h_n`` (a tuple for ``(h_n, c_n)`` for
            LSTM); zeros by default.

        Returns
        -------
        grad_x : ndarray
            Gradient with respect to ``x``, in ``x``'s layout.
        grad_hx : ndarray or tuple
            Gradient with respect to the initial state (a tuple for LSTM).

        Notes
        -----
        Parameter gradients land in ``self.grads``, keyed like
        ``state_dict``; each call replaces them.
        """
        if self._cache is None:
            raise ValueError("backward() needs a forward pass first, run outside no_grad()")
        cache = self._cache
        T, B = cache["shape"]
        batched = cache["batched"]
        D, P = self.num_directions, self.output_size
        expected = (T, B, D * P)
        if batched and self.batch_first:
            expected = (B, T, D * P)
        elif not batched:
            expected = (T, D * P)
        xp = self._backend
        device_io = xp.is_device_array(grad_out)
        if device_io:
            g = xp.ascontiguous(xp.to_device(grad_out))
            if np.dtype(g.dtype) != self.dtype:
                raise TypeError(f"grad_out is a device array of dtype {np.dtype(g.dtype)}, "
                                f"expected {self.dtype}")
            if not xp.all_finite(g):
                raise ValueError("grad_out contains NaN or inf")
        else:
            g = _as_float_array("grad_out", grad_out, self.dtype)
        if tuple(g.shape) != expected:
            raise ValueError(f"grad_out must have the shape of out, {expected}, "
                             f"got {tuple(g.shape)}")
        if not batched:
            g = g.reshape(T, 1, D * P)
        elif self.batch_first:
            g = xp.swap01(g)
        g = xp.to_device(g)
        dstates = self._check_states("grad_hx_n", grad_hx_n, ("grad_h_n", "grad_c_n"), B, batched)
        dinp = self._backward(g, dstates)
        return (self._format_sequence(dinp, batched, device_io),
                self._format_states(dstates, batched, device_io))

    def _backward(self, g, dstates, need_input_grad=True):
        """Every layer and direction backward from the time-major ``g`` on the layer's device.

        ``dstates`` hold the final states' gradients and get the initial
        ones'. Sets ``self.grads``; returns the input gradient, or None
        without ``need_input_grad``.
        """
        cache = self._cache
        xp = self._backend
        D, P = self.num_directions, self.output_size
        cell, options = self._cell(), self._cell_options()
        grads = {}
        for layer in reversed(range(self.num_layers)):
            need_dx = layer > 0 or need_input_grad
            dinp = None
            for direction in range(D):
                sfx = self._suffix(layer, direction)
                idx = layer * D + direction
                dstate = tuple(s[idx] for s in dstates)
                dx, dgrads = cell.backward(self._direction_params(sfx),
                                           cache["caches"][layer][direction], cache["lengths"],
                                           bool(direction), g, direction * P, dstate,
                                           need_dx=need_dx, **options)
                if need_dx:
                    dinp = dx if dinp is None else xp.add(dinp, dx)
                for name, value in dgrads.items():
                    if name + sfx in self.params:
                        grads[name + sfx] = value
            if layer > 0:
                mask = cache["masks"][layer - 1]
                g = xp.multiply(dinp, mask) if mask is not None else dinp
        self.grads = {name: grads[name] for name in self.params}
        return dinp

    def gate_states(self, x, hx=None, lengths=None):
        """Per-step gate activations and states, for inspection.

        Runs a forward pass without dropout that leaves ``backward``'s cache
        untouched.

        Returns
        -------
        dict of str to ndarray
            Each of shape (num_layers, num_directions, seq_len, batch, size),
            time-major whatever ``batch_first`` is, NaN past each sequence's
            length. The keys are the cell's (see its kernel module's
            ``gate_states``).
        """
        x, batched, _ = self._check_x(x)
        T, B, _ = x.shape
        lengths = self._check_lengths(lengths, T, B)
        states = self._check_states("hx", hx, ("h0", "c0"), B, batched)
        _, _, caches, _, _ = self._run(x, states, lengths, True, False)
        cell, options = self._cell(), self._cell_options()
        per_layer = [[cell.gate_states(caches[layer][direction], bool(direction), **options)
                      for direction in range(self.num_directions)]
                     for layer in range(self.num_layers)]
        padded = np.arange(T)[:, None] >= lengths[None, :]
        result = {}
        for key in self._spec.gate_states:  # a cell module must give every key its spec names
            arr = np.array([[states[key] for states in layer] for layer in per_layer], self.dtype)
            arr[:, :, padded] = np.nan
            result[key] = arr
        return result

    def __repr__(self):
        args = [f"{self.input_size}", f"{self.hidden_size}"]
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                args.append(f"{name}={getattr(self, name)!r}")
        args.append(f"dtype={self.dtype.name!r}")
        if self._proj_size:
            args.append(f"proj_size={self._proj_size!r}")
        defaults = self._spec.defaults()
        args += [f"{name}={value!r}" for name, value in self._options.items()
                 if value != defaults[name]]
        return f"{type(self).__name__}({', '.join(args)})"


@_documented
class LSTM(_RecurrentLayer):
    """Long short-term memory layer, computing what ``torch.nn.LSTM`` computes.

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        Units per layer and direction: the size of ``h`` (and ``c``).
    num_layers : int, default 1
        Stacked layers; each reads the outputs of the one below.
    bias : bool, default True
        Whether the gates have the biases ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default False
        Whether ``x`` and ``out`` are (batch, seq_len, features) rather than
        (seq_len, batch, features).
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Also run each layer backwards in time; the outputs of the two
        directions are concatenated.
    proj_size : int, default 0
        If positive, ``h = W_hr (o * tanh(c))`` has this size (< hidden_size).
    dtype : {"float32", "float64"}, default "float32"
    seed : int, numpy Generator or None
        Seeds the weight initialisation and dropout.
    device : {"cpu", "cuda"}, default "cpu"
    <cell options>

    Notes
    -----
    The equations, with gate rows ordered (i, f, g, o) as in PyTorch, are in
    ``numlstm.cells.lstm``. Weights are initialised from
    U(-1/sqrt(H), 1/sqrt(H)) as in PyTorch.
    """

    _spec = SPECS["lstm"]

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, *, dtype="float32", seed=None,
                 device="cpu", **options):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype=dtype, seed=seed, device=device,
                         proj_size=proj_size, options=options)

    @property
    def proj_size(self):
        return self._proj_size


@_documented
class GRU(_RecurrentLayer):
    """Gated recurrent unit layer, computing what ``torch.nn.GRU`` computes.

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        Units per layer and direction: the size of ``h``.
    num_layers : int, default 1
        Stacked layers; each reads the outputs of the one below.
    bias : bool, default True
        Whether the gates have the biases ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default False
        Whether ``x`` and ``out`` are (batch, seq_len, features) rather than
        (seq_len, batch, features).
    dropout : float, default 0.0
    bidirectional : bool, default False
        Also run each layer backwards in time; the outputs of the two
        directions are concatenated.
    dtype : {"float32", "float64"}, default "float32"
    seed : int, numpy Generator or None
    device : {"cpu", "cuda"}, default "cpu"
    <cell options>

    Notes
    -----
    Gate rows are ordered (r, z, n) as in PyTorch; the equations are in
    ``numlstm.cells.gru``.
    """

    _spec = SPECS["gru"]

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype="float32", seed=None, device="cpu"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype=dtype, seed=seed, device=device)


@_documented
class RNN(_RecurrentLayer):
    """Elman RNN layer, computing what ``torch.nn.RNN`` computes.

    Parameters
    ----------
    input_size : int
        Features per time step of the input.
    hidden_size : int
        Units per layer and direction: the size of ``h``.
    num_layers : int, default 1
        Stacked layers; each reads the outputs of the one below.
    <cell options>
    bias : bool, default True
        Whether the layer has the biases ``bias_ih`` and ``bias_hh``.
    batch_first : bool, default False
        Whether ``x`` and ``out`` are (batch, seq_len, features) rather than
        (seq_len, batch, features).
    dropout : float, default 0.0
        Dropout on the outputs of every layer but the last, in training mode.
    bidirectional : bool, default False
        Also run each layer backwards in time; the outputs of the two
        directions are concatenated.
    dtype : {"float32", "float64"}, default "float32"
    seed : int, numpy Generator or None
    device : {"cpu", "cuda"}, default "cpu"

    Notes
    -----
    The equation is in ``numlstm.cells.rnn``.
    """

    _spec = SPECS["rnn"]

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, *, dtype="float32",
                 seed=None, device="cpu"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, dtype=dtype, seed=seed, device=device,
                         options={"nonlinearity": nonlinearity})
