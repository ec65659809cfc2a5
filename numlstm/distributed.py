"""Data-parallel training on a Dask cluster.

``fit`` trains an estimator as its own ``fit`` does, with one change: each
mini-batch is cut into shards, one per worker, every worker computes the
loss and gradients of its shard with the current weights, and the driver
averages them (weighted by each shard's share of the batch's target rows)
into the batch's gradient, which updates the one model. Batches, their
order, the optimizer, early stopping and checkpoints are the estimator's
own, so the result equals ``estimator.fit(X, y)`` up to the rounding of the
sums (dropout aside: each worker draws its own dropout masks).

When it pays off: a shard's work must outweigh a round trip to the workers
(the weights go out, the gradients come back, for every mini-batch), so
large mini-batches of long sequences and models of a few hundred units
gain, and small ones lose (see the scaling guide for measured times).
"""

import threading

import numba
import numpy as np

from numlstm.training import shard_gradients

__all__ = ["fit"]

_WORKER_LOCK = threading.Lock()  # one shard at a time per worker process: its network is shared


def fit(estimator, X, y, *, client, sample_weight=None, n_shards=None):
    """Fit ``estimator`` on ``X, y`` with each mini-batch's gradient computed across ``client``'s workers.

    Parameters
    ----------
    estimator : numlstm.LSTMRegressor or numlstm.LSTMClassifier
        Fitted in place, as by ``estimator.fit``; its hyper-parameters
        apply (``warm_start`` included).
    X, y, sample_weight
        As for ``estimator.fit``. A Dask-backed X is read chunk by chunk on
        this process, as ``estimator.fit`` reads it.
    client : dask.distributed.Client
        The cluster whose workers compute the shards.
    n_shards : int or None, default=None
        Shards per mini-batch; by default one per worker.

    Returns
    -------
    estimator
    """
    if estimator.device != "cpu":
        raise ValueError(f"numlstm.distributed.fit trains on the workers' CPUs; got device={estimator.device!r}, "
                         "set device='cpu'")
    workers = client.scheduler_info()["workers"]
    if not workers:
        raise ValueError("client has no workers")
    n_shards = len(workers) if n_shards is None else n_shards
    if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) or n_shards < 1:
        raise ValueError(f"n_shards must be a positive int or None, got {n_shards!r}")
    return estimator._fit(X, y, partial=False, sample_weight=sample_weight,
                          gradients=_ShardedGradients(client, int(n_shards)))


class _ShardedGradients:
    """``numlstm.training.batch_gradients``, computed shard by shard on a cluster's workers."""

    def __init__(self, client, n_shards):
        self.client, self.n_shards = client, n_shards
        self.remote = None  # the estimator as the workers hold it

    def __call__(self, est, data, batch, x):
        client = self.client
        if self.remote is None:  # first batch: ship the estimator (loss, network) once
            self.remote = client.scatter(est, broadcast=True, hash=False)
        # in a list: a dict would be scattered value by value, under its keys
        [weights] = client.scatter([est.network_.state_dict()], broadcast=True, hash=False)
        futures = []
        for shard in np.array_split(np.arange(len(batch)), min(self.n_shards, len(batch))):
            rows, row_weights = data.targets(batch[shard], est.network_.per_step)
            lengths = data.lengths[batch[shard]]
            futures.append(client.submit(_remote_gradients, self.remote, weights, x[shard, : lengths.max()],
                                         lengths, rows, row_weights, pure=False))
        results = client.gather(futures)
        total = sum(weight for _, weight, _ in results)
        if total == 0:  # as batch_gradients: a batch of no weight has loss 0 and zero gradients
            return 0.0, 0.0, results[0][2]
        results = [result for result in results if result[1] > 0]  # a shard of zero weight has no say
        loss = sum(loss * weight for loss, weight, _ in results) / total
        return loss, total, _weighted_sum([grads for _, _, grads in results],
                                          [weight / total for _, weight, _ in results])


def _weighted_sum(gradients, shares):
    """``sum(share * grads)`` of gradients given as dicts of arrays, by name."""
    return {name: sum(grads[name] * share for grads, share in zip(gradients, shares)) for name in gradients[0]}


def _remote_gradients(est, weights, x, lengths, rows, row_weights):
    """On a worker: ``shard_gradients`` of one shard with the driver's current ``weights``.

    numlstm's kernels run on as many threads as the worker has (Numba's
    thread count is per calling thread), so that the workers of one machine
    share its cores instead of each taking them all.
    """
    from distributed import get_worker

    numba.set_num_threads(max(1, min(get_worker().state.nthreads, numba.config.NUMBA_NUM_THREADS)))
    with _WORKER_LOCK:
        net = est.network_
        net.load_state_dict(weights)
        net.train()
        try:
            return shard_gradients(est, x, lengths, rows, row_weights)
        finally:
            net.eval()
