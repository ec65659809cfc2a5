"""The cell registry: every recurrent cell family, described once.

Everything that lists cells reads ``SPECS``: the layer classes
(``numlstm.layers``), the estimators' network (``numlstm._net``), the CPU
kernels (``numlstm.cells``, one module per family, named like the spec,
holding its step functions; ``numlstm.cells.driver`` generates the rest),
the GPU kernels (``numlstm.cuda``, a module of the same name with the
CUDA step functions), ``numlstm.cuda._ptx`` and the test tables. A spec
that misses a field, or whose modules lack a step function, fails when
``numlstm`` is imported.

Adding a cell family or a variant is one spec here, its step functions
(CPU and CUDA) and its plain reference in ``tests/naive.py``; see
``docs/developer/contributing.md``.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Real

import numpy as np

__all__ = ["Option", "CellSpec", "SPECS", "get", "load_modules"]


def check_bool(name, value):
    """``value`` as a bool; TypeError naming ``name`` for anything else (an int included)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


@dataclass(frozen=True)
class Option:
    """A constructor option of a cell family's layer (beyond torch's common arguments).

    Parameters
    ----------
    name : str
    default : bool, float or str
    doc : str
        One line for the layer's docstring.
    choices : tuple, optional
        The allowed values of a str option.
    needs_bias : bool, default False
        Whether a value other than the default needs ``bias=True``.
    """

    name: str
    default: object
    doc: str
    choices: tuple = ()
    needs_bias: bool = False

    def check(self, value):
        """``value`` checked against this option's type (that of its default) and choices."""
        kind = type(self.default)
        if kind is bool:
            return check_bool(self.name, value)
        if kind is float:
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real) \
                    or not math.isfinite(value):
                raise ValueError(f"{self.name} must be a finite number, got {value!r}")
            return float(value)
        if value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(repr, self.choices))}, "
                             f"got {value!r}")
        return value


@dataclass(frozen=True)
class CellSpec:
    """One cell family.

    Parameters
    ----------
    name : str
        The family's name: ``cell=`` in the estimators, and the module name
        in ``numlstm.cells`` and ``numlstm.cuda``.
    layer : str
        The layer class in ``numlstm.layers`` (PyTorch's name where PyTorch
        has the cell).
    gates : callable
        ``gates(**options)``: the names of the gate blocks of ``weight_ih``,
        ``weight_hh`` and the biases, in row order; ``H`` rows each.
    states : tuple of str
        The state names, ``("h",)`` or ``("h", "c")``; ``h`` is the output
        (of size ``proj_size`` when projected), the others have ``H`` units.
    options : tuple of Option
        The family's own constructor options.
    kernel_options : callable
        ``kernel_options(**options)``: the keyword arguments of the
        kernels' ``forward`` and ``backward`` (only those that change what
        they compute).
    extra_params : callable
        ``extra_params(H, **options)``: the shapes of the family's weights
        besides ``weight_ih``, ``weight_hh``, the biases and
        ``weight_hr``, per direction, under their unsuffixed names.
    kernel_params : tuple of str
        Optional weights the kernels always get, as ``(0, H)`` arrays when a
        layer has none (``weight_hr``, ``weight_peephole``).
    cache : tuple of str
        The forward cache's layout: ``("x", "gates", "hs")``, then ``"cs"``
        for a second state, then the cell's own arrays.
    gate_states : tuple of str
        The keys of ``gate_states`` (per-step gates and states).
    accumulate : bool
        Whether a step's new state depends on the previous one directly (the
        GRU's ``z * h``), besides through ``W_hh``: then backward adds the
        step's share to the recurrent product's.
    split_grads : bool
        Whether the hidden-side pre-activation gradients differ from the
        input-side ones (the GRU's n rows, scaled by ``r``): then backward
        keeps two arrays.
    init : callable or None
        ``init(params, H, suffixes, **options)`` adjusts freshly drawn host
        weights in place (``forget_bias``).
    cuda_variants : callable
        ``cuda_variants()``: the option sets whose CUDA kernels differ (the
        gate count), for ``numlstm.cuda._ptx``.
    """

    name: str
    layer: str
    gates: Callable
    states: tuple
    options: tuple
    kernel_options: Callable
    extra_params: Callable
    kernel_params: tuple
    cache: tuple
    gate_states: tuple
    accumulate: bool
    split_grads: bool
    init: Callable = None
    cuda_variants: Callable = field(default=lambda: ({},))

    def __post_init__(self):
        problems = []
        if not self.name.isidentifier():
            problems.append(f"name {self.name!r} is not an identifier")
        if self.states not in (("h",), ("h", "c")):
            problems.append(f"states must be ('h',) or ('h', 'c'), got {self.states!r}")
        want = ("x", "gates", "hs") + (("cs",) if len(self.states) == 2 else ())
        if tuple(self.cache[:len(want)]) != want:
            problems.append(f"cache must start with {want}, got {self.cache!r}")
        if not self.gate_states:
            problems.append("gate_states is empty")
        for attr in ("gates", "kernel_options", "extra_params", "cuda_variants"):
            if not callable(getattr(self, attr)):
                problems.append(f"{attr} is not callable")
        names = [o.name for o in self.options]
        if len(set(names)) != len(names):
            problems.append(f"repeated option names {names}")
        if problems:
            raise TypeError(f"cell spec {self.name!r} is incomplete: " + "; ".join(problems))

    def defaults(self):
        """The options' defaults, by name."""
        return {o.name: o.default for o in self.options}

    def check_options(self, options):
        """``options`` checked and completed with defaults; TypeError for an unknown name."""
        known = {o.name: o for o in self.options}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"{self.layer} got unexpected option(s) {unknown}; its options are "
                            f"{sorted(known)}")
        return {name: o.check(options.get(name, o.default)) for name, o in known.items()}

    def check_bias(self, options, bias):
        """ValueError if an option in ``options`` needs the biases and ``bias`` is False."""
        for o in self.options:
            if o.needs_bias and not bias and options[o.name] != o.default:
                raise ValueError(f"{o.name} needs bias=True")

    def n_gates(self, **options):
        """Gate blocks of ``H`` rows for these options."""
        return len(self.gates(**options))


