"""Plain NumPy reference for the recurrent cells: the test oracle.

Written to be read, not to be fast: one time step at a time, whole-batch vector
math inside a step, forward only.  It follows ``torch.nn.LSTM``/``GRU``/``RNN``
exactly (names, shapes, gate order, bidirectional layout, packed-sequence
semantics) and adds the two LSTM variants of DESIGN.md (peephole, coupled).

Conventions
-----------
* ``x`` is time-major ``(T, B, I)``; an unbatched ``(T, I)`` input is accepted
  too (then ``hx`` entries are ``(L*D, H)`` and results drop the batch axis).
* ``params`` is a dict with torch's ``state_dict`` names:
  ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
  ``weight_hr_l{k}`` (LSTM with ``proj_size``), ``weight_peephole_l{k}``
  (peephole LSTM), each with a ``_reverse`` suffix for the reverse direction.
  ``bias=False`` means the bias keys are absent.
* Every computation runs in float64; results are cast back to the dtype of
  ``x`` (float32 in -> float32 out).

Equations (``sigma`` is the logistic sigmoid, ``*`` elementwise)
-----------------------------------------------------------------
LSTM, rows of the gate blocks (i, f, g, o)::

    i = sigma(W_ii x + b_ii + W_hi h + b_hi  [+ p_i * c])
    f = sigma(W_if x + b_if + W_hf h + b_hf  [+ p_f * c])     coupled: f = 1 - i
    g = tanh (W_ig x + b_ig + W_hg h + b_hg)
    c' = f * c + i * g
    o = sigma(W_io x + b_io + W_ho h + b_ho  [+ p_o * c'])
    h' = o * tanh(c')                         with proj_size: h' = W_hr (o * tanh(c'))

  Peephole weights have shape (3, H), rows (i, f, o); i and f see c_{t-1}, o
  sees c_t (Gers & Schmidhuber 2000).  A coupled (CIFG) cell has 3H gate rows
  in order (i, g, o) and, with peepholes, a (2, H) peephole with rows (i, o).
  With proj_size P > 0: h has size P, c has size H, weight_hh is (4H, P) and
  weight_hr is (P, H).

GRU, rows (r, z, n)::

    r = sigma(W_ir x + b_ir + W_hr h + b_hr)
    z = sigma(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh (W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

RNN::

    h' = act(W_ih x + b_ih + W_hh h + b_hh),   act = tanh or relu

Lengths (torch packed sequences): outputs past a sequence's length are 0,
``h_n``/``c_n`` come from each sequence's last valid step, and the reverse
direction starts at each sequence's own end (step ``L_b - 1``) from the
initial state.
"""

import numpy as np

__all__ = [
    "sigmoid",
    "tanh",
    "relu",
    "lstm_step",
    "gru_step",
    "rnn_step",
    "forward",
    "init_params",
    "param_names",
    "num_gates",
]


# --------------------------------------------------------------------------
# activations
# --------------------------------------------------------------------------
def sigmoid(x):
    """Logistic sigmoid, written via tanh so it never overflows."""
    return 0.5 * np.tanh(0.5 * x) + 0.5


def tanh(x):
    """Hyperbolic tangent (NumPy's is already overflow-free)."""
    return np.tanh(x)


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0.0)


def _affine(x, w, b):
    """x @ w.T (+ b): the batched version of W x + b."""
    y = x @ w.T
    if b is not None:
        y = y + b
    return y


# --------------------------------------------------------------------------
# single steps: x is (B, I), h is (B, H) (or (B, P) with a projection)
# --------------------------------------------------------------------------
def lstm_step(x, h, c, w_ih, w_hh, b_ih=None, b_hh=None, *, w_hr=None,
              w_peephole=None, coupled=False):
    """One LSTM step for a whole batch.

    Parameters
    ----------
    x : (B, I) input at this step.
    h : (B, P) previous hidden state (P = H without projection).
    c : (B, H) previous cell state.
    w_ih : (G*H, I), w_hh : (G*H, P), b_ih, b_hh : (G*H,) or None,
        with G = 4 rows (i, f, g, o), or G = 3 rows (i, g, o) if ``coupled``.
    w_hr : (P, H) projection, or None.
    w_peephole : (3, H) rows (i, f, o), or (2, H) rows (i, o) if ``coupled``;
        None for no peepholes.
    coupled : CIFG cell, f = 1 - i.

    Returns
    -------
    h_new : (B, P), c_new : (B, H)
    """
    z = _affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh)
    H = c.shape[-1]
    if coupled:
        z_i, z_g, z_o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H]
        z_f = None
    else:
        z_i, z_f, z_g, z_o = (z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H],
                              z[:, 3 * H:4 * H])

    if w_peephole is None:
        p_i = p_f = p_o = 0.0
    elif coupled:
        p_i, p_o = w_peephole[0], w_peephole[1]
        p_f = 0.0
    else:
        p_i, p_f, p_o = w_peephole[0], w_peephole[1], w_peephole[2]

    i = sigmoid(z_i + p_i * c)              # input gate sees c_{t-1}
    if coupled:
        f = 1.0 - i
    else:
        f = sigmoid(z_f + p_f * c)          # forget gate sees c_{t-1}
    g = tanh(z_g)
    c_new = f * c + i * g
    o = sigmoid(z_o + p_o * c_new)          # output gate sees c_t
    h_new = o * tanh(c_new)
    if w_hr is not None:
        h_new = h_new @ w_hr.T              # projection: (B, H) -> (B, P)
    return h_new, c_new


