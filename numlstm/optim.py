"""Optimizers and gradient clipping for lists of parameter arrays.

As in scikit-learn's MLP, an optimizer is a small class whose one method,
``update_params(params, grads)``, changes the parameter arrays in place. It
keeps its own state (velocities, moments) per parameter, in the order of the
list it was built with, or by name when built with a mapping of names to
arrays: then ``update_params`` takes mappings too and pairs each gradient
with its parameter by name. ``weight_decay`` adds ``weight_decay * param`` to each
gradient before the update, as ``torch.optim`` does.

Parameters may be NumPy arrays or device arrays (a layer built with
``device="cuda"``), mixed in one list. Each array is updated where it lives:
NumPy arrays with NumPy arithmetic, device arrays by the fused
``sgd_update``/``adam_update`` kernels of ``numlstm.cuda``, which do the
same arithmetic. An optimizer's state follows its parameter: a velocity or
moment is kept on the device for a device parameter and on the host for a
NumPy one. Pickling copies the state to the host.
"""

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["SGD", "Adam", "clip_grad_norm"]


def _on_device(a):
    """Whether ``a`` is a device array (as ``numlstm.cuda.is_device_array`` says), without importing Numba."""
    return hasattr(a, "__cuda_array_interface__") or bool(getattr(a, "__cuda_ndarray__", False))


def _device():
    """The device array helpers (``numlstm.cuda``); only called when a device array is present."""
    from numlstm._backend import get_backend

    return get_backend("cuda")


def _zeros_like(param):
    if _on_device(param):
        return _device().zeros(tuple(param.shape), np.dtype(param.dtype))
    return np.zeros_like(param)


def _like(buffer, param):
    """``buffer`` on the side of ``param``: moved to the device or to the host if needed (state follows params)."""
    if _on_device(param):
        return buffer if _on_device(buffer) else _device().to_device(buffer, np.dtype(param.dtype))
    return _device().asnumpy(buffer) if _on_device(buffer) else buffer


def _host(a):
    return _device().asnumpy(a) if _on_device(a) else a


