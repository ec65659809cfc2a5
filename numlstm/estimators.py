"""scikit-learn estimators over sequences: ``LSTMRegressor`` and ``LSTMClassifier``.

Both read X as sequences (see ``numlstm.data``): a 3-D array
``(sample, time, feature)``, a 2-D array of univariate sequences
``(sample, time)``, or an ``xarray.DataArray`` with named dims. Trailing
NaN marks the end of a shorter sequence. A target per sequence gives a
sequence-to-one model; a target per step (y with a time dim) gives a
sequence-to-sequence model. A DataArray in gives a DataArray out.
"""

import copy
import functools
import os
import warnings
from numbers import Integral, Real

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from numlstm import _backend, io
from numlstm._net import SequenceNet
from numlstm.cells.registry import SPECS as CELLS
from numlstm.data import (
    MISSING,
    _check_dims,
    DEFAULT_DIMS,
    FLOAT_DTYPES,
    ChunkedSequences,
    Standardizer,
    check_chunked_sequences,
    check_sequences,
    check_targets,
    check_tokens,
    fill_missing,
    is_lazy,
    map_lazily,
    to_output,
)
from numlstm.losses import absolute_error, cross_entropy, huber, log_softmax, pinball, softmax, squared_error
from numlstm.optim import SGD, Adam
from numlstm.training import (
    DEFAULT_PATIENCE,
    MIN_VALIDATION_SEQUENCES,
    ChunkedInputs,
    TrainingData,
    batch_gradients,
    train,
    validation_split,
)

__all__ = ["LSTMRegressor", "LSTMClassifier"]

def _lazy_for_dask(method):
    """Let a prediction method take a Dask-backed DataArray X and answer lazily, chunk by chunk.

    The result is a Dask-backed DataArray (or Dataset) with the dims and
    coords of the in-memory answer, chunked along the sample dim as X is;
    nothing is computed until the caller asks. Each chunk runs ``method`` on
    its sequences, so that the answer equals the in-memory one.
    """

    @functools.wraps(method)
    def wrapper(self, X):
        if not is_lazy(X):
            return method(self, X)
        check_is_fitted(self)
        # a sequence of padding tokens is no sequence: probe a token model with another id
        fill = self.padding_token + 1 if hasattr(self, "vocabulary_") else 0
        return map_lazily(functools.partial(method, self), X, self.dims[0], fill=fill)

    return wrapper


def _median_quantile(quantiles):
    """The index of the quantile level nearest 0.5: its forecast is the point forecast."""
    return int(np.argmin(np.abs(np.asarray(quantiles) - 0.5)))


def _valid_quantiles(quantiles):
    """Whether ``quantiles`` is a non-empty 1-D sequence of distinct levels in (0, 1)."""
    q = np.asarray(quantiles, dtype=float) if np.ndim(quantiles) == 1 else None
    return q is not None and len(q) > 0 and bool(((q > 0) & (q < 1)).all()) and len(np.unique(q)) == len(q)


# Hyper-parameters that shape the network: warm starts need them unchanged.
_ARCHITECTURE = ("cell", "hidden_size", "num_layers", "bidirectional", "dropout", "peephole", "coupled")