def gru_step(x, h, w_ih, w_hh, b_ih=None, b_hh=None):
    """One GRU step for a whole batch (torch's equations, rows r, z, n).

    x : (B, I), h : (B, H), w_ih : (3H, I), w_hh : (3H, H),
    b_ih, b_hh : (3H,) or None.  Returns h_new : (B, H).
    """
    H = h.shape[-1]
    gi = _affine(x, w_ih, b_ih)             # W_i* x + b_i*
    gh = _affine(h, w_hh, b_hh)             # W_h* h + b_h*
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])   # r multiplies (W_hn h + b_hn)
    return (1.0 - z) * n + z * h


def rnn_step(x, h, w_ih, w_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """One Elman RNN step: act(W_ih x + b_ih + W_hh h + b_hh).

    x : (B, I), h : (B, H), w_ih : (H, I), w_hh : (H, H), biases (H,) or None,
    nonlinearity "tanh" or "relu".  Returns h_new : (B, H).
    """
    if nonlinearity == "tanh":
        act = tanh
    elif nonlinearity == "relu":
        act = relu
    else:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}")
    return act(_affine(x, w_ih, b_ih) + _affine(h, w_hh, b_hh))


# --------------------------------------------------------------------------
# names and shapes
# --------------------------------------------------------------------------
def num_gates(cell, coupled=False):
    """Number of gate blocks G (weight_ih has G*H rows)."""
    if cell == "lstm":
        return 3 if coupled else 4
    if cell == "gru":
        return 3
    if cell == "rnn":
        return 1
    raise ValueError(f"unknown cell {cell!r}")


def param_names(cell, *, num_layers=1, bidirectional=False, proj_size=0,
                peephole=False, bias=True):
    """The state_dict names, in torch's order (peephole last per direction)."""
    names = []
    for layer in range(num_layers):
        for suffix in ("", "_reverse")[: 2 if bidirectional else 1]:
            s = f"_l{layer}{suffix}"
            names += [f"weight_ih{s}", f"weight_hh{s}"]
            if bias:
                names += [f"bias_ih{s}", f"bias_hh{s}"]
            if cell == "lstm" and proj_size > 0:
                names.append(f"weight_hr{s}")
            if cell == "lstm" and peephole:
                names.append(f"weight_peephole{s}")
    return names


def init_params(cell, input_size, hidden_size, *, num_layers=1,
                bidirectional=False, proj_size=0, peephole=False,
                coupled=False, bias=True, dtype=np.float64, rng=None):
    """Random parameters U(-1/sqrt(H), 1/sqrt(H)) with torch's names/shapes.

    ``rng`` is a ``np.random.Generator`` (None: a fresh default one).
    Returns a dict name -> ndarray of ``dtype``.
    """
    if rng is None:
        rng = np.random.default_rng()
    if cell != "lstm" and (proj_size or peephole or coupled):
        raise ValueError("proj_size/peephole/coupled are LSTM-only")
    H = hidden_size
    G = num_gates(cell, coupled)
    P = proj_size if proj_size > 0 else H
    D = 2 if bidirectional else 1
    k = 1.0 / np.sqrt(H)

    def u(*shape):
        return rng.uniform(-k, k, size=shape).astype(dtype)

    params = {}
    for layer in range(num_layers):
        in_size = input_size if layer == 0 else D * P
        for suffix in ("", "_reverse")[:D]:
            s = f"_l{layer}{suffix}"
            params[f"weight_ih{s}"] = u(G * H, in_size)
            params[f"weight_hh{s}"] = u(G * H, P)
            if bias:
                params[f"bias_ih{s}"] = u(G * H)
                params[f"bias_hh{s}"] = u(G * H)
            if proj_size > 0:
                params[f"weight_hr{s}"] = u(P, H)
            if peephole:
                params[f"weight_peephole{s}"] = u(2 if coupled else 3, H)
    return params


# --------------------------------------------------------------------------
# full forward
# --------------------------------------------------------------------------
def _run_direction(cell, x, p, h, c, lengths, reverse, nonlinearity, coupled):
    """Run one direction of one layer over time.

    x : (T, B, I) layer input; p : this direction's weights (short names);
    h, c : initial states (c is None for GRU/RNN); lengths : (B,) ints.
    Returns out (T, B, Hout) with zeros past each length, and final h, c.
    """
    T, B = x.shape[0], x.shape[1]
    out = np.zeros((T, B, h.shape[-1]))
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        valid = (t < lengths)[:, None]      # (B, 1): is step t inside seq b?
        if cell == "lstm":
            h_new, c_new = lstm_step(x[t], h, c, p["w_ih"], p["w_hh"],
                                     p["b_ih"], p["b_hh"], w_hr=p["w_hr"],
                                     w_peephole=p["w_peephole"],
                                     coupled=coupled)
            c = np.where(valid, c_new, c)
        elif cell == "gru":
            h_new = gru_step(x[t], h, p["w_ih"], p["w_hh"], p["b_ih"],
                             p["b_hh"])
        else:
            h_new = rnn_step(x[t], h, p["w_ih"], p["w_hh"], p["b_ih"],
                             p["b_hh"], nonlinearity)
        # Padded steps leave the state untouched and output zero.  In the
        # reverse direction this means each sequence starts at its own end.
        h = np.where(valid, h_new, h)
        out[t] = np.where(valid, h_new, 0.0)
    return out, h, c


