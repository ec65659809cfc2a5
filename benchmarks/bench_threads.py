"""Concurrent ``predict`` calls on one fitted estimator, as a Dask threaded scheduler makes them.

Sixteen predicts, each of ``batch`` sequences (50 steps, 8 features), on the
regressor of ``bench_estimators`` (hidden_size 64), run one after the other
(``callers=1``) or shared out among ``callers`` threads. Threads pay when the
threaded rows take less time than the serial one.

``DaskPredict`` does the same through Dask: one lazy predict on the sixteen
inputs as chunks of a DataArray, computed by the synchronous scheduler or by
the threaded one (a thread per core).

Run as a script for medians of interleaved samples of every variant and the
speed-up over serial calls; it times whichever numlstm its Python imports:

    python benchmarks/bench_threads.py [--repeats 9]
"""

import argparse
import functools
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _common as C  # noqa: E402
else:
    from . import _common as C

N_PREDICTS = 16
CALLERS = (1, 2, 4)
BATCHES = (4, 64)


def _fitted(batch):
    """A fitted regressor and the ``N_PREDICTS`` inputs of ``batch`` sequences each."""
    X, y = C.estimator_data("regressor")
    est = C.make_estimator("regressor", "lstm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:128], y[:128])
    inputs = [X[k * batch % len(X):][:batch] for k in range(N_PREDICTS)]
    return est, inputs


def _lazy(inputs, batch):
    """The inputs as one Dask-backed DataArray, a chunk of ``batch`` sequences each."""
    import xarray as xr

    return xr.DataArray(np.concatenate(inputs), dims=("sample", "time", "feature")).chunk({"sample": batch})


def _dask_predict(est, lazy, scheduler):
    return est.predict(lazy).compute(scheduler=scheduler)


def _predicts(est, inputs, pool):
    """Every input's predict, in the calling thread (``pool`` None) or spread over ``pool``."""
    if pool is None:
        return [est.predict(x) for x in inputs]
    return list(pool.map(est.predict, inputs))


class ConcurrentPredict:
    params = (list(CALLERS), list(BATCHES))
    param_names = ["callers", "batch"]
    timeout = 300

    def setup(self, callers, batch):
        C.require()
        self.guard = C.ThreadGuard()
        self.est, self.inputs = _fitted(batch)
        self.pool = ThreadPoolExecutor(callers) if callers > 1 else None
        _predicts(self.est, self.inputs, self.pool)  # compile / load kernels, start the threads

    def teardown(self, callers, batch):
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown()
        self.guard.close()

    def time_predicts(self, callers, batch):
        _predicts(self.est, self.inputs, self.pool)


class DaskPredict:
    params = (["synchronous", "threads"], list(BATCHES))
    param_names = ["scheduler", "batch"]
    timeout = 300

    def setup(self, scheduler, batch):
        C.require("dask", "xarray")
        self.guard = C.ThreadGuard()
        self.est, inputs = _fitted(batch)
        self.lazy = _lazy(inputs, batch)
        self.time_predict(scheduler, batch)  # compile / load kernels, start the threads

    def teardown(self, scheduler, batch):
        self.guard.close()

    def time_predict(self, scheduler, batch):
        _dask_predict(self.est, self.lazy, scheduler)


def _measure(batch, pools, args):
    """Print the medians for ``batch``: serial against threaded predicts, and through Dask."""
    est, inputs = _fitted(batch)
    load = C.ForeignLoad().start()
    fns = {n: functools.partial(_predicts, est, inputs, pools.get(n)) for n in CALLERS}
    times = C.measure_alternating(fns, repeats=args.repeats, min_time=args.min_time)
    for n in CALLERS:
        print(f"batch {batch:3d}, {n} caller{'s' if n > 1 else ' '}: "
              f"{times[n] * 1e3:8.2f} ms  serial/this {times[1] / times[n]:.2f}")
    lazy = _lazy(inputs, batch)
    fns = {s: functools.partial(_dask_predict, est, lazy, s) for s in DaskPredict.params[0]}
    times = C.measure_alternating(fns, repeats=args.repeats, min_time=args.min_time)
    print(f"batch {batch:3d}, dask synchronous {times['synchronous'] * 1e3:8.2f} ms, threads "
          f"{times['threads'] * 1e3:8.2f} ms  serial/this {times['synchronous'] / times['threads']:.2f}")
    foreign = load.stop()
    if foreign is not None:
        print(f"  (other processes kept {foreign:.2f} cores busy)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="samples of each variant")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per sample")
    args = parser.parse_args()
    numlstm = C.import_numlstm()
    print(f"numlstm from {os.path.dirname(numlstm.__file__)}, {C.THREADS} threads, "
          f"{N_PREDICTS} predicts per row, median of {args.repeats} interleaved samples")
    pools = {n: ThreadPoolExecutor(n) for n in CALLERS if n > 1}
    with C.limited_threads():
        for batch in BATCHES:
            _measure(batch, pools, args)
    for pool in pools.values():
        pool.shutdown()


if __name__ == "__main__":
    main()
