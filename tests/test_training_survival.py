"""Training that loses nothing: resumable checkpoints, divergence, failed calls, hostile model files.

Each test here failed on the code before checkpoints held the training state,
before divergence restored the best weights and before ``load`` checked every
saved value against the schema.
"""

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import numlstm
from numlstm import LSTMClassifier, LSTMRegressor
from numlstm.optim import Adam

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Two layers with dropout and early stopping: every generator and every piece of stopping state
# has to come back for a resumed fit to match.
RESUMABLE = dict(hidden_size=6, num_layers=2, dropout=0.2, early_stopping=True, validation_fraction=0.25,
                 n_iter_no_change=50, batch_size=8, learning_rate=0.01, random_state=0)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 7, 2))
    return X, X[:, -1, 0] + X[:, 0, 1]


def weights(est):
    return est.network_.state_dict()


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_array_equal(wa[name], wb[name], err_msg=name)


# ---- resuming ---------------------------------------------------------------------------


def test_fit_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    X, y = data()
    reference = LSTMRegressor(max_iter=10, **RESUMABLE).fit(X, y)
    path = tmp_path / "run.npz"
    LSTMRegressor(max_iter=4, checkpoint_path=path, **RESUMABLE).fit(X, y)  # stops after 4 epochs
    resumed = LSTMRegressor(max_iter=10, checkpoint_path=path, **RESUMABLE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # resuming replaces nothing
        warnings.simplefilter("ignore", ConvergenceWarning)
        resumed.fit(X, y)
    assert_same_weights(resumed, reference)
    assert resumed.loss_curve_ == reference.loss_curve_
    assert resumed.validation_scores_ == reference.validation_scores_
    np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))
    # a finished checkpoint resumes to the same end, and loads as the best epoch's model
    again = LSTMRegressor(max_iter=10, checkpoint_path=path, **RESUMABLE).fit(X, y)
    assert_same_weights(again, reference)
    best = numlstm.load(path)
    assert best.n_iter_ == int(np.argmax(reference.validation_scores_)) + 1
    assert best.checkpoint_path is None


def test_a_checkpoint_of_another_fit_is_replaced_and_other_files_are_refused(tmp_path):
    X, y = data()
    path = tmp_path / "run.npz"
    LSTMRegressor(max_iter=2, checkpoint_path=path, **RESUMABLE).fit(X, y)
    with pytest.warns(UserWarning, match="another fit"):
        other = LSTMRegressor(max_iter=2, checkpoint_path=path, **dict(RESUMABLE, learning_rate=0.02)).fit(X, y)
    assert_same_weights(other, LSTMRegressor(max_iter=2, **dict(RESUMABLE, learning_rate=0.02)).fit(X, y))
    notes = tmp_path / "notes.txt"
    notes.write_text("a week of lab notes")
    with pytest.raises(ValueError, match="not a numlstm checkpoint"):
        LSTMRegressor(max_iter=2, checkpoint_path=notes, **RESUMABLE).fit(X, y)
    assert notes.read_text() == "a week of lab notes"


_CHILD = textwrap.dedent("""
    import sys, warnings
    import numpy as np
    from numlstm import LSTMRegressor
    warnings.simplefilter("ignore")
    X = np.load(sys.argv[2])
    LSTMRegressor(max_iter=1, **{params}).fit(X, X[:, -1, 0])  # load the kernels before "ready"
    est = LSTMRegressor(max_iter=int(sys.argv[3]), checkpoint_path=sys.argv[1], **{params})
    print("ready", flush=True)
    est.fit(X, X[:, -1, 0] + X[:, 0, 1])
    print("done", flush=True)
""")


