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


def squared_error(pred, target):
    """Mean squared error over all entries.

    Parameters
    ----------
    pred, target : ndarray of shape (n_rows, n_outputs)

    Returns
    -------
    loss : float
        ``mean((pred - target) ** 2)``.
    grad : ndarray of shape (n_rows, n_outputs)
        ``d loss / d pred = 2 (pred - target) / pred.size``, in the dtype of ``pred``.
    """
    diff = pred - target
    return float(np.mean(diff * diff)), (2 / diff.size * diff).astype(pred.dtype, copy=False)


def cross_entropy(logits, labels):
    """Mean negative log-likelihood of integer ``labels`` under ``softmax(logits)``.

    Parameters
    ----------
    logits : ndarray of shape (n_rows, n_classes)
    labels : ndarray of shape (n_rows,), int
        Class indices in ``[0, n_classes)``.

    Returns
    -------
    loss : float
        ``-mean(log_softmax(logits)[i, labels[i]])``.
    grad : ndarray of shape (n_rows, n_classes)
        ``(softmax(logits) - onehot(labels)) / n_rows``, in the dtype of ``logits``.
    """
    logp = log_softmax(logits)
    rows = np.arange(len(labels))
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    grad /= len(labels)
    return float(-logp[rows, labels].mean()), grad
