"""The training loop behind the estimators' ``fit`` and ``partial_fit``.

A call trains for up to ``max_iter`` epochs (one for ``partial_fit``) of
shuffled mini-batches. It stops early when the score it watches (the
validation score with ``early_stopping``, else the training loss) has not
improved by ``tol`` for ``patience(est, validating)`` epochs: ``n_iter_no_change``,
or with ``n_iter_no_change=None`` (the default) ``DEFAULT_PATIENCE`` epochs
of the validation score, and never on the training loss. On tens of
sequences the epoch loss of a recurrent network is far from monotone, and a
stop on it ends many fits at chance accuracy (see the defaults guide). The
loop works on the estimator's fitted attributes; the estimator owns the
data, the network, the loss and the scores.

Learning-rate schedules
-----------------------
``learning_rate_schedule="constant"`` keeps ``learning_rate``. "plateau"
divides the optimizer's rate by 5 each time the watched score has not
improved for half the patience. "cosine" sets the rate of each epoch of a
``fit`` call by ``cosine_learning_rate``: it falls from ``learning_rate``
towards 0 over ``max_iter`` epochs (SGDR without restarts, Loshchilov &
Hutter 2017), so that a large first rate ends as a small one. A
``partial_fit`` epoch trains at ``learning_rate`` under "cosine": an open
ended run has no last epoch to decay towards.

Validation
----------
With ``early_stopping``, ``validation_split`` holds out
``validation_fraction`` of the sequences, but never fewer than
``MIN_VALIDATION_SEQUENCES``: a score on a handful of sequences is noise, and
stopping on it restores a model from the first epochs. Below that, the loop
trains without a validation set, with a warning. When the best validation
epoch's training loss is more than twice the last epoch's, restoring it says
so in a warning.

Divergence
----------
A mini-batch whose loss is not finite, or is more than
``DIVERGENCE_FACTOR`` times the reference loss, stops training. The
reference is the smaller of the best epoch loss so far and the call's first
batch loss, and at least ``1e-3`` times that first loss, so that a loss that
is already tiny does not trip the check. The weights of the best epoch so far
(those a checkpoint holds) are then restored, with a ``ConvergenceWarning``
naming the epoch and the batch, and the optimizer starts afresh. If no epoch
of the call finished, the call raises ``ValueError`` and the estimator is as
it was before the call (the estimator restores it).

Checkpoints
-----------
With ``checkpoint_path``, every epoch ends with an atomic write of that file
(``numlstm.io.write_model``). ``numlstm.load`` reads it as the
estimator was at the best epoch so far. Beside that model the file holds the
training state: the current weights, the optimizer's state, the random
generators' states, the split into training and validation sequences, the
epoch counters and the stopping state. ``fit`` with a ``checkpoint_path``
that holds a checkpoint of the same fit (the same estimator class and
hyper-parameters, ``verbose``, ``warm_start``, ``checkpoint_path`` and,
except under the "cosine" schedule whose rates it sets, ``max_iter`` aside;
the same data; the same starting point) resumes
from it, and ends with exactly the weights of an uninterrupted run. A
checkpoint of another fit is replaced, with a warning. Never overwritten: a
file that is no numlstm model file (``fit`` and ``partial_fit`` alike), and
a checkpoint of this fit with more epochs than ``max_iter`` (both raise
``ValueError``). Without an int ``random_state`` a finished checkpoint is
replaced, with a warning: a new fit is then a new draw. ``partial_fit``
writes checkpoints but never resumes from one.
"""

import hashlib
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from numlstm import io
from numlstm.optim import clip_grad_norm

__all__ = ["DIVERGENCE_FACTOR", "DEFAULT_PATIENCE", "MIN_VALIDATION_SEQUENCES", "patience", "cosine_learning_rate",
           "ChunkedInputs", "TrainingData", "train", "batch_gradients", "shard_gradients", "validation_split",
           "target_rows"]

