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


TILE_CASES = [("lstm", {}), ("lstm", {"proj_size": 9, "bidirectional": True}),
              ("lstm", {"peephole": True, "coupled": True}), ("gru", {}), ("rnn", {})]


@pytest.mark.parametrize("case", TILE_CASES, ids=case_id)
def test_register_tile_sizes_match_reference_and_directional_differences(case):
    """Sizes where the per-step products run in register tiles: 9 rows (5 and 4 per thread) and
    17 hidden units (two float64 panels and a tail column backward, more forward), with lengths.

    The forward is checked against the NumPy reference; each gradient along one random direction
    against a central difference of the loss.
    """
    cell, options = case
    rng = np.random.default_rng(11)
    T, B, I, H = 5, 9, 4, 17
    layer, reference = build(cell, options, I, H, "float64")
    x = rng.standard_normal((T, B, I))
    hx = random_state(layer, B, rng)
    lengths = np.array([5, 1, 4, 5, 2, 3, 5, 4, 1])
    loss, r_out, r_final = loss_and_weights(layer, rng, x, lengths)
    out, final = layer(x, hx, lengths)
    ref_out, ref_final = reference(x, hx=hx, lengths=lengths)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-10)
    for value, expected in zip(as_tuple(final), as_tuple(ref_final)):
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-10)

    loss(hx)
    grad_x, grad_hx = layer.backward(r_out, r_final if len(r_final) == 2 else r_final[0])
    analytic = dict(layer.grads, x=grad_x, **{f"hx{i}": g for i, g in enumerate(as_tuple(grad_hx))})
    arrays = dict(layer.params, x=x, **{f"hx{i}": s for i, s in enumerate(as_tuple(hx))})
    for name, array in arrays.items():
        direction = rng.standard_normal(array.shape)
        saved = array.copy()
        array += EPS * direction
        up = loss(hx)
        array[...] = saved - EPS * direction
        down = loss(hx)
        array[...] = saved
        numeric = (up - down) / (2 * EPS)
        exact = np.sum(analytic[name] * direction)
        assert abs(exact - numeric) <= RTOL * max(abs(numeric), 1e-3), (name, exact, numeric)
