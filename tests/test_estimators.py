"""LSTMRegressor and LSTMClassifier: inputs, tasks, training loop, saving, errors.

Everything here trains tiny networks for a few epochs; learning on real data is
in ``test_learning.py``.
"""

import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import numlstm
from numlstm import LSTMClassifier, LSTMRegressor
from numlstm._net import SequenceNet
from numlstm.optim import Adam

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TINY = dict(hidden_size=6, max_iter=3, learning_rate=0.01, random_state=0)


def sequences(n=40, T=6, F=2, seed=0, min_length=None):
    """Random sequences, padded with NaN past random lengths when ``min_length`` is set."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F))
    lengths = np.full(n, T) if min_length is None else rng.integers(min_length, T + 1, n)
    X[np.arange(T) >= lengths[:, None]] = np.nan
    return X, lengths


def last_valid(X, lengths):
    return X[np.arange(len(X)), lengths - 1]


def weights(est):
    return est.network_.state_dict()


# ---- inputs and outputs ---------------------------------------------------------------


def test_regressor_3d_2d_and_variable_length():
    X, lengths = sequences(min_length=2)
    y = last_valid(X, lengths).sum(axis=1)
    reg = LSTMRegressor(**TINY).fit(X, y)
    assert reg.n_features_in_ == 2 and reg.n_outputs_ == 1
    pred = reg.predict(X)
    assert pred.shape == (40,) and pred.dtype == np.float64
    # padding changes nothing: a sequence predicts the same alone and unpadded
    i = int(np.argmin(lengths))
    alone = reg.predict(X[i : i + 1, : lengths[i]])
    np.testing.assert_allclose(alone, pred[i : i + 1], rtol=1e-12)
    # longer sequences than any seen in fit
    assert reg.predict(np.random.default_rng(1).normal(size=(3, 50, 2))).shape == (3,)
    # a 2-D X keeps its column count, as scikit-learn expects; the 3-D form takes any length
    univariate = LSTMRegressor(**TINY).fit(X[:, :, 0], y)
    assert univariate.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match=r"X has 5 features, but LSTMRegressor is expecting 6 .* 3-D X"):
        univariate.predict(X[:, :5, 0])
    assert univariate.predict(X[:, :5, :1]).shape == (40,)
    np.testing.assert_array_equal(univariate.predict(X[:, :, :1]), univariate.predict(X[:, :, 0]))


def test_float32_in_float32_out():
    X, _ = sequences()
    reg = LSTMRegressor(**TINY).fit(X.astype(np.float32), X[:, -1, 0])
    assert all(w.dtype == np.float32 for w in weights(reg).values())
    assert reg.predict(X).dtype == np.float32


def test_dataarray_in_dataarray_out():
    X, lengths = sequences(n=30, min_length=3)
    da = xr.DataArray(
        X, dims=("run", "step", "var"),
        coords={"run": [f"r{i}" for i in range(30)], "step": np.arange(6) * 10, "var": ["u", "v"]},
    ).transpose("var", "run", "step")
    y = xr.DataArray(np.stack([last_valid(X, lengths)[:, 0], lengths], 1), dims=("run", "target"),
                     coords={"target": ["a", "b"]})
    reg = LSTMRegressor(dims=("run", "step", "var"), **TINY).fit(da, y)
    pred = reg.predict(da)
    assert isinstance(pred, xr.DataArray) and pred.dims == ("run", "target")
    assert list(pred["target"].values) == ["a", "b"] and pred["run"].values[3] == "r3"
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(pred.values, reg.predict(X))
    assert list(reg.feature_names_in_) == ["u", "v"]
    with pytest.raises(ValueError, match="fitted on"):
        reg.predict(da.assign_coords(var=["v", "u"]))


def test_sequence_to_sequence_regression():
    X, lengths = sequences(min_length=2)
    y = np.cumsum(np.nan_to_num(X), axis=1)  # (n, T, 2): two targets per step
    reg = LSTMRegressor(**TINY).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (40, 6, 2)
    mask = np.arange(6) < lengths[:, None]
    assert np.isnan(pred[~mask]).all() and np.isfinite(pred[mask]).all()
    da = xr.DataArray(X, dims=("sample", "time", "feature"), coords={"time": np.arange(6)})
    y_da = xr.DataArray(y[..., 0], dims=("sample", "time"))
    per_step = LSTMRegressor(**TINY).fit(da, y_da).predict(da)
    assert per_step.dims == ("sample", "time") and list(per_step["time"].values) == list(range(6))
    # score pools every valid step of every sequence; padded steps are left out
    assert reg.score(X, y) == pytest.approx(r2_score(y[mask], pred[mask]), rel=1e-12, abs=1e-12)
    with pytest.raises(ValueError, match="per-step targets"):
        reg.score(X, y[:, 0])


def test_classifier_labels_probabilities_and_sequences():
    X, lengths = sequences(min_length=2)
    y = np.where(last_valid(X, lengths)[:, 0] > 0, "up", "down")
    clf = LSTMClassifier(**TINY).fit(X, y)
    assert list(clf.classes_) == ["down", "up"]
    proba = clf.predict_proba(X)
    assert proba.shape == (40, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    da = xr.DataArray(X, dims=("sample", "time", "feature"), coords={"sample": np.arange(40) + 100})
    proba_da = clf.predict_proba(da)
    assert proba_da.dims == ("sample", "class") and list(proba_da["class"].values) == ["down", "up"]


def test_per_step_classification():
    X, lengths = sequences(min_length=3)
    tags = np.where(np.nan_to_num(X[..., 0]) > 0, "NOUN", "VERB").astype(object)
    tags[np.isnan(X[..., 0])] = np.nan  # what aligning DataArrays of labels gives
    clf = LSTMClassifier(**TINY).fit(X, tags[..., None])
    pred = clf.predict(X)
    mask = np.arange(6) < lengths[:, None]
    # masked at the padded steps, in the labels' own dtype whatever the padding
    assert isinstance(pred, np.ma.MaskedArray) and pred.shape == (40, 6)
    assert pred.dtype == clf.classes_.dtype
    np.testing.assert_array_equal(pred.mask, ~mask)
    assert set(pred[mask]) <= {"NOUN", "VERB"}
    assert clf.predict_proba(X).shape == (40, 6, 2)
    assert clf.score(X, tags[..., None]) == accuracy_score(tags[mask].astype(str), pred[mask].astype(str))
    unpadded = LSTMClassifier(**TINY).fit(X[:, :2], tags[:, :2, None])
    assert unpadded.predict(X[:, :2]).dtype == unpadded.classes_.dtype
    numbered = LSTMClassifier(**TINY).fit(X, np.where(tags == "NOUN", 1, 2)[..., None])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        for data in (X, X[:, :2]):
            assert numbered.predict(data).dtype == numbered.classes_.dtype == np.int64
    labelled = clf.predict(xr.DataArray(X, dims=("sample", "time", "feature")))
    assert labelled.dtype == object and labelled.values[~mask].tolist() == [np.nan] * int((~mask).sum())


# ---- training loop --------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        dict(cell="gru"),
        dict(cell="rnn"),
        dict(peephole=True, coupled=True),
        dict(bidirectional=True, num_layers=2, dropout=0.3),
        dict(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3, clip_norm=None),
        dict(standardize=False, batch_size=7),
    ],
)
def test_variants_learn(params):
    X, lengths = sequences(min_length=2)
    y = last_valid(X, lengths)[:, 0]
    reg = LSTMRegressor(**{**TINY, "max_iter": 6, **params}).fit(X, y)
    assert len(reg.loss_curve_) == reg.n_iter_ == 6
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.best_loss_ == min(reg.loss_curve_)
    assert np.isfinite(reg.predict(X)).all()


def test_weight_decay_shrinks_weights():
    X, _ = sequences()
    y = X[:, -1, 0]
    norm = lambda est: sum(float((w**2).sum()) for w in weights(est).values())  # noqa: E731
    assert norm(LSTMRegressor(**{**TINY, "weight_decay": 1.0}).fit(X, y)) < norm(LSTMRegressor(**TINY).fit(X, y))


def test_standardization_makes_units_irrelevant():
    X, _ = sequences()
    y = X[:, -1, 0] + X[:, -2, 1]
    reg = LSTMRegressor(**TINY).fit(X, y)
    scaled = LSTMRegressor(**TINY).fit(X * 1000 + 5, y * 100 - 3)
    np.testing.assert_allclose(scaled.predict(X * 1000 + 5), reg.predict(X) * 100 - 3, rtol=1e-5, atol=1e-6)


def test_convergence_warning_and_tol_stopping():
    X, _ = sequences()
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        LSTMRegressor(**TINY, n_iter_no_change=10).fit(X, X[:, -1, 0])
    with warnings.catch_warnings():  # n_iter_no_change=None: max_iter epochs are the plan, no stop, no warning
        warnings.simplefilter("error", ConvergenceWarning)
        reg = LSTMRegressor(**{**TINY, "tol": 1e6}).fit(X, X[:, -1, 0])
    assert reg.n_iter_ == TINY["max_iter"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        reg = LSTMRegressor(**{**TINY, "max_iter": 50, "tol": 1e6, "n_iter_no_change": 2}).fit(X, X[:, -1, 0])
    assert reg.n_iter_ == 3  # the first epoch always improves on an infinite best loss


def test_early_stopping_restores_best_weights(tmp_path):
    X, lengths = sequences(n=60, min_length=2)
    y = np.where(last_valid(X, lengths)[:, 0] > 0, 1, 0)
    path = tmp_path / "best.npz"
    params = dict(TINY, max_iter=40, learning_rate=0.05, early_stopping=True, validation_fraction=0.3,
                  n_iter_no_change=3)
    clf = LSTMClassifier(checkpoint_path=path, **params).fit(X, y)
    assert clf.n_iter_ < 40
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert max(clf.validation_scores_[-3:]) < clf.best_validation_score_ + clf.tol
    # the checkpoint was written at the best epoch, and those weights are the ones kept
    best = numlstm.load(path)
    assert best.n_iter_ == int(np.argmax(clf.validation_scores_)) + 1
    np.testing.assert_array_equal(best.predict_proba(X), clf.predict_proba(X))


def test_keyboard_interrupt_keeps_best_model(monkeypatch):
    X, lengths = sequences(n=60)
    y = np.where(X[:, -1, 0] > 0, "a", "b")
    calls = []
    update = Adam.update_params

    def interrupted(self, params, grads):
        calls.append(1)
        if len(calls) == 12:
            raise KeyboardInterrupt
        update(self, params, grads)

    monkeypatch.setattr(Adam, "update_params", interrupted)
    clf = LSTMClassifier(**dict(TINY, max_iter=30, early_stopping=True, validation_fraction=0.3, batch_size=16))
    # 42 training sequences make 3 batches an epoch: the 12th update is in epoch 4
    with pytest.warns(UserWarning, match="interrupted after 3 epochs; the best validation weights"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.validation_scores_) == 3 and len(clf.predict(X)) == 60


def test_partial_fit_and_warm_start():
    X, _ = sequences()
    y = np.where(X[:, -1, 0] > 0, 2, 7)
    clf = LSTMClassifier(**TINY)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    for i in range(3):
        clf.partial_fit(X, y, classes=[2, 7] if i == 0 else None)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X, y, classes=[1, 2, 7])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, np.where(y == 2, 3, 7))
    with pytest.raises(ValueError, match="expecting 2 features"):
        clf.partial_fit(X[:, :, :1], y)
    reg = LSTMRegressor(**dict(TINY, warm_start=True)).fit(X, X[:, -1, 0])
    first = weights(reg)
    reg.fit(X, X[:, -1, 0])
    assert reg.n_iter_ == 6 and len(reg.loss_curve_) == 6
    assert not np.array_equal(first["head.weight"], weights(reg)["head.weight"])
    reg.set_params(early_stopping=True, validation_fraction=0.25).fit(X, X[:, -1, 0])  # a fresh record per fit
    assert reg.n_iter_ == 9 and len(reg.validation_scores_) == 3
    with pytest.raises(ValueError, match="hidden_size"):
        reg.set_params(hidden_size=3).fit(X, X[:, -1, 0])
    cold = LSTMRegressor(**TINY).fit(X, X[:, -1, 0]).fit(X, X[:, -1, 0])
    assert cold.n_iter_ == 3


def test_cosine_schedule_sets_each_epochs_rate(monkeypatch, tmp_path):
    X, _ = sequences(n=20)
    y = X[:, -1, 0]
    seen = []
    update = Adam.update_params

    def recording(self, params, grads):
        seen.append(self.learning_rate)
        return update(self, params, grads)

    monkeypatch.setattr(Adam, "update_params", recording)
    params = dict(TINY, max_iter=4, batch_size=10, learning_rate=0.02, learning_rate_schedule="cosine")
    LSTMRegressor(**params).fit(X, y)
    # two mini-batches per epoch at 0.02 * (1 + cos(pi * t / 4)) / 2 for epochs t = 0..3
    epoch_rates = [0.02, 0.01 * (1 + 0.5**0.5), 0.01, 0.01 * (1 - 0.5**0.5)]
    np.testing.assert_allclose(seen, np.repeat(epoch_rates, 2), rtol=1e-15)
    seen.clear()
    reg = LSTMRegressor(**params)
    for _ in range(3):
        reg.partial_fit(X, y)  # an open-ended run has no last epoch: the rate stays
    assert seen == [0.02] * 6
    # a fit interrupted after two epochs resumes at the third epoch's rate, and ends as a straight fit
    path = tmp_path / "run.npz"

    def interrupting(self, params, grads):
        if len(seen) == 4:
            raise KeyboardInterrupt
        return recording(self, params, grads)

    monkeypatch.setattr(Adam, "update_params", interrupting)
    seen.clear()
    with pytest.warns(UserWarning, match="interrupted after 2 epochs"):
        LSTMRegressor(**params, checkpoint_path=path).fit(X, y)
    monkeypatch.setattr(Adam, "update_params", recording)
    seen.clear()
    resumed = LSTMRegressor(**params, checkpoint_path=path).fit(X, y)
    np.testing.assert_allclose(seen, np.repeat(epoch_rates[2:], 2), rtol=1e-15)
    np.testing.assert_array_equal(resumed.predict(X), LSTMRegressor(**params).fit(X, y).predict(X))
    # max_iter sets every epoch's rate, so a checkpoint of another max_iter is another fit
    with pytest.warns(UserWarning, match="another fit"):
        LSTMRegressor(**dict(params, max_iter=6), checkpoint_path=path).fit(X, y)


def test_verbose_shows_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    X, _ = sequences(n=10)
    LSTMRegressor(**dict(TINY, verbose=True)).fit(X, X[:, -1, 0])
    err = capsys.readouterr().err
    assert "LSTMRegressor" in err and "3/3" in err and "loss=" in err


# ---- reproducibility ------------------------------------------------------------------

REPRO = """
import hashlib, numpy as np, warnings
warnings.simplefilter("ignore")
from numlstm import LSTMClassifier
rng = np.random.default_rng(0)
X = rng.normal(size=(50, 7, 3)); X[::3, 5:] = np.nan
y = np.where(X[:, 0, 0] > 0, "a", "b")
clf = LSTMClassifier(hidden_size=5, num_layers=2, dropout=0.2, max_iter=4, random_state=7).fit(X, y)
h = hashlib.sha256(clf.predict_proba(X).tobytes())
for w in clf.network_.state_dict().values():
    h.update(w.tobytes())