DIVERGENCE_FACTOR = 1e4
"""How many times the reference loss a mini-batch loss may reach before training counts as diverged."""

MIN_VALIDATION_SEQUENCES = 10
"""The fewest held-out sequences early stopping validates on."""

DEFAULT_PATIENCE = 10
"""Epochs without a better validation score before early stopping stops, with ``n_iter_no_change=None``."""

# Hyper-parameters that do not change what a fit computes epoch by epoch.
_NOT_FINGERPRINTED = ("max_iter", "verbose", "warm_start", "checkpoint_path")
# The fitted attributes the loop advances.
_PROGRESS = ("n_iter_", "loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_")
_TRAINING = "training/"  # prefix of the checkpoint arrays that are not part of the model


class ChunkedInputs:
    """The network's inputs from sequences read one chunk of samples at a time.

    Parameters
    ----------
    seqs : numlstm.data.ChunkedSequences
    scaled : callable
        Maps in-memory ``Sequences`` to the network's input array (the
        estimator's scaling and gap filling).
    """

    def __init__(self, seqs, scaled):
        self.seqs, self.scaled = seqs, scaled
        self.bounds = seqs.bounds

    def chunk(self, k):
        """The inputs of the samples ``bounds[k]:bounds[k + 1]``."""
        return self.scaled(self.seqs.load(k))

    def chunk_of(self, indices):
        """The chunk each sample index lies in."""
        return np.searchsorted(self.bounds, indices, side="right") - 1

    def predict(self, net, indices):
        """``net.predict`` on the samples ``indices`` (in increasing order), one chunk at a time."""
        chunks, lengths = self.chunk_of(indices), self.seqs.lengths
        outputs = []
        for k in np.unique(chunks):
            rows = indices[chunks == k]
            outputs.append(net.predict(self.chunk(k)[rows - self.bounds[k]], lengths[rows]))
        return np.concatenate(outputs)

    def token(self):
        """Dask's name for the sequences, a digest of them that computes nothing (for checkpoints)."""
        from dask.base import tokenize

        return tokenize(self.seqs.values)


