"""The model inside the estimators: a recurrent layer with a dense head.

The head reads one feature vector per target row: for sequence-to-one tasks the
output at each sequence's last valid step (forward direction) and at step 0
(reverse direction); for per-step tasks the output at every valid step.
"""

import math

import numpy as np

from numlstm import _backend, layers
from numlstm._config import MAX_MODEL_BYTES
from numlstm.cells.registry import get as cell_spec
from numlstm.layers import no_grad

__all__ = ["SequenceNet", "loadable_config", "check_size"]


def _cell_options(config):
    """The cell family's own options (``spec.options``) from ``config``, defaults if absent."""
    spec = cell_spec(config["cell"])
    return {name: config.get(name, default) for name, default in spec.defaults().items()}


def _parameter_count(config):
    """The number of weights of the net ``config`` describes, counted from the shapes."""
    spec = cell_spec(config["cell"])
    options = _cell_options(config)
    G = spec.n_gates(**options) * config["hidden_size"]
    hidden, directions = config["hidden_size"], 2 if config["bidirectional"] else 1
    extra = sum(math.prod(shape) for shape in spec.extra_params(hidden, **options).values())
    count = 0
    for layer in range(config["num_layers"]):
        inputs = config["input_size"] if layer == 0 else directions * hidden
        count += directions * (G * (inputs + hidden + 2) + extra)
    embedding = (config.get("vocabulary_size") or 0) * config["input_size"]
    return count + config["n_outputs"] * (directions * hidden + 1) + embedding


def check_size(config, saved_count=None):
    """ValueError if the net ``config`` describes would hold more than ``MAX_MODEL_BYTES`` of weights.

    The cap (``numlstm.io.MAX_MODEL_BYTES``, 2 GiB) is the one a model file
    is read under. It is checked before any array is allocated, so that a
    mistyped ``num_layers`` or a crafted model file fails at once instead of
    exhausting memory or building for minutes.

    With ``saved_count``, the number of weights a model file holds for the
    net, also ValueError unless the config describes exactly that many, so
    that a crafted config fails before anything is built from it.
    """
    count = _parameter_count(config)
    if saved_count is not None and saved_count != count:
        raise ValueError(f"the saved network config describes {count:,} weights, but the file holds "
                         f"{saved_count:,}")
    size = count * np.dtype(config["dtype"]).itemsize
    if size > MAX_MODEL_BYTES:
        raise ValueError(
            f"a {config['cell']} network with hidden_size={config['hidden_size']}, "
            f"num_layers={config['num_layers']} and {config['input_size']} input features would "
            f"hold {count:,} weights ({size / 2**30:.1f} GiB), more than numlstm's limit of "
            f"{MAX_MODEL_BYTES / 2**30:.0f} GiB (numlstm.io.MAX_MODEL_BYTES); lower "
            "hidden_size or num_layers"
        )


def loadable_config(config):
    """``config`` with ``device="cpu"`` when it names ``"cuda"`` and no usable GPU is here.

    Saved and pickled networks keep the device they were trained on; a model
    trained on a GPU still loads, and predicts, on a machine without one.
    """
    if config.get("device") == "cuda" and not _backend.cuda_available():
        return {**config, "device": "cpu"}
    return config


