"""Token sequences: an embedding table learned with the network, from integer ids."""

import numpy as np
import pytest

import numlstm
from numlstm import LSTMClassifier, LSTMRegressor
from numlstm._net import SequenceNet
from numlstm.data import check_tokens

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# The toy corpus of PyTorch's sequence-models tutorial (part-of-speech tagging).
CORPUS = [("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
          ("Everybody read that book".split(), ["NN", "V", "DET", "NN"])]


def encode(corpus):
    words = sorted({w for sentence, _ in corpus for w in sentence})
    ids = [np.array([words.index(w) for w in sentence]) for sentence, _ in corpus]
    return ids, [np.array(tags, dtype=object) for _, tags in corpus], words


def test_the_tutorial_tagger_learns_its_corpus():
    ids, tags, _ = encode(CORPUS)
    X = numlstm.data.pad([i.astype(float) for i in ids])[..., 0]
    X = np.where(np.isnan(X), -1, X).astype(int)  # padded with the padding token
    y = np.full(X.shape, None, dtype=object)
    for row, t in zip(y, tags):
        row[: len(t)] = t
    tagger = LSTMClassifier(embedding_dim=6, hidden_size=6, max_iter=150, random_state=0).fit(X, y[..., None])
    pred = tagger.predict(X)
    assert pred.mask.tolist() == (X == -1).tolist()
    for row, t in zip(pred, tags):
        assert row.compressed().tolist() == list(t)
    assert tagger.score(X, y[..., None]) == 1.0
    assert tagger.predict(ids).shape == X.shape  # a list of id arrays works the same


def test_check_tokens_alignment_and_errors():
    seqs = check_tokens(np.array([[5, 6, -1], [-1, 7, 8]]))
    np.testing.assert_array_equal(seqs.lengths, [2, 2])
    np.testing.assert_array_equal(seqs.values[..., 0][:, :2], [[5, 6], [7, 8]])
    with pytest.raises(ValueError, match="padding_token=-1 inside a sequence"):
        check_tokens(np.array([[5, -1, 6]]))
    with pytest.raises(TypeError, match="integer ids"):
        check_tokens(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="padding tokens only"):
        check_tokens(np.array([[-1, -1], [1, 2]]))


def test_embedding_gradient_matches_finite_differences():
    config = dict(cell="lstm", input_size=3, hidden_size=4, num_layers=1, bidirectional=True, dropout=0.0,
                  dtype="float64", device="cpu", seed=0, n_outputs=2, per_step=False, peephole=False,
                  coupled=False, forget_bias=0.0, vocabulary_size=5)
    net = SequenceNet(config)
    tokens = np.array([[1, 2, 1, 2], [4, 4, 3, 0]])
    lengths = np.array([4, 2])  # ids 3 and 0 appear only past the second sequence's end
    target = np.random.default_rng(0).normal(size=(2, 2))

    def loss():
        out, cache = net.forward(tokens, lengths)
        return 0.5 * ((out - target) ** 2).sum(), out, cache

    _, out, cache = loss()
    grad_table = net.backward(out - target, cache)[-1]
    numerical = np.zeros_like(net.embedding)
    for i in np.ndindex(net.embedding.shape):
        old = net.embedding[i]
        net.embedding[i] = old + 1e-6
        up = loss()[0]
        net.embedding[i] = old - 1e-6
        down = loss()[0]
        net.embedding[i] = old
        numerical[i] = (up - down) / 2e-6
    np.testing.assert_allclose(grad_table, numerical, atol=1e-8)
    assert not grad_table[[0, 3]].any() and grad_table[[1, 2, 4]].all()


def test_token_models_save_load_and_handle_unseen_ids(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(100, 110, size=(30, 7))
    y = (X[:, -1] > 104).astype(float)
    reg = LSTMRegressor(embedding_dim=4, hidden_size=5, max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reg.vocabulary_, np.arange(100, 110))
    assert reg.network_.embedding.shape == (11, 4) and reg.network_.embedding.dtype == np.float32
    reg.save(tmp_path / "tokens.npz")
    loaded = numlstm.load(tmp_path / "tokens.npz")
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    unseen = X.copy()
    unseen[:, 0] = 999  # every unseen id shares row 0
    np.testing.assert_array_equal(reg.predict(unseen), reg.predict(np.where(unseen == 999, 12345, unseen)))
    with pytest.raises(ValueError, match="embedding_dim"):
        reg.set_params(embedding_dim=8).partial_fit(X, y)


def test_token_ids_out_of_range_and_nan_padding_are_named():
    with pytest.raises(ValueError, match="token ids beyond"):
        check_tokens(np.array([[2**64 - 1, 3]], dtype=np.uint64))
    with pytest.raises(ValueError, match="token ids beyond"):
        check_tokens(np.array([[1e20, 2e20]]))
    with pytest.raises(TypeError, match="pad them with padding_token, not NaN"):
        check_tokens(np.array([[1.0, np.nan]]))


def test_lazy_predictions_of_a_token_model_padded_with_zero():
    xr = pytest.importorskip("xarray")
    pytest.importorskip("dask.array")
    rng = np.random.default_rng(2)
    X = rng.integers(1, 9, size=(12, 6))
    X[::3, -2:] = 0
    est = LSTMClassifier(embedding_dim=3, padding_token=0, hidden_size=4, max_iter=2, random_state=0)
    est.fit(X, (X[:, 0] > 4).astype(int))
    da = xr.DataArray(X, dims=("sample", "time"))
    np.testing.assert_array_equal(est.predict_proba(da.chunk({"sample": 5})).values, est.predict_proba(da).values)