@dataclass
class TrainingData:
    """Everything a fit trains on.

    Attributes
    ----------
    x : ndarray of shape (n_samples, n_timesteps, n_features) or ChunkedInputs
        Scaled sequences, zero past each length; or such sequences read one
        chunk at a time from a Dask-backed X.
    lengths : ndarray of shape (n_samples,)
    encoded : ndarray
        Targets as trained on (scaled values or class indices).
    raw : ndarray
        Targets as given, for the validation score.
    train : ndarray of int
        Indices of the training sequences.
    val : ndarray of int or None
        Indices of the validation sequences (``early_stopping``).
    observed : ndarray of shape (n_samples, n_timesteps) or None
        Per-step targets: True where the target is known (see
        ``numlstm.data.Targets``).
    sample_weight : ndarray of shape (n_samples,) or None
        A weight per sequence, shared by its per-step targets.
    class_weights : ndarray of shape (n_classes,) or None
        A training-loss weight per encoded class (``class_weight``).
    """

    x: np.ndarray
    lengths: np.ndarray
    encoded: np.ndarray
    raw: np.ndarray
    train: np.ndarray
    val: np.ndarray = None
    observed: np.ndarray = None
    sample_weight: np.ndarray = None
    class_weights: np.ndarray = None

    def batches(self, rng, batch_size):
        """Mini-batches ``(indices, x)`` of the training sequences, in an order drawn from ``rng``.

        In-memory sequences are shuffled all together. Chunked ones are
        shuffled chunk by chunk: the chunks in random order, the sequences of
        each chunk in random order, so that one chunk (and the rest of a
        mini-batch) is in memory at a time; a mini-batch may span two chunks.
        """
        if not isinstance(self.x, ChunkedInputs):
            order = rng.permutation(self.train)
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                yield batch, self.x[batch, : self.lengths[batch].max()]
            return
        chunks = self.x.chunk_of(self.train)
        held, held_x = np.empty(0, np.intp), None
        for k in rng.permutation(len(self.x.bounds) - 1):
            rows = rng.permutation(self.train[chunks == k])
            if not len(rows):
                continue
            x = self.x.chunk(k)[rows - self.x.bounds[k]]
            if held_x is not None:
                rows, x = np.concatenate([held, rows]), np.concatenate([held_x, x])
            n_full = len(rows) // batch_size * batch_size
            for start in range(0, n_full, batch_size):
                batch = rows[start : start + batch_size]
                yield batch, x[start : start + batch_size, : self.lengths[batch].max()]
            held, held_x = rows[n_full:], x[n_full:]
        if len(held):
            yield held, held_x[:, : self.lengths[held].max()]

    def predict(self, net, indices):
        """``net``'s outputs for the sequences ``indices``, and those indices in the outputs' order."""
        if isinstance(self.x, ChunkedInputs):
            indices = np.sort(indices)
            return self.x.predict(net, indices), indices
        return net.predict(self.x[indices], self.lengths[indices]), indices

    def targets(self, batch, per_step):
        """Encoded target rows of the sequences ``batch`` and their training weights (None: all alike)."""
        rows, weights = self.rows(self.encoded, batch, per_step)
        if self.class_weights is not None:
            by_class = self.class_weights[rows]
            weights = by_class if weights is None else weights * by_class
        return rows, weights

    def rows(self, values, indices, per_step):
        """Target rows of the sequences ``indices`` and their weights (None when all count alike).

        A row is a sequence, or a valid step of one when ``per_step``; an
        unknown per-step target gets weight 0.
        """
        lengths = self.lengths[indices]
        rows = target_rows(values, indices, lengths, per_step)
        weights = None if self.sample_weight is None else self.sample_weight[indices]
        if per_step:
            weights = None if weights is None else np.repeat(weights, lengths)
            known = None if self.observed is None else target_rows(self.observed, indices, lengths, per_step)
            if known is not None and not known.all():
                weights = known.astype(np.float64) if weights is None else weights * known
        return rows, weights


class _Diverged(Exception):
    def __init__(self, epoch, batch, loss):
        super().__init__(epoch, batch, loss)
        self.epoch, self.batch, self.loss = epoch, batch, loss

    def __str__(self):
        return (f"training diverged (loss {self.loss:.4g}) in epoch {self.epoch}, "
                f"mini-batch {self.batch}")


def validation_split(indices, fraction, rng, stratify, name, sample_weight=None):
    """Training and validation indices for early stopping, or ``(indices, None)`` if too few.

    Parameters
    ----------
    indices : ndarray of int
    fraction : float
        ``validation_fraction``.
    rng : numpy.random.RandomState
    stratify : ndarray or None
        Class labels to stratify by.
    name : str
        The estimator's name, for messages.
    sample_weight : ndarray or None
        Both sides of the split must keep some positive weight.
    """
    n_val = math.ceil(fraction * len(indices))
    if n_val < MIN_VALIDATION_SEQUENCES:
        warnings.warn(
            f"{name}: early stopping would validate on {n_val} sequences (validation_fraction={fraction} "
            f"of {len(indices)}), fewer than {MIN_VALIDATION_SEQUENCES}; it trains without a validation "
            "set. Raise validation_fraction or pass more sequences to validate",
            UserWarning,
            stacklevel=4,
        )
        return indices, None
    try:
        train, val = train_test_split(indices, test_size=fraction, random_state=rng, stratify=stratify)
    except ValueError as exc:
        raise ValueError(
            f"validation_fraction={fraction} cannot hold out a stratified validation set from "
            f"{len(indices)} sequences ({exc}); raise validation_fraction, or set early_stopping=False"
        ) from None
    if sample_weight is not None and not (sample_weight[train].sum() > 0 and sample_weight[val].sum() > 0):
        side = "validation" if sample_weight[train].sum() > 0 else "training"
        raise ValueError(
            f"with validation_fraction={fraction}, every {side} sequence has sample_weight 0; give more "
            "sequences a positive weight, or set early_stopping=False"
        )
    return train, val


