"""numlstm against PyTorch: the same weights give the same outputs, and the same training gives the same skill.

Part 1 loads the weights of a ``torch.nn.LSTM`` (2 layers, bidirectional) into
a ``numlstm.LSTM`` with ``load_state_dict`` (the same names and shapes), runs
both on a batch of variable-length sequences (PyTorch through packed
sequences, numlstm through ``lengths=``), backpropagates the same output
gradient through both, and prints the largest differences in the outputs,
the final states and the gradients, in float32 and float64.

Part 2 trains the same model on two tasks in both libraries: one LSTM layer
(forget-gate bias +1) read at each sequence's last valid step, then a dense
layer, with the same data, standardization, initialization ranges, Adam
settings, batch size, gradient clipping (global norm 5), float32, and the
number of epochs at which numlstm's estimator stopped by itself. The tasks are
those of ``sunspots.py`` (one-year-ahead sunspot numbers, against
persistence) and ``variable_length_classification.py``, copied here so that
this script stands alone. The trained PyTorch sunspot model is then loaded
into numlstm with ``LSTMRegressor.from_torch`` and predicts what it predicts.
The script prints test scores and fit times.

The figure shows the distribution of the part 1 differences, and the sunspot
forecasts of both trained models and of the PyTorch model run by numlstm.

Run: ``python examples/compare_torch.py [--out compare_torch.png] [--quick]``
(``--quick`` stops the estimators sooner, with a larger ``tol``). It needs
PyTorch (``pip install torch``), which numlstm itself never needs; without it
the script says so and exits with status 0. The figure needs matplotlib
(``pip install -e ".[plot]"``). PyTorch's OpenMP threads slow down badly on a
machine whose cores are busy with other work; compare fit times there with
``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1``.
"""

import argparse
import time

import numpy as np
import xarray as xr
from sklearn.metrics import root_mean_squared_error as rmse

import numlstm
from numlstm import LSTMClassifier, LSTMRegressor
from numlstm.data import Standardizer, check_sequences, sliding_windows
from numlstm.datasets import load_sunspots
from numlstm.plot import agg_pyplot

try:
    import torch
    from torch import nn
except ImportError:
    torch = nn = None

CLIP_NORM = 5.0  # numlstm's default clip_norm

# The sunspot task, as in examples/sunspots.py.
WINDOW, LAST_TRAIN_YEAR = 20, 1950
SUNSPOT_SETTINGS = dict(hidden_size=16, learning_rate=1e-2, max_iter=200, tol=1e-3, n_iter_no_change=10,
                        batch_size=32, random_state=0)

# The classification task, as in examples/variable_length_classification.py.
CLASSES = np.array(["low", "mid", "high"])
CLASSIFIER_SETTINGS = dict(hidden_size=8, learning_rate=1e-2, max_iter=100, tol=1e-3, n_iter_no_change=5,
                           batch_size=32, random_state=0)
QUICK = dict(tol=1e-2)  # --quick: both estimators stop sooner


def sunspot_windows():
    """20-year windows and the next year: ``X_train, y_train, X_test, y_test, test_years``."""
    spots = load_sunspots()
    X, y = sliding_windows(spots.values, WINDOW)
    year = spots.time.values[WINDOW:]
    train = year <= LAST_TRAIN_YEAR
    return X[train], y[train], X[~train], y[~train], year[~train]