def test_fit_killed_at_random_instants_resumes_to_the_uninterrupted_weights(tmp_path):
    """Real SIGKILLs of a fitting process, then a fit with the same checkpoint_path."""
    X, y = data()
    n_epochs = 12
    reference = LSTMRegressor(max_iter=n_epochs, **RESUMABLE).fit(X, y)
    np.save(tmp_path / "X.npy", X)
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(params=repr(RESUMABLE)))
    path = tmp_path / "run.npz"
    started = time.perf_counter()
    LSTMRegressor(max_iter=n_epochs, checkpoint_path=tmp_path / "timing.npz", **RESUMABLE).fit(X, y)
    fit_time = time.perf_counter() - started
    chooser = random.Random(0)
    outcomes = {"killed before a checkpoint": 0, "killed mid-fit": 0, "finished": 0}
    for trial in range(6):
        path.unlink(missing_ok=True)
        child = subprocess.Popen([sys.executable, str(script), str(path), str(tmp_path / "X.npy"), str(n_epochs)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        if trial % 2:  # half the trials strike once a checkpoint exists, however slow the machine is
            deadline = time.monotonic() + 60
            while not path.exists() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(chooser.uniform(0, fit_time / 3))
        else:
            time.sleep(chooser.uniform(0, 1.5 * fit_time))
        child.send_signal(signal.SIGKILL)
        out = child.communicate()[0]
        outcomes["finished" if "done" in out else "killed mid-fit" if path.exists() else
                 "killed before a checkpoint"] += 1
        resumed = LSTMRegressor(max_iter=n_epochs, checkpoint_path=path, **RESUMABLE).fit(X, y)
        assert_same_weights(resumed, reference)
        assert resumed.loss_curve_ == reference.loss_curve_
    assert outcomes["killed mid-fit"] >= 1, outcomes


# ---- divergence -------------------------------------------------------------------------


def exploding_loss(cls, monkeypatch, from_call, factor=1e120):
    """Make ``cls._loss`` return ``factor`` times the loss from its ``from_call``-th call on."""
    calls, loss = [], cls._loss

    def exploding(self, outputs, rows, weights=None):
        calls.append(1)
        value, grad = loss(self, outputs, rows, weights)
        return (value * factor if len(calls) >= from_call else value), grad

    monkeypatch.setattr(cls, "_loss", exploding)


def test_divergence_restores_the_best_weights_and_says_where(monkeypatch, tmp_path):
    X, y = data()
    params = dict(hidden_size=6, max_iter=6, batch_size=10, random_state=0)
    reference = LSTMRegressor(**dict(params, max_iter=2)).fit(X, y)
    exploding_loss(LSTMRegressor, monkeypatch, from_call=4 * 2 + 3)  # finite, but 1e120 times larger
    est = LSTMRegressor(**params)
    with pytest.warns(ConvergenceWarning, match=r"diverged .* epoch 3, mini-batch 3.*epoch 2"):
        est.fit(X, y)
    assert est.n_iter_ == 2
    assert_same_weights(est, reference)
    assert np.isfinite(est.predict(X)).all()
    est.save(tmp_path / "model.npz")
    np.testing.assert_array_equal(numlstm.load(tmp_path / "model.npz").predict(X), est.predict(X))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e116])
def test_divergence_in_the_first_epoch_leaves_the_estimator_unfitted(monkeypatch, bad):
    X, y = data()
    calls, loss = [], LSTMRegressor._loss

    def diverging(self, outputs, rows, weights=None):
        calls.append(1)
        value, grad = loss(self, outputs, rows, weights)
        return (value if len(calls) == 1 else type(value)(bad)), grad

    monkeypatch.setattr(LSTMRegressor, "_loss", diverging)
    est = LSTMRegressor(hidden_size=6, max_iter=3, batch_size=10, random_state=0)
    with pytest.raises(ValueError, match="diverged .* epoch 1, mini-batch 2, before any epoch"):
        est.fit(X, y)
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_a_real_divergence_never_leaves_nan_weights():
    X, y = data()
    for learning_rate in (1e2, 1e4):
        est = LSTMRegressor(hidden_size=6, max_iter=5, optimizer="sgd", learning_rate=learning_rate,
                            clip_norm=None, standardize=False, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                est.fit(X, 1e3 * y)
            except ValueError as exc:
                assert "diverged" in str(exc)
                with pytest.raises(NotFittedError):
                    est.predict(X)
                continue
        assert any("diverged" in str(w.message) for w in caught)
        assert np.isfinite(est.predict(X)).all()


def test_a_failed_call_leaves_a_fitted_estimator_as_it_was(monkeypatch):
    """An error in the middle of partial_fit or a warm start changes no fitted state."""
    X, y = data()
    est = LSTMRegressor(hidden_size=6, max_iter=2, batch_size=8, random_state=0, warm_start=True).fit(X, y)
    before, curve, predicted = weights(est), list(est.loss_curve_), est.predict(X)
    optimizer_state = est._optimizer.state_dict()
    update, calls = Adam.update_params, []

    def failing(self, params, grads):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        update(self, params, grads)

    monkeypatch.setattr(Adam, "update_params", failing)
    for call in (est.partial_fit, est.fit):
        calls.clear()
        with pytest.raises(RuntimeError, match="disk on fire"):
            call(X, y)
        assert est.n_iter_ == 2 and est.loss_curve_ == curve
        for name, value in weights(est).items():
            np.testing.assert_array_equal(value, before[name])
        np.testing.assert_array_equal(est.predict(X), predicted)
        assert est._optimizer.state_dict()[0] == optimizer_state[0]
    fresh = LSTMRegressor(hidden_size=6, max_iter=2)
    calls.clear()
    with pytest.raises(RuntimeError):
        fresh.fit(X, y)
    with pytest.raises(NotFittedError):
        fresh.predict(X)


def test_ctrl_c_while_a_checkpoint_is_written_keeps_the_previous_one(monkeypatch, tmp_path):
    X, y = data()
    path = tmp_path / "run.npz"
    write, write_array, calls = numlstm.io.write_model, np.lib.format.write_array, []

    def interrupted_on_the_third(target, metadata, arrays):
        calls.append(1)
        if len(calls) == 3:  # the interrupt lands inside the write, after part of it went out
            monkeypatch.setattr(np.lib.format, "write_array", _InterruptOnSecondCall(write_array))
        try:
            write(target, metadata, arrays)
        finally:
            np.lib.format.write_array = write_array

    monkeypatch.setattr(numlstm.io, "write_model", interrupted_on_the_third)
    with pytest.warns(UserWarning, match="interrupted after 3 epochs"):
        est = LSTMRegressor(max_iter=5, checkpoint_path=path, **RESUMABLE).fit(X, y)
    assert est.n_iter_ == 3 and len(calls) == 3
    metadata, _ = numlstm.io.read_model(path)
    assert metadata["training"]["epochs"] == 2  # the checkpoint of epoch 2, whole
    numlstm.load(path)
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]


