"""The one CPU time loop: every cell family's kernels, generated from its step functions.

A cell module holds only its pointwise math (see ``numlstm.cells.registry``
for what a cell provides); ``install`` builds the rest into the module's
namespace. The driver owns what every recurrence shares:

* the batch rows, split across numlstm's threads (``run_on_rows``), or,
  for inference on a small batch, the hidden units (``unit_split``, for
  cells that can gather a share of their units' weights);
* the per-step products: each step projects its input rows just before the
  recurrent product, in the same thread, so that the projection is still in
  cache when the step reads it (``numlstm.cells.gemm.matmul_nt``, packed
  weights, register tiles);
* the lengths mask (rows whose sequence has ended keep their state and emit
  zeros: PyTorch's packed-sequence semantics in both directions), the
  reverse order, the state slots stored for backward (``slots``), the
  output columns of each direction and an optional output projection
  (``h = W_hr m``, Sak et al. 2014);
* backward through time, and the weight gradients over every step.

The generated kernels are ``numba.njit`` copies of the templates below
whose globals name the cell's step functions, so Numba inlines the steps
into each cell's own loop and caches each cell's kernels in files of their
own. A kernel's cache name carries a digest of this package's sources:
Numba checks only the template's file for changes, and would otherwise keep
a loop compiled with an old step function.

The step functions' arguments
-----------------------------
``step(a, t, b, r, i, h, c, m, cell)``, forward, for a row ``b`` whose
sequence runs at step ``t``: ``a[t, b]`` holds the input projection of
every gate row and receives what backward needs (the gate activations);
``r[i]`` holds the recurrent product ``W_hh h_{t-1}``; ``h[b]`` is the
previous output state; ``c[b]`` the cell's other state (``(B, 0)`` for a
cell with none), updated in place; ``m[i]`` receives the unit outputs,
``m.shape[1]`` of them, which become ``h[b]`` (through the projection, if
any). ``cell`` is the cell's tuple of weights, flags and caches.

``step_backward(a, dgx, dgh, t, b, d, i, dh, hs, cs, prev, new, dc, cell)``:
``d[i]`` is the gradient reaching ``m[i]``; the step writes the input-side
and hidden-side pre-activation gradients ``dgx[t, b]`` and ``dgh[t, b]``
(one array unless the cell tells them apart), updates ``dc[b]`` from the
new state's gradient to the previous one's, and, for a cell whose new state
depends on the previous one directly (``accumulate``), leaves that share
of the previous state's gradient in ``dh[b]``. ``hs[prev]``/``cs[prev]``
and ``hs[new]``/``cs[new]`` are the states before and after the step.

``gather(cell, n_gates, H, j0, j1)`` (optional) returns the ``cell`` tuple
of units ``j0:j1`` for a unit split, whose steps see ``n = j1 - j0`` units
with their gate rows packed (unit ``j`` of gate ``g`` at ``g * n + j``).
"""

import hashlib
import types
from pathlib import Path

import numpy as np
from numba import njit

from numlstm._config import (JIT_OPTIONS, UNIT_SPLIT_PROJECTION_ROWS, rows_per_thread,
                             run_on_rows)
from numlstm.cells.common import slots, store_rows, unit_split, weight_gradients
from numlstm.cells.gemm import matmul_nt, pack_gate_rows, packed
from numlstm.cells.sync import arrive_and_wait, enter, finish, run_parts

__all__ = ["install"]

# What the templates below call and read: each generated kernel binds its cell's own (``install``).
_step = _step_backward = _gather = None
ACCUMULATE = False
PROJECTS = True  # False for a cell without an output projection: its kernels then fold the branches away


