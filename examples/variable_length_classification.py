"""Classify variable-length sequences whose label shows only at their last valid step.

Each sequence has 5 to 30 steps of two noisy features. Its class (low, mid,
high) sets the first feature of its last valid step; every other step is
noise. Shorter sequences are padded with trailing NaN, which is what
``xarray.concat``/``xarray.align`` produce for series of different lengths, and
the data travel as a DataArray. A model that read the padded end instead of
each sequence's own end would be at chance (1/3). Training stops by itself once
the epoch loss has not improved by ``tol`` for ``n_iter_no_change`` epochs.

The script prints the test accuracy, the accuracy by sequence length and the
first predictions, and draws the confusion matrix and the accuracy by length.

Run: ``python examples/variable_length_classification.py [--out variable_length_classification.png]``.
The figure needs matplotlib (``pip install -e ".[plot]"``).
"""

import argparse
import time

import numpy as np
import xarray as xr
from sklearn.metrics import confusion_matrix

from numlstm import LSTMClassifier
from numlstm.plot import agg_pyplot

CLASSES = np.array(["low", "mid", "high"])
SETTINGS = dict(hidden_size=8, learning_rate=1e-2, max_iter=100, tol=1e-3, n_iter_no_change=5,
                batch_size=32, random_state=0)
LENGTH_BINS = [(5, 10), (11, 15), (16, 20), (21, 25), (26, 30)]


def make_sequences(n, seed, max_length=30):
    """``n`` padded sequences as a (sample, time, feature) DataArray, and their labels."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, max_length + 1, n)
    labels = rng.integers(0, len(CLASSES), n)
    values = rng.normal(size=(n, max_length, 2))
    values[np.arange(n), lengths - 1, 0] = np.array([-2.0, 0.0, 2.0])[labels] + 0.3 * rng.normal(size=n)
    values[np.arange(max_length) >= lengths[:, None]] = np.nan
    X = xr.DataArray(
        values,
        dims=("sample", "time", "feature"),
        coords={"sample": np.arange(n), "time": np.arange(max_length), "feature": ["a", "b"]},
    )
    return X, xr.DataArray(CLASSES[labels], dims="sample", coords={"sample": np.arange(n)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="variable_length_classification.png",
                        help="where to write the figure (default %(default)s)")
    args = parser.parse_args(argv)

    X_train, y_train = make_sequences(400, seed=0)
    X_test, y_test = make_sequences(300, seed=1)
    start = time.perf_counter()
    model = LSTMClassifier(**SETTINGS).fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    pred = model.predict(X_test)
    hit = (pred == y_test).values
    lengths = X_test.notnull().all("feature").sum("time").values
    print(f"{len(X_train)} training and {len(X_test)} test sequences of {lengths.min()}-{lengths.max()} steps")
    print(f"test accuracy {hit.mean():.3f}   ({model.n_iter_} epochs of at most {SETTINGS['max_iter']}, "
          f"fit {fit_time:.1f} s; chance 0.333)")
    by_length = []
    for low, high in LENGTH_BINS:
        inside = (lengths >= low) & (lengths <= high)
        by_length.append((f"{low}-{high}", hit[inside].mean(), int(inside.sum())))
    print("accuracy by length: " + ", ".join(f"{name} steps {acc:.3f} (n={n})" for name, acc, n in by_length))
    print("first test sequences:")
    print(xr.Dataset({"length": ("sample", lengths[:5]), "true": y_test[:5], "predicted": pred[:5]})
          .to_dataframe().to_string())

    plt = agg_pyplot()
    if plt is None:
        return model
    matrix = confusion_matrix(y_test.values, pred.values, labels=CLASSES)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    left.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        left.text(j, i, count, ha="center", va="center", color="w" if count > matrix.max() / 2 else "k")
    left.set(xticks=range(len(CLASSES)), xticklabels=CLASSES, yticks=range(len(CLASSES)), yticklabels=CLASSES,
             xlabel="predicted", ylabel="true", title=f"Confusion matrix, test accuracy {hit.mean():.3f}")
    names, accuracy, counts = zip(*by_length)
    bars = right.bar(names, accuracy, color="C0")
    right.bar_label(bars, [f"n={n}" for n in counts], fontsize=8)
    right.axhline(1 / 3, color="C1", linestyle="--", label="chance")
    right.set(ylim=(0, 1.25), xlabel="sequence length (steps)", ylabel="test accuracy",
              title="Accuracy by sequence length")
    right.legend(loc="upper center")
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")
    return model


if __name__ == "__main__":
    main()
