"""Layers against the PyTorch golden fixtures and the readable NumPy reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden_io import golden_hx, golden_names, golden_params, load_golden
from layer_cases import CASES, CLASSES, as_tuple, build, case_id, random_state


def golden_layer(config, arrays):
    cell = config["cell"]
    options = dict(num_layers=config["num_layers"], bidirectional=config["bidirectional"],
                   bias=config["bias"], dtype=config["dtype"])
    if cell == "lstm":
        options["proj_size"] = config["proj_size"]
    if cell == "rnn":
        options["nonlinearity"] = config["nonlinearity"]
    layer = CLASSES[cell](config["input_size"], config["hidden_size"], **options)
    layer.load_state_dict(golden_params(arrays))
    return layer


def rel_err(actual, expected):
    return np.abs(actual - expected).max() / max(np.abs(expected).max(), 1e-30)


@pytest.mark.parametrize("name", golden_names())
def test_matches_torch_golden(name):
    config, a = load_golden(name)
    f64 = config["dtype"] == "float64"
    fwd_tol, grad_tol = (1e-10, 1e-9) if f64 else (1e-5, 1e-4)
    layer = golden_layer(config, a)
    out, final = layer(a["x"], golden_hx(config, a), a.get("lengths"))
    assert out.dtype == layer.dtype
    np.testing.assert_allclose(out, a["out"], rtol=0, atol=fwd_tol)
    names = ["h_n", "c_n"][: len(as_tuple(final))]
    for value, key in zip(as_tuple(final), names):
        np.testing.assert_allclose(value, a[key], rtol=0, atol=fwd_tol)
    grad_final = tuple(a["grad_" + key] for key in names)
    grad_x, grad_hx = layer.backward(a["grad_out"], grad_final if len(names) == 2 else grad_final[0])
    assert rel_err(grad_x, a["grad/x"]) < grad_tol
    for value, key in zip(as_tuple(grad_hx), ["h0", "c0"]):
        assert rel_err(value, a["grad/" + key]) < grad_tol
    assert set(layer.grads) == set(golden_params(a))
    for key, value in layer.grads.items():
        assert value.dtype == layer.dtype
        assert rel_err(value, a["grad/" + key]) < grad_tol, key


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_naive_reference(case, dtype):
    cell, options = case
    rng = np.random.default_rng(1)
    T, B, I, H = 6, 4, 3, 5
    layer, reference = build(cell, options, I, H, dtype)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = np.array([6, 2, 5, 1])
    hx = random_state(layer, B, rng)
    tol = 1e-10 if dtype == "float64" else 2e-6
    for kwargs in ({}, {"hx": hx}, {"hx": hx, "lengths": lengths}):
        out, final = layer(x, **kwargs)
        ref_out, ref_final = reference(x, **kwargs)
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_allclose(out, ref_out, rtol=0, atol=tol)
        for value, expected in zip(as_tuple(final), as_tuple(ref_final)):
            assert value.dtype == np.dtype(dtype)
            np.testing.assert_allclose(value, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_batch_first_and_unbatched_agree_with_time_major(cell):
    rng = np.random.default_rng(2)
    T, B, I, H = 5, 3, 4, 3
    layer = CLASSES[cell](I, H, num_layers=2, bidirectional=True, dtype="float64", seed=3)
    first = CLASSES[cell](I, H, num_layers=2, bidirectional=True, dtype="float64",
                          batch_first=True)
    first.load_state_dict(layer.state_dict())
    x = rng.standard_normal((T, B, I))
    lengths = np.array([5, 3, 4])
    out, final = layer(x, lengths=lengths)
    out_bf, final_bf = first(x.transpose(1, 0, 2), lengths=lengths)
    np.testing.assert_array_equal(out_bf, out.transpose(1, 0, 2))
    for a, b in zip(as_tuple(final), as_tuple(final_bf)):
        np.testing.assert_array_equal(a, b)
    grad_out = rng.standard_normal(out.shape)
    gx, _ = layer.backward(grad_out)
    gx_bf, _ = first.backward(grad_out.transpose(1, 0, 2))
    np.testing.assert_allclose(gx_bf, gx.transpose(1, 0, 2), rtol=1e-12, atol=1e-14)

    out_batch_of_one = layer(x[:, 1:2])[0]
    out_1, final_1 = layer(x[:, 1])
    np.testing.assert_allclose(out_1, out_batch_of_one[:, 0], rtol=0, atol=1e-14)
    assert out_1.shape == (T, 2 * H)
    assert as_tuple(final_1)[0].shape == (4, H)
    gx_1, ghx_1 = layer.backward(np.ones_like(out_1))
    assert gx_1.shape == (T, I) and as_tuple(ghx_1)[0].shape == (4, H)


def test_reverse_direction_starts_at_each_sequence_end():
    """Packed semantics, checked without any reference: run the short sequence alone."""
    rng = np.random.default_rng(4)
    layer = CLASSES["lstm"](2, 3, bidirectional=True, num_layers=2, dtype="float64", seed=5)
    x = rng.standard_normal((7, 2, 2))
    out, (h_n, c_n) = layer(x, lengths=[7, 4])
    alone, (h_alone, c_alone) = layer(x[:4, 1:2])
    np.testing.assert_allclose(out[:4, 1], alone[:, 0], rtol=0, atol=1e-14)
    assert np.all(out[4:, 1] == 0)
    np.testing.assert_allclose(h_n[:, 1], h_alone[:, 0], rtol=0, atol=1e-14)
    np.testing.assert_allclose(c_n[:, 1], c_alone[:, 0], rtol=0, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(data=st.data(), cell=st.sampled_from(["lstm", "gru", "rnn"]),
       T=st.integers(1, 6), B=st.integers(1, 4), I=st.integers(1, 4), H=st.integers(1, 5),
       num_layers=st.integers(1, 2), bidirectional=st.booleans())
def test_random_shapes_and_lengths_match_reference(data, cell, T, B, I, H, num_layers,
                                                    bidirectional):
    options = {"num_layers": num_layers, "bidirectional": bidirectional}
    layer, reference = build(cell, options, I, H, "float64", seed=data.draw(st.integers(0, 99)))
    lengths = np.array(data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B)))
    x = np.random.default_rng(T * 100 + B).uniform(-3, 3, (T, B, I))
    out, final = layer(x, lengths=lengths)
    ref_out, ref_final = reference(x, lengths=lengths)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-10)
    for value, expected in zip(as_tuple(final), as_tuple(ref_final)):
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-10)