def _forward_rows(x, w_ih, panels_ih, gates, w_hh, panels_hh, w_hr, panels_hr, lengths, reverse,
                  h, c, hs, cs, out, off, b0, b1, cell):
    """Run the recurrence over every step for batch rows ``b0:b1``, in place.

    ``x`` (T, B, I); ``gates`` (T, B, G) receives each step's input
    projection, then what the step stores there (for inference, when
    nothing is stored, a single step ``(1, B, G)`` that every step reuses); ``w_ih`` (G, I), ``w_hh``
    (G, P) and ``w_hr`` (P, H), or (0, H) for no projection, each with its
    panels (``numlstm.cells.gemm.packed``). ``h`` (B, P) and ``c`` (B, C)
    hold the initial state on entry and the final one on exit; ``hs``
    (T + 1, B, P) and ``cs`` (T + 1, B, C) receive every state (see
    ``slots``), or are empty along axis 0 for inference. ``out``
    (T, B, D * P) gets this direction's outputs in columns ``off:off + P``.
    Only rows ``b0:b1`` are touched, so calls on disjoint rows may run
    concurrently.
    """
    T, G = x.shape[0], gates.shape[2]
    H = w_hr.shape[1]
    P = h.shape[1]
    project = PROJECTS and w_hr.shape[0] > 0
    store = hs.shape[0] > 0
    off = max(off, 0)  # provably non-negative, so the loops writing out vectorise
    r = np.empty((b1 - b0, G), gates.dtype)
    m = np.empty((b1 - b0, H), gates.dtype)
    hp = np.empty((b1 - b0, P), gates.dtype) if project else m
    if store:
        store_rows(hs, T if reverse else 0, h, b0, b1)
        store_rows(cs, T if reverse else 0, c, b0, b1)
    for s in range(T):
        t = T - 1 - s if reverse else s
        ta = t if store else 0  # the step of gates that step t uses
        matmul_nt(x[t, b0:b1], w_ih, panels_ih, gates[ta, b0:b1])
        matmul_nt(h[b0:b1], w_hh, panels_hh, r)
        for b in range(b0, b1):
            if t < lengths[b]:
                _step(gates, ta, b, r, b - b0, h, c, m, cell)
        if project:
            matmul_nt(m, w_hr, panels_hr, hp)
        for b in range(b0, b1):
            if t < lengths[b]:
                for j in range(P):
                    h[b, j] = hp[b - b0, j]
                    out[t, b, off + j] = hp[b - b0, j]
            else:
                for j in range(P):
                    out[t, b, off + j] = 0
        if store:
            _, new = slots(t, reverse)
            store_rows(hs, new, h, b0, b1)
            store_rows(cs, new, c, b0, b1)


def _backward_rows(gates, w_hh_t, panels_hh_t, w_hr_t, panels_hr_t, lengths, reverse, hs, cs,
                   grad_out, off, dh, dc, dgx, dgh, dhp, b0, b1, cell):
    """Back-propagate through every step for batch rows ``b0:b1``.

    ``gates``, ``hs`` and ``cs`` are what ``_forward_rows`` stored; ``w_hh_t``
    (P, G) and ``w_hr_t`` (H, P), or (H, 0), are the transposed weights,
    C-contiguous, with their panels. ``dh`` (B, P) and ``dc`` (B, C) hold
    the gradient of the final state on entry and of the initial state on
    exit. ``dgx`` and ``dgh`` (T, B, G) receive the pre-activation
    gradients (zero on finished rows). With a projection, ``dhp`` (T, B, P)
    receives the gradient of each projected output.
    """
    T, _, G = gates.shape
    H = w_hr_t.shape[0]
    P = dh.shape[1]
    project = PROJECTS and w_hr_t.shape[1] > 0
    off = max(off, 0)  # provably non-negative, so the loops reading grad_out vectorise
    dm = np.empty((b1 - b0, H), gates.dtype)
    dh_prev = np.empty((b1 - b0, P), gates.dtype)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev, new = slots(t, reverse)
        for b in range(b0, b1):
            active = t < lengths[b]
            if active:
                for j in range(P):
                    dh[b, j] += grad_out[t, b, off + j]
            if project:
                for j in range(P):
                    dhp[t, b, j] = dh[b, j] if active else 0
        if project:
            matmul_nt(dh[b0:b1], w_hr_t, panels_hr_t, dm)
        d = dm if project else dh  # one call site: the step is inlined once
        for b in range(b0, b1):
            if t >= lengths[b]:
                for k in range(G):
                    dgx[t, b, k] = 0
                    dgh[t, b, k] = 0
            else:
                _step_backward(gates, dgx, dgh, t, b, d, b - b0 if project else b, dh, hs, cs,
                               prev, new, dc, cell)
        matmul_nt(dgh[t, b0:b1], w_hh_t, panels_hh_t, dh_prev)
        for b in range(b0, b1):
            if t < lengths[b]:
                if ACCUMULATE:
                    for j in range(P):
                        dh[b, j] += dh_prev[b - b0, j]
                else:
                    for j in range(P):
                        dh[b, j] = dh_prev[b - b0, j]