def batch_gradients(est, data, batch, x):
    """Loss, weight and parameter gradients of one mini-batch, on this process.

    Parameters
    ----------
    est : numlstm.estimators._SequenceEstimator
    data : TrainingData
    batch : ndarray of int
        The mini-batch's sequences.
    x : ndarray of shape (len(batch), n_timesteps, n_features)
        Their inputs.

    Returns
    -------
    loss : float
        The weighted mean loss over the batch's target rows.
    weight : float
        The rows' total weight (their count when all weigh alike).
    grads : dict of ndarray
        Gradients of ``loss``, keyed like ``est.network_.named_parameters()``.
    """
    rows, weights = data.targets(batch, est.network_.per_step)
    return shard_gradients(est, x, data.lengths[batch], rows, weights)


def shard_gradients(est, x, lengths, rows, weights):
    """``batch_gradients`` of sequences ``x`` with their ``lengths``, target ``rows`` and row ``weights``."""
    net = est.network_
    outputs, cache = net.forward(x, lengths)
    loss, grad = est._loss(outputs, rows, weights)
    weight = len(outputs) if weights is None else float(weights.sum())
    return loss, weight, net.backward(grad, cache, named=True)


def patience(est, validating):
    """Epochs without improvement that stop training, or None: train for ``max_iter`` epochs.

    ``est.n_iter_no_change`` if it is an int; for None, ``DEFAULT_PATIENCE``
    when a validation score is watched (``validating``), else None.
    """
    if est.n_iter_no_change is not None:
        return est.n_iter_no_change
    return DEFAULT_PATIENCE if validating else None


def cosine_learning_rate(learning_rate, epoch, n_epochs):
    """The learning rate of epoch ``epoch`` (0 for the first) of ``n_epochs`` under a cosine decay.

    Parameters
    ----------
    learning_rate : float
        The rate of the first epoch.
    epoch : int
        Epochs finished before this one, ``0 <= epoch < n_epochs``.
    n_epochs : int
        The epochs the rate decays over (``max_iter``).

    Returns
    -------
    float

    Notes
    -----
    .. math:: \\eta_t = \\eta \\, \\tfrac{1}{2} \\left(1 + \\cos \\frac{\\pi t}{T}\\right)

    for epoch :math:`t` of :math:`T`: the schedule of SGDR (Loshchilov &
    Hutter, "SGDR: stochastic gradient descent with warm restarts", ICLR
    2017) with a single cycle and a floor of 0. The rate is set once per
    epoch; the last epoch trains at :math:`\\eta (1 - \\cos(\\pi / T)) / 2 > 0`.
    """
    return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / n_epochs))


def train(est, data, *, partial, gradients=batch_gradients):
    """Run one ``fit`` (``partial=False``) or ``partial_fit`` call's epochs on ``est``.

    Parameters
    ----------
    est : numlstm.estimators._SequenceEstimator
        With its network, optimizer and generator set up for the call.
    data : TrainingData
    partial : bool
    gradients : callable, default=batch_gradients
        ``gradients(est, data, batch, x)`` gives a mini-batch's loss, weight
        and gradients, as ``batch_gradients`` does (``numlstm.distributed``
        spreads it over workers).

    Raises
    ------
    ValueError
        If training diverged before any epoch of the call finished. The
        caller restores the estimator.
    """
    _Loop(est, data, partial, gradients).run()


