"""Losses (values, stability, gradients) and optimizers (update rules, clipping, dtypes)."""

import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from numlstm.losses import absolute_error, cross_entropy, huber, log_softmax, pinball, softmax, squared_error
from numlstm.optim import SGD, Adam, clip_grad_norm


def numerical_grad(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f(x)
        x[i] = old - eps
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def test_log_softmax_matches_scipy_and_is_stable():
    logits = np.random.default_rng(0).normal(size=(5, 4))
    np.testing.assert_allclose(log_softmax(logits), scipy_log_softmax(logits, axis=-1), rtol=1e-12)
    huge = np.array([[1e4, 0.0, -1e4], [-1e30, 0.0, 1e30]])
    out = log_softmax(huge)
    assert np.isfinite(out[:, 1]).all()
    np.testing.assert_allclose(out[0], [0, -1e4, -2e4])
    np.testing.assert_allclose(softmax(huge).sum(axis=1), 1)
    assert log_softmax(huge.astype(np.float32)[:1]).dtype == np.float32


def test_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    loss, grad = cross_entropy(logits, labels)
    assert loss == pytest.approx(-scipy_log_softmax(logits, axis=1)[np.arange(6), labels].mean())
    np.testing.assert_allclose(grad, numerical_grad(lambda z: cross_entropy(z, labels)[0], logits), atol=1e-8)
    loss, _ = cross_entropy(np.array([[1e5, -1e5]]), np.array([1]))
    assert loss == pytest.approx(2e5)


def test_squared_error_value_and_gradient():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    loss, grad = squared_error(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2))
    np.testing.assert_allclose(grad, numerical_grad(lambda p: squared_error(p, target)[0], pred), atol=1e-8)
    assert squared_error(pred.astype(np.float32), target)[1].dtype == np.float32


def run(optimizer_cls, steps=3, **kwargs):
    rng = np.random.default_rng(3)
    params = [rng.normal(size=(2, 3)), rng.normal(size=4)]
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(steps)]
    start = [p.copy() for p in params]
    opt = optimizer_cls(params, **kwargs)
    for g in grads:
        opt.update_params(params, g)
    return start, grads, params


def test_sgd_plain_momentum_and_nesterov():
    start, grads, params = run(SGD, learning_rate=0.1, momentum=0.0)
    np.testing.assert_allclose(params[0], start[0] - 0.1 * sum(g[0] for g in grads))
    start, grads, params = run(SGD, steps=2, learning_rate=0.1, momentum=0.5)
    v1 = grads[0][0]
    v2 = 0.5 * v1 + grads[1][0]
    np.testing.assert_allclose(params[0], start[0] - 0.1 * (v1 + v2))
    start, grads, params = run(SGD, steps=2, learning_rate=0.1, momentum=0.5, nesterov=True)
    step1 = grads[0][0] + 0.5 * v1
    step2 = grads[1][0] + 0.5 * v2
    np.testing.assert_allclose(params[0], start[0] - 0.1 * (step1 + step2))


def test_adam_first_step_is_learning_rate_times_sign():
    start, grads, params = run(Adam, steps=1, learning_rate=0.01)
    np.testing.assert_allclose(params[1], start[1] - 0.01 * np.sign(grads[0][1]), rtol=1e-6)


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_weight_decay_adds_l2_gradient(cls):
    start, grads, decayed = run(cls, steps=1, learning_rate=0.1, weight_decay=0.5)
    params = [p.copy() for p in start]
    cls(params, learning_rate=0.1).update_params(params, [g + 0.5 * p for g, p in zip(grads[0], start)])
    np.testing.assert_allclose(decayed[0], params[0])


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_float32_parameters_stay_float32(cls):
    params = [np.ones(3, np.float32)]
    opt = cls(params, learning_rate=np.float64(0.1), weight_decay=np.float64(0.01))
    opt.update_params(params, [np.ones(3, np.float32)])
    assert params[0].dtype == np.float32 and (params[0] < 1).all()


@pytest.mark.parametrize("cls", [SGD, Adam])
def test_named_parameters_pair_with_gradients_by_name(cls):
    """Built from a mapping, an optimizer pairs each gradient with its parameter by name."""
    rng = np.random.default_rng(3)
    start = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=4), "c": rng.normal(size=(3, 2))}
    steps = [{k: rng.normal(size=v.shape) for k, v in start.items()} for _ in range(3)]
    by_list = [v.copy() for v in start.values()]
    listed = cls(by_list, learning_rate=0.1, weight_decay=0.1)
    by_name = {k: v.copy() for k, v in start.items()}
    named = cls(by_name, learning_rate=0.1, weight_decay=0.1)
    for grads in steps:
        listed.update_params(by_list, [grads[k] for k in start])
        named.update_params(dict(reversed(by_name.items())), dict(reversed(grads.items())))
    for (name, value), expected in zip(by_name.items(), by_list):
        np.testing.assert_array_equal(value, expected, err_msg=name)
    with pytest.raises(ValueError, match="names"):
        named.update_params(by_name, {"a": steps[0]["a"], "b": steps[0]["b"]})
    with pytest.raises(ValueError, match="shapes"):
        listed.update_params(by_list, [steps[0]["c"], steps[0]["b"], steps[0]["a"]])