class SequenceNet:
    """A recurrent layer (batch-first) followed by a dense layer.

    Parameters
    ----------
    config : dict
        ``cell`` (a name in ``numlstm.cells.registry.SPECS``), ``input_size``,
        ``hidden_size``, ``num_layers``, ``bidirectional``, ``dropout``,
        ``dtype``, ``device``, ``seed`` (int), ``n_outputs``, ``per_step``
        (bool) and the cell's own options (``spec.options``: for LSTM
        ``peephole``, ``coupled`` and ``forget_bias``); for token input,
        ``vocabulary_size``: the rows of an embedding table of width
        ``input_size`` that the input's token indices look up. It must be
        JSON-able: ``numlstm.io`` stores it.

    Notes
    -----
    The layer's own generator, seeded by ``config["seed"]``, draws its weights
    and its dropout masks; the head is drawn like ``torch.nn.Linear``,
    U(-1/sqrt(width), 1/sqrt(width)), from a generator seeded by ``seed + 1``.
    The head weight has PyTorch's layout ``(n_outputs, width)``. An embedding
    table is drawn N(0, 1), as ``torch.nn.Embedding`` does, from a generator
    seeded by ``seed + 2``, but for row 0, the index of tokens unseen in fit,
    which starts at 0.

    With ``device="cuda"`` the layer's weights and gradients live on the GPU
    (device arrays); the head stays a pair of NumPy arrays. Per batch, the
    input goes to the device, the layer's output comes back for the head, and
    the output's gradient goes to the device for the layer's backward.

    Pickling keeps only ``config`` and host copies of the weights, so a
    pickled net and one rebuilt by ``numlstm.io`` are the same thing; an
    unpickled net draws dropout masks from a fresh generator, and a net
    pickled on ``"cuda"`` comes back on ``"cpu"`` where no GPU is usable.
    """

    def __init__(self, config):
        check_size(config)
        self.config = dict(config)
        cfg = self.config
        layer_class = getattr(layers, cell_spec(cfg["cell"]).layer)
        self.layer = layer_class(
            cfg["input_size"],
            cfg["hidden_size"],
            num_layers=cfg["num_layers"],
            batch_first=True,
            dropout=cfg["dropout"],
            bidirectional=cfg["bidirectional"],
            dtype=cfg["dtype"],
            seed=cfg["seed"],
            device=cfg["device"],
            **_cell_options(cfg),
        ).eval()
        width = self.layer.hidden_size * self.layer.num_directions
        bound = 1 / math.sqrt(width)
        rng = np.random.default_rng(cfg["seed"] + 1)
        self.weight = rng.uniform(-bound, bound, (cfg["n_outputs"], width)).astype(cfg["dtype"])
        self.bias = rng.uniform(-bound, bound, cfg["n_outputs"]).astype(cfg["dtype"])
        self.embedding = None
        if cfg.get("vocabulary_size"):
            table = np.random.default_rng(cfg["seed"] + 2).standard_normal((cfg["vocabulary_size"], cfg["input_size"]))
            table[0] = 0
            self.embedding = table.astype(cfg["dtype"])

    def _extra(self):
        """The parameters besides the layer's, by state_dict name."""
        extra = {"head.weight": self.weight, "head.bias": self.bias}
        if self.embedding is not None:
            extra["embedding.weight"] = self.embedding
        return extra

    @property
    def per_step(self):
        return self.config["per_step"]

    @property
    def device(self):
        return self.config["device"]

    def parameter_names(self):
        """The parameters' names, in the order of ``parameters`` and ``backward``: the layer's
        (torch names), ``head.weight``, ``head.bias``, then ``embedding.weight`` if there is one."""
        return [*self.layer.params, *self._extra()]

    def named_parameters(self):
        """The live parameter arrays by name (device arrays on "cuda" for the layer's)."""
        return {**self.layer.params, **self._extra()}

    def parameters(self):
        """The live parameter arrays, in ``parameter_names`` order."""
        return list(self.named_parameters().values())

    def train(self):
        """Training mode: dropout between layers is active. Returns self."""
        self.layer.train()
        return self

    def eval(self):
        """Evaluation mode: no dropout. Returns self."""
        self.layer.eval()
        return self

    def state_dict(self):
        """Copies of all weights: the layer's under torch names, then ``head.weight``, ``head.bias``
        and ``embedding.weight``."""
        return {**self.layer.state_dict(), **{name: value.copy() for name, value in self._extra().items()}}

    def load_state_dict(self, state_dict):
        """Load weights from a mapping like ``state_dict``; ValueError if any is missing or wrong."""
        state_dict = dict(state_dict)
        extra = {}
        for name, target in self._extra().items():
            value = np.asarray(state_dict.pop(name, None))
            if value.shape != target.shape or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
                raise ValueError(f"{name} must be a finite array of shape {target.shape}")
            extra[name] = value
        self.layer.load_state_dict(state_dict)
        for name, target in self._extra().items():
            np.copyto(target, extra[name])

    def generator_state(self):
        """The state of the generator that draws the dropout masks (JSON-able)."""
        return self.layer._rng.bit_generator.state

    def set_generator_state(self, state):
        """Restore a state from ``generator_state``; ValueError if it is not one."""
        generator = self.layer._rng.bit_generator
        if not isinstance(state, dict) or state.get("bit_generator") != type(generator).__name__:
            raise ValueError(f"not a {type(generator).__name__} generator state: {state!r}")
        try:
            generator.state = state
        except (TypeError, KeyError, OverflowError) as exc:
            raise ValueError(f"invalid generator state ({exc})") from exc

    def _rows(self, out, lengths):
        """The head's input rows from the time-major ``out``, and where their gradient goes.

        Per-step rows come sample-major (sample by sample, each in time order).
        """
        hidden = self.layer.hidden_size
        if self.per_step:
            mask = np.arange(out.shape[0]) < lengths[:, None]  # (batch, time)
            return out.transpose(1, 0, 2)[mask], mask
        last = (lengths - 1, np.arange(len(lengths)))
        parts = [out[last][:, :hidden]]
        if self.layer.bidirectional:
            parts.append(out[0, :, hidden:])
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0], last

    def forward(self, x, lengths):
        """Head outputs for a batch.

        Parameters
        ----------
        x : ndarray of shape (batch, n_timesteps, input_size)
            Or, with an embedding table, int indices into it, (batch, n_timesteps).
        lengths : ndarray of shape (batch,), int

        Returns
        -------
        outputs : ndarray of shape (n_rows, n_outputs)
            One row per sequence, or per valid step (sample-major) when per-step.
        cache : tuple
            What ``backward`` needs; useless after a forward under ``no_grad``.
        """
        tokens = None
        lengths = np.asarray(lengths, np.int64)
        if self.embedding is not None:
            tokens, x = x, self.embedding[x.T]  # time-major, fresh
        else:
            x = x.transpose(1, 0, 2)  # the one conversion: the layer makes it contiguous
        out = self.layer._trusted_forward(x, lengths)
        rows, where = self._rows(out, lengths)
        return rows @ self.weight.T + self.bias, (out.shape, rows, where, tokens, lengths)

    def predict(self, x, lengths, chunk_size=1024):
        """``forward`` without dropout or gradient storage, in chunks of samples."""
        with no_grad():
            parts = [self.forward(x[i : i + chunk_size], lengths[i : i + chunk_size])[0]
                     for i in range(0, len(x), chunk_size)]
        return np.concatenate(parts)

    def backward(self, grad_outputs, cache, named=False):
        """Gradients of all parameters from the outputs' gradient.

        A list in ``parameter_names`` order, or with ``named`` a dict by name
        (for an optimizer built with ``named_parameters``). The input's
        gradient is computed only for an embedding table.
        """
        shape, rows, where, tokens, lengths = cache
        grad_rows = grad_outputs @ self.weight
        grad_out = np.zeros(shape, self.weight.dtype)  # time-major, like the layer's output
        hidden = self.layer.hidden_size
        if self.per_step:
            grad_out.transpose(1, 0, 2)[where] = grad_rows
        else:
            grad_out[where[0], where[1], :hidden] = grad_rows[:, :hidden]
            if self.layer.bidirectional:
                grad_out[0, :, hidden:] = grad_rows[:, hidden:]
        grad_x = self.layer._trusted_backward(grad_out, need_input_grad=self.embedding is not None)
        grads = {**self.layer.grads, "head.weight": grad_outputs.T @ rows,
                 "head.bias": grad_outputs.sum(axis=0)}
        if self.embedding is not None:  # each valid step's input gradient goes to its token's row
            valid = np.arange(tokens.shape[1]) < lengths[:, None]
            grad_table = np.zeros_like(self.embedding)
            np.add.at(grad_table, tokens[valid], grad_x.transpose(1, 0, 2)[valid])
            grads["embedding.weight"] = grad_table
        return grads if named else [grads[name] for name in self.parameter_names()]

    def gate_states(self, x, lengths):
        """The layer's per-step gates and states, each (num_layers, num_directions, T, batch, size)."""
        return self.layer.gate_states(x if self.embedding is None else self.embedding[x], lengths=lengths)

    def to(self, device):
        """This net with its layer on ``device``: ``self`` if it is there already, else a copy.

        The copy has the same weights; its dropout masks come from a fresh generator.
        """
        if device == self.device:
            return self
        moved = SequenceNet({**self.config, "device": device})
        moved.load_state_dict(self.state_dict())
        return moved

    def __getstate__(self):
        return {"config": self.config, "weights": self.state_dict()}

    def __setstate__(self, state):
        self.__init__(loadable_config(state["config"]))
        self.load_state_dict(state["weights"])