def _lstm_gates(coupled=False, **_):
    return ("input", "cell", "output") if coupled else ("input", "forget", "cell", "output")


def _lstm_extra_params(H, peephole=False, coupled=False, **_):
    return {"weight_peephole": (2 if coupled else 3, H)} if peephole else {}


def _lstm_init(params, H, suffixes, forget_bias=0.0, coupled=False, **_):
    """Add ``forget_bias`` to the forget rows of ``bias_ih`` (subtract it from the input rows if
    coupled, which has the same effect on ``f = 1 - i``)."""
    if not forget_bias:
        return
    for sfx in suffixes:
        if coupled:
            params["bias_ih" + sfx][:H] -= forget_bias
        else:
            params["bias_ih" + sfx][H:2 * H] += forget_bias


def _no_extra_params(H, **_):
    return {}


SPECS = {spec.name: spec for spec in (
    CellSpec(
        name="lstm",
        layer="LSTM",
        gates=_lstm_gates,
        states=("h", "c"),
        options=(
            Option("peephole", False, "Gers & Schmidhuber (2000) peepholes, "
                   "``weight_peephole_l{k}`` (3, H): rows (i, f, o); i and f see c_{t-1}, o "
                   "sees c_t."),
            Option("coupled", False, "Coupled input-forget gate, f = 1 - i (Greff et al. "
                   "2017). The gate rows are (i, g, o); peepholes then have rows (i, o)."),
            Option("forget_bias", 0.0, "Added to the forget-gate rows of ``bias_ih`` at "
                   "initialisation (Jozefowicz et al. 2015 suggest 1.0). For a coupled cell it "
                   "is subtracted from the input-gate rows, which has the same effect on f.",
                   needs_bias=True),
        ),
        kernel_options=lambda peephole=False, coupled=False, **_: {"peephole": peephole,
                                                                    "coupled": coupled},
        extra_params=_lstm_extra_params,
        kernel_params=("weight_hr", "weight_peephole"),
        cache=("x", "gates", "hs", "cs"),
        gate_states=("input_gate", "forget_gate", "cell_candidate", "output_gate", "cell",
                     "hidden"),
        accumulate=False,
        split_grads=False,
        init=_lstm_init,
        cuda_variants=lambda: ({"coupled": False}, {"coupled": True}),
    ),
    CellSpec(
        name="gru",
        layer="GRU",
        gates=lambda **_: ("reset", "update", "new"),
        states=("h",),
        options=(),
        kernel_options=lambda **_: {},
        extra_params=_no_extra_params,
        kernel_params=(),
        cache=("x", "gates", "hs", "hn"),
        gate_states=("reset_gate", "update_gate", "candidate", "hidden"),
        accumulate=True,
        split_grads=True,
    ),
    CellSpec(
        name="rnn",
        layer="RNN",
        gates=lambda **_: ("hidden",),
        states=("h",),
        options=(Option("nonlinearity", "tanh", "The activation.", choices=("tanh", "relu")),),
        kernel_options=lambda nonlinearity="tanh", **_: {"relu": nonlinearity == "relu"},
        extra_params=_no_extra_params,
        kernel_params=(),
        cache=("x", "gates", "hs"),
        gate_states=("hidden",),
        accumulate=False,
        split_grads=False,
    ),
)}


def load_modules(package, required=("forward", "backward", "gate_states")):
    """Import ``package.<name>`` for every registered cell; TypeError if one lacks a function.

    ``numlstm.cells`` and ``numlstm.cuda`` call it when they are imported, so
    that a spec without its kernels fails there, not at its first call.
    """
    import importlib

    for name in SPECS:
        module = importlib.import_module(f"{package}.{name}")
        missing = [fn for fn in required if not callable(getattr(module, fn, None))]
        if missing:
            raise TypeError(f"{package}.{name} lacks {', '.join(missing)} for the registered cell "
                            f"{name!r}")


def get(name):
    """The spec of cell family ``name``; ValueError naming the known ones otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; the cells are {', '.join(SPECS)}") from None
