"""Regenerate every figure of the documentation site from numlstm computations.

Run from anywhere::

    python docs/figures/make_figures.py            # all figures
    python docs/figures/make_figures.py gates      # only the named ones

Every number drawn here is computed by numlstm itself (layers, their
``backward`` and ``gate_states``, or the estimators' ``fit`` and
``inspect``) with fixed seeds, so the figures are the same on every run on
one machine. Needs matplotlib (``pip install "numlstm[plot]"``). With a warm
Numba cache the whole script takes about 20 s on two cores.
"""

import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import numlstm  # noqa: E402
from numlstm.data import sliding_windows  # noqa: E402
from numlstm.datasets import load_sunspots  # noqa: E402

HERE = Path(__file__).resolve().parent
DPI = 100
plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9, "axes.titlesize": 10,
                     "axes.spines.top": False, "axes.spines.right": False})


def save(fig, name):
    path = HERE / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", pil_kwargs={"optimize": True})
    plt.close(fig)
    print(f"  wrote {path.relative_to(HERE.parent.parent)} ({path.stat().st_size // 1024} KB)")


# ---- the vanishing gradient ------------------------------------------------------------------

def gradient_by_distance(make, T=100, B=32, I=4, seeds=5):
    """Mean over seeds and batch rows of |d out_T / d x_t|, indexed by distance T - t."""
    curves = []
    for seed in range(seeds):
        layer = make(seed)
        x = np.random.default_rng(100 + seed).normal(size=(T, B, I))
        out, _ = layer(x)
        grad_out = np.zeros_like(out)
        grad_out[-1] = 1.0                      # d(sum of the last output) / d out
        grad_x, _ = layer.backward(grad_out)
        curves.append(np.linalg.norm(grad_x, axis=2).mean(axis=1))
    return np.exp(np.mean(np.log(curves), axis=0))[::-1]   # geometric mean over seeds