class _Optimizer:
    # Names of the per-parameter state lists (each aligned with the parameters).
    _BUFFERS = ()

    def __init__(self, params, learning_rate, weight_decay):
        # Python floats keep float32 parameters float32 (NumPy scalars would promote).
        self.learning_rate = float(learning_rate)
        self.weight_decay = float(weight_decay)
        self.names = list(params) if isinstance(params, Mapping) else None
        params = self._ordered(params, "params")
        for name in self._BUFFERS:
            setattr(self, name, [_zeros_like(p) for p in params])

    def _ordered(self, arrays, what):
        """``arrays`` as a list in the optimizer's parameter order; by name for a mapping."""
        if not isinstance(arrays, Mapping):
            return list(arrays)
        if self.names is None:
            raise TypeError(f"{what} is a mapping, but the optimizer was built with a list")
        if set(arrays) != set(self.names):
            raise ValueError(f"{what} has the names {sorted(arrays)}, the optimizer's parameters "
                             f"{sorted(self.names)}")
        return [arrays[name] for name in self.names]

    def _decayed(self, params, grads):
        if not self.weight_decay:
            return grads
        return [g + self.weight_decay * p for p, g in zip(params, grads)]

    def update_params(self, params, grads):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : list or mapping of ndarray or device arrays
            The parameters, in the order the optimizer was built with, or by
            name.
        grads : list or mapping of ndarray or device arrays
            Their gradients, same shapes; not modified.

        Raises
        ------
        ValueError
            If a gradient does not have its parameter's shape (or name).
        """
        params, grads = self._ordered(params, "params"), self._ordered(grads, "grads")
        if len(params) != len(grads) or any(tuple(p.shape) != tuple(g.shape)
                                            for p, g in zip(params, grads)):
            raise ValueError("the gradients do not match the parameters: shapes "
                             f"{[tuple(g.shape) for g in grads]} for "
                             f"{[tuple(p.shape) for p in params]}")
        self._sync_buffers(params)
        device = [_on_device(p) for p in params]
        self._begin_step()
        # NumPy arithmetic on the host parameters, exactly as for an all-host list
        host = [i for i, on_device in enumerate(device) if not on_device]
        host_params = [params[i] for i in host]
        host_grads = [_host(grads[i]) for i in host]
        for param, step in zip(host_params, self._host_steps(self._decayed(host_params, host_grads), host)):
            param -= step
        for i, on_device in enumerate(device):
            if on_device:
                self._device_step(i, params[i], grads[i])

    def _sync_buffers(self, params):
        for name in self._BUFFERS:
            buffers = getattr(self, name)
            buffers[:] = [_like(b, p) for b, p in zip(buffers, params)]

    def _begin_step(self):
        pass

    def state_dict(self):
        """Host copies of the optimizer's state, for checkpoints.

        Returns
        -------
        scalars : dict
            The learning rate (a schedule may have changed it) and Adam's
            step count ``t``.
        buffers : dict of str to list of ndarray
            Each per-parameter state list (velocities, moments), in parameter order.
        """
        buffers = {name: [np.array(_host(b)) for b in getattr(self, name)] for name in self._BUFFERS}
        return self._scalars(), buffers

    def _scalars(self):
        """The scalar half of ``state_dict``."""
        return {"learning_rate": self.learning_rate, **({"t": self.t} if hasattr(self, "t") else {})}

    def load_state_dict(self, scalars, buffers):
        """Restore a state from ``state_dict``; ValueError if it does not fit this optimizer.

        The buffers go where the optimizer's own buffers live (host or device).
        """
        if set(scalars) != set(self._scalars()) or set(buffers) != set(self._BUFFERS):
            raise ValueError(f"optimizer state has {sorted(scalars)} and {sorted(buffers)}, "
                             f"not the state of {type(self).__name__}")
        for name in self._BUFFERS:
            own, given = getattr(self, name), buffers[name]
            if len(given) != len(own) or any(
                    np.shape(g) != tuple(b.shape) or np.asarray(g).dtype != np.dtype(b.dtype)
                    or not np.isfinite(g).all() for g, b in zip(given, own)):
                raise ValueError(f"optimizer {name} do not match the parameters")
        rate = scalars["learning_rate"]
        if not isinstance(rate, float) or not 0 < rate < math.inf:
            raise ValueError(f"optimizer learning rate must be a float > 0, got {rate!r}")
        if "t" in scalars:
            t = scalars["t"]
            if isinstance(t, bool) or not isinstance(t, int) or t < 0:
                raise ValueError(f"optimizer step count must be an int >= 0, got {t!r}")
            self.t = t
        self.learning_rate = rate
        for name in self._BUFFERS:
            own = getattr(self, name)
            own[:] = [_like(np.array(g), b) for g, b in zip(buffers[name], own)]

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._BUFFERS:
            state[name] = [_host(b) for b in state[name]]
        return state


class SGD(_Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    The update follows ``torch.optim.SGD``::

        v = momentum * v + g          (v = g at the first step)
        step = g + momentum * v       (Nesterov)   or   v   (classical momentum)
        param -= learning_rate * step

    Parameters
    ----------
    params : list or mapping of ndarray or device arrays
        Parameters to optimize (by name for a mapping); velocities of the
        same shapes are kept, on the device for device parameters.
    learning_rate : float, default=0.01
    momentum : float, default=0.9
    nesterov : bool, default=False
    weight_decay : float, default=0.0
    """

    _BUFFERS = ("velocities",)

    def __init__(self, params, learning_rate=0.01, momentum=0.9, nesterov=False, weight_decay=0.0):
        super().__init__(params, learning_rate, weight_decay)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _host_steps(self, grads, indices):
        velocities = [self.velocities[i] for i in indices]
        for v, g in zip(velocities, grads):
            v *= self.momentum
            v += g
        lr = self.learning_rate
        if self.nesterov:
            return [lr * (g + self.momentum * v) for g, v in zip(grads, velocities)]
        return [lr * v for v in velocities]

    def _device_step(self, i, param, grad):
        _device().sgd_update(param, grad, self.velocities[i], self.learning_rate, self.momentum,
                             self.nesterov, self.weight_decay)


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as in ``torch.optim.Adam``.

    Parameters
    ----------
    params : list or mapping of ndarray or device arrays
        Parameters to optimize (by name for a mapping); first and second
        moments of the same shapes are kept, on the device for device
        parameters.
    learning_rate : float, default=0.001
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the moment estimates.
    epsilon : float, default=1e-8
    weight_decay : float, default=0.0
    """

    _BUFFERS = ("ms", "vs")

    def __init__(self, params, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
        super().__init__(params, learning_rate, weight_decay)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.t = 0

    def _begin_step(self):
        self.t += 1

    def _host_steps(self, grads, indices):
        b1, b2 = self.beta_1, self.beta_2
        step_size = self.learning_rate / (1 - b1**self.t)
        root_correction = math.sqrt(1 - b2**self.t)
        steps = []
        for i, g in zip(indices, grads):
            m, v = self.ms[i], self.vs[i]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            steps.append(step_size * m / (np.sqrt(v) / root_correction + self.epsilon))
        return steps

    def _device_step(self, i, param, grad):
        _device().adam_update(param, grad, self.ms[i], self.vs[i], self.t, self.learning_rate,
                              self.beta_1, self.beta_2, self.epsilon, self.weight_decay)


def clip_grad_norm(grads, max_norm):
    """Scale gradients in place so that their global L2 norm is at most ``max_norm``.

    Parameters
    ----------
    grads : list or mapping of ndarray or device arrays
        Device arrays are summed and scaled on the device (one scalar comes
        back per array).
    max_norm : float or None
        None leaves the gradients as they are.

    Returns
    -------
    float
        The global norm before clipping.
    """
    grads = list(grads.values()) if isinstance(grads, Mapping) else grads
    norm = math.sqrt(sum(_device().sum_squares(g) if _on_device(g) else float(np.vdot(g, g)) for g in grads))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads:
            if _on_device(g):
                _device().scale(g, scale)
            else:
                g *= scale
    return norm
