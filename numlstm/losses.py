"""Training losses, each returning the loss and its gradient with respect to the predictions.

Both losses take 2-D rows, one per target: a sequence for sequence-to-one
tasks, a valid time step for per-step tasks, so that padding never enters.
"""

import numpy as np

__all__ = ["log_softmax", "softmax", "squared_error", "cross_entropy"]


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


def squared_error(pred, target, weights=None):
    """Mean squared error over all entries, optionally a weighted mean over rows.

    Parameters
    ----------
    pred, target : ndarray of shape (n_rows, n_outputs)
    weights : ndarray of shape (n_rows,) or None, default=None
        Non-negative row weights: the loss is ``sum(w_i * mean_j(d_ij ** 2)) /
        sum(w)``, so a weight of 2 counts a row twice. All zero gives a loss
        and gradient of 0.

    Returns
    -------
    loss : float
        ``mean((pred - target) ** 2)`` without weights.
    grad : ndarray of shape (n_rows, n_outputs)
        ``d loss / d pred``, ``2 (pred - target) / pred.size`` without
        weights, in the dtype of ``pred``.
    """
    diff = pred - target
    shares = _row_shares(weights, len(diff))
    if shares is None:
        return float(np.mean(diff * diff)), (2 / diff.size * diff).astype(pred.dtype, copy=False)
    loss = float(shares @ (diff * diff).mean(axis=1))
    return loss, (2 / diff.shape[1] * shares[:, None] * diff).astype(pred.dtype, copy=False)


def cross_entropy(logits, labels, weights=None):
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``.

    Parameters
    ----------
    logits : ndarray of shape (n_rows, n_classes)
    labels : ndarray of shape (n_rows,), int
        Class indices in ``[0, n_classes)``.
    weights : ndarray of shape (n_rows,) or None, default=None
        Non-negative row weights, as in :func:`squared_error`.

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