class _Loop:
    """The state of one call's training: what a checkpoint saves beside the estimator's."""

    def __init__(self, est, data, partial, gradients):
        self.est, self.data, self.partial, self.gradients = est, data, partial, gradients
        self.epochs = 0  # epochs finished in this call
        self.no_improvement = 0
        self.converged = False
        self.best = None  # (weights, progress attributes) at the best epoch of the call
        self.first_loss = None  # the call's first mini-batch loss
        path = est.checkpoint_path
        self.path = None if path is None else os.fspath(path)
        self.fingerprint = None if self.path is None else _fingerprint(est, data)

    def run(self):
        est, val = self.est, self.data.val
        n_epochs = 1 if self.partial else est.max_iter
        if self.path is not None:
            existing = self._existing_checkpoint()
            if existing is not None and not self.partial:
                self._resume(*existing, n_epochs)
        bar = _progress_bar(est.verbose, n_epochs, type(est).__name__, self.epochs)
        interrupted = diverged = False
        try:
            while self.epochs < n_epochs and not self.converged:
                postfix = self._epoch()
                if self.path is not None:
                    self._write_checkpoint()
                if bar is not None:
                    bar.set_postfix(postfix)
                    bar.update()
        except KeyboardInterrupt:
            interrupted = True
            warnings.warn(
                f"{type(est).__name__}: training interrupted after {est.n_iter_} epochs; "
                + ("the best validation weights are kept" if val is not None else "the latest weights are kept"),
                UserWarning,
                stacklevel=5,
            )
        except _Diverged as exc:
            diverged = True
            self._recover(exc)
        finally:
            if bar is not None:
                bar.close()
        if val is not None and self.best is not None and not diverged:
            self._restore_best()
        planned = patience(est, val is not None) is None  # max_iter epochs, as asked
        if not (self.partial or self.converged or interrupted or diverged or planned):
            warnings.warn(
                f"{type(est).__name__}: maximum iterations ({n_epochs}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=5,
            )

    def _restore_best(self):
        """Load the best validation epoch's weights; warn if its training loss was far above the last."""
        est = self.est
        weights, progress = self.best
        est.network_.load_state_dict(weights)
        best_epoch, last_loss = progress["n_iter_"], est.loss_curve_[-1]
        best_loss = progress["loss_curve_"][-1]
        if best_loss > 2 * last_loss:
            warnings.warn(
                f"{type(est).__name__}: restored the weights of epoch {best_epoch}, the best on the "
                f"{len(self.data.val)} validation sequences (score {progress['best_validation_score_']:.4g}); "
                f"their training loss {best_loss:.4g} is {best_loss / last_loss:.1f} times the last epoch's "
                f"({est.n_iter_}, {last_loss:.4g})",
                UserWarning,
                stacklevel=6,
            )

    # ---- one epoch ------------------------------------------------------------------------

    def _epoch(self):
        """Train one epoch, then update the curves and the stopping state; returns the bar's postfix."""
        est, data = self.est, self.data
        if est.learning_rate_schedule == "cosine" and not self.partial:
            est._optimizer.learning_rate = cosine_learning_rate(est.learning_rate, self.epochs, est.max_iter)
        loss = self._run_batches()
        est.n_iter_ += 1
        est.loss_curve_.append(loss)
        postfix = {"loss": f"{loss:.4g}"}
        if data.val is None:
            improved, new_best = loss < est.best_loss_ - est.tol, loss < est.best_loss_
        else:
            outputs, indices = data.predict(est.network_, data.val)
            score = est._score(outputs, *data.rows(data.raw, indices, est.network_.per_step))
            est.validation_scores_.append(score)
            improved = score > est.best_validation_score_ + est.tol
            new_best = score > est.best_validation_score_
            if new_best:
                est.best_validation_score_ = score
            postfix["val_score"] = f"{score:.4g}"
        est.best_loss_ = min(est.best_loss_, loss)
        self.no_improvement = 0 if improved else self.no_improvement + 1
        stop_after = patience(est, data.val is not None)
        step_after = max(1, (stop_after or DEFAULT_PATIENCE) // 2)
        if est.learning_rate_schedule == "plateau" and self.no_improvement and not self.no_improvement % step_after:
            est._optimizer.learning_rate /= 5
        if new_best:  # host copies, whatever the device
            self.best = (est.network_.state_dict(), _progress(est))
        self.epochs += 1
        if stop_after is not None and self.no_improvement >= stop_after and not self.partial:
            self.converged = True
        return postfix

    def _run_batches(self):
        """One pass over the training sequences in seeded random order; returns the mean loss per target row."""
        est, data = self.est, self.data
        net, total, count = est.network_, 0.0, 0
        net.train()
        try:
            for batch_number, (batch, x) in enumerate(data.batches(est._rng, est.batch_size), 1):
                loss, weight, grads = self.gradients(est, data, batch, x)
                self._check_loss(loss, batch_number)
                clip_grad_norm(grads, est.clip_norm)
                est._optimizer.update_params(net.named_parameters(), grads)
                total += loss * weight
                count += weight
        finally:
            net.eval()
        if count == 0:
            raise ValueError("no training target has a positive weight (sample_weight, class_weight or "
                             "unknown per-step targets)")
        return float(total / count)

    def _check_loss(self, loss, batch_number):
        """Raise ``_Diverged`` for a loss that is not finite or has grown by orders of magnitude."""
        if self.first_loss is None and np.isfinite(loss):
            self.first_loss = float(loss)
        epoch = self.est.n_iter_ + 1
        if not np.isfinite(loss):
            raise _Diverged(epoch, batch_number, loss)
        reference = max(min(self.est.best_loss_, self.first_loss), 1e-3 * self.first_loss)
        if reference > 0 and loss > DIVERGENCE_FACTOR * reference:
            raise _Diverged(epoch, batch_number, loss)

    def _recover(self, exc):
        """After divergence: the best weights so far and a fresh optimizer, or ValueError."""
        est = self.est
        advice = "lower learning_rate " + ("or set clip_norm" if est.clip_norm is None else "or clip_norm")
        if self.best is None:
            raise ValueError(
                f"{exc}, before any epoch of this call finished; the estimator is left as it "
                f"was before the call. To train, {advice}"
            ) from None
        est.network_.load_state_dict(self.best[0])
        est._optimizer = est._make_optimizer()
        warnings.warn(
            f"{type(est).__name__}: {exc}; training stopped and the weights of epoch "
            f"{self.best[1]['n_iter_']}, the best so far, were restored ({advice})",
            ConvergenceWarning,
            stacklevel=5,
        )

    # ---- checkpoints ----------------------------------------------------------------------

    def _write_checkpoint(self):
        """Write the estimator at its best epoch so far, and the training state, to ``self.path``."""
        est = self.est
        weights, progress = self.best if self.best is not None else (est.network_.state_dict(), _progress(est))
        metadata, arrays = io.estimator_payload(est, weights=weights, progress=progress)
        scalars, buffers = est._optimizer.state_dict()
        rng = est._rng.get_state(legacy=False)
        metadata["training"] = {
            "fingerprint": self.fingerprint,
            "epochs": self.epochs,
            "no_improvement": self.no_improvement,
            "converged": self.converged,
            "has_best": self.best is not None,
            "first_loss": self.first_loss,
            "progress": io.jsonable(_progress(est)),
            "optimizer": scalars,
            "rng": {key: value for key, value in rng.items() if key != "state"} | {"pos": rng["state"]["pos"]},
            "dropout_rng": est.network_.generator_state(),
            "seed": est.network_.config["seed"],
        }
        arrays[_TRAINING + "rng_key"] = rng["state"]["key"]
        arrays[_TRAINING + "train"] = self.data.train
        if self.data.val is not None:
            arrays[_TRAINING + "val"] = self.data.val
        arrays.update({f"{_TRAINING}weights/{name}": value for name, value in est.network_.state_dict().items()})
        for name, values in buffers.items():
            arrays.update({f"{_TRAINING}optimizer/{name}/{i}": value for i, value in enumerate(values)})
        io.write_model(self.path, metadata, arrays)

    def _existing_checkpoint(self):
        """``(metadata, arrays)`` of the model file at ``self.path``, None if there is none.

        ValueError if something else is there: training never overwrites it.
        """
        if not os.path.lexists(self.path):
            return None
        try:
            return io.read_model(self.path)
        except (ValueError, OSError) as exc:
            raise ValueError(
                f"checkpoint_path={self.path!r} names a file that is not a numlstm checkpoint, which "
                f"training will not overwrite; remove it or choose another path ({exc})"
            ) from None

    def _resume(self, metadata, arrays, n_epochs):
        """Continue from the checkpoint ``metadata``, ``arrays`` if it is one of this fit."""
        training = metadata.get("training")
        ours = isinstance(training, dict) and training.get("fingerprint") == self.fingerprint
        epochs = training.get("epochs") if ours else None
        if ours and isinstance(epochs, int) and epochs > n_epochs:
            raise ValueError(
                f"checkpoint_path={self.path!r} holds this fit after {epochs} epochs, more than "
                f"max_iter={n_epochs}; raise max_iter to resume it, or choose another path"
            )
        finished = ours and (training.get("converged") is True or epochs == n_epochs)
        if ours and finished and not isinstance(self.est.random_state, numbers.Integral):
            warnings.warn(
                f"checkpoint_path={self.path!r} holds a finished fit, and without an int random_state "
                "a new fit is a new draw: this fit starts afresh and replaces it",
                UserWarning,
                stacklevel=5,
            )
            return
        if not ours or not isinstance(epochs, int):
            warnings.warn(
                f"checkpoint_path={self.path!r} holds a model or checkpoint of another fit (other data, "
                "hyper-parameters or starting point); this fit starts afresh and replaces it",
                UserWarning,
                stacklevel=5,
            )
            return
        try:
            self._restore(metadata, arrays, training)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"checkpoint_path={self.path!r} holds a damaged checkpoint ({exc})") from None

    def _restore(self, metadata, arrays, training):
        est, data, net = self.est, self.data, self.est.network_
        train = _checked_indices(arrays[_TRAINING + "train"], len(data.lengths), "train")
        val = arrays.get(_TRAINING + "val")
        if (val is None) != (data.val is None):
            raise ValueError("the validation split does not match")
        if val is not None:
            val = _checked_indices(val, len(data.lengths), "val")
            if np.intersect1d(train, val).size:
                raise ValueError("training and validation sequences overlap")
        weights = {name[len(_TRAINING + "weights/"):]: value for name, value in arrays.items()
                   if name.startswith(_TRAINING + "weights/")}
        n_buffers = len(net.parameters())
        buffers = {name: [arrays[f"{_TRAINING}optimizer/{name}/{i}"] for i in range(n_buffers)]
                   for name in est._optimizer.state_dict()[1]}
        progress = _checked_progress(training["progress"])
        best = None
        if training["has_best"] is True:
            saved = metadata["attributes"]
            best_weights = {name[len("network_/"):]: value for name, value in arrays.items()
                            if name.startswith("network_/")}
            best = (best_weights, _checked_progress({name: saved[name]["value"] for name in _PROGRESS}))
        counters = [training[key] for key in ("epochs", "no_improvement")]
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counters):
            raise ValueError(f"invalid epoch counters {counters}")
        first_loss = training["first_loss"]
        if first_loss is not None and not isinstance(first_loss, float):
            raise ValueError(f"invalid first loss {first_loss!r}")
        rng = training["rng"]
        state = {"bit_generator": rng["bit_generator"],
                 "state": {"key": arrays[_TRAINING + "rng_key"], "pos": rng["pos"]},
                 "has_gauss": rng["has_gauss"], "gauss": rng["gauss"]}
        # every check passed: nothing changes before this point
        if best is not None:
            net.load_state_dict(best[0])  # checks the best weights too
        net.load_state_dict(weights)
        est._optimizer.load_state_dict(training["optimizer"], buffers)
        net.set_generator_state(training["dropout_rng"])
        est._rng.set_state(state)
        net.config["seed"] = int(training["seed"])
        for name, value in progress.items():
            setattr(est, name, value)
        data.train, data.val = train, val
        self.epochs, self.no_improvement = counters
        self.converged = training["converged"] is True
        self.best, self.first_loss = best, first_loss


