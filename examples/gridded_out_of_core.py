"""Out of core at scale: forecast daily temperature on a 100,000-cell grid stored as zarr.

A synthetic climate: on a 250 x 400 latitude-longitude grid, every cell has a
daily temperature series made of a mean that falls towards the poles, a
seasonal cycle whose amplitude grows with latitude and continentality (and
flips sign between the hemispheres), a slow warming trend, and weather: AR(1)
anomalies with day-to-day persistence 0.7. The series are written to a zarr
store chunk by chunk by Dask (5,000 cells a chunk, the cells in random order so
that every chunk mixes latitudes); the whole array is never in memory.

An :class:`~numlstm.LSTMRegressor` learns to forecast the temperature three
days ahead from the last 60 days. It trains out of core on the zarr-backed
DataArray, one chunk in memory at a time (one streaming pass validates and
scales the data, then every epoch shuffles the chunks and the cells inside
each), with a progress bar over epochs. It then forecasts a later date, ten
days on, lazily: ``predict`` returns a Dask-backed DataArray that is written
to the store chunk by chunk. The script prints the RMSE against persistence
(the last observed value held) and against the best forecast possible (which
knows the simulator's climate), the time of each stage and the peak memory,
and draws the forecast map, its error and the RMSE per latitude.

Run: ``python examples/gridded_out_of_core.py [--out gridded_out_of_core.png]
[--store PATH] [--quick]``. The full size takes under a minute to a few minutes
on 2 cores; ``--quick`` shrinks it to 2,000 cells, for smoke tests. The store goes to a temporary
directory that is deleted at the end, unless ``--store PATH`` names where to
keep it. It needs Dask and zarr (``pip install -e ".[dask]"``); the figure
needs matplotlib (``pip install -e ".[plot]"``), without it the numbers are
still printed.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
from sklearn.metrics import root_mean_squared_error as rmse

from numlstm import LSTMRegressor
from numlstm.plot import agg_pyplot

WINDOW, LEAD, LATER = 60, 3, 10  # days of input, days ahead, days between the training and the forecast date
N_DAYS = WINDOW + LATER + LEAD
FIRST_DAY = 10 * 365 + 230  # the series start in mid-August of year 10
PHI = 0.7  # day-to-day persistence of the weather anomalies
FULL = dict(n_lat=250, n_lon=400, chunk=5_000)
QUICK = dict(n_lat=40, n_lon=50, chunk=500)
SETTINGS = dict(hidden_size=16, batch_size=256, learning_rate=1e-2, max_iter=30, early_stopping=True,
                validation_fraction=0.1, n_iter_no_change=3, tol=1e-3, random_state=0, verbose=True,
                dims=("cell", "day", "feature"))
QUICK_SETTINGS = dict(hidden_size=8, batch_size=64, n_iter_no_change=2, tol=1e-2)


def climate(lat, lon, day):
    """The expected temperature (degC) of cells at ``lat``, ``lon`` on ``day``, and the sd of their weather."""
    land = 0.5 + 0.5 * np.sin(np.radians(2 * lon)) * np.cos(np.radians(lat))  # continentality, 0 ... 1
    mean = 28 - 0.4 * np.abs(lat)
    amplitude = 0.5 + (0.05 + 0.25 * land) * np.abs(lat)
    season = -np.sign(lat) * np.cos(2 * np.pi * (day - 20) / 365)  # coldest on 20 January in the north
    trend = (0.01 + 0.02 * land) * day / 365
    return mean + amplitude * season + trend, 0.8 + 2.0 * land * np.abs(lat) / 90


def simulate(lat, lon, block_id=None, seed=0):
    """Daily temperature of one chunk of cells (lat, lon: columns of shape (n_cells, 1)) over ``N_DAYS`` days."""
    rng = np.random.default_rng([seed, block_id[0]])
    days = FIRST_DAY + np.arange(N_DAYS)
    expected, sd = climate(lat, lon, days)
    anomaly = np.empty(expected.shape)
    anomaly[:, 0] = rng.normal(0, 1, len(lat)) * sd[:, 0] / np.sqrt(1 - PHI**2)  # stationary start
    for t in range(1, N_DAYS):
        anomaly[:, t] = PHI * anomaly[:, t - 1] + rng.normal(0, 1, len(lat)) * sd[:, 0]
    return (expected + anomaly).astype(np.float32)


def write_grid(store, n_lat, n_lon, chunk, seed=0):
    """Simulate the grid's series chunk by chunk straight into a zarr store; returns the store opened lazily."""
    cells = np.random.default_rng(seed).permutation(n_lat * n_lon)  # random order: each chunk mixes latitudes
    lats = np.linspace(-75, 75, n_lat)[cells // n_lon]
    lons = np.linspace(-180, 180, n_lon, endpoint=False)[cells % n_lon]
    lat = da.from_array(lats[:, None], chunks=(chunk, 1))
    lon = da.from_array(lons[:, None], chunks=(chunk, 1))
    temperature = da.map_blocks(simulate, lat, lon, chunks=(lat.chunks[0], (N_DAYS,)), dtype=np.float32, seed=seed)
    grid = xr.Dataset(
        {"temperature": (("cell", "day"), temperature, {"units": "degC"})},
        coords={"cell": cells, "day": FIRST_DAY + np.arange(N_DAYS), "lat": ("cell", lats), "lon": ("cell", lons)},
    )
    # Chunked alike, the lat and lon coords are stored in the same chunks as the cells' series.
    grid.chunk({"cell": chunk}).to_zarr(store, mode="w", consolidated=False)
    return xr.open_zarr(store, consolidated=False)


def peak_memory_mib():
    """The peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gridded_out_of_core.png",
                        help="where to write the figure (default %(default)s)")
    parser.add_argument("--store", help="where to write the zarr store (default: a temporary directory, deleted)")
    parser.add_argument("--quick", action="store_true", help="2,000 cells and a looser tol, for smoke tests")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    settings = {**SETTINGS, **(QUICK_SETTINGS if args.quick else {})}

    with tempfile.TemporaryDirectory() as scratch:
        store = args.store or str(Path(scratch) / "grid.zarr")
        start = time.perf_counter()
        grid = write_grid(store, **size)
        series = grid["temperature"].drop_vars(["lat", "lon"])  # the model reads the series alone
        print(f"{series.sizes['cell']:,} cells x {N_DAYS} days ({series.nbytes / 2**20:.0f} MiB) written to zarr in "
              f"{len(series.chunks[0])} chunks of {size['chunk']:,} cells: {time.perf_counter() - start:.1f} s")

        # Train: the 60 days up to the training date, and the temperature three days later.
        X_train = series.isel(day=slice(0, WINDOW))
        y_train = series.isel(day=WINDOW - 1 + LEAD).values  # one value per cell: small, in memory
        start = time.perf_counter()
        model = LSTMRegressor(**settings).fit(X_train, y_train)
        fit_time = time.perf_counter() - start
        print(f"fit out of core: {model.n_iter_} epochs of at most {settings['max_iter']}, {fit_time:.1f} s "
              f"({fit_time / model.n_iter_:.1f} s an epoch), validation R^2 {model.validation_scores_[-1]:.3f}")

        # Forecast ten days later, lazily, written back to the store chunk by chunk.
        X_test = series.isel(day=slice(LATER, LATER + WINDOW))
        start = time.perf_counter()
        forecast = model.predict(X_test)
        print(f"predict is lazy: a {type(forecast.data).__module__.split('.')[0]}-backed {forecast.dims} array "
              f"in {len(forecast.chunks[0])} chunks")
        forecast.rename("forecast").to_dataset().to_zarr(store, mode="a", consolidated=False)
        print(f"forecast computed and written to the store chunk by chunk: {time.perf_counter() - start:.1f} s")

        result = xr.open_zarr(store, consolidated=False)
        target_day = int(result.day[LATER + WINDOW - 1 + LEAD])
        truth = result["temperature"].sel(day=target_day).load()
        last = result["temperature"].isel(day=LATER + WINDOW - 1).load()
        lstm = result["forecast"].load()
        expected, _ = climate(result.lat.values, result.lon.values, np.array([target_day - LEAD, target_day])[:, None])
        best = expected[1] + PHI**LEAD * (last.values - expected[0])  # the simulator's own conditional mean
        print(f"forecast of day {target_day % 365} of year {target_day // 365} ({LEAD} days ahead), "
              "RMSE over all cells (degC):")
        print(f"  LSTM {rmse(truth, lstm):.3f}   persistence {rmse(truth, last):.3f}   "
              f"best possible {rmse(truth, best):.3f}")
        print(f"peak memory (RSS) of this process: {peak_memory_mib():.0f} MiB")

        plt = agg_pyplot()
        if plt is not None:
            draw(plt, args.out, result, truth, lstm, last, best, target_day)
            print(f"figure: {args.out}")
    return model


def draw(plt, out, result, truth, lstm, last, best, target_day):
    """The true and forecast maps, the error map and the RMSE per latitude of each forecast, saved to ``out``."""
    lats, lons = np.unique(result.lat.values), np.unique(result.lon.values)
    row, col = np.searchsorted(lats, result.lat.values), np.searchsorted(lons, result.lon.values)

    def grid(values):
        image = np.full((len(lats), len(lons)), np.nan)
        image[row, col] = values
        return image

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), layout="constrained")
    extent = (lons[0], lons[-1], lats[0], lats[-1])
    limits = np.nanpercentile(truth.values, [1, 99])
    for ax, values, title in ((axes[0, 0], truth.values, f"true temperature, day {target_day % 365}"),
                              (axes[0, 1], lstm.values, f"LSTM forecast, {LEAD} days ahead")):
        image = ax.imshow(grid(values), origin="lower", extent=extent, aspect="auto", cmap="RdYlBu_r",
                          vmin=limits[0], vmax=limits[1])
        ax.set(title=title, xlabel="longitude", ylabel="latitude")
    fig.colorbar(image, ax=axes[0, :], label="degC", shrink=0.9)
    error = lstm.values - truth.values
    bound = np.nanpercentile(np.abs(error), 99)
    image = axes[1, 0].imshow(grid(error), origin="lower", extent=extent, aspect="auto", cmap="RdBu_r",
                              vmin=-bound, vmax=bound)
    axes[1, 0].set(title="forecast - truth", xlabel="longitude", ylabel="latitude")
    fig.colorbar(image, ax=axes[1, 0], label="degC")
    by_lat = xr.Dataset({"LSTM": (lstm - truth) ** 2, "persistence": (last - truth) ** 2,
                         "best possible": ("cell", (best - truth.values) ** 2)},
                        coords={"lat": ("cell", result.lat.values)})
    by_lat = np.sqrt(by_lat.groupby("lat").mean())
    for name, style in (("persistence", "--"), ("LSTM", "-"), ("best possible", ":")):
        axes[1, 1].plot(by_lat.lat, by_lat[name], style, label=name)
    axes[1, 1].set(title="RMSE per latitude", xlabel="latitude", ylabel="RMSE (degC)")
    axes[1, 1].legend(fontsize=8)
    fig.savefig(out, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