print(h.hexdigest())
"""


def test_bitwise_reproducible_within_and_across_processes():
    digests = {subprocess.run([sys.executable, "-c", REPRO], capture_output=True, text=True, check=True).stdout.strip()}
    namespace = {}
    for _ in range(2):
        with warnings.catch_warnings():
            exec(compile(REPRO.replace("print(h.hexdigest())", "digest = h.hexdigest()"), "repro", "exec"), namespace)
        digests.add(namespace["digest"])
    assert len(digests) == 1
    X, _ = sequences()
    a = LSTMRegressor(**TINY, early_stopping=True, validation_fraction=0.25).fit(X, X[:, -1, 0])
    b = LSTMRegressor(**TINY, early_stopping=True, validation_fraction=0.25).fit(X, X[:, -1, 0])
    assert all(np.array_equal(w, weights(b)[k]) for k, w in weights(a).items())
    assert a.validation_scores_ == b.validation_scores_ and a.loss_curve_ == b.loss_curve_
    assert len(a.validation_scores_) == a.n_iter_  # the validation split drew from random_state too


# ---- scikit-learn integration ---------------------------------------------------------


def test_pipeline_grid_search_cross_val_clone_pickle():
    X, _ = sequences(n=36, F=1)
    X2d = X[..., 0]
    y = np.where(X2d[:, -1] > 0, "pos", "neg")
    scores = cross_val_score(LSTMClassifier(**TINY), X2d, y, cv=3)
    assert scores.shape == (3,)
    pipe = make_pipeline(FunctionTransformer(np.tanh), LSTMRegressor(**TINY))
    grid = GridSearchCV(pipe, {"lstmregressor__hidden_size": [3, 5]}, cv=2).fit(X2d, X2d[:, -1])
    assert grid.best_params_["lstmregressor__hidden_size"] in (3, 5)
    clf = LSTMClassifier(**TINY).fit(X2d, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "classes_")
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X2d), clf.predict_proba(X2d))


def test_network_gradients_match_finite_differences():
    """The head and the layer together, in float64, against central differences."""
    rng = np.random.default_rng(0)
    for per_step, bidirectional in [(False, True), (True, False)]:
        net = SequenceNet(
            dict(cell="lstm", input_size=2, hidden_size=3, num_layers=2, bidirectional=bidirectional, dropout=0.0,
                 dtype="float64", device="cpu", seed=1, n_outputs=2, per_step=per_step, peephole=False,
                 coupled=False, forget_bias=1.0)
        )
        x, lengths = rng.normal(size=(3, 4, 2)), np.array([4, 1, 3])
        outputs, cache = net.forward(x, lengths)
        probe = rng.normal(size=outputs.shape)
        grads = net.backward(probe, cache)
        for param, grad in zip(net.parameters(), grads):
            flat, flat_grad = param.reshape(-1), grad.reshape(-1)
            for j in range(0, flat.size, max(1, flat.size // 4)):
                old = flat[j]
                flat[j] = old + 1e-6
                up = (net.predict(x, lengths) * probe).sum()
                flat[j] = old - 1e-6
                down = (net.predict(x, lengths) * probe).sum()
                flat[j] = old
                assert (up - down) / 2e-6 == pytest.approx(flat_grad[j], abs=1e-7)


# ---- inspection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cell, keys",
    [
        ("lstm", {"input_gate", "forget_gate", "cell_candidate", "output_gate", "cell", "hidden"}),
        ("gru", {"reset_gate", "update_gate", "candidate", "hidden"}),
    ],
)
def test_inspect(cell, keys):
    X, lengths = sequences(n=5, min_length=2)
    da = xr.DataArray(X, dims=("sample", "time", "feature"),
                      coords={"sample": list("abcde"), "time": np.arange(6) * 0.5})
    est = LSTMRegressor(**dict(TINY, cell=cell, bidirectional=True, num_layers=2)).fit(da, lengths)
    ds = est.inspect(da)
    assert isinstance(ds, xr.Dataset) and set(ds.data_vars) == keys
    assert ds["hidden"].dims == ("sample", "time", "layer", "direction", "unit")
    assert ds["hidden"].shape == (5, 6, 2, 2, 6)
    assert list(ds["direction"].values) == ["forward", "reverse"] and list(ds["sample"].values) == list("abcde")
    valid = xr.DataArray(np.arange(6) < lengths[:, None], dims=("sample", "time"))
    assert ds["hidden"].where(~valid).isnull().all() and ds["hidden"].where(valid, 0).notnull().all()
    gate = next(k for k in keys if k.endswith("_gate"))
    assert float(ds[gate].min()) >= 0 and float(ds[gate].max()) <= 1


# ---- saving ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "est, y_kind",
    [
        (LSTMRegressor(**dict(TINY, cell="gru", bidirectional=True)), "per_step"),
        (LSTMClassifier(**dict(TINY, peephole=True)), "labels"),
        (LSTMRegressor(**dict(TINY, standardize=False, random_state=None)), "dataarray"),
    ],
)
def test_save_load_round_trip(tmp_path, est, y_kind):
    X, lengths = sequences(min_length=2)
    if y_kind == "per_step":
        y = np.nan_to_num(X)
    elif y_kind == "labels":
        y = np.where(X[:, 0, 0] > 0, "yes", "no").astype(object)
    else:
        X = xr.DataArray(X, dims=("sample", "time", "feature"), coords={"feature": ["p", "q"]})
        y = xr.DataArray(np.ones((40, 2)), dims=("sample", "out"), coords={"out": ["s", "t"]})
    est.fit(X, y)
    path = tmp_path / "model.numlstm"
    est.save(path)
    loaded = numlstm.load(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    for method in ("predict", "predict_proba", "inspect"):
        if hasattr(est, method):
            a, b = getattr(est, method)(X), getattr(loaded, method)(X)
            same = xr.testing.assert_identical if method == "inspect" or y_kind == "dataarray" \
                else np.testing.assert_array_equal
            same(a, b)
    if y_kind == "labels":
        assert loaded.classes_.dtype == object
    assert loaded.loss_curve_ == est.loss_curve_ and loaded.n_iter_ == est.n_iter_
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == est.n_iter_ + 1


def test_save_load_numpy_scalar_hyper_parameters(tmp_path):
    """Hyper-parameters given as NumPy scalars save (also as checkpoints) and load back."""
    X, _ = sequences(min_length=2)
    y = X[:, 0, 0] + np.nan_to_num(X[:, -1, 1])
    params = dict(
        TINY,
        hidden_size=np.int64(4),
        num_layers=np.int32(1),
        max_iter=np.int64(3),
        learning_rate=np.float32(1e-3),
        forget_bias=np.float64(1.0),
        dropout=np.float64(0.0),
        peephole=np.bool_(True),
        random_state=np.int64(0),
        early_stopping=True,
        validation_fraction=np.float64(0.25),
        checkpoint_path=tmp_path / "checkpoint.npz",
    )
    reg = LSTMRegressor(**params).fit(X, y)
    path = tmp_path / "model.npz"
    reg.save(path)
    for saved in (path, tmp_path / "checkpoint.npz"):
        loaded = numlstm.load(saved)
        assert loaded.hidden_size == 4 and type(loaded.hidden_size) is int
        assert type(loaded.learning_rate) is float and type(loaded.peephole) is bool
    np.testing.assert_array_equal(numlstm.load(path).predict(X), reg.predict(X))


def _edit_saved_config(path, edit):
    """The bytes of the model file at ``path`` with ``edit`` applied to its saved network config."""
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays["__metadata__"]))
    edit(meta["attributes"]["network_"]["config"])
    return _npz({**arrays, "__metadata__": np.array(json.dumps(meta))})


def test_lstm_only_config_options_are_type_checked_on_load(tmp_path):
    X, _ = sequences()
    path = tmp_path / "model.npz"
    LSTMRegressor(**TINY).fit(X, X[:, -1, 0]).save(path)
    bad = tmp_path / "bad.npz"
    for key, value in [("peephole", 1), ("coupled", "no"), ("forget_bias", 1), ("forget_bias", "1.0"),
                       ("peephole", None)]:
        bad.write_bytes(_edit_saved_config(path, lambda config, key=key, value=value: config.update({key: value})))
        with pytest.raises(ValueError, match=key):
            numlstm.load(bad)
    for key in ("peephole", "coupled", "forget_bias"):
        bad.write_bytes(_edit_saved_config(path, lambda config, key=key: config.pop(key)))
        with pytest.raises(ValueError, match=key):
            numlstm.load(bad)
    # GRU and RNN nets save none of them
    LSTMRegressor(**dict(TINY, cell="gru")).fit(X, X[:, -1, 0]).save(path)
    assert numlstm.load(path).cell == "gru"


def corrupt_files(path, tmp_path):
    data = path.read_bytes()
    yield "truncated", data[: len(data) // 2]
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    yield "flipped byte", bytes(flipped)
    yield "random bytes", np.random.default_rng(0).bytes(500)
    yield "empty", b""
    marker = tmp_path / "pwned"
    yield "pickle", pickle.dumps(_Exploit(str(marker)))
    with np.load(path) as archive:
        arrays = dict(archive)
    meta = str(arrays["__metadata__"])
    for name, edit in [
        ("newer version",
         lambda m: m.replace(f'"format_version": {numlstm.io.FORMAT_VERSION}', '"format_version": 99')),
        ("unknown estimator", lambda m: m.replace('"estimator": "LSTMRegressor"', '"estimator": "os.system"')),
        ("unknown param", lambda m: m.replace('"params": {', '"params": {"evil": 1, ')),
        ("bad param", lambda m: m.replace('"hidden_size": 6', '"hidden_size": -6')),
        ("unknown attribute",
         lambda m: m.replace('"attributes": {', '"attributes": {"fit": {"kind": "json", "value": 1}, ')),
        ("bad config", lambda m: m.replace('"input_size": 2', '"input_size": "2"')),
        ("not json", lambda m: m[:-5]),
    ]:
        yield name, _npz({**arrays, "__metadata__": np.array(edit(meta))})
    weights_key = next(k for k in arrays if k.endswith("weight_ih_l0"))
    yield "wrong shape", _npz({**arrays, weights_key: arrays[weights_key][:-1]})
    yield "nan weight", _npz({**arrays, weights_key: arrays[weights_key] * np.nan})
    yield "missing weight", _npz({k: v for k, v in arrays.items() if k != weights_key})
    yield "object array", _npz({**arrays, "evil": np.array([_Exploit(str(marker))], dtype=object)})


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npz(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # object arrays are pickled inside
    return buf.getvalue()


def test_corrupted_or_crafted_files_raise_value_error(tmp_path):
    X, _ = sequences()
    path = tmp_path / "model.npz"
    LSTMRegressor(**TINY).fit(X, X[:, -1, 0]).save(path)
    cases = list(corrupt_files(path, tmp_path))
    assert len(cases) > 10
    for name, content in cases:
        bad = tmp_path / "bad.npz"
        bad.write_bytes(content)
        try:
            numlstm.load(bad)
        except ValueError:
            continue
        pytest.fail(f"{name}: loaded without a ValueError")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(FileNotFoundError):
        numlstm.load(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(path)


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["one class", "unknown features", "wrong outputs"])
def test_failed_refit_leaves_the_fitted_estimator_intact(kind):
    """A refit that fails validation changes no fitted state: predict works as before."""
    X, _ = sequences(n=20)
    labels = np.where(X[:, -1, 0] > 0, "up", "down")
    if kind == "one class":
        est, y, bad_X, bad_y, match = LSTMClassifier(**TINY), labels, X, np.full(20, "z"), "only one class"
    elif kind == "unknown features":  # new features, and y does not match X
        est, y, bad_X, bad_y, match = LSTMClassifier(**TINY), labels, X[..., :1], labels[:5], "."
    else:
        y = X[:, -1, :]
        est, bad_X, bad_y, match = LSTMRegressor(**TINY), X[:, :, :1], y[:3], "."
    est.fit(X, y)
    state = {name: getattr(est, name) for name in ("n_features_in_", "_output_dim", "network_", "_x_scaler")}
    before = est.predict(X)
    with pytest.raises(ValueError, match=match):
        est.fit(bad_X, bad_y)
    for name, value in state.items():
        assert getattr(est, name) is value
    np.testing.assert_array_equal(est.predict(X), before)
    if isinstance(est, LSTMClassifier):
        assert list(est.classes_) == ["down", "up"]
    else:
        assert est.n_outputs_ == 2


def test_bad_input_errors():
    X, _ = sequences()
    y = X[:, -1, 0]
    reg = LSTMRegressor(**TINY)
    with pytest.raises(NotFittedError):
        reg.predict(X)
    with pytest.raises(NotFittedError):
        reg.inspect(X)
    with pytest.raises(NotFittedError):
        reg.save("never-written.npz")
    assert not os.path.exists("never-written.npz")
    bad_nan = X.copy()
    bad_nan[0, 2, :] = np.nan
    bad_inf = X.copy()
    bad_inf[1, 0, 1] = np.inf
    for bad, error, match in [
        (xr.DataArray(X, dims=("sample", "time", "channel")), ValueError, "dims"),
        (bad_nan, ValueError, "NaN inside a sequence"),
        (bad_inf, ValueError, "inf"),
        (np.full((2, 3), "a"), ValueError, "could not convert"),
        (np.zeros((0, 6, 2)), ValueError, "0 sample"),
    ]:
        with pytest.raises(error, match=match):
            reg.fit(bad, y[: len(bad)])
    with pytest.raises(ValueError, match="y contains NaN"):
        reg.fit(X, np.where(y > 0, np.nan, y))
    with pytest.raises(ValueError, match="only one class"):
        LSTMClassifier(**TINY).fit(X, np.ones(40))
    with pytest.raises(ValueError, match="Unknown label type"):
        LSTMClassifier(**TINY).fit(X, y)
    reg.fit(X, y)
    with pytest.raises(ValueError, match="X has 1 features, but LSTMRegressor is expecting 2"):
        reg.predict(X[:, :, :1])
    with pytest.raises(ValueError, match="NaN inside a sequence"):
        reg.predict(bad_nan)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(cell="lstm2"), ValueError, "cell"),
        (dict(hidden_size=0), ValueError, "hidden_size"),
        (dict(hidden_size=2.5), ValueError, "hidden_size"),
        (dict(learning_rate=-1), ValueError, "learning_rate"),
        (dict(dropout=1.0), ValueError, "dropout"),
        (dict(optimizer="lbfgs"), ValueError, "optimizer"),
        (dict(learning_rate_schedule="step"), ValueError, "learning_rate_schedule"),
        (dict(validation_fraction=0.0), ValueError, "validation_fraction"),
        (dict(cell="gru", peephole=True), ValueError, "need cell='lstm'"),
        (dict(nesterov=True), ValueError, "nesterov"),
        (dict(dims=("a", "b")), ValueError, "dims must be"),
        (dict(device="tpu"), ValueError, "device"),
        (dict(device="gpu"), ValueError, "device"),
    ],
)
def test_invalid_hyper_parameters(params, error, match):
    X, _ = sequences(n=5)
    est = LSTMRegressor(**params)
    assert est.get_params()[next(iter(params))] == params[next(iter(params))]  # __init__ stores only
    with pytest.raises(error, match=match):
        est.fit(X, X[:, -1, 0])


def _skip_with_gpu():
    from numlstm._backend import cuda_available

    if cuda_available():
        pytest.skip("a CUDA device is present")


@pytest.mark.parametrize("cls", [LSTMRegressor, LSTMClassifier])
def test_cuda_without_gpu_is_a_clear_error(cls):
    _skip_with_gpu()
    X, _ = sequences(n=5)
    est = cls(device="cuda", **TINY)
    with pytest.raises(ValueError, match=r"device='cuda'.*no usable CUDA GPU.*device='cpu'"):
        est.fit(X, np.arange(5) % 2)
    assert est.device == "cuda"
    assert not [name for name in vars(est) if name.endswith("_")]  # raised before data or training
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_auto_device_resolves_to_cpu_without_gpu():
    _skip_with_gpu()
    X, lengths = sequences(n=12, min_length=3)
    y = last_valid(X, lengths)[:, 0]
    auto = LSTMRegressor(device="auto", **TINY).fit(X, y)
    cpu = LSTMRegressor(device="cpu", **TINY).fit(X, y)
    assert auto.device == "auto" and auto.get_params()["device"] == "auto"  # not mutated
    assert auto.device_ == "cpu" and cpu.device_ == "cpu"
    assert auto.network_.config["device"] == "cpu"
    np.testing.assert_array_equal(auto.predict(X), cpu.predict(X))
    assert clone(auto).device == "auto"
    auto.partial_fit(X, y)
    assert auto.device_ == "cpu"


def test_model_trained_on_cuda_loads_on_cpu(tmp_path):
    """A net saved or pickled with device "cuda" comes back on the CPU where no GPU is usable."""
    _skip_with_gpu()
    X, lengths = sequences(n=12, min_length=3)
    y = last_valid(X, lengths)[:, 0]
    est = LSTMRegressor(**TINY).fit(X, y)
    want = est.predict(X)
    est.set_params(device="cuda")
    est.device_ = "cuda"
    est.network_.config["device"] = "cuda"  # as if trained on a GPU
    path = tmp_path / "gpu_model.npz"
    est.save(path)
    for restored in (numlstm.load(path), pickle.loads(pickle.dumps(est))):
        assert restored.device == "cuda" and restored.device_ == "cpu"
        assert restored.network_.config["device"] == "cpu"
        np.testing.assert_array_equal(restored.predict(X), want)
        with pytest.raises(ValueError, match="device='cuda'"):  # training again needs the GPU
            restored.set_params(warm_start=True).fit(X, y)
    restored = numlstm.load(path).set_params(device="cpu", warm_start=True).fit(X, y)
    assert restored.device_ == "cpu"
