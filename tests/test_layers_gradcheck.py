"""Every gradient the layers return, against central finite differences in float64."""

import numpy as np
import pytest

from layer_cases import CASES, as_tuple, build, case_id, random_state

EPS = 1e-6
RTOL = 1e-6


def loss_and_weights(layer, rng, x, lengths):
    """A scalar loss sum(out * R) + sum(final * S) with fixed random weights R, S."""
    out, final = layer(x, lengths=lengths)
    r_out = rng.standard_normal(out.shape)
    r_final = tuple(rng.standard_normal(f.shape) for f in as_tuple(final))

    def loss(hx):
        out, final = layer(x, hx=hx, lengths=lengths)
        return np.sum(out * r_out) + sum(np.sum(f * r) for f, r in zip(as_tuple(final), r_final))

    return loss, r_out, r_final


def central_difference(f, array):
    """d f / d array, perturbing ``array`` in place one entry at a time."""
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + EPS
        up = f()
        array[idx] = saved - EPS
        down = f()
        array[idx] = saved
        grad[idx] = (up - down) / (2 * EPS)
    return grad


def assert_close(analytic, numeric, what):
    scale = max(np.abs(numeric).max(), 1e-3)
    err = np.abs(analytic - numeric).max() / scale
    assert err < RTOL, f"{what}: relative error {err:.2e}"


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients_match_finite_differences(case, with_lengths):
    cell, options = case
    rng = np.random.default_rng(7)
    T, B, I, H = 4, 3, 3, 3
    layer, _ = build(cell, options, I, H, "float64")
    x = rng.standard_normal((T, B, I))
    hx = random_state(layer, B, rng)
    lengths = np.array([4, 1, 3]) if with_lengths else None
    loss, r_out, r_final = loss_and_weights(layer, rng, x, lengths)

    loss(hx)
    grad_x, grad_hx = layer.backward(r_out, r_final if len(r_final) == 2 else r_final[0])
    analytic = {name: value.copy() for name, value in layer.grads.items()}

    assert_close(grad_x, central_difference(lambda: loss(hx), x), "x")
    for i, (state, grad) in enumerate(zip(as_tuple(hx), as_tuple(grad_hx))):
        assert_close(grad, central_difference(lambda: loss(hx), state), f"hx[{i}]")
    assert set(analytic) == set(layer.params)
    for name, param in layer.params.items():
        assert_close(analytic[name], central_difference(lambda: loss(hx), param), name)


def test_dropout_gradients_match_finite_differences():
    """Between-layer dropout: the same mask (same rng state) for every evaluation."""
    rng = np.random.default_rng(8)
    layer, _ = build("lstm", {"num_layers": 3, "dropout": 0.4, "bidirectional": True},
                     2, 3, "float64")
    x = rng.standard_normal((4, 2, 2))
    r_out = rng.standard_normal((4, 2, 6))

    def loss():
        layer._rng = np.random.default_rng(123)  # replay the same dropout masks
        out, _ = layer(x)
        return np.sum(out * r_out)

    loss()
    grad_x, _ = layer.backward(r_out)
    analytic = {name: value.copy() for name, value in layer.grads.items()}
    assert_close(grad_x, central_difference(loss, x), "x")
    for name in ("weight_ih_l0", "weight_hh_l1_reverse", "bias_ih_l2"):
        assert_close(analytic[name], central_difference(loss, layer.params[name]), name)