class _InterruptOnSecondCall:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.fn(*args, **kwargs)


# ---- model files that must not be trusted ----------------------------------------------------


def saved(tmp_path, est=None, classify=False):
    X, y = data()
    y = np.where(y > 0, "up", "down") if classify else y
    est = est or LSTMRegressor(hidden_size=6, max_iter=2, random_state=0)
    path = tmp_path / "model.npz"
    est.fit(X, y).save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    return json.loads(str(arrays.pop("__metadata__"))), arrays


def write_edited(tmp_path, meta, arrays):
    """A model file with edited metadata and arrays, its manifest made to match."""
    meta = dict(meta)
    if "manifest" in meta:  # format 2 lists every array's dtype and shape
        meta["manifest"] = {name: {"dtype": value.dtype.str, "shape": list(value.shape)}
                            for name, value in arrays.items()}
    buf = io.BytesIO()
    np.savez(buf, __metadata__=np.array(json.dumps(meta)), **arrays)
    path = tmp_path / "edited.npz"
    path.write_bytes(buf.getvalue())
    return path


def test_checkpoint_path_is_never_taken_from_a_file(tmp_path):
    X, y = data()
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    meta, arrays = saved(tmp_path, LSTMRegressor(hidden_size=6, max_iter=2, checkpoint_path=tmp_path / "c.npz"))
    assert meta["params"]["checkpoint_path"] is None  # the author's path is not saved either
    meta["params"]["checkpoint_path"] = str(notes)  # a crafted file names the user's notes
    est = numlstm.load(write_edited(tmp_path, meta, arrays))
    assert est.checkpoint_path is None
    est.partial_fit(X, y)
    est.set_params(warm_start=True).fit(X, y)
    assert notes.read_text() == "keep me"


def test_network_size_is_capped_before_anything_is_allocated(tmp_path):
    X, y = data()
    started = time.perf_counter()
    with pytest.raises(ValueError, match="num_layers"):
        LSTMRegressor(num_layers=10**6).fit(X, y)
    meta, arrays = saved(tmp_path)
    for key, value in (("hidden_size", 20000), ("num_layers", 100000), ("input_size", 10**9)):
        edited = json.loads(json.dumps(meta))
        edited["attributes"]["network_"]["config"][key] = value
        with pytest.raises(ValueError, match="limit|describes .* weights"):
            numlstm.load(write_edited(tmp_path, edited, arrays))
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("edit, match", [
    (lambda a: a["_x_scaler/mean"].__setitem__(0, np.nan), "scaling mean"),
    (lambda a: a["_x_scaler/scale"].__setitem__(1, 0), "scale above 0"),
    (lambda a: a["_y_scaler/scale"].__setitem__(0, -1), "scale above 0"),
    (lambda a: a.__setitem__("_x_scaler/mean", a["_x_scaler/mean"][:1]), "scaling mean"),
])
def test_saved_scalers_are_checked(tmp_path, edit, match):
    meta, arrays = saved(tmp_path)
    edit(arrays)
    with pytest.raises(ValueError, match=match):
        numlstm.load(write_edited(tmp_path, meta, arrays))


@pytest.mark.parametrize("name, value", [
    ("n_iter_", "x"), ("n_iter_", True), ("n_iter_", -1), ("n_iter_", 7),
    ("loss_curve_", 5), ("loss_curve_", ["a", "b"]), ("best_loss_", None), ("n_features_in_", 0),
    ("validation_scores_", {"a": 1}), ("_output_dim", 3),
])
def test_saved_attribute_values_are_type_checked(tmp_path, name, value):
    meta, arrays = saved(tmp_path)
    meta["attributes"][name] = {"kind": "json", "value": value}
    with pytest.raises(ValueError, match=name):
        numlstm.load(write_edited(tmp_path, meta, arrays))