_PARAMETERS_DOC = """
    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
        Recurrent cell.
    hidden_size : int, default=32
        Units per layer and direction.
    num_layers : int, default=1
        Stacked recurrent layers.
    bidirectional : bool, default=False
        Also run each layer backwards in time. Sequence-to-one models then read
        the forward direction at each sequence's last valid step and the
        reverse direction at its first step.
    peephole : bool, default=False
        LSTM only: peephole connections (Gers & Schmidhuber 2000).
    coupled : bool, default=False
        LSTM only: coupled input and forget gates, f = 1 - i (Greff et al. 2017).
    forget_bias : float, default=1.0
        LSTM only, ignored by the other cells: added to the forget-gate bias
        at initialization (Jozefowicz et al. 2015).
    embedding_dim : int or None, default=None
        If set, X holds integer token ids (words, symbols, categories), one
        per step: a 2-D array (sample, time), a list of 1-D arrays or a
        DataArray. Each id seen in ``fit`` gets a learned vector of this
        size (the table is trained with the rest and saved with the model),
        which feeds the recurrent layer; ids not seen in ``fit`` share one
        vector, zero unless trained. See ``vocabulary_``.
    padding_token : int, default=-1
        With ``embedding_dim``: the id that pads shorter sequences, at their
        end or their start. Padded steps are left out of the loss, and
        per-step predictions mask them.
    dropout : float, default=0.0
        Dropout on the outputs of every recurrent layer but the last, during
        training.
    batch_size : int, default=32
        Sequences per mini-batch (fewer in the last batch of an epoch).
    max_iter : int, default=300
        Maximum number of epochs per call to ``fit``.
    loss : str or None, default=None
        The training loss. None is the task's usual one: the squared error
        for the regressor, the cross-entropy for the classifier (its only
        option, "log_loss"). The regressor also takes "absolute_error",
        "huber" (quadratic within 1 standardized unit, linear beyond) and
        "quantile" (the pinball loss of every value in ``quantiles``, so that
        predictions come with an interval).
    quantiles : sequence of float in (0, 1) or None, default=None
        With ``loss="quantile"``: the quantiles to predict, (0.1, 0.5, 0.9)
        if None. Predictions then have a last axis (a ``quantile`` dim for a
        DataArray) with one value per quantile, in increasing order.
    class_weight : dict, "balanced" or None, default=None
        Classifier only: a weight per class label, multiplied into the
        sample weights; "balanced" weighs each class by ``n_samples /
        (n_classes * count)`` from the labels of ``fit``.
    optimizer : {"adam", "sgd"}, default="adam"
        ``numlstm.optim.Adam`` or ``numlstm.optim.SGD``.
    learning_rate : float, default=3e-3
        Step size. With ``max_iter=300`` it was the best default on ten small
        classification sets (see the defaults guide); lower it for large
        networks.
    learning_rate_schedule : {"constant", "plateau", "cosine"}, default="constant"
        "plateau" divides the step size by 5 each time the score that
        stopping watches (see ``n_iter_no_change``) has not improved for
        ``max(1, n_iter_no_change // 2)`` epochs in a row. "cosine" decays it
        over the ``max_iter`` epochs of each ``fit`` call, epoch ``t`` (from
        0) training at ``learning_rate * (1 + cos(pi * t / max_iter)) / 2``
        (``numlstm.training.cosine_learning_rate``; SGDR without restarts,
        Loshchilov & Hutter 2017); ``partial_fit`` keeps ``learning_rate``.
    momentum : float, default=0.9
        SGD momentum.
    nesterov : bool, default=False
        Nesterov momentum (SGD with ``momentum > 0`` only).
    weight_decay : float, default=0.0
        L2 penalty: ``weight_decay * w`` is added to the gradient of every
        weight and bias, as ``torch.optim`` does.
    clip_norm : float or None, default=5.0
        Rescale the gradients of each mini-batch so that their global L2 norm
        is at most this; None turns clipping off.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the sequences (stratified by class
        for sequence classification), stop when the validation score has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the
        weights of the best epoch. If that would hold out fewer than
        ``numlstm.training.MIN_VALIDATION_SEQUENCES`` (%(min_val)d) sequences,
        it trains without a validation set, with a warning. Not used by
        ``partial_fit``.
    validation_fraction : float, default=0.1
        Share of the sequences held out for early stopping.
    n_iter_no_change : int or None, default=None
        Epochs without improvement before stopping: of the validation score
        with ``early_stopping``, else of the training loss. None stops after
        %(patience)d epochs without a better validation score, and never on
        the training loss: training runs ``max_iter`` epochs (on small data
        the epoch loss is too noisy to stop on).
    tol : float, default=1e-4
        Smallest improvement that counts.
    missing : {"error", "mask", "ffill"}, default="error"
        What a NaN inside a sequence (a gap, or a NaN in some but not all
        features of a step) means. "error": it is an error. "mask": it is
        filled with the feature's mean and a per-feature missingness
        indicator (1 where observed) is added to the input, as GRU-D does
        (Che et al. 2018). "ffill": it takes the feature's last observed
        value in the sequence (the next one before the first). Leading and
        trailing NaN steps are padding whatever this says.
    standardize : bool, default=True
        Standardize each input feature%(target_note)s with a mean and scale
        learned in ``fit`` (over valid steps only) and applied in ``predict``.
    dims : tuple of str, default=("sample", "time", "feature")
        Names of the sample, time and feature dims of DataArray inputs.
    layout : {None, "stf", "sft"}, default=None
        Axis order of 3-D array inputs: ``"stf"`` (sample, time, feature) or
        ``"sft"``, sktime's (instance, channel, time). None reads
        (sample, time, feature) and warns when X looks like sktime's layout
        (far more features than steps). DataArrays go by ``dims``.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the shuffling, dropout and the validation split.
        An int gives bit-identical results from run to run.
    verbose : bool or int, default=False
        Show a tqdm progress bar over epochs (needs the ``tqdm`` package).
    warm_start : bool, default=False
        Let ``fit`` continue from the current weights and scaling instead of
        starting afresh (the architecture must not change).
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Where the recurrent layer runs: "cuda" keeps its weights, gradients
        and optimizer state on the GPU (the small dense head stays on the
        host); "auto" takes the GPU when one is usable, else the CPU. ``fit``
        resolves it (see ``device_``) and raises ValueError for "cuda"
        without a usable GPU.
    checkpoint_path : str, path-like or None, default=None
        If set, a checkpoint is written there after every epoch, atomically
        (a crash mid-write leaves the previous one). ``numlstm.load``
        reads it as the model was at the best epoch so far (best validation
        score with ``early_stopping``, else best training loss). It also holds
        the training state, so that ``fit`` with the same path, data and
        hyper-parameters after a crash resumes where the checkpoint left off
        and ends with exactly the weights of an uninterrupted run (see
        ``numlstm.training``). A file there that is no numlstm model is
        never overwritten. Never taken from a loaded file.

    Attributes
    ----------
    n_features_in_ : int
        Features per time step (1 for 2-D X).
    feature_names_in_ : ndarray of str
        Feature coords of a DataArray X, when it had string ones.
    loss_curve_ : list of float
        Mean training loss of each epoch%(loss_note)s.
    validation_scores_ : list of float or None
        Score (%(score_name)s) on the held-out sequences after each epoch, with
        ``early_stopping``; None otherwise.
    best_loss_ : float
        Lowest value in ``loss_curve_``.
    best_validation_score_ : float or None
        Highest value in ``validation_scores_``; None without ``early_stopping``.
    n_iter_ : int
        Epochs run, summed over ``partial_fit`` calls and warm starts.
    vocabulary_ : ndarray of int
        With ``embedding_dim``: the token ids seen in ``fit``, sorted; id
        ``vocabulary_[i]`` has row ``i + 1`` of the embedding table
        (``network_.embedding``), and row 0 serves unseen ids.
    network_ : numlstm._net.SequenceNet
        The fitted network. ``network_.layer`` is the recurrent layer (a
        ``numlstm.LSTM``, ``GRU`` or ``RNN``, whose ``state_dict()`` uses
        PyTorch's names) and ``network_.weight``, ``network_.bias`` the dense
        head, in the layout of ``torch.nn.Linear``. ``from_torch`` builds
        a fitted estimator from a PyTorch model.
    device_ : {"cpu", "cuda"}
        Where the fitted network lives: ``device`` with "auto" resolved. A
        model trained on "cuda" that is loaded or unpickled where no GPU is
        usable comes back on "cpu".
"""


