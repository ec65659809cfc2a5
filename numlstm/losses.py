"""Training losses, each returning the loss and its gradient with respect to the predictions.

Every loss takes 2-D rows, one per target: a sequence for sequence-to-one
tasks, a valid time step for per-step tasks, so that padding never enters,
and optional row weights (sample weights, class weights, unknown targets).
"""

import numpy as np

__all__ = ["log_softmax", "softmax", "squared_error", "absolute_error", "huber", "pinball", "cross_entropy"]


def log_softmax(logits):
    """Numerically stable ``log(softmax(logits))`` along the last axis.

    Subtracting the row maximum first keeps ``exp`` from overflowing, and the
    result is exact for very large or very negative logits.

    Parameters
    ----------
    logits : ndarray of shape (..., n_classes)

    Returns
    -------
    ndarray of the same shape and dtype
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits):
    """Class probabilities ``exp(log_softmax(logits))``; rows sum to 1."""
    return np.exp(log_softmax(logits))


def _row_shares(weights, n_rows):
    """Each row's share of the loss: ``weights / weights.sum()`` (float64), or None for equal shares."""
    if weights is None:
        return None
    weights = np.asarray(weights, np.float64)
    if weights.shape != (n_rows,):
        raise ValueError(f"weights must have shape ({n_rows},), got {weights.shape}")
    total = weights.sum()
    return weights / total if total > 0 else np.zeros_like(weights)


def _mean_over_rows(per_entry, grad_per_entry, weights, dtype):
    """Loss and gradient of the mean of ``per_entry`` over each row's entries, then over rows.

    Without ``weights`` that is the mean over all entries; with them, a
    weighted mean over rows (a weight of 2 counts a row twice).
    """
    n_rows = len(per_entry)
    per_row_entries = per_entry.size // max(n_rows, 1)
    shares = _row_shares(weights, n_rows)
    if shares is None:
        return float(np.mean(per_entry)), (grad_per_entry / per_entry.size).astype(dtype, copy=False)
    shares = shares.reshape((n_rows,) + (1,) * (per_entry.ndim - 1))
    loss = float((shares * per_entry).sum() / per_row_entries)
    return loss, (shares / per_row_entries * grad_per_entry).astype(dtype, copy=False)


def squared_error(pred, target, weights=None):
    """Mean squared error over all entries, optionally a weighted mean over rows.

    Parameters
    ----------
    pred, target : ndarray of shape (n_rows, n_outputs)
    weights : ndarray of shape (n_rows,) or None, default=None
        Non-negative row weights: the loss is ``sum(w_i * mean_j(d_ij ** 2)) /
        sum(w)``, so a weight of 2 counts a row twice. All zero gives a loss
        and gradient of 0. The other losses take them alike.

    Returns
    -------
    loss : float
        ``mean((pred - target) ** 2)`` without weights.
    grad : ndarray of shape (n_rows, n_outputs)
        ``d loss / d pred``, ``2 (pred - target) / pred.size`` without
        weights, in the dtype of ``pred``.
    """
    diff = pred - target
    return _mean_over_rows(diff * diff, 2 * diff, weights, pred.dtype)


def absolute_error(pred, target, weights=None):
    """Mean absolute error ``mean(|pred - target|)``; its gradient is the sign (0 at a tie).

    Parameters and returns as in ``squared_error``. The median minimizes it.
    """
    diff = pred - target
    return _mean_over_rows(np.abs(diff), np.sign(diff), weights, pred.dtype)


def huber(pred, target, weights=None, delta=1.0):
    """Mean Huber loss: ``d ** 2 / 2`` for ``|d| <= delta``, ``delta * (|d| - delta / 2)`` beyond.

    Quadratic near the target and linear far from it (Huber 1964), so that
    outliers pull less than under the squared error. Parameters and returns
    as in ``squared_error``; ``delta`` is in the units of ``pred``.
    """
    diff = pred - target
    small = np.abs(diff) <= delta
    per_entry = np.where(small, 0.5 * diff * diff, delta * (np.abs(diff) - 0.5 * delta))
    return _mean_over_rows(per_entry, np.clip(diff, -delta, delta), weights, pred.dtype)


def pinball(pred, target, quantiles, weights=None):
    """Mean quantile (pinball) loss of several quantiles at once (Koenker & Bassett 1978).

    For quantile ``q`` and residual ``r = target - pred`` the loss is
    ``max(q * r, (q - 1) * r)``; its minimizer is the ``q``-quantile of the
    target, so one network learns an interval.

    Parameters
    ----------
    pred : ndarray of shape (n_rows, n_outputs * n_quantiles)
        Output ``j * n_quantiles + k`` predicts quantile ``k`` of target ``j``.
    target : ndarray of shape (n_rows, n_outputs)
    quantiles : sequence of float in (0, 1)
    weights : ndarray of shape (n_rows,) or None, default=None
        As in ``squared_error``.

    Returns
    -------
    loss : float
    grad : ndarray of the shape of ``pred``
    """
    q = np.asarray(quantiles, np.float64)
    residual = target[:, :, None] - pred.reshape(len(pred), -1, len(q))
    per_entry = np.maximum(q * residual, (q - 1) * residual)
    grad = np.where(residual > 0, -q, 1 - q)
    loss, grad = _mean_over_rows(per_entry, grad, weights, pred.dtype)
    return loss, grad.reshape(pred.shape)


def cross_entropy(logits, labels, weights=None):
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``.

    Parameters
    ----------
    logits : ndarray of shape (n_rows, n_classes)
    labels : ndarray of shape (n_rows,), int
        Class indices in ``[0, n_classes)``.
    weights : ndarray of shape (n_rows,) or None, default=None
        Non-negative row weights, as in ``squared_error``.

    Returns
    -------
    loss : float
        ``-mean(log_softmax(logits)[i, labels[i]])`` without weights.
    grad : ndarray of shape (n_rows, n_classes)
        ``(softmax(logits) - onehot(labels)) / n_rows`` without weights, in
        the dtype of ``logits``.
    """
    logp = log_softmax(logits)
    rows = np.arange(len(labels))
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    shares = _row_shares(weights, len(labels))
    if shares is None:
        grad /= len(labels)
        return float(-logp[rows, labels].mean()), grad
    grad *= shares[:, None].astype(grad.dtype)
    return float(-(shares @ logp[rows, labels])), grad