def vanishing_gradient():
    I, H = 4, 32
    cases = [
        ("RNN (tanh)", "C3", lambda s: numlstm.RNN(I, H, seed=s, dtype="float64")),
        ("LSTM, forget_bias=0", "C0", lambda s: numlstm.LSTM(I, H, seed=s, dtype="float64")),
        ("LSTM, forget_bias=1", "C2",
         lambda s: numlstm.LSTM(I, H, seed=s, dtype="float64", forget_bias=1.0)),
        ("LSTM, forget_bias=3", "C4",
         lambda s: numlstm.LSTM(I, H, seed=s, dtype="float64", forget_bias=3.0)),
    ]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, color, make in cases:
        curve = gradient_by_distance(make)
        ax.semilogy(np.arange(len(curve)), curve, color=color, label=label)
    ax.set(xlabel="distance T - t (steps back from the last output)",
           ylabel=r"$\|\partial\, \Sigma h_T / \partial x_t\|$",
           title="Gradient of the last output with respect to earlier inputs, at initialisation")
    ax.set_ylim(1e-22, 10)
    ax.legend(frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    save(fig, "vanishing_gradient")


# ---- the conveyor belt: a hand-set one-unit LSTM -------------------------------------------

def conveyor_belt():
    """A one-unit LSTM whose gates are set by hand: it stores the value seen when a flag is up."""
    lstm = numlstm.LSTM(2, 1, dtype="float64")
    k = 10.0   # steep gates
    # input features: (value, write flag); gate rows i, f, g, o
    weight_ih = np.array([[0.0, 2 * k],     # i: open when the flag is up
                          [0.0, -2 * k],    # f: closed when the flag is up
                          [1.0, 0.0],       # g: the value itself
                          [0.0, 0.0]])      # o: always open (bias below)
    bias_ih = np.array([-k, k, 0.0, k])
    lstm.load_state_dict({"weight_ih_l0": weight_ih, "weight_hh_l0": np.zeros((4, 1)),
                          "bias_ih_l0": bias_ih, "bias_hh_l0": np.zeros(4)})
    T = 60
    rng = np.random.default_rng(3)
    value = rng.uniform(-1, 1, T)
    flag = np.zeros(T)
    flag[[5, 24, 41]] = 1.0
    x = np.stack([value, flag], axis=1)          # unbatched (T, 2)
    states = lstm.gate_states(x)
    s = {key: v[0, 0, :, 0, 0] for key, v in states.items()}
    t = np.arange(T)
    fig, axes = plt.subplots(3, 1, figsize=(6.4, 4.6), sharex=True, layout="constrained")
    axes[0].plot(t, value, ".-", color="0.5", lw=0.8, label="input value $x_t$")
    axes[0].vlines(t[flag == 1], -1.1, 1.1, color="C1", lw=2, label="write flag up")
    axes[0].set(ylim=(-1.15, 1.15), title="Input: a new value every step, a flag now and then")
    axes[1].step(t, s["forget_gate"], where="mid", color="C0", lw=2.5, alpha=0.6,
                 label="forget gate $f_t$")
    axes[1].step(t, s["input_gate"], where="mid", color="C1", lw=1.2, label="input gate $i_t$")
    axes[1].set(ylim=(-0.05, 1.05), title="Gates (computed by numlstm.LSTM.gate_states)")
    axes[2].step(t, s["cell"], where="mid", color="C2", lw=2, label="cell state $c_t$")
    axes[2].plot(t, np.tanh(value), ":", color="0.5", lw=0.8, label=r"candidate $g_t=\tanh(x_t)$")
    axes[2].set(title="Cell state: written when the input gate opens, carried unchanged otherwise",
                xlabel="time step")
    for ax in axes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    save(fig, "conveyor_belt")


# ---- variants on a real series ---------------------------------------------------------------

def sunspot_windows(window=20):
    spots = load_sunspots()
    X, y = sliding_windows(spots.values, window=window)
    years = spots.time.values[window:]
    train = years <= 1950
    return X[train], y[train], X[~train], y[~train]


def variants():
    X_train, y_train, X_test, y_test = sunspot_windows()
    cases = [("RNN", dict(cell="rnn")), ("GRU", dict(cell="gru")), ("LSTM", dict(cell="lstm")),
             ("LSTM + peephole", dict(cell="lstm", peephole=True)),
             ("LSTM, coupled (CIFG)", dict(cell="lstm", coupled=True))]
    seeds = (0, 1, 2)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(7.6, 3.2), layout="constrained",
                                 gridspec_kw={"width_ratios": (1.6, 1)})
    rmse = {}
    for n, (label, params) in enumerate(cases):
        curves, errors = [], []
        for seed in seeds:
            est = numlstm.LSTMRegressor(hidden_size=16, max_iter=60, n_iter_no_change=60,
                                        random_state=seed, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X_train, y_train)
            curves.append(est.loss_curve_)
            errors.append(np.sqrt(np.mean((est.predict(X_test) - y_test) ** 2)))
        ax.plot(np.arange(1, 61), np.mean(curves, axis=0), color=f"C{n}", label=label)
        rmse[label] = errors
    ax.set(yscale="log", xlabel="epoch", ylabel="training loss (standardized MSE)",
           title="Sunspots, 20-year windows, hidden 16 (mean of 3 seeds)")
    ax.legend(frameon=False)
    labels = list(rmse)
    ypos = np.arange(len(labels))[::-1]
    for y0, label in zip(ypos, labels):
        bx.plot(rmse[label], [y0] * len(seeds), "o", color="0.6", ms=3)
        bx.plot([np.mean(rmse[label])], [y0], "|", color="k", ms=14, mew=2)
    persistence = np.sqrt(np.mean((X_test[:, -1] - y_test) ** 2))
    bx.axvline(persistence, color="C3", ls="--", lw=1)
    bx.text(persistence, len(labels) - 0.5, " persistence", color="C3", va="bottom", fontsize=8)
    bx.set(yticks=ypos, yticklabels=labels, xlabel="test RMSE, 1951-2008 (sunspot number)",
           title="One year ahead", ylim=(-0.6, len(labels) - 0.1))
    save(fig, "variants")


# ---- stacking and bidirectional layers: who sees which input -------------------------------

def receptive_field():
    T, I, H, t_out = 41, 3, 16, 20
    x = np.random.default_rng(0).normal(size=(T, 8, I))
    cases = [("1 layer", dict()), ("1 layer, bidirectional", dict(bidirectional=True)),
             ("2 layers, bidirectional", dict(num_layers=2, bidirectional=True))]
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for n, (label, params) in enumerate(cases):
        curves = []
        for seed in range(4):
            lstm = numlstm.LSTM(I, H, seed=seed, dtype="float64", forget_bias=1.0, **params)
            out, _ = lstm(x)
            grad_out = np.zeros_like(out)
            grad_out[t_out] = 1.0
            grad_x, _ = lstm.backward(grad_out)
            curves.append(np.linalg.norm(grad_x, axis=2).mean(axis=1))
        curves = np.array(curves)
        reached = (curves > 0).all(axis=0)      # a forward layer never sees the future: exactly 0
        mean = np.full(T, np.nan)
        mean[reached] = np.exp(np.mean(np.log(curves[:, reached]), axis=0))
        style = dict(lw=4, alpha=0.45, zorder=3) if n == 0 else dict(ms=2.5, marker="o")
        ax.semilogy(np.arange(T), mean, color=f"C{n}", label=label, **style)
    ax.text(t_out + 1, 2e-4, "one forward layer: exactly 0 after step 20", color="C0", fontsize=8)
    ax.axvline(t_out, color="0.5", ls=":", lw=1)
    ax.text(t_out - 0.5, 2e-4, f"output step {t_out}", color="0.4", fontsize=8, ha="right")
    ax.set(xlabel="input step t", ylabel=r"$\|\partial\, \Sigma\,\mathrm{out}_{20} / \partial x_t\|$",
           title="Which inputs reach the output at step 20 (LSTM, hidden 16, at initialisation)",
           ylim=(1e-4, 3))
    ax.legend(frameon=False, loc="upper right")
    save(fig, "receptive_field")


