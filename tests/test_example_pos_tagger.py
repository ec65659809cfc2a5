"""Smoke test of examples/pos_tagger.py on fewer epochs: it learns, beats its baseline and draws."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pos_tagger.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("pos_tagger_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_corpus_file_reads_as_documented(example):
    sentences = example.read_tagged()
    assert len(sentences) == 717
    assert sum(len(words) for words, _ in sentences) == 17181
    assert all(len(words) == len(tags) >= 3 for words, tags in sentences)
    upos = "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
    assert {t for _, tags in sentences for t in tags} <= set(upos)
    train, test = example.split(sentences)
    assert (len(train), len(test)) == (574, 143)


def test_the_tutorial_corpus_is_learned(example, capsys):
    tagger = example.tutorial()
    X, y = example.encode(example.TOY, example.word_ids(example.TOY))
    assert tagger.score(X, y) == 1.0
    assert "The/DET dog/NN ate/V the/DET apple/NN" in capsys.readouterr().out


def test_main_beats_the_baseline_without_torch_and_writes_the_figure(example, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails: part 3 must skip cleanly
    out = tmp_path / "pos.png"
    results = example.main(["--epochs", "12", "--out", str(out)])
    printed = capsys.readouterr().out
    assert set(results) == {"most frequent tag", "numlstm"} and "Part 3 skipped" in printed
    assert 0.85 < results["most frequent tag"]["accuracy"] < results["numlstm"]["accuracy"]
    if importlib.util.find_spec("matplotlib") is None:
        assert "needs matplotlib" in printed
    else:
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_torch_tagger_trains_on_the_same_encoding(example):
    pytest.importorskip("torch")
    sentences = example.read_tagged()[:60]
    ids = example.word_ids(sentences)
    (X_train, y_train), (X_test, _) = example.encode(sentences[:50], ids), example.encode(sentences[50:], ids)
    vocabulary = np.unique(X_train[X_train != -1])
    classes = np.unique(y_train[X_train != -1, 0].astype(str))
    pred, fit_time, losses = example.fit_torch(X_train, y_train, X_test, vocabulary, classes,
                                               example.SETTINGS, epochs=3)
    assert pred.shape == X_test.shape and (pred.mask == (X_test == -1)).all()
    assert set(pred.compressed()) <= set(classes) and fit_time > 0
    assert len(losses) == 3 and losses[-1] < losses[0]