def test_optimizers_match_torch():
    torch = pytest.importorskip("torch")
    cases = [
        (Adam, torch.optim.Adam, dict(learning_rate=0.01, weight_decay=0.1), dict(lr=0.01, weight_decay=0.1)),
        (
            SGD,
            torch.optim.SGD,
            dict(learning_rate=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
            dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        ),
    ]
    rng = np.random.default_rng(4)
    for ours, theirs, kwargs, torch_kwargs in cases:
        params = [rng.normal(size=(3, 4)), rng.normal(size=5)]
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        opt, topt = ours(params, **kwargs), theirs(tensors, **torch_kwargs)
        for _ in range(5):
            grads = [rng.normal(size=p.shape) for p in params]
            for t, g in zip(tensors, grads):
                t.grad = torch.tensor(g)
            topt.step()
            opt.update_params(params, grads)
        for p, t in zip(params, tensors):
            np.testing.assert_allclose(p, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_clip_grad_norm():
    grads = [np.full(4, 3.0), np.full(1, 4.0)]  # norm sqrt(36 + 16)
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(np.sqrt(52))
    assert np.sqrt(sum((g**2).sum() for g in grads)) == pytest.approx(1.0, rel=1e-5)
    small = [np.full(2, 0.1)]
    clip_grad_norm(small, 1.0)
    np.testing.assert_array_equal(small[0], 0.1)
    clip_grad_norm(grads, None)
    assert np.sqrt(sum((g**2).sum() for g in grads)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize(
    "cls, kwargs", [(SGD, dict(learning_rate=0.1, nesterov=True, weight_decay=0.01)), (Adam, dict(learning_rate=0.01))]
)
def test_optimizer_state_pickles(cls, kwargs):
    """A pickled optimizer (inside a pickled estimator) continues exactly where it was."""
    import pickle

    rng = np.random.default_rng(5)
    params = [rng.normal(size=(2, 3)), rng.normal(size=4)]
    grads = [[rng.normal(size=p.shape) for p in params] for _ in range(3)]
    opt = cls(params, **kwargs)
    opt.update_params(params, grads[0])
    opt2, params2 = pickle.loads(pickle.dumps((opt, params)))
    for g in grads[1:]:
        opt.update_params(params, g)
        opt2.update_params(params2, g)
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("loss, reference", [
    (absolute_error, lambda d: np.abs(d)),
    (huber, lambda d: np.where(np.abs(d) <= 1, d * d / 2, np.abs(d) - 0.5)),
    (squared_error, lambda d: d * d),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_losses_by_hand_and_their_gradients(loss, reference, weighted):
    rng = np.random.default_rng(3)
    pred, target = rng.normal(size=(6, 2)) * 2, rng.normal(size=(6, 2))  # no residual at a kink
    weights = rng.uniform(0, 2, 6) if weighted else None
    per_row = reference(pred - target).mean(axis=1)
    expected = per_row.mean() if weights is None else (weights * per_row).sum() / weights.sum()
    value, grad = loss(pred, target, weights)
    assert value == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(grad, numerical_grad(lambda p: loss(p, target, weights)[0], pred), atol=1e-7)


def test_pinball_loss_by_hand_gradient_and_minimizer():
    rng = np.random.default_rng(4)
    quantiles = [0.1, 0.5, 0.9]
    pred, target = rng.normal(size=(5, 2 * 3)), rng.normal(size=(5, 2))
    value, grad = pinball(pred, target, quantiles)
    r = target[:, :, None] - pred.reshape(5, 2, 3)
    q = np.array(quantiles)
    assert value == pytest.approx(np.mean(np.where(r > 0, q * r, (q - 1) * r)), rel=1e-13)
    np.testing.assert_allclose(grad, numerical_grad(lambda p: pinball(p, target, quantiles)[0], pred), atol=1e-7)
    # a constant prediction minimizing it is the sample quantile
    sample = rng.normal(size=(999, 1))
    grid = np.linspace(-3, 3, 601)
    losses = [pinball(np.full((999, 1), c), sample, [0.9])[0] for c in grid]
    assert abs(grid[int(np.argmin(losses))] - np.quantile(sample, 0.9)) < 0.02