# ---- the forget-gate bias --------------------------------------------------------------------

def memory_task(n=384, T=40, seed=0):
    """Sequences of noise whose target is the value at the first step."""
    X = np.random.default_rng(seed).normal(size=(n, T, 1))
    return X, X[:, 0, 0].copy()


def forget_bias():
    fig, axd = plt.subplot_mosaic([["hist", "hist"], ["gate", "loss"]], figsize=(7.6, 5.6),
                                  layout="constrained")
    ax, bx, cx = axd["hist"], axd["gate"], axd["loss"]
    x = np.random.default_rng(0).normal(size=(40, 64, 1))
    bins = np.linspace(0, 1, 41)
    for n, bias in enumerate((0.0, 1.0)):
        f = numlstm.LSTM(1, 32, seed=0, forget_bias=bias).gate_states(x)["forget_gate"]
        ax.hist(f.ravel(), bins=bins, color=f"C{n}", alpha=0.6, density=True,
                label=f"forget_bias={bias:g}, mean {np.nanmean(f):.2f}")
    ax.set(xlabel="forget gate $f_t$", ylabel="density", title="At initialisation (hidden 32)")
    ax.legend(frameon=False, loc="upper left")
    X, y = memory_task()
    epochs = 40
    for n, bias in enumerate((0.0, 1.0)):
        for seed in range(3):
            est = numlstm.LSTMRegressor(hidden_size=8, forget_bias=bias, random_state=seed)
            mean_f, loss = [], []
            for _ in range(epochs):
                est.partial_fit(X, y)          # one epoch per call
                mean_f.append(float(est.inspect(X[:64])["forget_gate"].mean()))
            loss = est.loss_curve_
            label = f"forget_bias={bias:g}" if seed == 0 else None
            bx.plot(np.arange(1, epochs + 1), mean_f, color=f"C{n}", lw=1, label=label)
            cx.plot(np.arange(1, epochs + 1), loss, color=f"C{n}", lw=1, label=label)
    bx.set(xlabel="epoch", ylabel="mean forget gate", ylim=(0, 1),
           title="During training (3 seeds each)")
    bx.legend(frameon=False, loc="lower right")
    cx.set(yscale="log", xlabel="epoch", ylabel="training loss (standardized MSE)",
           title="Task: recall step 1 of 40")
    save(fig, "forget_bias")


# ---- gate heat maps from inspect() -----------------------------------------------------------

def gates():
    import xarray as xr
    spots = load_sunspots()
    window = 30
    X, y = sliding_windows(spots.values, window=window)
    end_years = spots.time.values[window - 1 : -1]     # the last year in each window
    X = xr.DataArray(X[..., None], dims=("sample", "time", "feature"),
                     coords={"sample": end_years, "time": np.arange(-window + 1, 1)})
    train = end_years < 1950
    est = numlstm.LSTMRegressor(hidden_size=8, max_iter=80, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[train], y[train])
    sample = X.sel(sample=[1957])       # the window 1928-1957, before the 1958 forecast
    ds = est.inspect(sample)
    names = ["input_gate", "forget_gate", "output_gate", "cell"]
    years = np.arange(1957 - window + 1, 1958)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(6.4, 6.4), sharex=True, layout="constrained")
    axes[0].plot(years, sample.values[0, :, 0], ".-", color="0.3")
    axes[0].set(ylabel="sunspots", title="Input window 1928-1957 (one sample)")
    for ax, name in zip(axes[1:], names):
        v = ds[name].isel(sample=0).sel(layer=0, direction="forward").values.T   # (unit, time)
        if name == "cell":
            lim = np.nanmax(np.abs(v))
            mesh = ax.pcolormesh(years, ds.unit.values, v, shading="nearest", cmap="RdBu_r",
                                 vmin=-lim, vmax=lim)
        else:
            mesh = ax.pcolormesh(years, ds.unit.values, v, shading="nearest", cmap="viridis",
                                 vmin=0, vmax=1)
        fig.colorbar(mesh, ax=ax, pad=0.01)
        ax.set(ylabel="unit", title=name.replace("_", " "))
    axes[-1].set_xlabel("year")
    fig.suptitle("LSTMRegressor (hidden 8) fitted on sunspots to 1949: est.inspect(X)")
    save(fig, "gates")


FIGURES = {"vanishing_gradient": vanishing_gradient, "conveyor_belt": conveyor_belt,
           "variants": variants, "receptive_field": receptive_field, "forget_bias": forget_bias,
           "gates": gates}


def main(names):
    for name in names or FIGURES:
        start = time.perf_counter()
        print(f"{name} ...")
        FIGURES[name]()
        print(f"  {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