def _forward_units(x2d, w_ih, w_hh, n_gates, lengths, reverse, hbuf, c, out, off, j0, j1, cell,
                   flags, part, chunk):
    """Inference over every step for hidden units ``j0:j1`` of every batch row.

    One of the parts of a unit split (see ``forward``): the parts run at
    once, one thread each, and meet at a barrier after every step, when each
    has written its units of the new hidden state.

    The part first gathers its gate rows (units ``j0:j1`` of each of the
    ``n_gates`` gates) of ``w_ih`` and ``w_hh`` (C-contiguous, (G, I) and
    (G, H)), packing them as it gathers them, and of ``cell`` (the cell's
    ``gather``). It projects the input ``chunk`` steps at a time, which
    gives the register tile enough rows when the batch is small. ``x2d`` is
    the input as (T * B, I). ``hbuf`` (2, B, H) is shared: step ``s`` reads
    the hidden state from ``hbuf[s % 2]`` and writes this part's units of
    ``hbuf[(s + 1) % 2]``; ``hbuf[0]`` holds the initial state. ``c``
    (B, C) holds the cell's other initial state on entry; this part writes
    its units of the final one. ``out`` (T, B, D * H) receives columns
    ``off + j0:off + j1``. ``flags`` are the barrier's counters (see
    ``numlstm.cells.sync``) and ``part`` this part's index.
    """
    enter(flags, part)
    B, H = hbuf.shape[1], hbuf.shape[2]
    T = x2d.shape[0] // B
    n = j1 - j0
    G = n_gates * n
    dtype = hbuf.dtype
    wi, panels_ih = pack_gate_rows(w_ih, n_gates, j0, j1, T * B)
    wh, panels_hh = pack_gate_rows(w_hh, n_gates, j0, j1, T * B)
    own = _gather(cell, n_gates, H, j0, j1)
    pre = np.empty((chunk, B, G), dtype)
    pre2d = pre.reshape(chunk * B, G)
    rec = np.empty((B, G), dtype)
    h = np.empty((B, H), dtype)  # this part's copy: a view of hbuf would share its refcount
    cp = np.empty((B, n if c.shape[1] > 0 else 0), dtype)
    m = np.empty((B, n), dtype)
    for b in range(B):
        for j in range(H):
            h[b, j] = hbuf[0, b, j]
        for j in range(cp.shape[1]):
            cp[b, j] = c[b, j0 + j]
    col = max(off, 0) + j0
    lo = 0
    for s in range(T):
        if s % chunk == 0:
            steps = min(chunk, T - s)
            lo = T - s - steps if reverse else s
            matmul_nt(x2d[lo * B:(lo + steps) * B], wi, panels_ih, pre2d[:steps * B])
        t = T - 1 - s if reverse else s
        nxt = (s + 1) % 2
        matmul_nt(h, wh, panels_hh, rec)
        for b in range(B):
            if t < lengths[b]:
                _step(pre, t - lo, b, rec, b, h, cp, m, own)
                for j in range(n):
                    hbuf[nxt, b, j0 + j] = m[b, j]
                    out[t, b, col + j] = m[b, j]
            else:
                for j in range(n):
                    hbuf[nxt, b, j0 + j] = h[b, j0 + j]
                    out[t, b, col + j] = 0
        if not arrive_and_wait(flags, part, s + 1):
            return
        for b in range(B):
            for j in range(H):
                h[b, j] = hbuf[nxt, b, j]
    for b in range(B):
        for j in range(cp.shape[1]):
            c[b, j0 + j] = cp[b, j]
    finish(flags, part, T + 1)


