"""Part-of-speech tagging with a word embedding and an LSTM, after PyTorch's sequence-models tutorial.

Part 1 is the tutorial's own toy corpus ("The dog ate the apple", "Everybody
read that book"): an ``LSTMClassifier`` with ``embedding_dim`` reads word ids
and predicts one tag per word.

Part 2 is a larger corpus that ships beside this file,
``data/kennedy_sotu_upos.tsv``: John F. Kennedy's three State of the Union
addresses (public domain), 717 sentences and 17,181 words, each tagged with one
of 15 Universal Dependencies part-of-speech tags (UPOS). The tags are "silver"
ones, given by an averaged-perceptron tagger trained on UD English-EWT, not by
hand; ``data/README.md`` says how the file was built and under which licences.
The sentences are split 80/20 (seeded) into train and test. Words are
lower-cased and numbered over the whole corpus, so a word that occurs only in
the test sentences keeps an id the estimator never saw in ``fit`` and lands in
its shared "unknown" embedding row. The tagger is scored per word on the test
sentences against the most-frequent-tag baseline: each word's most frequent
tag in the training sentences, and the overall most frequent tag for words
that do not occur there.

Part 3, only where PyTorch is installed, trains the tutorial's model in
PyTorch (``nn.Embedding`` + ``nn.LSTM(batch_first=True)`` + ``nn.Linear``) with
the same sizes, initialization ranges, forget-gate bias (+1), Adam learning
rate, batch size, gradient clipping (global norm 5) and epochs on the same
split, the padded steps left out of the loss with ``ignore_index``. Both fit
times are printed, with the threads each library used; PyTorch's OpenMP threads
slow down badly on a machine whose cores are busy with other work, so compare
there with ``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1``. PyTorch is never needed
by numlstm itself.

A figure (needs matplotlib, the ``plot`` extra) shows the per-tag test
accuracy of the baseline and the taggers, and their training losses.

Run: ``python examples/pos_tagger.py [--epochs 60] [--out pos_tagger.png]``.
"""

import argparse
import time
from collections import Counter, defaultdict
from pathlib import Path

import numba
import numpy as np

from numlstm import LSTMClassifier

CORPUS = Path(__file__).with_name("data") / "kennedy_sotu_upos.tsv"

