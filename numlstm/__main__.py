"""Command line: ``python -m numlstm demo`` and ``python -m numlstm warmup``.

``demo`` forecasts the bundled yearly sunspot numbers one year ahead with an
``numlstm.LSTMRegressor``, compares it with persistence ("next year
equals this year"), and draws the result. ``warmup`` compiles the common
kernels ahead of time, so that later runs load them from Numba's cache.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

WINDOW = 20
LAST_TRAIN_YEAR = 1950
SETTINGS = dict(hidden_size=16, learning_rate=1e-2, max_iter=200, tol=1e-3, n_iter_no_change=10, batch_size=32,
                random_state=0)
"""The demo's LSTMRegressor settings: about 1 s of fitting once the kernels are compiled."""


def sunspot_windows():
    """The demo's data: 20-year windows of yearly sunspot numbers, and the year after each.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Windows and targets; a window trains the model when its target year is
        at most 1950 and tests it otherwise.
    spots : xarray.DataArray
        The whole series, 1700-2008; its last ``len(y_test)`` years are the
        test years.
    """
    from numlstm.data import sliding_windows
    from numlstm.datasets import load_sunspots

    spots = load_sunspots()
    X, y = sliding_windows(spots.values, WINDOW)
    years = spots.time.values[WINDOW:]
    train = years <= LAST_TRAIN_YEAR
    return X[train], y[train], X[~train], y[~train], spots


def rmse(pred, true):
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2)))


def _figure_class(out):
    """matplotlib's Figure, or None when matplotlib is missing; SystemExit for an unusable ``out``."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    if not out.parent.is_dir():
        sys.exit(f"numlstm demo: --out: no such directory: {out.parent}")
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in formats:
        sys.exit(f"numlstm demo: --out: cannot write a {out.suffix or 'suffix-less'} file; "
                 f"use one of: {', '.join('.' + f for f in sorted(formats))}")
    return Figure


def _will_compile(dtype):
    """Whether the LSTM kernels are about to compile for ``dtype`` (not yet in the disk cache)."""
    from numlstm import _compile_notice
    from numlstm.cells import lstm

    return not _compile_notice.is_compiled(lstm, dtype)


def demo(args):
    """Fit, score against persistence, print, and draw."""
    from numlstm import LSTMRegressor
    from numlstm.plot import forecast

    Figure = _figure_class(args.out)
    X_train, y_train, X_test, y_test, spots = sunspot_windows()
    truth = spots.isel(time=slice(-len(y_test), None))
    years = truth.time.values
    print("numlstm demo: forecast the yearly sunspot number one year ahead")
    print(f"  data     {int(spots.time[0])}-{years[-1]} (numlstm.datasets.load_sunspots), "
          f"{WINDOW}-year windows")
    print(f"  train    {len(X_train)} windows with a target year up to {LAST_TRAIN_YEAR}")
    print(f"  test     {len(X_test)} years, {years[0]}-{years[-1]}")
    compiling = _will_compile(X_train.dtype)  # the layer says so on stderr as it starts
    model = LSTMRegressor(**{**SETTINGS, "max_iter": args.max_iter})
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    pred, naive = model.predict(X_test), X_test[:, -1]
    lstm_rmse, naive_rmse = rmse(pred, y_test), rmse(naive, y_test)
    print(f"  LSTM         test RMSE {lstm_rmse:6.2f}   ({model.n_iter_} epochs, fit {fit_time:.1f} s"
          + (", compiling included)" if compiling else ")"))
    print(f"  persistence  test RMSE {naive_rmse:6.2f}   (next year = this year)")
    print(f"  the LSTM's error is {lstm_rmse / naive_rmse:.0%} of persistence's")
    if Figure is None:
        print("  no figure: it needs matplotlib, pip install 'numlstm[plot]'")
        return
    fig = Figure(figsize=(9, 4), layout="constrained")
    history = spots.sel(time=slice(1900, LAST_TRAIN_YEAR))
    ax = forecast(truth, truth.copy(data=pred), history=history, ax=fig.subplots())
    ax.plot(years, naive, color="C1", linestyle="--", label="persistence")
    ax.set(xlabel="year", title=f"Sunspots one year ahead: LSTM RMSE {lstm_rmse:.1f}, "
                                f"persistence {naive_rmse:.1f}")
    ax.legend()
    fig.savefig(args.out, dpi=110)
    print(f"  figure   {args.out}")


def _exercise(layer_class, dtype):
    """Run a layer's training and inference paths once in ``dtype``."""
    from numlstm.layers import no_grad

    x = np.random.default_rng(0).standard_normal((6, 4, 2)).astype(dtype)
    layer = layer_class(2, 8, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    out, _ = layer(x, lengths=[6, 4, 6, 3])
    layer.backward(np.ones_like(out))
    with no_grad():
        layer(x)
        layer_class(2, 64, dtype=dtype, seed=0)(x[:, :1])  # one wide sequence: split by units


def warmup(args):
    """Compile (or load from the cache) every cell's kernels in float32 and float64."""
    from numlstm import _compile_notice, _config
    from numlstm.layers import GRU, LSTM, RNN

    print("numlstm warmup: the LSTM, GRU and RNN kernels for training and inference, "
          "in float32 and float64")
    total = time.perf_counter()
    for layer_class in (LSTM, GRU, RNN):
        for dtype in ("float32", "float64"):
            module = layer_class(1, 1, dtype=dtype)._cell()
            missing = len(_compile_notice.uncompiled(module, dtype))
            state = f"compiled {missing} kernels" if missing else "loaded from the cache"
            start = time.perf_counter()
            _exercise(layer_class, dtype)
            print(f"  {layer_class.__name__:<4} {dtype}  {time.perf_counter() - start:5.1f} s  ({state})",
                  flush=True)
    print(f"  done in {time.perf_counter() - total:.1f} s; "
          + ("later runs load the kernels from the cache" if _config.CACHE else
             "nothing was cached: NUMLSTM_DISABLE_CACHE is set"))


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m numlstm",
        description="numlstm: Numba-accelerated LSTM, GRU and RNN layers and estimators.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo_parser = commands.add_parser(
        "demo", help="forecast the bundled sunspot series and compare with persistence",
        description="Fit an LSTMRegressor on yearly sunspot numbers up to 1950, forecast "
                    "1951-2008 one year ahead, print the test RMSE against persistence and "
                    "the fit time, and draw the forecast (needs matplotlib).")
    demo_parser.add_argument("--out", type=Path, default=Path("numlstm-demo.png"),
                             help="where to write the figure (default: %(default)s)")
    demo_parser.add_argument("--max-iter", type=_positive_int, default=SETTINGS["max_iter"],
                             help="training epochs (default: %(default)s)")
    demo_parser.set_defaults(run=demo)
    warmup_parser = commands.add_parser(
        "warmup", help="compile the common kernels ahead of time",
        description="Compile the LSTM, GRU and RNN kernels in float32 and float64 into "
                    "Numba's on-disk cache, and report how long it took.")
    warmup_parser.set_defaults(run=warmup)
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv=None):
    """Run the command line with ``argv`` (``sys.argv[1:]`` by default)."""
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
