"""Peak memory of out-of-core training: flat in the data set's size.

``setup_cache`` writes three zarr stores, chunk by chunk, holding 2, 8 and 32
chunks of 1,000 sequences x 50 steps x 16 features (float32, 3.2 MB a chunk:
6.4, 25.6 and 102 MB in all), plus one target per sequence. Each benchmark
opens a store lazily and fits an LSTMRegressor (hidden_size 8, batch_size 128,
one epoch, no early stopping) on it:

- ``peakmem_fit_out_of_core``: X stays zarr-backed, so ``fit`` reads one chunk
  at a time; the peak stays flat across the three sizes.
- ``peakmem_fit_in_memory``: the same data computed into memory first, for
  contrast; its peak grows with the data set.
- ``time_fit_out_of_core``: the out-of-core epoch's time, which grows with the
  data set as training must.
- ``track_data_set_size``: the stored array's size in MiB, to read the peaks
  against.

asv's ``peakmem_`` is the peak resident memory of the whole benchmark process,
so it includes the interpreter, the imports, the kernels loaded in ``setup``
and ``setup``'s own allocations; only differences between sizes matter.
"""

import os
import warnings

import numpy as np

from ._common import ThreadGuard, import_numlstm, require

CHUNK, STEPS, FEATURES = 1_000, 50, 16
SIZES = [2, 8, 32]  # data-set sizes, in chunks
SETTINGS = dict(hidden_size=8, batch_size=128, max_iter=1, early_stopping=False, random_state=0)


def _store(n_chunks):
    return os.path.abspath(f"numlstm_bench_memory_{n_chunks}.zarr")


def _write_store(path, n_chunks):
    """Random sequences written chunk by chunk (Dask never holds the whole array), with a learnable target."""
    import dask.array as da
    import xarray as xr

    x = da.random.default_rng(0).standard_normal((n_chunks * CHUNK, STEPS, FEATURES), chunks=(CHUNK, STEPS, FEATURES),
                                                  dtype="float32")
    y = x[:, -10:, 0].mean(axis=1) + 0.5 * x[:, :, 1].mean(axis=1)
    data = xr.Dataset({"x": (("sample", "time", "feature"), x), "y": (("sample",), y)})
    data.to_zarr(path, mode="w", consolidated=False)


class OutOfCoreFit:
    params = (SIZES,)
    param_names = ["chunks"]
    number = 1
    repeat = (1, 3, 60.0)
    timeout = 600

    def setup_cache(self):
        require("dask", "zarr")
        for n_chunks in SIZES:
            _write_store(_store(n_chunks), n_chunks)
        return {n_chunks: _store(n_chunks) for n_chunks in SIZES}

    def setup(self, stores, n_chunks):
        import xarray as xr

        numlstm = import_numlstm()
        data = xr.open_zarr(stores[n_chunks], consolidated=False)
        self.X, self.y = data["x"], data["y"].values
        self.guard = ThreadGuard()
        # Load the kernels (from Numba's on-disk cache) outside the measured call, on a small in-memory fit.
        rng = np.random.default_rng(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            numlstm.LSTMRegressor(**SETTINGS).fit(rng.standard_normal((64, STEPS, FEATURES)).astype(np.float32),
                                                  rng.standard_normal(64))
        self.est = numlstm.LSTMRegressor(**SETTINGS)

    def teardown(self, stores, n_chunks):
        guard = getattr(self, "guard", None)
        if guard is not None:
            guard.close()

    def _fit(self, X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(X, self.y)

    def peakmem_fit_out_of_core(self, stores, n_chunks):
        self._fit(self.X)

    def peakmem_fit_in_memory(self, stores, n_chunks):
        self._fit(self.X.compute())

    def time_fit_out_of_core(self, stores, n_chunks):
        self._fit(self.X)

    def track_data_set_size(self, stores, n_chunks):
        return self.X.nbytes / 2**20

    track_data_set_size.unit = "MiB"
