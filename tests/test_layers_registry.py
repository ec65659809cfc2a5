"""The cell registry: specs are checked, layers take and show their options, the trusted path.

The internal calls that ``numlstm._net`` makes (``_trusted_forward`` and
``_trusted_backward``) skip the public API's checks and conversions; they
must give the same numbers as the public calls.
"""

import dataclasses

import numpy as np
import pytest

import numlstm
from layer_cases import CASES, CLASSES, build
from numlstm._net import SequenceNet
from numlstm.cells.registry import SPECS, CellSpec, get


def test_an_incomplete_spec_fails_with_its_problems():
    fields = {f.name: getattr(SPECS["gru"], f.name) for f in dataclasses.fields(CellSpec)}
    with pytest.raises(TypeError, match="states must be"):
        CellSpec(**dict(fields, name="bad", states=("h", "c", "n")))
    with pytest.raises(TypeError, match="cache must start with"):
        CellSpec(**dict(fields, name="bad", cache=("gates", "x", "hs")))
    with pytest.raises(TypeError, match="gate_states is empty"):
        CellSpec(**dict(fields, name="bad", gate_states=()))
    with pytest.raises(TypeError, match="gates is not callable"):
        CellSpec(**dict(fields, name="bad", gates=3))
    with pytest.raises(TypeError, match="missing"):
        CellSpec(name="bad", layer="Bad")


def test_unknown_cells_and_options_are_named():
    with pytest.raises(ValueError, match="unknown cell 'lstn'.*lstm, gru, rnn"):
        get("lstn")
    with pytest.raises(TypeError, match="unexpected option.*peephol"):
        numlstm.LSTM(3, 4, peephol=True)
    with pytest.raises(TypeError, match="coupled must be a bool"):
        numlstm.LSTM(3, 4, coupled=1)


def test_every_cell_has_a_layer_case_and_documents_its_options():
    assert {cell for cell, _ in CASES} == set(SPECS)
    for name, spec in SPECS.items():
        assert CLASSES[name].__name__ == spec.layer
        for option in spec.options:
            doc = CLASSES[name].__doc__
            assert f"    {option.name} : " in doc or f"- ``{option.name}`` (" in doc, option.name
        assert "<cell options>" not in CLASSES[name].__doc__


def test_layers_show_their_options():
    layer = numlstm.LSTM(3, 4, coupled=np.bool_(True), forget_bias=np.float32(1.0))
    assert (layer.peephole, layer.coupled, layer.forget_bias) == (False, True, 1.0)
    assert repr(layer) == "LSTM(3, 4, dtype='float32', coupled=True, forget_bias=1.0)"
    assert numlstm.RNN(3, 4, nonlinearity="relu").nonlinearity == "relu"


@pytest.mark.parametrize("case", [c for c in CASES if "proj_size" not in c[1]],
                         ids=lambda c: c[0] + "".join(f"-{k}" for k in c[1]))
def test_trusted_path_matches_the_public_one(case):
    """Same outputs, parameter gradients and input gradient; none when it is not needed."""
    cell, options = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 2))
    lengths = np.array([5, 2, 4])
    layer, _ = build(cell, options, 2, 3, "float64")
    out, _ = layer(x, lengths=lengths)
    grad_out = rng.standard_normal(out.shape)
    grad_x, _ = layer.backward(grad_out)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    trusted = layer._trusted_forward(x, lengths)
    np.testing.assert_array_equal(trusted, out)
    np.testing.assert_array_equal(layer._trusted_backward(grad_out), grad_x)
    assert layer._trusted_backward(grad_out, need_input_grad=False) is None
    assert list(layer.grads) == list(grads)
    for name, value in grads.items():
        np.testing.assert_array_equal(layer.grads[name], value, err_msg=name)


def test_sequence_net_modes_and_names():
    net = SequenceNet(dict(cell="gru", input_size=2, hidden_size=3, num_layers=2,
                           bidirectional=False, dropout=0.5, dtype="float64", device="cpu",
                           seed=0, n_outputs=1, per_step=False))
    assert net.train() is net and net.layer.training
    assert net.eval() is net and not net.layer.training
    assert net.parameter_names()[-2:] == ["head.weight", "head.bias"]
    named = net.named_parameters()
    assert all(named[k] is v for k, v in zip(net.parameter_names(), net.parameters()))
    x, lengths = np.random.default_rng(1).standard_normal((4, 3, 2)), np.array([3, 1, 2, 3])
    outputs, cache = net.forward(x, lengths)
    grads = net.backward(np.ones_like(outputs), cache, named=True)
    assert list(grads) == net.parameter_names()
    assert all(grads[k].shape == named[k].shape for k in grads)
