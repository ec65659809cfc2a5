"""Task options of the estimators: quantile forecasts, class weights, learning-rate schedules."""

import warnings

import numpy as np
import pytest
import xarray as xr

import numlstm
from numlstm import LSTMClassifier, LSTMRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def noisy_sums(n, seed):
    """Sequences whose target is a sum of their last steps plus noise of scale 1."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6, 1))
    return X, X[:, -2:, 0].sum(axis=1) + rng.normal(size=n)


def test_quantile_predictions_are_ordered_and_cover_their_share():
    X, y = noisy_sums(600, 0)
    X_test, y_test = noisy_sums(400, 1)
    est = LSTMRegressor(loss="quantile", quantiles=(0.9, 0.1, 0.5), hidden_size=8, max_iter=30,
                        random_state=0).fit(X, y)
    pred = est.predict(X_test)
    assert pred.shape == (400, 3)
    assert (np.diff(pred, axis=1) >= 0).all()
    below = (y_test[:, None] < pred).mean(axis=0)
    np.testing.assert_allclose(below, [0.1, 0.5, 0.9], atol=0.07)
    inside = ((pred[:, 0] < y_test) & (y_test < pred[:, 2])).mean()
    assert 0.7 < inside < 0.9
    assert est.score(X_test, y_test) > 0.5  # R² of the median
    da = xr.DataArray(X_test, dims=("sample", "time", "feature"))
    labelled = est.predict(da)
    assert labelled.dims == ("sample", "quantile")
    np.testing.assert_array_equal(labelled["quantile"], [0.1, 0.5, 0.9])


def test_quantile_model_saves_and_loads(tmp_path):
    X, y = noisy_sums(50, 2)
    est = LSTMRegressor(loss="quantile", hidden_size=4, max_iter=2, random_state=0).fit(X, np.c_[y, -y])
    assert est.predict(X).shape == (50, 2, 3)
    est.save(tmp_path / "q.npz")
    np.testing.assert_array_equal(numlstm.load(tmp_path / "q.npz").predict(X), est.predict(X))
    with pytest.raises(ValueError, match="quantiles"):
        LSTMRegressor(quantiles=(0.5,)).fit(X, y)
    with pytest.raises(ValueError, match="quantiles"):
        LSTMRegressor(loss="quantile", quantiles=(0.5, 1.0)).fit(X, y)
    with pytest.raises(ValueError, match="other quantiles"):
        est.set_params(quantiles=(0.2, 0.8)).partial_fit(X, np.c_[y, -y])


@pytest.mark.parametrize("loss", ["absolute_error", "huber"])
def test_robust_losses_resist_outliers(loss):
    X, y = noisy_sums(300, 3)
    spoiled = y.copy()
    spoiled[::10] += 50  # every tenth target is an outlier
    params = dict(hidden_size=8, max_iter=20, random_state=0)
    robust = LSTMRegressor(loss=loss, **params).fit(X, spoiled)
    plain = LSTMRegressor(**params).fit(X, spoiled)
    X_test, y_test = noisy_sums(300, 4)
    assert robust.score(X_test, y_test) > plain.score(X_test, y_test)


def test_balanced_class_weights_lift_the_rare_class():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5, 1))
    y = np.where(X[:, -1, 0] > 1.3, "rare", "common")  # about 10 % rare
    params = dict(hidden_size=8, max_iter=15, random_state=0)
    plain = LSTMClassifier(**params).fit(X, y)
    balanced = LSTMClassifier(class_weight="balanced", **params).fit(X, y)
    recall = [(est.predict(X)[y == "rare"] == "rare").mean() for est in (plain, balanced)]
    assert recall[1] > recall[0]
    # a dict weight of 2 on a class is its sequences duplicated (one full batch, the same scaling)
    small = dict(params, batch_size=400, max_iter=3, standardize=False)
    weighted = LSTMClassifier(class_weight={"rare": 2.0}, **small).fit(X, y)
    rows = np.r_[np.arange(300), np.flatnonzero(y == "rare")]
    duplicated = LSTMClassifier(**small).fit(X[rows], y[rows])
    np.testing.assert_allclose(weighted.predict_proba(X), duplicated.predict_proba(X), rtol=1e-6)
    with pytest.raises(ValueError, match="partial_fit"):
        LSTMClassifier(class_weight="balanced").partial_fit(X, y, classes=["common", "rare"])
    with pytest.raises(ValueError, match="class_weight is a LSTMClassifier option"):
        LSTMRegressor(class_weight="balanced").fit(X, X[:, -1, 0])


def test_plateau_schedule_lowers_the_step_and_resumes_exactly(tmp_path):
    X, y = noisy_sums(40, 6)
    params = dict(hidden_size=4, max_iter=8, learning_rate=0.01, learning_rate_schedule="plateau",
                  n_iter_no_change=2, tol=1e9, random_state=0)  # nothing counts as an improvement
    est = LSTMRegressor(**params).fit(X, y)
    # epoch 1 improves on an infinite best; epochs 2 and 3 do not, and each divides the step by 5
    assert est.n_iter_ == 3 and est._optimizer.learning_rate == pytest.approx(0.01 / 25)
    path = tmp_path / "run.npz"
    long = dict(params, n_iter_no_change=6)
    reference = LSTMRegressor(**long).fit(X, y)
    LSTMRegressor(**dict(long, max_iter=4), checkpoint_path=path).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = LSTMRegressor(**long, checkpoint_path=path).fit(X, y)
    np.testing.assert_array_equal(resumed.predict(X), reference.predict(X))
    assert resumed._optimizer.learning_rate == reference._optimizer.learning_rate < 0.01


@pytest.mark.parametrize("module", ["LSTM", "GRU", "RNN"])
def test_a_pytorch_model_loads_into_a_fitted_estimator(module, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    recurrent = getattr(torch.nn, module)(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    head = torch.nn.Linear(10, 2).double()
    X = np.random.default_rng(7).normal(size=(4, 6, 3))
    with torch.no_grad():
        out, _ = recurrent(torch.from_numpy(X))
        expected = head(torch.cat([out[:, -1, :5], out[:, 0, 5:]], dim=1)).numpy()
        expected_steps = head(out).numpy()
    reg = LSTMRegressor.from_torch(recurrent, head)
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-12, atol=1e-14)
    tagger = LSTMRegressor.from_torch(recurrent, head, per_step=True)
    np.testing.assert_allclose(tagger.predict(X), expected_steps, rtol=1e-12, atol=1e-14)
    clf = LSTMClassifier.from_torch(recurrent, head, classes=["b", "a"])
    assert list(clf.classes_) == ["a", "b"]
    np.testing.assert_allclose(clf.predict_proba(X), torch.softmax(torch.from_numpy(expected), 1).numpy()[:, ::-1],
                               rtol=1e-12)
    reg.save(tmp_path / "from_torch.npz")
    np.testing.assert_array_equal(numlstm.load(tmp_path / "from_torch.npz").predict(X), reg.predict(X))
    reg.partial_fit(X, expected)  # and it trains on from there: from the imported weights, nothing to learn
    assert reg.n_iter_ == 1 and reg.loss_curve_[0] < 1e-20
    with pytest.raises(ValueError, match="proj"):
        LSTMRegressor.from_torch(torch.nn.LSTM(3, 5, proj_size=2), head)


def test_early_stopping_never_validates_on_a_handful_of_sequences():
    X, y = noisy_sums(50, 8)
    est = LSTMRegressor(early_stopping=True, hidden_size=4, max_iter=4, random_state=0)
    with pytest.warns(UserWarning, match="validate on 5 sequences .* fewer than 10; it trains without a validation"):
        est.fit(X, y)
    assert est.validation_scores_ is None and est.n_iter_ == 4
    labels = np.array(["a"] * 20 + ["b"] * 19 + ["c"])  # one "c": no stratified split holds it
    with pytest.raises(ValueError, match="validation_fraction=0.3 cannot hold out a stratified"):
        LSTMClassifier(early_stopping=True, validation_fraction=0.3).fit(X[:40], labels)


def test_restoring_an_early_epoch_far_worse_on_training_loss_says_so(monkeypatch):
    X, _ = noisy_sums(60, 9)
    y = X[:, -1, 0]  # learnable to a small loss
    scores = iter(-np.arange(100.0))  # the first epoch validates best, and never again
    monkeypatch.setattr(LSTMRegressor, "_score_rows", lambda self, *args: float(next(scores)))
    est = LSTMRegressor(early_stopping=True, validation_fraction=0.2, n_iter_no_change=30, max_iter=30,
                        hidden_size=8, batch_size=8, random_state=0)
    with pytest.warns(UserWarning, match=r"restored the weights of epoch 1, the best on the 12 validation"):
        est.fit(X, y)
    assert est.loss_curve_[0] > 2 * est.loss_curve_[-1]


def test_class_weights_with_numeric_labels_save_and_train_on(tmp_path):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(40, 4, 1))
    y = (X[:, -1, 0] > 0).astype(int)
    clf = LSTMClassifier(class_weight={0: 1.0, 1: 3.0}, hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    clf.save(tmp_path / "weighted.npz")
    loaded = numlstm.load(tmp_path / "weighted.npz")
    assert loaded.class_weight == {0: 1.0, 1: 3.0}
    np.testing.assert_array_equal(loaded.classes_, [0, 1])
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.set_params(warm_start=True).fit(X, y)  # the labels still match the weights
    # and the weights still act: the same two epochs without them end elsewhere
    unweighted = numlstm.load(tmp_path / "weighted.npz").set_params(warm_start=True, class_weight=None).fit(X, y)
    assert np.abs(loaded.predict_proba(X) - unweighted.predict_proba(X)).max() > 1e-6
    assert loaded.predict_proba(X)[:, 1].mean() > unweighted.predict_proba(X)[:, 1].mean()  # 1 weighs 3 times


def test_class_weight_values_and_labels_are_checked():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(30, 4, 1))
    y = np.array(["a", "b", "c"] * 10)
    for bad in ({"a": -0.5}, {"a": np.nan}, {"a": np.inf}, {"a": 0, "b": 0, "c": 0}):
        with pytest.raises(ValueError, match="class_weight must map labels to finite weights"):
            LSTMClassifier(class_weight=bad, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"class_weight names labels that are not classes: \['z'\]"):
        LSTMClassifier(class_weight={"a": 2, "z": 5}, max_iter=1).fit(X, y)


def test_from_torch_needs_a_linear_head_with_a_bias():
    torch = pytest.importorskip("torch")
    recurrent = torch.nn.LSTM(3, 5, batch_first=True)
    for head in (torch.nn.Linear(5, 2, bias=False), torch.nn.Sequential(torch.nn.Linear(5, 2))):
        with pytest.raises(ValueError, match="head must be a torch.nn.Linear with a bias"):
            LSTMRegressor.from_torch(recurrent, head)
