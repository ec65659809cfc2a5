"""Load the PyTorch golden fixtures in ``tests/golden/*.npz`` (no torch needed).

    golden_names()        -> sorted fixture names, e.g. "lstm_basic_f64"
    load_golden(name)     -> (config dict, dict of arrays)
    golden_params(arrays) -> {state_dict name: array}, the "param/" entries
    golden_hx(config, arrays) -> hx in naive.forward's form (h0 or (h0, c0))

Array keys: x, h0, [c0], [lengths], out, h_n, [c_n], grad_out, grad_h_n,
[grad_c_n], param/<name>, grad/x, grad/h0, [grad/c0], grad/<name>; the
gradients are of sum(out*grad_out) + sum(h_n*grad_h_n) [+ sum(c_n*grad_c_n)].
Config keys: cell, num_layers, bidirectional, proj_size, nonlinearity, bias,
dtype, input_size, hidden_size, seq_len, batch, has_lengths, seed,
torch_version.  Regenerate with ``python tests/golden/make_golden.py``.
"""

import json
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def golden_names():
    """Sorted names of all fixtures (file stems of tests/golden/*.npz)."""
    return sorted(p.stem for p in GOLDEN_DIR.glob("*.npz"))


def load_golden(name):
    """Return (config, arrays) for fixture ``name``; loads without pickle."""
    with np.load(GOLDEN_DIR / f"{name}.npz", allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    config = json.loads(str(arrays.pop("config")))
    return config, arrays


def golden_params(arrays):
    """The module weights, keyed by torch's state_dict names."""
    return {k[len("param/"):]: v for k, v in arrays.items()
            if k.startswith("param/")}


def golden_hx(config, arrays):
    """Initial state as naive.forward takes it."""
    if config["cell"] == "lstm":
        return arrays["h0"], arrays["c0"]
    return arrays["h0"]