def _progress(est):
    """Copies of the fitted attributes the loop advances."""
    return {name: (list(value) if isinstance(value, list) else value)
            for name, value in ((name, getattr(est, name)) for name in _PROGRESS)}


def _checked_progress(progress):
    """Progress attributes read back from a checkpoint, type-checked."""
    if not isinstance(progress, dict) or set(progress) != set(_PROGRESS):
        raise ValueError("the saved progress attributes are incomplete")
    n_iter, losses, scores = progress["n_iter_"], progress["loss_curve_"], progress["validation_scores_"]
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or not isinstance(losses, list):
        raise ValueError("invalid n_iter_ or loss_curve_")
    for values in (losses, scores or []):
        if not all(isinstance(v, float) for v in values):
            raise ValueError("the saved curves must hold floats")
    if not isinstance(progress["best_loss_"], float):
        raise ValueError("invalid best_loss_")
    if (scores is None) != (progress["best_validation_score_"] is None):
        raise ValueError("invalid validation scores")
    return {name: (list(value) if isinstance(value, list) else value) for name, value in progress.items()}


def _checked_indices(values, n, name):
    values = np.asarray(values)
    if values.ndim != 1 or values.dtype.kind not in "iu" or len(np.unique(values)) != len(values) \
            or (values.size and not 0 <= values.min() <= values.max() < n):
        raise ValueError(f"invalid {name} indices")
    return values.astype(np.intp)


