"""The vanishing gradient: how much the last output of an RNN and of an LSTM still depends on early inputs.

For a layer run over T steps, the script measures the norm of the Jacobian
d h_T / d x_t of the last output h_T with respect to the input at step t, for
every t, and draws it against the distance T - t on a log scale. A norm that
falls by a constant factor per step is the vanishing gradient (Hochreiter
1991; Bengio, Simard and Frasconi 1994): training barely learns from inputs
far in the past.

Each Jacobian comes from one ``backward()`` call of a numlstm layer: the batch
holds H copies of the same input sequence, and copy k backpropagates the unit
vector e_k from h_T, so copy k's input gradient at step t is row k of
d h_T / d x_t and the Frobenius norm sums them all. The curves are the
geometric mean over seeds (each seed draws new weights, with PyTorch's
initialization, and a new standard-normal input), with the range over seeds
shaded, for:

* ``numlstm.RNN`` (tanh): h_t = tanh(W x_t + U h_{t-1} + b);
* ``numlstm.LSTM`` as PyTorch initializes it (``forget_bias=0``): its cell state
  is carried by c_t = f_t * c_{t-1} + i_t * g_t, so along that path the
  gradient shrinks by the forget gate f_t per step, about sigmoid(0) = 0.5 here;
* ``numlstm.LSTM(forget_bias=1.0)``, the estimators' default (Jozefowicz et
  al. 2015): f_t starts near sigmoid(1) = 0.73, and the gradient decays far
  more slowly. Training can push f_t towards 1 wherever a unit must remember.

The script prints the mean norm at a few distances and each curve's fitted
decay factor per step.

Run: ``python examples/vanishing_gradient.py [--out vanishing_gradient.png]``
(a few seconds). The figure needs matplotlib (``pip install -e ".[plot]"``).
"""

import argparse
import time

import numpy as np

import numlstm
from numlstm.plot import agg_pyplot

INPUT_SIZE, HIDDEN_SIZE = 4, 32
STEPS, SEEDS = 100, 10
LAYERS = {
    "RNN (tanh)": lambda seed: numlstm.RNN(INPUT_SIZE, HIDDEN_SIZE, dtype="float64", seed=seed),
    "LSTM (forget_bias=0)": lambda seed: numlstm.LSTM(INPUT_SIZE, HIDDEN_SIZE, dtype="float64", seed=seed),
    "LSTM (forget_bias=1)": lambda seed: numlstm.LSTM(INPUT_SIZE, HIDDEN_SIZE, dtype="float64", seed=seed,
                                                      forget_bias=1.0),
}


def jacobian_norms(layer, x):
    """``||d h_T / d x_t||`` (Frobenius) for every step t of ``x`` (T, input_size), from one backward pass."""
    copies = np.repeat(x[:, None, :], HIDDEN_SIZE, axis=1)   # (T, H, I): batch of H identical sequences
    out, _ = layer(copies)                                     # (T, H, H)
    grad_out = np.zeros_like(out)
    grad_out[-1] = np.eye(HIDDEN_SIZE)                         # copy k backpropagates unit k of h_T
    grad_x, _ = layer.backward(grad_out)
    return np.sqrt((grad_x ** 2).sum(axis=(1, 2)))             # (T,)


def measure(make_layer, steps, seeds):
    """Norms (seeds, steps), ordered by distance T - t = 0, 1, ..., steps - 1."""
    norms = []
    for seed in seeds:
        x = np.random.default_rng(seed).standard_normal((steps, INPUT_SIZE))
        norms.append(jacobian_norms(make_layer(seed), x)[::-1])
    return np.array(norms)


def decay_per_step(log_norm, start):
    """exp of the slope of a line fitted to the log norm over distances ``start`` and beyond."""
    distance = np.arange(len(log_norm))
    return float(np.exp(np.polyfit(distance[start:], log_norm[start:], 1)[0]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="vanishing_gradient.png",
                        help="where to write the figure (default %(default)s)")
    args = parser.parse_args(argv)
    steps, seeds = STEPS, range(SEEDS)

    start = time.perf_counter()
    results = {name: measure(make, steps, seeds) for name, make in LAYERS.items()}
    shown = [d for d in (0, 1, 2, 5, 10, 20, 50, 99) if d < steps]
    print(f"||d h_T / d x_t|| against the distance T - t: T = {steps}, input {INPUT_SIZE}, hidden {HIDDEN_SIZE}, "
          f"float64, geometric mean over {len(seeds)} seeds ({time.perf_counter() - start:.1f} s)")
    print(f"{'distance':<22}" + "".join(f"{d:>10}" for d in shown) + "   decay per step")
    for name, norms in results.items():
        log_mean = np.log(norms).mean(axis=0)
        print(f"{name:<22}" + "".join(f"{np.exp(log_mean[d]):10.1e}" for d in shown)
              + f"   {decay_per_step(log_mean, 10):.3f}")

    plt = agg_pyplot()
    if plt is None:
        return results
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    distance = np.arange(steps)
    for (name, norms), color in zip(results.items(), ("C3", "C0", "C2")):
        ax.plot(distance, np.exp(np.log(norms).mean(axis=0)), color=color, label=name)
        ax.fill_between(distance, norms.min(axis=0), norms.max(axis=0), color=color, alpha=0.2)
    ax.set(yscale="log", xlabel="distance T - t (steps)", ylabel="||d h_T / d x_t||",
           title=f"Vanishing gradient at initialization: T = {steps}, hidden {HIDDEN_SIZE}, "
                 f"{len(seeds)} seeds (range shaded)")
    ax.legend()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")
    return results


if __name__ == "__main__":
    main()