def test_saved_classes_and_attribute_kinds_are_checked(tmp_path):
    meta, arrays = saved(tmp_path, LSTMClassifier(hidden_size=6, max_iter=2, random_state=0), classify=True)
    for classes in (np.array([[0, 1], [2, 3]]), np.array([1, 0]), np.array([1])):
        with pytest.raises(ValueError, match="classes_"):
            numlstm.load(write_edited(tmp_path, meta, {**arrays, "classes_": classes}))
    for name, spec in (("network_", {"kind": "json", "value": 1}), ("n_iter_", {"kind": "net"}), ("n_iter_", 5)):
        edited = json.loads(json.dumps(meta))
        edited["attributes"][name] = spec
        with pytest.raises(ValueError, match=name):
            numlstm.load(write_edited(tmp_path, edited, arrays))


def test_predicting_without_the_fitted_feature_names_warns():
    import xarray as xr

    X, y = data()
    named = xr.DataArray(X, dims=("sample", "time", "feature"), coords={"feature": ["rain", "flow"]})
    est = LSTMRegressor(hidden_size=6, max_iter=1, random_state=0).fit(named, y)
    with pytest.warns(UserWarning, match=r"fitted with feature names \['rain', 'flow'\]"):
        est.predict(X[..., ::-1])
    plain = LSTMRegressor(hidden_size=6, max_iter=1, random_state=0).fit(X, y)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        plain.predict(named)


def test_files_that_call_the_network_net_still_load(tmp_path):
    """Files written before the fitted network became public (attribute ``_net``) load the same."""
    X, _ = data()
    meta, arrays = saved(tmp_path)
    est = numlstm.load(tmp_path / "model.npz")
    meta["attributes"]["_net"] = meta["attributes"].pop("network_")
    arrays = {k.replace("network_/", "_net/"): v for k, v in arrays.items()}
    np.testing.assert_array_equal(numlstm.load(write_edited(tmp_path, meta, arrays)).predict(X), est.predict(X))


# ---- found by a red-team pass -------------------------------------------------------------


def test_partial_fit_never_overwrites_a_file_that_is_no_model(tmp_path):
    X, y = data()
    notes = tmp_path / "notes.txt"
    notes.write_text("a week of lab notes")
    with pytest.raises(ValueError, match="not a numlstm checkpoint"):
        LSTMRegressor(hidden_size=4, checkpoint_path=notes).partial_fit(X, y)
    assert notes.read_text() == "a week of lab notes"


def test_a_smaller_max_iter_keeps_the_checkpoint_and_says_why(tmp_path):
    X, y = data()
    path = tmp_path / "run.npz"
    LSTMRegressor(max_iter=4, checkpoint_path=path, **RESUMABLE).fit(X, y)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="after 4 epochs, more than max_iter=2"):
        LSTMRegressor(max_iter=2, checkpoint_path=path, **RESUMABLE).fit(X, y)
    assert path.read_bytes() == before


def test_without_an_int_random_state_a_finished_checkpoint_is_a_new_draw(tmp_path):
    X, y = data()
    params = dict(RESUMABLE, random_state=None, max_iter=2)
    path = tmp_path / "run.npz"
    first = LSTMRegressor(checkpoint_path=path, **params).fit(X, y)
    with pytest.warns(UserWarning, match="finished fit, and without an int random_state"):
        second = LSTMRegressor(checkpoint_path=path, **params).fit(X, y)
    assert second.n_iter_ == 2 and not np.array_equal(first.predict(X), second.predict(X))


def test_zero_weights_on_one_side_of_the_validation_split_are_named():
    X, y = data()
    weights = np.zeros(40)
    weights[:2] = 1
    with pytest.raises(ValueError, match="sample_weight 0"):
        LSTMRegressor(early_stopping=True, validation_fraction=0.25, hidden_size=4, max_iter=2,
                      random_state=0).fit(X, y, sample_weight=weights)


def test_crafted_files_lacking_fitted_attributes_or_with_bad_dims_fail_at_load(tmp_path):
    meta, arrays = saved(tmp_path)
    for name in ("_x_scaler", "_output_dim", "_y_scaler"):
        edited = json.loads(json.dumps(meta))
        del edited["attributes"][name]
        kept = {k: v for k, v in arrays.items() if not k.startswith(name + "/")}
        with pytest.raises(ValueError, match=name):
            numlstm.load(write_edited(tmp_path, edited, kept))
    edited = json.loads(json.dumps(meta))
    edited["params"]["dims"] = ["a", "a", "b"]
    with pytest.raises(ValueError, match="dims"):
        numlstm.load(write_edited(tmp_path, edited, arrays))