# The toy corpus and tag names of PyTorch's sequence-models tutorial.
TOY = [("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
       ("Everybody read that book".split(), ["NN", "V", "DET", "NN"])]
TOY_SETTINGS = dict(embedding_dim=6, hidden_size=6, learning_rate=1e-2, max_iter=300, tol=1e-3, random_state=0)

# The tutorial's model at the sizes it suggests for real data; one setting for both libraries.
SETTINGS = dict(embedding_dim=32, hidden_size=32, learning_rate=1e-2, batch_size=32, random_state=0)
EPOCHS = 60  # at most: the fit stops once the training loss stops improving
TEST_FRACTION = 0.2


def read_tagged(path=CORPUS):
    """The sentences of a ``word<TAB>tag`` file (blank line between sentences, ``#`` comments)."""
    sentences, words, tags = [], [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("#"):
            continue
        if line.strip():
            word, tag = line.split("\t")
            words.append(word)
            tags.append(tag)
        elif words:
            sentences.append((words, tags))
            words, tags = [], []
    return sentences


def split(sentences, test_fraction=TEST_FRACTION, seed=0):
    """Train and test sentences, shuffled with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    n_test = round(len(sentences) * test_fraction)
    return [sentences[i] for i in order[n_test:]], [sentences[i] for i in order[:n_test]]


def word_ids(sentences):
    """An id for each lower-cased word of ``sentences``, in order of first appearance."""
    ids = {}
    for words, _ in sentences:
        for word in words:
            ids.setdefault(word.lower(), len(ids))
    return ids


def encode(sentences, ids):
    """X: (sentence, word) ids padded with -1 at the end; y: (sentence, word, 1) tags, None where padded."""
    width = max(len(words) for words, _ in sentences)
    X = np.full((len(sentences), width), -1)
    y = np.full((len(sentences), width, 1), None, dtype=object)
    for row, (words, tags) in enumerate(sentences):
        X[row, : len(words)] = [ids[word.lower()] for word in words]
        y[row, : len(words), 0] = tags
    return X, y


def most_frequent_tag(train, test):
    """The baseline's tags for the test words: each word's most frequent training tag, else the overall one."""
    counts, overall = defaultdict(Counter), Counter()
    for words, tags in train:
        for word, tag in zip(words, tags):
            counts[word.lower()][tag] += 1
            overall[tag] += 1
    default = overall.most_common(1)[0][0]
    return [[counts[w.lower()].most_common(1)[0][0] if w.lower() in counts else default for w in words]
            for words, _ in test]


def tutorial():
    """Part 1: fit the toy corpus and print each sentence's predicted tags."""
    ids = word_ids(TOY)
    X, y = encode(TOY, ids)
    tagger = LSTMClassifier(**TOY_SETTINGS).fit(X, y)
    print(f"Part 1: the tutorial's toy corpus ({tagger.n_iter_} epochs, embedding {TOY_SETTINGS['embedding_dim']}, "
          f"hidden {TOY_SETTINGS['hidden_size']}), training accuracy {tagger.score(X, y):.2f}")
    for (words, _), tags in zip(TOY, tagger.predict(X)):
        print("  " + " ".join(f"{w}/{t}" for w, t in zip(words, tags.compressed())))
    return tagger


def fit_torch(X_train, y_train, X_test, vocabulary, classes, settings, epochs):
    """The same model and training in PyTorch; returns the test predictions, fit time and loss per epoch.

    ``vocabulary`` maps word ids to embedding rows as the estimator does: the
    i-th id seen in fit gets row i + 1, and row 0 (zero, never trained) serves
    unseen ids and padding.
    """
    import torch
    from torch import nn

    torch.manual_seed(settings["random_state"])
    hidden = settings["hidden_size"]

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(len(vocabulary) + 1, settings["embedding_dim"], padding_idx=0)
            self.lstm = nn.LSTM(settings["embedding_dim"], hidden, batch_first=True)
            with torch.no_grad():
                self.lstm.bias_ih_l0[hidden : 2 * hidden] += 1.0  # numlstm's forget_bias=1.0
            self.head = nn.Linear(hidden, len(classes))

        def forward(self, rows):
            return self.head(self.lstm(self.embedding(rows))[0])

    def rows(X):  # word ids -> embedding rows, as the estimator's vocabulary_ does
        index = np.searchsorted(vocabulary, X).clip(0, len(vocabulary) - 1)
        return torch.from_numpy(np.where((vocabulary[index] == X) & (X != -1), index + 1, 0))

    labels = np.full(X_train.shape, -100)  # ignore_index: padded steps stay out of the loss
    valid = X_train != -1
    labels[valid] = np.searchsorted(classes, y_train[..., 0][valid].astype(str))
    x, labels = rows(X_train), torch.from_numpy(labels)
    model = Tagger()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    losses = []
    start = time.perf_counter()
    for _ in range(epochs):
        order, total = torch.randperm(len(x)), 0.0
        for i in range(0, len(x), settings["batch_size"]):
            batch = order[i : i + settings["batch_size"]]
            width = int(valid[batch.numpy()].sum(1).max())  # trim the batch's all-padding tail
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch, :width]).flatten(0, 1), labels[batch, :width].flatten())
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # numlstm's clip_norm=5.0
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x))
    fit_time = time.perf_counter() - start
    with torch.no_grad():
        pred = classes[model(rows(X_test)).argmax(-1).numpy()]
    return np.ma.MaskedArray(pred, mask=X_test == -1), fit_time, losses


def threads(n):
    """``"1 thread"``, ``"2 threads"``."""
    return f"{n} thread{'s' if n != 1 else ''}"


def per_tag_accuracy(pred, X, y, tags):
    """Accuracy over the test words whose true tag is each of ``tags``."""
    valid = X != -1
    truth, hit = y[..., 0][valid], np.asarray(pred)[valid] == y[..., 0][valid]
    return np.array([hit[truth == tag].mean() for tag in tags])


