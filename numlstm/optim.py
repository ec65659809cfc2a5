"""Optimizers and gradient clipping for lists of parameter arrays.

As in scikit-learn's MLP, an optimizer is a small class whose one method,
``update_params(params, grads)``, changes the parameter arrays in place. It
keeps its own state (velocities, moments) per parameter, in the order of the
lists it was built with. ``weight_decay`` adds ``weight_decay * param`` to each
gradient before the update, as ``torch.optim`` does.
"""

import math

import numpy as np

__all__ = ["SGD", "Adam", "clip_grad_norm"]


class _Optimizer:
    def __init__(self, learning_rate, weight_decay):
        # Python floats keep float32 parameters float32 (NumPy scalars would promote).
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)

    def _decayed(self, params, grads):
        if not self.weight_decay:
            return grads
        return [g + self.weight_decay * p for p, g in zip(params, grads)]

    def update_params(self, params, grads):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : list of ndarray
            The parameters, in the order the optimizer was built with.
        grads : list of ndarray
            Their gradients, same shapes; not modified.
        """
        for param, step in zip(params, self._steps(self._decayed(params, grads))):
            param -= step


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    The update follows ``torch.optim.SGD``::

        v = momentum * v + g          (v = g at the first step)
        step = g + momentum * v       (Nesterov)   or   v   (classical momentum)
        param -= learning_rate * step

    Parameters
    ----------
    params : list of ndarray
        Parameters to optimize; velocities of the same shapes are kept.
    learning_rate : float, default=0.01
    momentum : float, default=0.9
    nesterov : bool, default=False
    weight_decay : float, default=0.0
    """

    def __init__(self, params, learning_rate=0.01, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.velocities = [np.zeros_like(p) for p in params]

    def _steps(self, grads):
        for v, g in zip(self.velocities, grads):
            v *= self.momentum
            v += g
        lr = self.learning_rate
        if self.nesterov:
            return [lr * (g + self.momentum * v) for g, v in zip(grads, self.velocities)]
        return [lr * v for v in self.velocities]


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as in ``torch.optim.Adam``.

    Parameters
    ----------
    params : list of ndarray
        Parameters to optimize; first and second moments of the same shapes are kept.
    learning_rate : float, default=0.001
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the moment estimates.
    epsilon : float, default=1e-8
    weight_decay : float, default=0.0
    """

    def __init__(self, params, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
        super().__init__(learning_rate, weight_decay)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def _steps(self, grads):
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        step_size = self.learning_rate / (1 - b1**self.t)
        root_correction = math.sqrt(1 - b2**self.t)
        steps = []
        for m, v, g in zip(self.ms, self.vs, grads):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            steps.append(step_size * m / (np.sqrt(v) / root_correction + self.epsilon))
        return steps


def clip_grad_norm(grads, max_norm):
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``.

    Parameters
    ----------
    grads : list of ndarray
    max_norm : float or None
        None leaves the gradients as they are.

    Returns
    -------
    float
        The global norm before clipping.
    """
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            g *= scale
    return norm
