"""Layer configurations shared by the layer tests, and a way to build each one."""


import naive
import numlstm
from numlstm.cells.registry import SPECS

CLASSES = {name: getattr(numlstm, spec.layer) for name, spec in SPECS.items()}

# (cell, options) pairs; every option combination the layers promise, and every registered cell.
CASES = [
    ("lstm", {}),
    ("lstm", {"num_layers": 2, "bidirectional": True}),
    ("lstm", {"proj_size": 2}),
    ("lstm", {"proj_size": 2, "num_layers": 2, "bidirectional": True}),
    ("lstm", {"peephole": True}),
    ("lstm", {"coupled": True}),
    ("lstm", {"peephole": True, "coupled": True, "bidirectional": True}),
    ("lstm", {"peephole": True, "coupled": True, "proj_size": 2, "num_layers": 2}),
    ("lstm", {"bias": False, "peephole": True}),
    ("gru", {}),
    ("gru", {"num_layers": 2, "bidirectional": True}),
    ("gru", {"bias": False}),
    ("rnn", {}),
    ("rnn", {"nonlinearity": "relu", "bidirectional": True, "num_layers": 2}),
]


def case_id(case):
    cell, options = case
    return cell + "".join(f"-{k}={v}" for k, v in options.items())


def build(cell, options, input_size, hidden_size, dtype, seed=0):
    """A numlstm layer and a matching naive reference call."""
    layer = CLASSES[cell](input_size, hidden_size, dtype=dtype, seed=seed, **options)

    def reference(x, hx=None, lengths=None):
        naive_options = {k: v for k, v in options.items() if k not in ("bias",)}
        return naive.forward(cell, x, layer.state_dict(), hx=hx, lengths=lengths,
                             **naive_options)

    return layer, reference


def random_state(layer, batch, rng):
    """A random initial state of the right shapes, None-free."""
    LD = layer.num_layers * layer.num_directions
    h0 = rng.standard_normal((LD, batch, layer.output_size)).astype(layer.dtype)
    if len(layer._spec.states) == 2:
        c0 = rng.standard_normal((LD, batch, layer.hidden_size)).astype(layer.dtype)
        return h0, c0
    return h0


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)