def _sources_digest():
    """A short digest of the sources the generated kernels compile in, for their cache names.

    Numba's cache notices edits to a kernel's own file only; the kernels here
    also freeze in the cells' steps and helpers and ``numlstm/_config.py``'s
    tunables, so any edit to those names new kernels.
    """
    digest = hashlib.sha1()
    here = Path(__file__).parent
    for path in [*sorted(here.glob("*.py")), here.parent / "_config.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


_DIGEST = _sources_digest()


def _specialize(template, module, name, bindings):
    """``template`` compiled with ``bindings`` as extra globals, as ``module``'s ``name``."""
    fn = types.FunctionType(template.__code__, {**template.__globals__, **bindings}, name,
                            template.__defaults__)
    fn.__module__ = module
    fn.__qualname__ = f"{name}_{_DIGEST}"  # the cache file's name
    fn.__doc__ = template.__doc__
    return njit(**JIT_OPTIONS)(fn)


def install(namespace, spec, step, step_backward, forward_cell, backward_cell, cell_grads,
            gather=None):
    """Generate a cell's kernels and its ``forward``/``backward`` into ``namespace``.

    ``namespace`` is the cell module's ``globals()``; ``spec`` its
    ``numlstm.cells.registry.CellSpec``. ``step``, ``step_backward`` and
    ``gather`` are the cell's inlined Numba functions (see the module
    notes); without ``gather`` the cell never takes the unit split. Three
    Python hooks pack the cell's tuple for the kernels:

    * ``forward_cell(p, shape, store, **options)`` returns ``(cell,
      extras)``: the forward tuple for weights ``p``, ``shape`` (T, B, H)
      and the kernel options, and the arrays that the forward cache keeps
      after the driver's (``spec.cache``);
    * ``backward_cell(p, extras, shape, **options)``: the backward tuple;
    * ``cell_grads(p, cell, dhp)``: after backward, the gradients of the
      weights besides ``weight_ih``, ``weight_hh`` and the biases; ``dhp``
      is the gradient of each step's projected output, (T, B, P), or empty
      without a projection.

    The names added to ``namespace`` are ``forward``, ``backward``,
    ``_forward_by_units`` and the kernels ``_<name>_forward``,
    ``_<name>_backward`` and, with ``gather``, ``_<name>_forward_units``.
    The Python calls look the kernels up there at call time, so that a
    patched kernel is the one that runs.
    """
    name = spec.name
    missing = [role for role, fn in (("step", step), ("step_backward", step_backward),
                                     ("forward_cell", forward_cell),
                                     ("backward_cell", backward_cell), ("cell_grads", cell_grads))
               if not callable(fn)]
    if missing:
        raise TypeError(f"cell {name!r} lacks {', '.join(missing)}")
    bindings = {"_step": step, "_step_backward": step_backward, "_gather": gather,
                "ACCUMULATE": spec.accumulate, "PROJECTS": "weight_hr" in spec.kernel_params}
    templates = {"forward": _forward_rows, "backward": _backward_rows}
    if gather is not None:
        templates["forward_units"] = _forward_units
    for role, template in templates.items():
        namespace[f"_{name}_{role}"] = _specialize(template, namespace["__name__"],
                                                   f"{name}_{role}", bindings)
    two_states = len(spec.states) == 2

    def no_state(rows, dtype):
        return np.empty((rows, 0), dtype)

    def projection(p, width, dtype):
        """``weight_hr`` (P, H), or a (0, width) array for a cell without one."""
        return p["weight_hr"] if "weight_hr" in p else np.empty((0, width), dtype)

    def forward(p, x, state, lengths, reverse, out, off, store, **options):
        """Run one direction of one layer.

        Parameters
        ----------
        p : dict
            This direction's weights without the layer suffix: ``weight_ih``,
            ``weight_hh``, ``bias_ih``, ``bias_hh`` (zeros when the layer
            has no bias) and the cell's others, ``spec.kernel_params``
            among them as (0, H) arrays when absent.
        x : ndarray (T, B, I)
        state : tuple of ndarray
            The states (``spec.states``), initial on entry, final on exit.
        lengths : ndarray (B,) int64
        reverse : bool
        out : ndarray (T, B, D * P)
        off : int
            First column of ``out`` for this direction.
        store : bool
            Keep what backward needs.
        **options
            The kernel options (``spec.kernel_options``).

        Returns
        -------
        cache : tuple or None
            Laid out as ``spec.cache`` says.
        """
        h = state[0]
        c = state[1] if two_states else no_state(h.shape[0], x.dtype)
        T, B, _ = x.shape
        w_hr = projection(p, h.shape[1], x.dtype)
        H = w_hr.shape[1]
        cell, extras = forward_cell(p, (T, B, H), store, **options)
        if not store and w_hr.shape[0] == 0 and gather is not None:
            bounds = unit_split(B, H, p["weight_ih"].size + p["weight_hh"].size)
            if bounds and namespace["_forward_by_units"](p, x, h, c, lengths, reverse, out, off,
                                                         bounds, cell, spec.n_gates(**options)):
                return None
        uses = rows_per_thread(B) * T
        w_ih, panels_ih = packed(p["weight_ih"], uses)
        w_hh, panels_hh = packed(p["weight_hh"], uses)
        w_hr, panels_hr = packed(w_hr, uses)
        gates = np.empty((T if store else 1, B, w_hh.shape[0]), x.dtype)
        depth = T + 1 if store else 0
        hs = np.empty((depth,) + h.shape, x.dtype)
        cs = np.empty((depth,) + c.shape, x.dtype)
        kernel = namespace[f"_{name}_forward"]
        run_on_rows(lambda b0, b1: kernel(x, w_ih, panels_ih, gates, w_hh, panels_hh, w_hr,
                                          panels_hr, lengths, reverse, h, c, hs, cs, out, off,
                                          b0, b1, cell), B)
        if not store:
            return None
        return (x, gates, hs) + ((cs,) if two_states else ()) + extras

    def forward_by_units(p, x, h, c, lengths, reverse, out, off, bounds, cell, n_gates):
        """Inference with each step's hidden units split across threads (see ``unit_split``).

        ``bounds`` are the unit ranges, one per thread. Returns False, having
        done nothing, when the threads for a unit split are busy with another
        call.
        """
        T, B, I = x.shape
        hbuf = np.empty((2,) + h.shape, h.dtype)
        hbuf[0] = h
        chunk = -(-UNIT_SPLIT_PROJECTION_ROWS // B)
        x2d = x.reshape(T * B, I)
        w_ih, w_hh = np.ascontiguousarray(p["weight_ih"]), np.ascontiguousarray(p["weight_hh"])

        def part(k, flags):
            namespace[f"_{name}_forward_units"](x2d, w_ih, w_hh, n_gates, lengths, reverse, hbuf,
                                                c, out, off, bounds[k], bounds[k + 1], cell,
                                                flags, k, chunk)

        if not run_parts(part, len(bounds) - 1):
            return False
        h[...] = hbuf[T % 2]
        return True

    def backward(p, cache, lengths, reverse, grad_out, off, dstate, need_dx=True, **options):
        """Gradients of one direction of one layer.

        ``dstate`` holds the states' gradients: of the final states on
        entry, of the initial ones on exit. Returns ``(dx, grads)``, where
        ``grads`` has the keys of ``p``; with ``need_dx=False``, ``dx`` is
        None and its GEMM is skipped.
        """
        x, gates, hs = cache[:3]
        T, B, G = gates.shape
        cs = cache[3] if two_states else np.empty((hs.shape[0], B, 0), x.dtype)
        extras = cache[3 + two_states:]
        dh = dstate[0]
        dc = dstate[1] if two_states else no_state(B, x.dtype)
        P = hs.shape[2]
        w_hr = projection(p, P, x.dtype)
        H = w_hr.shape[1]
        cell = backward_cell(p, extras, (T, B, H), **options)
        dgx = np.empty_like(gates)
        dgh = np.empty_like(gates) if spec.split_grads else dgx
        dhp = np.empty((T, B, P) if w_hr.shape[0] else (0, B, P), x.dtype)
        uses = rows_per_thread(B) * T
        w_hh_t, panels_hh_t = packed(p["weight_hh"].T, uses)
        w_hr_t, panels_hr_t = packed(w_hr.T, uses)
        kernel = namespace[f"_{name}_backward"]
        run_on_rows(lambda b0, b1: kernel(gates, w_hh_t, panels_hh_t, w_hr_t, panels_hr_t,
                                          lengths, reverse, hs, cs, grad_out, off, dh, dc, dgx,
                                          dgh, dhp, b0, b1, cell), B)
        dx, grads = weight_gradients(x, hs, reverse, dgx, dgh, p["weight_ih"], need_dx)
        grads.update(cell_grads(p, cell, dhp))
        return dx, grads

    namespace["forward"] = forward
    namespace["backward"] = backward
    namespace["_forward_by_units"] = forward_by_units
