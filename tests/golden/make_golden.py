"""Record golden fixtures from PyTorch: ``python tests/golden/make_golden.py``.

Each configuration is written twice, ``<name>_f64.npz`` and ``<name>_f32.npz``
(the float32 file uses the float64 values rounded to float32).  Keys:

    config                 JSON string (cell, num_layers, bidirectional, ...)
    param/<state_dict>     module weights, torch names
    x (T,B,I), h0, [c0], [lengths (B,)]
    out (T,B,D*Hout) zero-padded past lengths, h_n, [c_n]
    grad_out, grad_h_n, [grad_c_n]         random upstream gradients
        (grad_out is nonzero past the lengths too: it must be ignored there)
    grad/x, grad/h0, [grad/c0], grad/<state_dict>
        gradients of  sum(out*grad_out) + sum(h_n*grad_h_n) [+ sum(c_n*grad_c_n)]

Read them with ``tests/golden_io.py`` (no torch needed).
"""

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

HERE = Path(__file__).resolve().parent
T, B, I, H = 5, 3, 4, 3

CONFIGS = {
    # name: (cell, options, lengths)
    "lstm_basic": ("lstm", {}, None),
    "lstm_2layer_bidir": ("lstm", dict(num_layers=2, bidirectional=True), None),
    "lstm_proj": ("lstm", dict(num_layers=2, bidirectional=True, proj_size=2), None),
    "lstm_lengths": ("lstm", dict(bidirectional=True), [3, 4, 2]),
    "lstm_nobias": ("lstm", dict(num_layers=2, bias=False), None),
    "gru_basic": ("gru", {}, None),
    "gru_2layer_bidir_lengths": ("gru", dict(num_layers=2, bidirectional=True), [2, 5, 4]),
    "rnn_tanh": ("rnn", dict(nonlinearity="tanh"), None),
    "rnn_relu_bidir": ("rnn", dict(nonlinearity="relu", bidirectional=True), None),
}


def build(cell, opts):
    kw = dict(num_layers=opts.get("num_layers", 1),
              bias=opts.get("bias", True),
              bidirectional=opts.get("bidirectional", False))
    if cell == "lstm":
        return torch.nn.LSTM(I, H, proj_size=opts.get("proj_size", 0), **kw)
    if cell == "gru":
        return torch.nn.GRU(I, H, **kw)
    return torch.nn.RNN(I, H, nonlinearity=opts.get("nonlinearity", "tanh"), **kw)


def run(module, cell, data, lengths, dtype):
    """Forward + backward in ``dtype``; returns the arrays to store."""
    module = copy.deepcopy(module).to(dtype)
    t = {k: torch.tensor(v, dtype=dtype, requires_grad=k in ("x", "h0", "c0"))
         for k, v in data.items()}
    hx = (t["h0"], t["c0"]) if cell == "lstm" else t["h0"]
    if lengths is None:
        out, hn = module(t["x"], hx)
    else:
        packed = pack_padded_sequence(t["x"], torch.tensor(lengths), enforce_sorted=False)
        out, hn = module(packed, hx)
        out, _ = pad_packed_sequence(out, total_length=T)
    h_n, c_n = hn if cell == "lstm" else (hn, None)
    loss = (out * t["grad_out"]).sum() + (h_n * t["grad_h_n"]).sum()
    if cell == "lstm":
        loss = loss + (c_n * t["grad_c_n"]).sum()
    loss.backward()

    arrays = {k: v.detach().numpy() for k, v in t.items()}
    arrays["out"] = out.detach().numpy()
    arrays["h_n"] = h_n.detach().numpy()
    if cell == "lstm":
        arrays["c_n"] = c_n.detach().numpy()
    for k in ("x", "h0", "c0"):
        if k in t:
            arrays[f"grad/{k}"] = t[k].grad.numpy()
    for name, p in module.named_parameters():
        arrays[f"param/{name}"] = p.detach().numpy()
        arrays[f"grad/{name}"] = p.grad.numpy()
    if lengths is not None:
        arrays["lengths"] = np.asarray(lengths, dtype=np.int64)
    return arrays


def main():
    for seed, (name, (cell, opts, lengths)) in enumerate(CONFIGS.items()):
        torch.manual_seed(seed)
        module = build(cell, opts).double()
        rng = np.random.default_rng(seed)
        L = opts.get("num_layers", 1)
        D = 2 if opts.get("bidirectional", False) else 1
        Hout = opts.get("proj_size", 0) or H
        data = {"x": rng.standard_normal((T, B, I)),
                "h0": 0.5 * rng.standard_normal((L * D, B, Hout))}
        if cell == "lstm":
            data["c0"] = 0.5 * rng.standard_normal((L * D, B, H))
        data["grad_out"] = rng.standard_normal((T, B, D * Hout))
        data["grad_h_n"] = rng.standard_normal((L * D, B, Hout))
        if cell == "lstm":
            data["grad_c_n"] = rng.standard_normal((L * D, B, H))

        for dtype, tag in ((torch.float64, "f64"), (torch.float32, "f32")):
            config = dict(cell=cell, num_layers=L, bidirectional=D == 2,
                          proj_size=opts.get("proj_size", 0),
                          nonlinearity=opts.get("nonlinearity", "tanh"),
                          bias=opts.get("bias", True),
                          dtype="float64" if tag == "f64" else "float32",
                          input_size=I, hidden_size=H, seq_len=T, batch=B,
                          has_lengths=lengths is not None, seed=seed,
                          torch_version=torch.__version__)
            arrays = run(module, cell, data, lengths, dtype)
            arrays["config"] = np.array(json.dumps(config, sort_keys=True))
            np.savez_compressed(HERE / f"{name}_{tag}.npz", **arrays)
            print(f"wrote {name}_{tag}.npz")


if __name__ == "__main__":
    main()
