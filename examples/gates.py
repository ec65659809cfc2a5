"""Look inside a trained LSTM: its gate activations and states, month by month, as heat maps.

An :class:`~numlstm.LSTMRegressor` with 8 units learns to forecast the monthly
sea surface temperature of the eastern tropical Pacific (Nino 1+2 region,
bundled as :func:`numlstm.datasets.load_elnino`) one month ahead from the
previous 24 months; windows whose target month is before 2001 train it, the
rest (2001-2010) test it against persistence ("next month equals this month")
and the seasonal naive forecast ("next month equals the same month last
year"). Then ``est.inspect(X)`` runs the fitted network over one long sequence,
1995-2000 with the strong 1997-98 El Nino, and returns every gate activation
and state per month as an ``xarray.Dataset`` on the sequence's dates, which
:func:`numlstm.plot.gates` draws as heat maps (month by unit), under the
series itself.

The script prints the test errors, each gate's mean activation over the
inspected years, the unit whose forget gate stays most open, and the unit
whose cell state follows the temperature most closely.

Run: ``python examples/gates.py [--out gates.png]`` (a few seconds). The
figure needs matplotlib (``pip install -e ".[plot]"``).
"""

import argparse
import time

import numpy as np
import xarray as xr
from sklearn.metrics import root_mean_squared_error as rmse

from numlstm import LSTMRegressor
from numlstm.data import sliding_windows
from numlstm.datasets import load_elnino
from numlstm.plot import agg_pyplot

WINDOW = 24
FIRST_TEST_MONTH = np.datetime64("2001-01-01")
SETTINGS = dict(hidden_size=8, learning_rate=1e-2, max_iter=300, tol=1e-3, n_iter_no_change=10,
                batch_size=32, random_state=0)
INSPECTED = slice("1995-01-01", "2000-12-31")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gates.png", help="where to write the figure (default %(default)s)")
    args = parser.parse_args(argv)

    sst = load_elnino()
    X, y = sliding_windows(sst.values, WINDOW)
    train = sst.time.values[WINDOW:] < FIRST_TEST_MONTH
    start = time.perf_counter()
    model = LSTMRegressor(**SETTINGS).fit(X[train], y[train])
    fit_time = time.perf_counter() - start
    y_test = y[~train]
    print(f"Nino 1+2 sea surface temperature, {WINDOW}-month windows: {train.sum()} to train, "
          f"{(~train).sum()} test months (2001-2010)")
    print(f"test RMSE  LSTM             {rmse(model.predict(X[~train]), y_test):.3f} degC   "
          f"({model.n_iter_} epochs of at most {SETTINGS['max_iter']}, fit {fit_time:.1f} s)")
    print(f"           persistence      {rmse(X[~train, -1], y_test):.3f} degC   (next month = this month)")
    print(f"           seasonal naive   {rmse(X[~train, -12], y_test):.3f} degC   (same month last year)")

    # One long sequence with its dates: inspect returns the gates on these coords.
    seq = sst.sel(time=INSPECTED)
    X_seq = xr.DataArray(seq.values[None, :, None], dims=("sample", "time", "feature"),
                         coords={"time": seq.time.values})
    ds = model.inspect(X_seq)
    one = ds.isel(sample=0).sel(layer=0, direction="forward")
    print(f"inspected {seq.time.dt.year.values[0]}-{seq.time.dt.year.values[-1]} ({seq.sizes['time']} months); "
          "mean activation over months and units:")
    for name in ("input_gate", "forget_gate", "output_gate"):
        print(f"  {name:<12} {float(one[name].mean()):.3f}")
    forget = one["forget_gate"].mean("time")
    keeper = int(np.argmax(forget.values))
    print(f"unit that keeps the most of its cell: unit {keeper}, mean forget gate {float(forget[keeper]):.3f}")
    corr = [float(np.corrcoef(one["cell"].sel(unit=u), seq)[0, 1]) for u in one.unit.values]
    best = int(np.argmax(np.abs(corr)))
    print(f"cell state most correlated with the temperature: unit {best}, r = {corr[best]:+.3f}")

    plt = agg_pyplot()
    if plt is None:
        return ds
    from numlstm.plot import gates

    names = list(ds.data_vars)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(9, 13), sharex=True, layout="constrained")
    axes[0].plot(seq.time, seq, color="k")
    axes[0].set(ylabel="degC", title="Nino 1+2 sea surface temperature, the sequence inspected")
    gates(ds, axes=axes[1:])
    spacer = fig.colorbar(axes[1].collections[0], ax=axes[0])  # keeps the top panel as wide as the maps
    spacer.ax.set_visible(False)
    fig.suptitle(f"LSTM gates and states, {len(one.unit)} units, after {model.n_iter_} epochs")
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    print(f"figure: {args.out}")
    return ds


if __name__ == "__main__":
    main()
