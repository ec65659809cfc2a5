"""Train a bare numlstm.LSTM layer by hand: forward, backward, SGD step.

The task: from a noisy sine wave, predict the next value at every step. The
loop is written out in full, as one would write it in PyTorch: the layer's
forward, a linear head in NumPy, the squared error, ``layer.backward`` (which
fills ``layer.grads``, keyed like ``state_dict()``), and a clipped SGD step on
``layer.params``. The script prints the loss every 50 iterations and the final
error against the noise floor and against the naive forecast "next value
equals this one", and draws the loss curve and one sequence's predictions.

Run: ``python examples/layer_training_loop.py [--out layer_training_loop.png]``
(a few seconds). The figure needs matplotlib (``pip install -e ".[plot]"``).
"""

import argparse

import numpy as np

import numlstm
from numlstm.plot import agg_pyplot

T, B, H = 60, 16, 24
NOISE = 0.05
LEARNING_RATE = 0.05
STEPS = 300


def data(rng):
    """Inputs (T, B, 1) and next-value targets (T, B, 1) from B noisy sine waves of random phase."""
    phase = rng.uniform(0, 2 * np.pi, B)
    t = np.arange(T + 1)[:, None] * 0.2 + phase[None, :]
    series = np.sin(t) + NOISE * rng.standard_normal(t.shape)
    return series[:-1, :, None].astype(np.float32), series[1:, :, None].astype(np.float32)


def train(x, y, rng, steps=STEPS):
    """The hand-written loop; returns the layer, the head and the loss at every step."""
    lstm = numlstm.LSTM(1, H, seed=0, forget_bias=1.0)
    head = rng.uniform(-1 / np.sqrt(H), 1 / np.sqrt(H), (H, 1)).astype(np.float32)
    losses = []
    for step in range(steps + 1):
        out, _ = lstm(x)                      # (T, B, H)
        pred = out @ head                     # (T, B, 1)
        err = pred - y
        losses.append(float(np.mean(err ** 2)))
        grad_pred = 2 * err / err.size
        grad_head = out.reshape(-1, H).T @ grad_pred.reshape(-1, 1)
        lstm.backward(grad_pred @ head.T)     # fills lstm.grads
        for name, param in lstm.params.items():
            param -= LEARNING_RATE * np.clip(lstm.grads[name], -1, 1)
        head -= LEARNING_RATE * grad_head
        if step % 50 == 0:
            print(f"step {step:3d}  mse {losses[-1]:.4f}")
    return lstm, head, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="layer_training_loop.png",
                        help="where to write the figure (default %(default)s)")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    x, y = data(rng)
    lstm, head, losses = train(x, y, rng)
    with numlstm.no_grad():
        pred = lstm(x)[0] @ head
    final = float(np.mean((pred - y) ** 2))
    naive = float(np.mean((x - y) ** 2))
    print(f"final mse {final:.4f} (noise floor about {2 * NOISE ** 2:.4f}; "
          f"naive 'next value = this one' {naive:.4f})")

    plt = agg_pyplot()
    if plt is None:
        return losses
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    left.plot(losses, color="C0", label="training mse")
    left.axhline(2 * NOISE ** 2, color="0.5", linestyle=":", label="noise floor")
    left.axhline(naive, color="C1", linestyle="--", label="naive: next = this")
    left.set(yscale="log", xlabel="SGD step", ylabel="mean squared error", title="Training loss")
    left.legend()
    right.plot(y[:, 0, 0], color="k", label="next value (target)")
    right.plot(pred[:, 0, 0], color="C0", label="LSTM prediction")
    right.set(ylim=(-1.3, 1.6), xlabel="step", title="Sequence 0 after training")
    right.legend(loc="upper center", ncols=2)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")
    return losses


if __name__ == "__main__":
    main()