class _SequenceEstimator(BaseEstimator):
    """Training loop, prediction plumbing, inspection and saving shared by both estimators.

    Subclasses provide the task: ``_numeric_targets``, ``_multi_output``,
    ``_encode_targets``, ``_loss``, ``_score_rows`` and ``_SAVED``. ``_encode_targets``
    returns the encoded targets and, for a new fit, the fitted attributes it derived
    (which ``_fit`` sets only once all validation passed).
    """

    _parameter_constraints: dict = {
        "cell": [StrOptions(set(CELLS))],
        "hidden_size": [Interval(Integral, 1, None, closed="left")],
        "num_layers": [Interval(Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "peephole": ["boolean"],
        "coupled": ["boolean"],
        "forget_bias": [Interval(Real, None, None, closed="neither")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), None],
        "padding_token": [Integral],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "loss": [str, None],
        "quantiles": ["array-like", None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "optimizer": [StrOptions({"adam", "sgd"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "learning_rate_schedule": [StrOptions({"constant", "plateau", "cosine"})],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterov": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "missing": [StrOptions(set(MISSING))],
        "standardize": ["boolean"],
        "dims": [tuple],
        "layout": [StrOptions({"stf", "sft"}), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "device": [StrOptions({"cpu", "cuda", "auto"})],
        "checkpoint_path": [str, os.PathLike, None],
    }

    # Fitted attributes that save() writes and load() restores.
    _SAVED = (
        "n_features_in_",
        "feature_names_in_",
        "loss_curve_",
        "validation_scores_",
        "best_loss_",
        "best_validation_score_",
        "n_iter_",
        "network_",
        "_x_scaler",
        "_output_dim",
        "_output_coord",
        "_missing",
        "_fit_columns",
        "vocabulary_",
    )

    def __init__(
        self,
        *,
        cell="lstm",
        hidden_size=32,
        num_layers=1,
        bidirectional=False,
        peephole=False,
        coupled=False,
        forget_bias=1.0,
        embedding_dim=None,
        padding_token=-1,
        dropout=0.0,
        batch_size=32,
        max_iter=300,
        loss=None,
        quantiles=None,
        class_weight=None,
        optimizer="adam",
        learning_rate=3e-3,
        learning_rate_schedule="constant",
        momentum=0.9,
        nesterov=False,
        weight_decay=0.0,
        clip_norm=5.0,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=None,
        tol=1e-4,
        missing="error",
        standardize=True,
        dims=DEFAULT_DIMS,
        layout=None,
        random_state=None,
        verbose=False,
        warm_start=False,
        device="cpu",
        checkpoint_path=None,
    ):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.peephole = peephole
        self.coupled = coupled
        self.forget_bias = forget_bias
        self.embedding_dim = embedding_dim
        self.padding_token = padding_token
        self.dropout = dropout
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.loss = loss
        self.quantiles = quantiles
        self.class_weight = class_weight
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.learning_rate_schedule = learning_rate_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.missing = missing
        self.standardize = standardize
        self.dims = dims
        self.layout = layout
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.device = device
        self.checkpoint_path = checkpoint_path

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ---- validation ---------------------------------------------------------------------

    def _check_params(self):
        self._validate_params()
        if self.cell != "lstm" and (self.peephole or self.coupled):
            raise ValueError(f"peephole and coupled are LSTM variants; they need cell='lstm', not {self.cell!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov=True needs optimizer='sgd' and momentum > 0")
        name = type(self).__name__
        if self.loss is not None and self.loss not in self._LOSSES:
            raise ValueError(f"{name}: loss must be None or one of {sorted(self._LOSSES)}, got {self.loss!r}")
        if self.quantiles is not None:
            if self.loss != "quantile" or not _valid_quantiles(self.quantiles):
                raise ValueError(f"quantiles must be distinct values in (0, 1) and needs loss='quantile', "
                                 f"got quantiles={self.quantiles!r} with loss={self.loss!r}")
        if self.class_weight is not None and not isinstance(self, ClassifierMixin):
            raise ValueError(f"class_weight is a LSTMClassifier option; {name} takes sample_weight in fit")
        if isinstance(self.class_weight, dict):
            values = list(self.class_weight.values())
            if not all(isinstance(v, Real) and not isinstance(v, bool) and 0 <= v < np.inf for v in values) \
                    or not sum(values) > 0:
                raise ValueError(f"class_weight must map labels to finite weights >= 0, not all 0; got "
                                 f"{self.class_weight!r}")
        _check_dims(self.dims)

    def _resolve_device(self):
        """``device`` with "auto" resolved; ValueError for "cuda" without a usable GPU."""
        if self.device == "auto":
            return "cuda" if _backend.cuda_available() else "cpu"
        if self.device == "cuda" and not _backend.cuda_available():
            raise ValueError(
                f"{type(self).__name__}(device='cuda'): no usable CUDA GPU was found (it needs an "
                "NVIDIA GPU with its driver and the 'gpu' extra, numba-cuda); use device='cpu', "
                "or device='auto' to take the GPU only when one is usable"
            )
        return self.device

    def _feature_names(self, seqs):
        names = seqs.coords.get(self.dims[2])
        return names if names is not None and names.dtype.kind in "UO" else None

    def _check_X(self, X, *, reset, sample_weight=None):
        """Validate X; unless ``reset`` (a new fit, which records them later), check its features.

        A Dask-backed X is read chunk by chunk (``ChunkedSequences``), with
        ``sample_weight`` weighing the scaling moments.
        """
        tokens = self.embedding_dim is not None if reset else hasattr(self, "vocabulary_")
        dtype = FLOAT_DTYPES if reset else self.network_.config["dtype"]
        missing = self.missing if reset else self._missing
        if is_lazy(X):
            if tokens:
                raise ValueError(f"{type(self).__name__} with tokens (embedding_dim) takes an in-memory X in fit "
                                 "and score; call X.compute() first")
            seqs = check_chunked_sequences(X, dims=self.dims, dtype=dtype, missing=missing,
                                           sample_weight=sample_weight, with_moments=reset and self.standardize)
        elif tokens:
            return check_tokens(X, padding_token=self.padding_token, dims=self.dims)
        else:
            seqs = check_sequences(X, dims=self.dims, dtype=dtype, missing=missing, layout=self.layout)
        if reset:
            return seqs
        name, step_features = type(self).__name__, self._step_features()
        if seqs.n_columns is not None and self._fit_columns and seqs.n_columns != self.n_features_in_:
            raise ValueError(
                f"X has {seqs.n_columns} features, but {name} is expecting {self.n_features_in_} "
                f"features as input: it was fitted on a 2-D X of univariate sequences of "
                f"{self.n_features_in_} steps. For sequences of other lengths, pass a 3-D X "
                "(sample, time, 1) or a list of sequences"
            )
        if seqs.values.shape[2] != step_features:
            raise ValueError(
                f"X has {seqs.values.shape[2]} features, but {name} is expecting {step_features} "
                "features as input"
            )
        names = self._feature_names(seqs)
        fitted_names = getattr(self, "feature_names_in_", None)
        if names is not None and fitted_names is not None and not np.array_equal(names, fitted_names):
            raise ValueError(f"X has features {list(names)}, but {name} was fitted on {list(fitted_names)}")
        if (names is None) != (fitted_names is None):  # as scikit-learn warns
            warnings.warn(
                f"X does not have valid feature names, but {name} was fitted with "
                f"feature names {list(fitted_names)}; their order is not checked"
                if names is None else
                f"X has feature names, but {name} was fitted without feature names",
                UserWarning,
                stacklevel=4,
            )
        return seqs

    def _step_features(self):
        """Features per time step of the fitted model's input, before any missingness indicators."""
        if hasattr(self, "vocabulary_"):
            return 1  # a token id
        return self.network_.config["input_size"] // (2 if self._missing == "mask" else 1)

    def _check_targets(self, y, seqs, *, reset):
        targets = check_targets(y, seqs, dims=self.dims, numeric=self._numeric_targets, multi_output=self._multi_output)
        if not reset and targets.per_step != self.network_.per_step:
            fitted = "per-step targets (y with a time dim)" if self.network_.per_step else "one target per sequence"
            raise ValueError(f"{type(self).__name__} was fitted with {fitted}; y must have the same form")
        return targets

    # ---- model --------------------------------------------------------------------------

    def _scaled(self, seqs):
        """The network's input: standardized values with their gaps filled as ``missing`` says,
        or each token's row in the embedding table."""
        if hasattr(self, "vocabulary_"):
            tokens = seqs.values[..., 0]
            index = np.searchsorted(self.vocabulary_, tokens).clip(0, len(self.vocabulary_) - 1)
            return np.where((self.vocabulary_[index] == tokens) & seqs.mask, index + 1, 0)
        values = seqs.values if self._x_scaler is None else self._x_scaler.transform(seqs.values)
        return fill_missing(values, seqs.mask, self._missing) if seqs.has_gaps or self._missing == "mask" else values

    def _cell_options(self):
        """The cell's options that are hyper-parameters here, for the network's config (the others keep their
        defaults)."""
        return {name: type(default)(getattr(self, name))
                for name, default in CELLS[self.cell].defaults().items() if name in self._parameter_constraints}

    def _build(self, seqs, n_outputs, per_step, device, sample_weight):
        """Fresh random state, input scaling and network (on the resolved ``device``) for a new fit."""
        self._rng = check_random_state(self.random_state)
        step_weights = None if sample_weight is None else np.repeat(sample_weight, seqs.lengths)
        config = {name: getattr(self, name) for name in ("cell", "hidden_size", "num_layers", "bidirectional")}
        if self.embedding_dim is not None:
            self.vocabulary_ = np.unique(seqs.values[seqs.mask])
            self._x_scaler = None
            config.update(input_size=self.embedding_dim, vocabulary_size=len(self.vocabulary_) + 1, dtype="float32")
        else:
            if hasattr(self, "vocabulary_"):
                del self.vocabulary_
            if not self.standardize:
                self._x_scaler = None
            elif isinstance(seqs, ChunkedSequences):
                self._x_scaler = Standardizer.from_moments(seqs.moments, seqs.values.dtype)
            else:
                self._x_scaler = Standardizer.fit(seqs.values[seqs.mask], step_weights)
            config.update(input_size=seqs.values.shape[2] * (2 if self.missing == "mask" else 1),
                          dtype=seqs.values.dtype.name)
        config.update(
            device=device,
            dropout=float(self.dropout),
            seed=int(self._rng.randint(np.iinfo(np.int32).max - 1)),
            n_outputs=n_outputs,
            per_step=per_step,
        )
        config.update(self._cell_options())
        self.network_ = SequenceNet(config)
        self.loss_curve_ = []
        self.best_loss_ = np.inf
        self.validation_scores_ = self.best_validation_score_ = None
        self.n_iter_ = 0

    def _check_architecture(self):
        config = self.network_.config
        changed = [name for name in _ARCHITECTURE if name in config and config[name] != getattr(self, name)]
        if changed:
            raise ValueError(
                f"cannot continue training after changing {changed}; set warm_start=False to start afresh"
            )

    def _make_optimizer(self):
        params = self.network_.named_parameters()  # paired with the gradients by name
        if self.optimizer == "adam":
            return Adam(params, self.learning_rate, weight_decay=self.weight_decay)
        return SGD(params, self.learning_rate, self.momentum, self.nesterov, self.weight_decay)

    # ---- training -----------------------------------------------------------------------

    def _fit(self, X, y, *, partial, classes=None, sample_weight=None, gradients=batch_gradients):
        self._check_params()
        device = self._resolve_device()  # before any data is touched or any training runs
        continuing = hasattr(self, "network_") and (partial or self.warm_start)
        if continuing and (self.embedding_dim is None) == hasattr(self, "vocabulary_") or (
                continuing and self.embedding_dim is not None
                and self.embedding_dim != self.network_.config["input_size"]):
            raise ValueError("cannot continue training after changing embedding_dim; set warm_start=False to "
                             "start afresh")
        if continuing and self.missing != self._missing:
            raise ValueError(f"cannot continue training after changing missing from {self._missing!r} to "
                             f"{self.missing!r}; set warm_start=False to start afresh")
        # Validation computes into locals; fitted state changes only once all of it passed.
        # a Dask-backed X's streaming pass weighs the scaling moments, so its weights are checked first
        lazy_samples = X.sizes.get(self.dims[0]) if is_lazy(X) else None
        if lazy_samples is not None:
            sample_weight = _checked_sample_weight(sample_weight, lazy_samples)
        seqs = self._check_X(X, reset=not continuing, sample_weight=sample_weight)
        if lazy_samples is None:
            sample_weight = _checked_sample_weight(sample_weight, len(seqs.lengths))
        targets = self._check_targets(y, seqs, reset=not continuing)
        encoded, fitted = self._encode_targets(targets, seqs, reset=not continuing, classes=classes,
                                               sample_weight=sample_weight)
        class_weights = self._class_weights(encoded, targets, fitted, partial=partial)
        if continuing:
            self._check_architecture()
        restore = self._snapshot()
        try:
            self._set_up(seqs, targets, fitted, device, sample_weight, continuing=continuing, partial=partial)
            train_rows, val = np.arange(len(seqs.lengths)), None
            if self.early_stopping and not partial:
                stratify = encoded if isinstance(self, ClassifierMixin) and not targets.per_step else None
                train_rows, val = validation_split(train_rows, self.validation_fraction, self._rng, stratify,
                                                   type(self).__name__, sample_weight)
                if val is None:  # too few to validate on: train without a validation set
                    self.validation_scores_ = self.best_validation_score_ = None
            inputs = ChunkedInputs(seqs, self._scaled) if isinstance(seqs, ChunkedSequences) else self._scaled(seqs)
            data = TrainingData(inputs, seqs.lengths, encoded, targets.values, train_rows, val,
                                targets.observed, sample_weight, class_weights)
            train(self, data, partial=partial, gradients=gradients)
        except BaseException:  # a failed or interrupted call leaves the estimator as it was
            restore()
            raise
        return self

    def _class_weights(self, encoded, targets, fitted, *, partial):
        """Training-loss weights per encoded class (``class_weight``), or None."""
        return None

    def _snapshot(self):
        """A function that puts the estimator back as it is now, weights and optimizer included."""
        state = self.__dict__.copy()
        net = state.get("network_")
        weights = None if net is None else (net.state_dict(), net.generator_state())
        mutable = {name: copy.deepcopy(state[name])
                   for name in ("_optimizer", "_rng", "loss_curve_", "validation_scores_") if name in state}

        def restore():
            self.__dict__.clear()
            self.__dict__.update(state, **mutable)
            if net is not None:
                net.load_state_dict(weights[0])
                net.set_generator_state(weights[1])

        return restore

    def _set_up(self, seqs, targets, fitted, device, sample_weight, *, continuing, partial):
        """Fitted attributes, network and optimizer for a call, once its data passed validation."""
        if continuing:
            self.network_ = self.network_.to(device)  # the optimizer's state follows its parameters
        else:
            self._fit_columns = seqs.n_columns is not None
            self.n_features_in_ = seqs.n_columns if self._fit_columns else seqs.values.shape[2]
            self._missing = self.missing
            names = self._feature_names(seqs)
            if names is not None:
                self.feature_names_in_ = names.astype(object)
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            self._output_dim, self._output_coord = targets.output_dim, targets.output_coord
            for name, value in fitted.items():
                setattr(self, name, value)
            self._build(seqs, self._n_outputs(), targets.per_step, device, sample_weight)
        self.device_ = device
        if not partial or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        if not partial:  # each fit call holds out and tracks its own validation set
            self.validation_scores_ = [] if self.early_stopping else None
            self.best_validation_score_ = -np.inf if self.early_stopping else None

    # ---- prediction ---------------------------------------------------------------------

    def _forward(self, X):
        """Validated X and the network's outputs: one row per sequence, or per valid step."""
        if not hasattr(self, "network_"):  # raises; check_is_fitted(self) would cost a tag lookup per predict
            check_is_fitted(self, "network_")
        seqs = self._check_X(X, reset=False)
        if isinstance(seqs, ChunkedSequences):
            return seqs, ChunkedInputs(seqs, self._scaled).predict(self.network_, np.arange(len(seqs.lengths)))
        return seqs, self.network_.predict(self._scaled(seqs), seqs.lengths)

    def _output(self, rows, seqs, output_dim, output_coord=None, quantiles=None):
        """Rows back into the shape and type of the input.

        Per-step rows go back to the input's steps. Padded steps hold NaN,
        but per-step labels come as a masked array of the labels' own dtype
        for array input (whatever the padding), and as float (numeric
        labels) or object for a DataArray.
        """
        kwargs = dict(output_dim=output_dim, output_coord=output_coord, quantiles=quantiles)
        if not self.network_.per_step:
            return to_output(rows, seqs, per_step=False, **kwargs)
        labels = rows.dtype.kind not in "fc"
        if labels and seqs.dims is not None:
            rows = rows.astype(np.float64 if rows.dtype.kind in "iub" else object)
        full = np.full(seqs.mask.shape + rows.shape[1:], 0 if rows.dtype.kind in "iub" else np.nan, rows.dtype)
        full[seqs.mask] = rows
        out = to_output(seqs.to_input_steps(full), seqs, per_step=True, **kwargs)
        if labels and seqs.dims is None:
            return np.ma.MaskedArray(out, mask=~seqs.to_input_steps(seqs.mask))
        return out

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination (regressor) or accuracy (classifier) over all targets.

        Per-step targets count once per valid step; ``sample_weight`` (one
        per sequence) then applies to each step of its sequence.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Sequences, as in ``fit``.
        y : array-like or xarray.DataArray
            True targets, of the form used in ``fit``.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        float
        """
        seqs, outputs = self._forward(X)
        targets = self._check_targets(y, seqs, reset=False)
        data = TrainingData(seqs.values, seqs.lengths, None, targets.values, np.arange(len(seqs.lengths)),
                            observed=targets.observed,
                            sample_weight=_checked_sample_weight(sample_weight, len(seqs.lengths)))
        return self._score(outputs, *data.rows(targets.values, data.train, self.network_.per_step))

    def _score(self, outputs, rows, weights):
        """The score over the target rows of non-zero weight (None: all, equally)."""
        if weights is not None:
            keep = weights > 0
            outputs, rows, weights = outputs[keep], rows[keep], weights[keep]
        return self._score_rows(outputs, rows, weights)

    @_lazy_for_dask
    def inspect(self, X):
        """Per-step gate activations and states of the fitted network.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Sequences, as in ``predict`` (standardized the same way).

        Returns
        -------
        xarray.Dataset
            One variable per gate or state: for LSTM ``input_gate``,
            ``forget_gate``, ``cell_candidate``, ``output_gate``, ``cell`` and
            ``hidden``; for GRU ``reset_gate``, ``update_gate``, ``candidate``
            and ``hidden``; for RNN ``hidden``. Each has dims (sample, time,
            ``layer``, ``direction``, ``unit``), the sample and time coords of a
            DataArray X, and NaN at padded steps.
        """
        check_is_fitted(self)
        seqs = self._check_X(X, reset=False)
        states = self.network_.gate_states(self._scaled(seqs), seqs.lengths)
        config = self.network_.config
        sample, time, _ = self.dims
        out_dims = (sample, time, "layer", "direction", "unit")
        coords = {d: c for d, c in seqs.coords.items() if d in out_dims}
        coords.update(
            layer=np.arange(config["num_layers"]),
            direction=["forward", "reverse"][: 2 if config["bidirectional"] else 1],
            unit=np.arange(config["hidden_size"]),
        )
        data = {name: (out_dims, seqs.to_input_steps(value.transpose(3, 2, 0, 1, 4))) for name, value in states.items()}
        return xr.Dataset(data, coords=coords, attrs={"cell": self.network_.config["cell"]})

    # ---- saving -------------------------------------------------------------------------

    def save(self, path):
        """Save the fitted estimator to ``path`` in numlstm's safe format (no pickle).

        The file is a ``.npz`` archive of arrays with JSON metadata; read it
        back with ``numlstm.load``. It is written atomically: to a
        temporary file beside ``path``, then renamed over it, so that a crash
        mid-write leaves the previous file whole. Optimizer state is not
        saved: a loaded model predicts bit-identically, and ``partial_fit`` on
        it starts a fresh optimizer. A ``random_state`` that is not an int is
        saved as None, and ``checkpoint_path`` is not saved.

        Parameters
        ----------
        path : str or path-like
            Written as given (no extension is added).
        """
        check_is_fitted(self)
        io.write_model(path, *io.estimator_payload(self))

    @classmethod
    def from_torch(cls, recurrent, head, *, per_step=False, classes=None, dims=DEFAULT_DIMS):
        """A fitted estimator that computes what a PyTorch recurrent module and a Linear head compute.

        The head reads the recurrent output as the estimators do: at each
        sequence's last valid step (and at step 0 for the reverse direction),
        or at every step with ``per_step``. Inputs are used as they are
        (``standardize=False``), as the PyTorch model saw them.

        Parameters
        ----------
        recurrent : torch.nn.LSTM, torch.nn.GRU or torch.nn.RNN (tanh)
            With biases and without projections.
        head : torch.nn.Linear
            From the recurrent output (``hidden_size`` times the directions)
            to the regressor's outputs or the classifier's class scores.
        per_step : bool, default=False
            One output per time step (tagging) instead of one per sequence.
        classes : array-like or None, default=None
            Classifier only: the label of each head output, in order
            (default ``0 .. n_outputs - 1``).
        dims : tuple of str, default=("sample", "time", "feature")
            As the ``dims`` hyper-parameter.

        Returns
        -------
        LSTMRegressor or LSTMClassifier
            Fitted, on the CPU; ``n_iter_`` is 0.
        """
        cell = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn"}.get(getattr(recurrent, "mode", None))
        if cell is None or getattr(recurrent, "proj_size", 0) or not getattr(recurrent, "bias", False):
            raise ValueError("recurrent must be a torch.nn.LSTM, GRU or RNN (tanh) with biases and no "
                             f"projection, got {recurrent!r}")
        if getattr(head, "weight", None) is None or getattr(head, "bias", None) is None:
            raise ValueError(f"head must be a torch.nn.Linear with a bias, got {head!r}")
        state = {name: value.detach().cpu().numpy() for name, value in recurrent.state_dict().items()}
        weight, bias = (np.asarray(p.detach().cpu().numpy()) for p in (head.weight, head.bias))
        dtype = state["weight_ih_l0"].dtype.name
        if dtype not in ("float32", "float64") or weight.dtype != dtype:
            raise ValueError(f"the PyTorch weights must all be float32 or all float64, got {dtype} and {weight.dtype}")
        directions = 2 if recurrent.bidirectional else 1
        if weight.ndim != 2 or weight.shape[1] != recurrent.hidden_size * directions:
            raise ValueError(f"head must map {recurrent.hidden_size * directions} recurrent outputs, "
                             f"got a weight of shape {weight.shape}")
        n_outputs = weight.shape[0]
        est = cls(cell=cell, hidden_size=recurrent.hidden_size, num_layers=recurrent.num_layers,
                  bidirectional=recurrent.bidirectional, dropout=float(recurrent.dropout),
                  standardize=False, dims=tuple(dims), **({"forget_bias": 0.0} if cell == "lstm" else {}))
        est._check_params()
        config = dict(cell=cell, input_size=recurrent.input_size, hidden_size=recurrent.hidden_size,
                      num_layers=recurrent.num_layers, bidirectional=recurrent.bidirectional,
                      dropout=float(recurrent.dropout), dtype=dtype, device="cpu", seed=0,
                      n_outputs=n_outputs, per_step=bool(per_step))
        config.update(est._cell_options())  # torch's cells: no variant, forget bias 0
        est.network_ = SequenceNet(config)
        est.network_.load_state_dict({**state, "head.weight": weight, "head.bias": bias})
        est._set_task_from_torch(n_outputs, classes)
        est.n_features_in_, est._fit_columns, est._missing = recurrent.input_size, False, "error"
        est._x_scaler, est._output_coord = None, None
        est.loss_curve_, est.best_loss_, est.n_iter_ = [], np.inf, 0
        est.validation_scores_ = est.best_validation_score_ = None
        est._rng, est.device_ = check_random_state(None), "cpu"
        return est

    def __setstate__(self, state):
        super().__setstate__(state)
        if "network_" in self.__dict__:  # the net comes back on the CPU where no GPU is usable
            self.device_ = self.network_.device

    def _check_restored(self):
        """Cross-check restored attributes, so that a crafted file fails here, not in predict."""
        config = self.network_.config
        features = self._step_features()
        vocabulary = getattr(self, "vocabulary_", None)
        if vocabulary is not None:
            if config.get("vocabulary_size") != len(vocabulary) + 1 or config["input_size"] != self.embedding_dim:
                raise ValueError("the saved embedding table does not match vocabulary_ and embedding_dim")
        elif (config["input_size"] != features * (2 if self._missing == "mask" else 1)
                or (not self._fit_columns and features != self.n_features_in_)
                or config["n_outputs"] != self._n_outputs()):
            raise ValueError("the saved network does not match the saved feature or output counts")
        if len(self.loss_curve_) != self.n_iter_:
            raise ValueError(f"the saved loss_curve_ has {len(self.loss_curve_)} epochs, n_iter_ says {self.n_iter_}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and names.shape != (features,):
            raise ValueError("the saved feature_names_in_ do not match n_features_in_")
        for name, size in (("_x_scaler", features), ("_y_scaler", getattr(self, "n_outputs_", None))):
            saved = getattr(self, name, None)
            if saved is not None:
                scaler = Standardizer.restored(*saved, size)
                if scaler.mean.dtype != config["dtype"]:
                    raise ValueError(f"the saved scaling is {scaler.mean.dtype}, the network {config['dtype']}")
                setattr(self, name, scaler)


@io.loadable
class LSTMRegressor(RegressorMixin, _SequenceEstimator):
    __doc__ = (
        """Recurrent-network regressor for sequences (sequence-to-one and sequence-to-sequence).

    Trains a recurrent layer (LSTM, GRU or RNN) and a dense output layer on the
    mean squared error, with mini-batches and Adam or SGD.

    X is a 3-D array ``(sample, time, feature)``, a 2-D array of univariate
    sequences ``(sample, time)``, or an ``xarray.DataArray`` with named
    dims. Trailing NaN marks the end of a shorter sequence. y is
    ``(n_samples,)`` or ``(n_samples, n_outputs)`` for one target per
    sequence, or has a time dim (a 3-D array ``(n_samples, n_timesteps,
    n_outputs)`` or a DataArray with the time dim) for one target per step.
"""
        + _PARAMETERS_DOC
        % dict(
            target_note=" and each target",
            loss_note=" (mean squared error, in standardized target units when ``standardize``)",
            score_name="R²",
            min_val=MIN_VALIDATION_SEQUENCES,
            patience=DEFAULT_PATIENCE,
        )
        + """    n_outputs_ : int
        Number of targets per sequence (or per step).

    Examples
    --------
    >>> import numpy as np
    >>> from numlstm import LSTMRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 10))          # 64 univariate sequences of 10 steps
    >>> y = X[:, -3:].sum(axis=1)
    >>> reg = LSTMRegressor(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
    """
    )

    _numeric_targets = True
    _multi_output = True
    score = _SequenceEstimator.score  # RegressorMixin.score knows no per-step targets
    _SAVED = _SequenceEstimator._SAVED + ("n_outputs_", "_y_scaler", "_quantiles")
    _LOSSES = {"squared_error": squared_error, "absolute_error": absolute_error, "huber": huber,
               "quantile": pinball}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _n_outputs(self):
        return self.n_outputs_ * (len(self._quantiles) if self._quantiles else 1)

    def _set_task_from_torch(self, n_outputs, classes):
        if classes is not None:
            raise ValueError("classes is for LSTMClassifier.from_torch")
        self.n_outputs_, self._y_scaler, self._quantiles = n_outputs, None, None
        self._output_dim = "output" if n_outputs > 1 else None

    def _requested_quantiles(self):
        """The sorted quantiles ``loss`` and ``quantiles`` ask for, or None."""
        if self.loss != "quantile":
            return None
        return sorted(float(q) for q in (self.quantiles if self.quantiles is not None else (0.1, 0.5, 0.9)))

    def _encode_targets(self, targets, seqs, *, reset, classes=None, sample_weight=None):
        """Encoded targets and, on ``reset``, the fitted attributes to set (not yet set)."""
        values = targets.values
        if reset:
            rows = values[targets.observed] if targets.per_step else values
            weights = sample_weight
            if weights is not None and targets.per_step:
                weights = np.repeat(weights, targets.observed.sum(axis=1))
            y_scaler = Standardizer.fit(rows, weights) if self.standardize else None
            fitted = {"n_outputs_": values.shape[-1], "_y_scaler": y_scaler, "_quantiles": self._requested_quantiles()}
        else:
            if values.shape[-1] != self.n_outputs_:
                raise ValueError(
                    f"y has {values.shape[-1]} outputs, but {type(self).__name__} was fitted with {self.n_outputs_}"
                )
            if self._requested_quantiles() != self._quantiles:
                raise ValueError(f"cannot continue training with other quantiles than {self._quantiles} "
                                 "(loss and quantiles); set warm_start=False to start afresh")
            y_scaler, fitted = self._y_scaler, {}
        return (values if y_scaler is None else y_scaler.transform(values)), fitted

    def _decode(self, outputs):
        """Outputs in y's units: ``(n_rows, n_outputs)``, or ``(n_rows, n_outputs, n_quantiles)``
        with the quantiles in increasing order."""
        if self._quantiles:
            outputs = np.sort(outputs.reshape(len(outputs), self.n_outputs_, len(self._quantiles)), axis=-1)
            if self._y_scaler is not None:
                return (outputs * self._y_scaler.scale[:, None] + self._y_scaler.mean[:, None]).astype(outputs.dtype)
            return outputs
        return outputs if self._y_scaler is None else self._y_scaler.inverse_transform(outputs)

    def _loss(self, outputs, rows, weights=None):
        if self._quantiles:
            return pinball(outputs, rows, self._quantiles, weights)
        return self._LOSSES[self.loss or "squared_error"](outputs, rows, weights)

    def _score_rows(self, outputs, rows, sample_weight=None):
        predicted = self._decode(outputs)
        if self._quantiles:  # the quantile nearest the median
            predicted = predicted[..., _median_quantile(self._quantiles)]
        return float(r2_score(rows, predicted, sample_weight=sample_weight))

    def fit(self, X, y, sample_weight=None):
        """Train on sequences X and targets y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps[, n_features]), list of arrays or xarray.DataArray
            Sequences; NaN steps pad shorter ones at the end or the start.
        y : array-like or xarray.DataArray
            ``(n_samples,)`` or ``(n_samples, n_outputs)``, or per step with a
            time dim. Per-step values at padded steps are ignored, and NaN
            per-step values are left out of the loss.
        sample_weight : array-like of shape (n_samples,), default=None
            A non-negative weight per sequence (its per-step targets share it):
            the loss is the weighted mean, so a weight of 2 counts a sequence
            twice. Also weights the validation score.

        Returns
        -------
        self
        """
        return self._fit(X, y, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, sample_weight=None):
        """Train for one epoch on X and y, continuing from the current state.

        The first call sets up the model as ``fit`` does. Early stopping is
        not used.

        Parameters
        ----------
        X, y, sample_weight
            As in ``fit``.

        Returns
        -------
        self
        """
        return self._fit(X, y, partial=True, sample_weight=sample_weight)

    @_lazy_for_dask
    def predict(self, X):
        """Predict targets.

        Parameters
        ----------
        X : array-like or xarray.DataArray
            Sequences with the features of fit; they may be longer than any seen in fit.

        Returns
        -------
        ndarray or xarray.DataArray
            Of the form of y in fit: ``(n_samples[, n_outputs])`` or, per
            step, ``(n_samples, n_timesteps[, n_outputs])`` with NaN at padded
            steps. A DataArray for a DataArray X, with its sample (and time) coords.
        """
        seqs, outputs = self._forward(X)
        return self._output(self._decode(outputs), seqs, self._output_dim, self._output_coord, self._quantiles)


@io.loadable
class LSTMClassifier(ClassifierMixin, _SequenceEstimator):
    __doc__ = (
        """Recurrent-network classifier for sequences, or for each step of them (tagging).

    Trains a recurrent layer (LSTM, GRU or RNN) and a dense softmax layer on the
    cross-entropy, computed through a numerically stable log-softmax.

    X is a 3-D array ``(sample, time, feature)``, a 2-D array of univariate
    sequences ``(sample, time)``, or an ``xarray.DataArray`` with named
    dims. Trailing NaN marks the end of a shorter sequence. y holds labels of
    any type: ``(n_samples,)`` for one label per sequence, or with a time dim
    (a 3-D array ``(n_samples, n_timesteps, 1)`` or a DataArray with the time
    dim) for one label per step.
"""
        + _PARAMETERS_DOC
        % dict(target_note="", loss_note=" (cross-entropy)", score_name="accuracy",
               min_val=MIN_VALIDATION_SEQUENCES, patience=DEFAULT_PATIENCE)
        + """    classes_ : ndarray of shape (n_classes,)
        The class labels.

    Examples
    --------
    >>> import numpy as np
    >>> from numlstm import LSTMClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 10))
    >>> y = np.where(X[:, -1] > 0, "up", "down")
    >>> clf = LSTMClassifier(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """
    )

    _numeric_targets = False
    _multi_output = False
    score = _SequenceEstimator.score  # ClassifierMixin.score knows no per-step targets
    _SAVED = _SequenceEstimator._SAVED + ("classes_",)
    _LOSSES = {"log_loss": cross_entropy}

    def _n_outputs(self):
        return len(self.classes_)

    def _encode_targets(self, targets, seqs, *, reset, classes=None, sample_weight=None):
        """Encoded labels and, on ``reset``, the fitted attributes to set (not yet set)."""
        labels = targets.values[..., 0]
        valid = labels[targets.observed] if targets.per_step else labels
        check_classification_targets(valid)
        if reset:
            found = np.unique(valid) if classes is None else np.unique(np.asarray(classes))
            if len(found) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes, but the data "
                    f"contains only one class: {found[0]!r}"
                )
            fitted = {"classes_": found}
        else:
            found, fitted = self.classes_, {}
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), found):
                raise ValueError(f"classes={classes!r} differs from classes_={found!r} of the first call")
        index = np.searchsorted(found, valid).clip(0, len(found) - 1)
        unknown = found[index] != valid
        if unknown.any():
            raise ValueError(f"y contains labels not in classes_ {found!r}: {np.unique(valid[unknown])!r}")
        if not targets.per_step:
            return index, fitted
        encoded = np.zeros(labels.shape, np.intp)
        encoded[targets.observed] = index
        return encoded, fitted

    def _loss(self, outputs, rows, weights=None):
        return cross_entropy(outputs, rows, weights)

    def _set_task_from_torch(self, n_outputs, classes):
        classes = np.arange(n_outputs) if classes is None else np.asarray(classes)
        if classes.shape != (n_outputs,) or len(np.unique(classes)) != n_outputs or n_outputs < 2:
            raise ValueError(f"classes must hold {n_outputs} distinct labels, one per head output "
                             f"(at least 2), got {classes!r}")
        if not np.array_equal(np.unique(classes), classes):
            order = np.argsort(classes)  # classes_ is sorted: reorder the head's rows with it
            self.network_.weight[:] = self.network_.weight[order]
            self.network_.bias[:] = self.network_.bias[order]
            classes = classes[order]
        self.classes_, self._output_dim = classes, None

    def _class_weights(self, encoded, targets, fitted, *, partial):
        if self.class_weight is None:
            return None
        if self.class_weight == "balanced" and partial:
            raise ValueError("class_weight='balanced' needs the labels of the whole training set, so "
                             "partial_fit does not take it; pass a dict of class weights")
        classes = fitted.get("classes_", getattr(self, "classes_", None))
        if isinstance(self.class_weight, dict):
            unknown = [label for label in self.class_weight if label not in set(classes.tolist())]
            if unknown:
                raise ValueError(f"class_weight names labels that are not classes: {unknown}; the classes "
                                 f"are {classes.tolist()}")
        labels = classes[encoded[targets.observed] if targets.per_step else encoded]
        try:
            return compute_class_weight(self.class_weight, classes=classes, y=labels)
        except ValueError as exc:
            raise ValueError(f"class_weight={self.class_weight!r}: {exc}") from None

    def _score_rows(self, outputs, rows, sample_weight=None):
        return float(accuracy_score(rows[:, 0], self.classes_[outputs.argmax(axis=1)], sample_weight=sample_weight))

    def fit(self, X, y, sample_weight=None):
        """Train on sequences X and labels y.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_timesteps[, n_features]), list of arrays or xarray.DataArray
            Sequences; NaN steps pad shorter ones at the end or the start.
        y : array-like or xarray.DataArray
            Labels: ``(n_samples,)``, or per step with a time dim. Per-step
            labels at padded steps are ignored, and NaN or None per-step
            labels are left out of the loss.
        sample_weight : array-like of shape (n_samples,), default=None
            A non-negative weight per sequence (its per-step targets share it):
            the loss is the weighted mean, so a weight of 2 counts a sequence
            twice. Also weights the validation score.

        Returns
        -------
        self
        """
        return self._fit(X, y, partial=False, sample_weight=sample_weight)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on X and y, continuing from the current state.

        Parameters
        ----------
        X, y, sample_weight
            As in ``fit``.
        classes : array-like, default=None
            All the labels that will ever be seen; required on the first call.

        Returns
        -------
        self
        """
        if classes is None and not hasattr(self, "classes_"):
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, partial=True, classes=classes, sample_weight=sample_weight)

    @_lazy_for_dask
    def predict_proba(self, X):
        """Class probabilities.

        Returns
        -------
        ndarray or xarray.DataArray
            ``(n_samples, n_classes)``, or per step ``(n_samples, n_timesteps,
            n_classes)`` with NaN at padded steps; a DataArray with a ``class``
            dim for a DataArray X.
        """
        seqs, outputs = self._forward(X)
        return self._output(softmax(outputs), seqs, "class", self.classes_)

    @_lazy_for_dask
    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``, computed stably from the logits."""
        seqs, outputs = self._forward(X)
        return self._output(log_softmax(outputs), seqs, "class", self.classes_)

    @_lazy_for_dask
    def predict(self, X):
        """Predict labels.

        Returns
        -------
        ndarray, numpy.ma.MaskedArray or xarray.DataArray
            ``(n_samples,)``, or per step ``(n_samples, n_timesteps)``: then a
            masked array of the labels' dtype, masked at padded steps (for a
            DataArray X, float for numeric labels, else object, NaN at padded
            steps).
        """
        seqs, outputs = self._forward(X)
        return self._output(self.classes_[outputs.argmax(axis=1)][:, None], seqs, None)




def _checked_sample_weight(sample_weight, n_samples):
    """``sample_weight`` as float64 ``(n_samples,)``, non-negative with a positive sum, or None."""
    if sample_weight is None:
        return None
    try:
        weights = _check_sample_weight(sample_weight, np.empty(n_samples), dtype=np.float64,
                                       ensure_non_negative=True)
    except ValueError as exc:
        raise ValueError(f"sample_weight: {exc}") from None
    if not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError("sample_weight must be finite, with a positive sum")
    return weights