def plot(results, tags, counts, out):
    """Per-tag test accuracy bars and training loss curves, written to ``out``."""
    from matplotlib.figure import Figure  # no pyplot: no window, no global state

    shown = [i for i, n in enumerate(counts) if n >= 10]  # a rarer tag's accuracy is mostly noise
    tags, counts = [tags[i] for i in shown], [counts[i] for i in shown]
    fig = Figure(figsize=(13, 4.5), layout="tight")
    bars, curves = fig.subplots(1, 2, width_ratios=(2.2, 1))
    width = 0.8 / len(results)
    for k, (name, result) in enumerate(results.items()):
        bars.bar(np.arange(len(tags)) + (k - (len(results) - 1) / 2) * width, result["per_tag"][shown], width,
                 label=f"{name} ({result['accuracy']:.3f})")
        if result.get("losses"):
            curves.plot(np.arange(1, len(result["losses"]) + 1), result["losses"], marker="o", ms=3, label=name)
    bars.set_xticks(np.arange(len(tags)), [f"{t}\n{n}" for t, n in zip(tags, counts)], fontsize=8)
    bars.set(ylim=(0, 1.2), yticks=np.linspace(0, 1, 6), ylabel="test accuracy",
             title="Per-tag accuracy on the test words (tag, count; tags with 10 or more)")
    bars.legend(loc="upper center", ncols=len(results), fontsize=8, title="tagger (accuracy over all test words)",
                title_fontsize=8)
    curves.set(xlabel="epoch", ylabel="mean cross-entropy", title="Training loss", yscale="log")
    curves.legend(fontsize=8)
    fig.savefig(out, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="most epochs for part 2 (default %(default)s); part 3 runs as many as part 2 did")
    parser.add_argument("--out", default="pos_tagger.png", help="where to write the figure (default %(default)s)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    args = parser.parse_args(argv)

    tutorial()  # also compiles numlstm's kernels, so the timed fit below is not charged for it

    sentences = read_tagged()
    train, test = split(sentences)
    ids = word_ids(sentences)
    (X_train, y_train), (X_test, y_test) = encode(train, ids), encode(test, ids)
    valid = X_test != -1
    seen = np.isin(X_test, np.unique(X_train[X_train != -1])) & valid
    tag_counts = Counter(y_test[..., 0][valid])
    tags = [t for t, _ in tag_counts.most_common()]
    print(f"\nPart 2: {CORPUS.name}: {len(sentences)} sentences, {sum(len(w) for w, _ in sentences)} words, "
          f"{len({t for _, ts in sentences for t in ts})} tags; train {len(train)} sentences "
          f"({int((X_train != -1).sum())} words), test {len(test)} ({int(valid.sum())} words, "
          f"{1 - seen.sum() / valid.sum():.1%} unseen in train)")

    baseline = encode([(w, t) for (w, _), t in zip(test, most_frequent_tag(train, test))], ids)[1][..., 0]
    start = time.perf_counter()
    tagger = LSTMClassifier(max_iter=args.epochs, tol=1e-2, n_iter_no_change=3, **SETTINGS).fit(X_train, y_train)
    fit_time = time.perf_counter() - start
    results = {
        "most frequent tag": dict(pred=baseline, fit_time=None, losses=None),
        "numlstm": dict(pred=tagger.predict(X_test), fit_time=fit_time, losses=list(tagger.loss_curve_)),
    }
    torch_note = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            torch_note = "Part 3 skipped: the PyTorch comparison needs torch (pip install torch)"
        else:
            pred, torch_time, losses = fit_torch(X_train, y_train, X_test, tagger.vocabulary_, tagger.classes_,
                                                 SETTINGS, tagger.n_iter_)
            results["PyTorch"] = dict(pred=pred, fit_time=torch_time, losses=losses)
            torch_note = f"PyTorch {torch.__version__}, {threads(torch.get_num_threads())}"

    print(f"  {tagger.n_iter_} epochs (numlstm stopped by itself; PyTorch ran as many), "
          f"embedding {SETTINGS['embedding_dim']}, hidden {SETTINGS['hidden_size']}, "
          f"Adam lr {SETTINGS['learning_rate']}, batch {SETTINGS['batch_size']}; "
          f"numlstm on {threads(numba.get_num_threads())}; test accuracy per word:")
    print(f"  {'':18} {'all':>6} {'seen':>6} {'unseen':>6}   fit")
    for name, result in results.items():
        hit = (np.asarray(result["pred"]) == y_test[..., 0]) & valid
        result.update(accuracy=hit.sum() / valid.sum(), per_tag=per_tag_accuracy(result["pred"], X_test, y_test, tags))
        fit = "" if result["fit_time"] is None else f"{result['fit_time']:5.2f} s"
        print(f"  {name:18} {result['accuracy']:6.3f} {hit[seen].mean():6.3f} {hit[valid & ~seen].mean():6.3f}   {fit}")
    if torch_note:
        print(f"  ({torch_note})")

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("no figure: it needs matplotlib (pip install 'numlstm[plot]')")
    else:
        plot(results, tags, [tag_counts[t] for t in tags], args.out)
        print(f"figure: {args.out}")
    return results


if __name__ == "__main__":
    main()