def make_sequences(n, seed, max_length=30):
    """``n`` NaN-padded sequences of 5-30 steps whose class shows only at their last valid step."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, max_length + 1, n)
    labels = rng.integers(0, len(CLASSES), n)
    values = rng.normal(size=(n, max_length, 2))
    values[np.arange(n), lengths - 1, 0] = np.array([-2.0, 0.0, 2.0])[labels] + 0.3 * rng.normal(size=n)
    values[np.arange(max_length) >= lengths[:, None]] = np.nan
    X = xr.DataArray(values, dims=("sample", "time", "feature"),
                     coords={"sample": np.arange(n), "time": np.arange(max_length), "feature": ["a", "b"]})
    return X, xr.DataArray(CLASSES[labels], dims="sample", coords={"sample": np.arange(n)})


# ---- part 1: the same weights, the same outputs and gradients -------------------------------------

def layer_differences(dtype, T=40, batch=8, input_size=3, hidden_size=16):
    """``{quantity: |numlstm - torch|}`` for a 2-layer bidirectional LSTM whose torch weights numlstm loads."""
    torch.manual_seed(0)
    reference = nn.LSTM(input_size, hidden_size, num_layers=2, bidirectional=True, dtype=getattr(torch, dtype))
    ours = numlstm.LSTM(input_size, hidden_size, num_layers=2, bidirectional=True, dtype=dtype)
    ours.load_state_dict({name: value.detach().numpy() for name, value in reference.state_dict().items()})

    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, batch, input_size)).astype(dtype)
    lengths = np.array([T, 33, T, 7, 25, T, 12, 31])[:batch]
    grad_out = rng.standard_normal((T, batch, 2 * hidden_size)).astype(dtype)

    x_torch = torch.from_numpy(x).requires_grad_()
    packed = nn.utils.rnn.pack_padded_sequence(x_torch, torch.from_numpy(lengths), enforce_sorted=False)
    packed_out, (h_n, c_n) = reference(packed)
    out_torch, _ = nn.utils.rnn.pad_packed_sequence(packed_out, total_length=T)
    (out_torch * torch.from_numpy(grad_out)).sum().backward()

    out, (h, c) = ours(x, lengths=lengths)
    grad_x, _ = ours.backward(grad_out)
    params = dict(reference.named_parameters())
    return {
        "output": np.abs(out - out_torch.detach().numpy()).ravel(),
        "h_n": np.abs(h - h_n.detach().numpy()).ravel(),
        "c_n": np.abs(c - c_n.detach().numpy()).ravel(),
        "grad x": np.abs(grad_x - x_torch.grad.numpy()).ravel(),
        "grad weights": np.concatenate([np.abs(ours.grads[name] - params[name].grad.numpy()).ravel()
                                        for name in params]),
    }


# ---- part 2: the same training in both libraries ---------------------------------------------------

def torch_model(input_size, hidden_size, n_outputs):
    """An LSTM layer read at each sequence's last valid step, then a dense layer."""

    class TorchModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
            with torch.no_grad():
                self.lstm.bias_ih_l0[hidden_size : 2 * hidden_size] += 1.0  # forget_bias=1.0
            self.head = nn.Linear(hidden_size, n_outputs)

        def forward(self, x, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
            return self.head(h_n[-1])

    return TorchModel()


def fit_torch(x, lengths, target, n_outputs, loss_fn, settings, epochs):
    """Train like numlstm's loop: shuffled mini-batches, Adam, global-norm clipping."""
    torch.manual_seed(settings["random_state"])
    model = torch_model(x.shape[2], settings["hidden_size"], n_outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    x, lengths, target = torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(target)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), settings["batch_size"]):
            batch = order[i : i + settings["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch], lengths[batch]), target[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            optimizer.step()
    return model, time.perf_counter() - start


def prepared(X, scaler):
    """Sequences as padded float32 (standardized with ``scaler``) and their lengths."""
    seqs = check_sequences(X, dtype=np.float32)
    return np.where(seqs.mask[..., None], scaler.transform(seqs.values), 0).astype(np.float32), seqs.lengths


def timed_fit(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return estimator, time.perf_counter() - start


def compare_sunspots(quick=False):
    X_train, y_train, X_test, y_test, years = sunspot_windows()
    X_train, X_test, y_train = (a.astype(np.float32) for a in (X_train, X_test, y_train))
    settings = {**SUNSPOT_SETTINGS, **(QUICK if quick else {})}
    ours, ours_time = timed_fit(LSTMRegressor(**settings), X_train, y_train)
    x_scaler = Standardizer.fit(X_train.reshape(-1, 1))
    y_scaler = Standardizer.fit(y_train[:, None])
    x, lengths = prepared(X_train, x_scaler)
    model, torch_time = fit_torch(x, lengths, y_scaler.transform(y_train[:, None]), 1, nn.MSELoss(),
                                  settings, ours.n_iter_)
    x_test, test_lengths = prepared(X_test, x_scaler)
    with torch.no_grad():
        scaled = model(torch.from_numpy(x_test), torch.from_numpy(test_lengths)).numpy()[:, 0]
    # The PyTorch model itself, run by numlstm: it reads the standardized inputs PyTorch read.
    loaded = LSTMRegressor.from_torch(model.lstm, model.head)
    loaded_scaled = loaded.predict(x_test)
    return dict(
        years=years, y_test=y_test, persistence=X_test[:, -1], epochs=ours.n_iter_,
        numlstm=(ours.predict(X_test), ours_time),
        torch=(y_scaler.inverse_transform(scaled[:, None])[:, 0], torch_time),
        loaded=y_scaler.inverse_transform(loaded_scaled[:, None])[:, 0],
        loaded_difference=float(np.max(np.abs(loaded_scaled - scaled))),
    )


def compare_classification(quick=False):
    X_train, y_train = make_sequences(400, seed=0)
    X_test, y_test = make_sequences(300, seed=1)
    settings = {**CLASSIFIER_SETTINGS, **(QUICK if quick else {})}
    ours, ours_time = timed_fit(LSTMClassifier(**settings), X_train.astype(np.float32), y_train)
    seqs = check_sequences(X_train, dtype=np.float32)
    scaler = Standardizer.fit(seqs.values[seqs.mask])
    x, lengths = prepared(X_train, scaler)
    labels = np.searchsorted(ours.classes_, y_train.values)
    model, torch_time = fit_torch(x, lengths, labels, len(ours.classes_), nn.CrossEntropyLoss(),
                                  settings, ours.n_iter_)
    with torch.no_grad():
        x_test, test_lengths = prepared(X_test, scaler)
        pred = ours.classes_[model(torch.from_numpy(x_test), torch.from_numpy(test_lengths)).argmax(1).numpy()]
    return dict(epochs=ours.n_iter_, numlstm=(ours.score(X_test.astype(np.float32), y_test), ours_time),
                torch=(float(np.mean(pred == y_test.values)), torch_time))


def plot(differences, sunspots, out, plt):
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), width_ratios=(1, 1.6), layout="constrained")
    bins = np.logspace(-19, -4, 61)
    for (dtype, diffs), color in zip(differences.items(), ("C0", "C1")):
        values = np.concatenate(list(diffs.values()))
        exact = int(np.sum(values == 0))
        left.hist(np.clip(values[values > 0], bins[0], None), bins=bins, color=color, alpha=0.7,
                  label=f"{dtype}: {values.size} values, {exact} equal, max {values.max():.1e}")
    left.set(xscale="log", xlabel="|numlstm - torch|", ylabel="count",
             title="Same weights: outputs, states and gradients")
    left.legend(fontsize=8, loc="upper left")
    s = sunspots
    years, truth = s["years"], s["y_test"]
    right.plot(years, truth, color="k", label="truth")
    right.plot(years, s["persistence"], color="0.6", linestyle="--",
               label=f"persistence ({rmse(s['persistence'], truth):.1f})")
    right.plot(years, s["numlstm"][0], color="C0", label=f"trained in numlstm ({rmse(s['numlstm'][0], truth):.1f})")
    right.plot(years, s["torch"][0], color="C3", label=f"trained in PyTorch ({rmse(s['torch'][0], truth):.1f})")
    right.plot(years, s["loaded"], color="C1", linestyle=":", linewidth=2.5,
               label=f"PyTorch's model run by numlstm ({rmse(s['loaded'], truth):.1f})")
    right.set(xlabel="year", ylabel="yearly mean sunspot number",
              title=f"Sunspots one year ahead, {s['epochs']} epochs each (test RMSE)")
    right.legend(fontsize=8, ncols=2, loc="upper right")
    right.set_ylim(top=1.3 * np.max(truth))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"figure: {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="compare_torch.png", help="where to write the figure (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="stop the estimators sooner (tol 1e-2), for smoke tests")
    args = parser.parse_args(argv)
    if torch is None:
        print("skipped: this comparison needs PyTorch (pip install torch); numlstm itself never does")
        return None
    print(f"numpy {np.__version__}, numlstm {numlstm.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")

    print("1. torch.nn.LSTM(3, 16, num_layers=2, bidirectional=True) weights loaded into numlstm.LSTM; "
          "8 sequences of 7-40 steps")
    differences = {dtype: layer_differences(dtype) for dtype in ("float32", "float64")}
    names = list(differences["float32"])
    print("   largest |numlstm - torch|  " + "".join(f"{name:>14}" for name in names))
    for dtype, diffs in differences.items():
        print(f"   {dtype:<27}" + "".join(f"{diffs[name].max():14.1e}" for name in names))

    print("2. the same model and training in both libraries (float32; PyTorch runs the epochs numlstm's "
          "estimator stopped at)")
    sunspots = compare_sunspots(args.quick)
    classification = compare_classification(args.quick)
    rows = (
        (f"sunspots 1951-2008, test RMSE ({sunspots['epochs']} epochs; "
         + f"persistence {rmse(sunspots['persistence'], sunspots['y_test']):.2f})",
         (rmse(sunspots["numlstm"][0], sunspots["y_test"]), sunspots["numlstm"][1]),
         (rmse(sunspots["torch"][0], sunspots["y_test"]), sunspots["torch"][1])),
        (f"variable-length classification, test accuracy ({classification['epochs']} epochs; chance 0.333)",
         classification["numlstm"], classification["torch"]),
    )
    for title, (ours_score, ours_time), (torch_score, torch_time) in rows:
        print(f"   {title}")
        print(f"     numlstm  {ours_score:8.3f}   fit {ours_time:6.2f} s")
        print(f"     PyTorch  {torch_score:8.3f}   fit {torch_time:6.2f} s")
    print(f"   the trained PyTorch sunspot model run by numlstm (LSTMRegressor.from_torch): test RMSE "
          f"{rmse(sunspots['loaded'], sunspots['y_test']):.3f}, largest difference from PyTorch's predictions "
          f"{sunspots['loaded_difference']:.1e} (standardized units)")

    plt = agg_pyplot()
    if plt is not None:
        plot(differences, sunspots, args.out, plt)
    return differences, sunspots, classification


if __name__ == "__main__":
    main()