def _fingerprint(est, data):
    """A digest of what decides the fit's course: class, hyper-parameters, data and starting point.

    ``max_iter`` counts only under the "cosine" schedule. The split into
    training and validation sequences and a fresh fit's initial weights are
    left out: a resumed fit takes them from the checkpoint, so that a fit
    without an int ``random_state`` resumes too.
    """
    digest = hashlib.sha256()
    params = {k: v for k, v in est.get_params().items() if k not in _NOT_FINGERPRINTED}
    if est.learning_rate_schedule == "cosine":  # max_iter sets each epoch's learning rate
        params["max_iter"] = est.max_iter
    params["random_state"] = params["random_state"] if isinstance(params["random_state"], int) else None
    digest.update(json.dumps([type(est).__name__, io.jsonable(params), est.n_iter_],
                             default=repr).encode())
    if isinstance(data.x, ChunkedInputs):  # the raw sequences' name and the scaling stand for the inputs
        digest.update(data.x.token().encode())
        scaler = est._x_scaler
        arrays = [data.lengths, data.encoded] + ([] if scaler is None else [scaler.mean, scaler.scale])
    else:
        arrays = [data.x, data.lengths, data.encoded]
    arrays += [a for a in (data.observed, data.sample_weight, data.class_weights) if a is not None]
    if est.n_iter_:  # a warm start: the weights it starts from
        arrays += list(est.network_.state_dict().values())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.view(np.uint8).reshape(-1) if a.size else b"")
    return digest.hexdigest()


def target_rows(values, indices, lengths, per_step):
    """Target rows of the sequences ``indices``: one per sequence, or one per valid step."""
    values = values[indices]
    if not per_step:
        return values
    steps = lengths.max()
    return values[:, :steps][np.arange(steps) < lengths[:, None]]


def _progress_bar(verbose, total, desc, initial):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise ImportError("verbose=True shows a tqdm progress bar: pip install tqdm") from exc
    return tqdm(total=total, desc=desc, unit="epoch", initial=initial)