def _get(params, name):
    v = params.get(name)
    return None if v is None else np.asarray(v, dtype=np.float64)


def forward(cell, x, params, *, num_layers=1, bidirectional=False, hx=None,
            lengths=None, nonlinearity="tanh", proj_size=0, peephole=False,
            coupled=False):
    """Multi-layer, optionally bidirectional forward pass.

    Parameters
    ----------
    cell : "lstm", "gru" or "rnn".
    x : (T, B, I) time-major input (or (T, I) unbatched).
    params : dict with torch's state_dict names (see module docstring).
    num_layers, bidirectional : as torch.  D = 2 if bidirectional else 1.
    hx : None (zeros), h0 of shape (L*D, B, Hout) for GRU/RNN, or a tuple
        (h0, c0) for LSTM with c0 of shape (L*D, B, H).  Hout = proj_size or H.
    lengths : None (all T) or (B,) ints in [0, T]: packed-sequence semantics.
    nonlinearity : RNN activation, "tanh" or "relu".
    proj_size, peephole, coupled : LSTM variants.

    Returns
    -------
    gru/rnn: ``(out, h_n)``; lstm: ``(out, (h_n, c_n))``, where out is
    (T, B, D*Hout) (fwd features first, then reverse) and h_n, c_n are
    (L*D, B, .) ordered layer-major: l0 fwd, l0 rev, l1 fwd, ...
    All results have the dtype of x (float64 for non-float input).
    """
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    if cell not in ("lstm", "gru", "rnn"):
        raise ValueError(f"unknown cell {cell!r}")
    if cell != "lstm" and (proj_size or peephole or coupled):
        raise ValueError("proj_size/peephole/coupled are LSTM-only")

    unbatched = x.ndim == 2
    if unbatched:
        x = x[:, None, :]
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I) or (T, I), got {x.shape}")
    x = x.astype(np.float64)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = np.shape(params["weight_hh_l0"])[0] // num_gates(cell, coupled)
    Hout = proj_size if (cell == "lstm" and proj_size > 0) else H

    if lengths is None:
        lengths = np.full(B, T, dtype=np.int64)
    else:
        lengths = np.asarray(lengths).astype(np.int64).reshape(-1)
        if lengths.shape != (B,) or np.any(lengths < 0) or np.any(lengths > T):
            raise ValueError("lengths must be (B,) ints in [0, T]")

    # initial states
    h0 = c0 = None
    if hx is not None:
        if cell == "lstm":
            h0, c0 = hx
        else:
            h0 = hx
    h0 = (np.zeros((num_layers * D, B, Hout)) if h0 is None
          else np.asarray(h0, dtype=np.float64))
    if cell == "lstm":
        c0 = (np.zeros((num_layers * D, B, H)) if c0 is None
              else np.asarray(c0, dtype=np.float64))
    if unbatched and hx is not None:
        h0 = h0[:, None, :]
        if cell == "lstm":
            c0 = c0[:, None, :]

    h_n = np.zeros((num_layers * D, B, Hout))
    c_n = np.zeros((num_layers * D, B, H)) if cell == "lstm" else None

    layer_input = x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d == 1 else "")
            p = {
                "w_ih": _get(params, f"weight_ih{s}"),
                "w_hh": _get(params, f"weight_hh{s}"),
                "b_ih": _get(params, f"bias_ih{s}"),
                "b_hh": _get(params, f"bias_hh{s}"),
                "w_hr": _get(params, f"weight_hr{s}") if proj_size else None,
                "w_peephole": (_get(params, f"weight_peephole{s}")
                               if peephole else None),
            }
            k = layer * D + d
            out_d, h_last, c_last = _run_direction(
                cell, layer_input, p, h0[k],
                None if c0 is None else c0[k],
                lengths, reverse=(d == 1), nonlinearity=nonlinearity,
                coupled=coupled)
            outs.append(out_d)
            h_n[k] = h_last
            if cell == "lstm":
                c_n[k] = c_last
        layer_input = np.concatenate(outs, axis=2)   # fwd then reverse

    out = layer_input
    if unbatched:
        out, h_n = out[:, 0], h_n[:, 0]
        c_n = None if c_n is None else c_n[:, 0]
    out = out.astype(out_dtype)
    h_n = h_n.astype(out_dtype)
    if cell == "lstm":
        return out, (h_n, c_n.astype(out_dtype))
    return out, h_n
