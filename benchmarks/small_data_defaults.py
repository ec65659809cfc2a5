"""Do numlstm's default settings learn on small data? (issue 15, item 2)

    python benchmarks/small_data_defaults.py                      # every set, grid + candidates
    python benchmarks/small_data_defaults.py --seeds 0 1 --sets gunpoint digits
    python benchmarks/small_data_defaults.py --report             # Markdown tables from the results

Every fit appends one JSON line to ``--out`` (default ``small_data_defaults.jsonl``
in the current directory), and fits already there are skipped, so an interrupted
run resumes where it stopped and ``--report`` works on partial results.

Method (see docs/guide/defaults.md):
- thirteen small public sets that load with no download: ten classification sets
  (eight UCR/UEA sets bundled with sktime, sklearn's digits read as 8 steps of 8
  pixels, sktime's UnitTest) and three regression sets (sktime's Tecator; yearly
  sunspots and Nile flow from ``numlstm.datasets``, cut into windows that predict
  the next year, split in time);
- to keep it small: at most ``--max-train`` training and ``--max-test`` test sequences
  (a stratified draw with seed 0 for classification), and series longer than
  ``--max-length`` steps are averaged over non-overlapping blocks to at most that
  length; values are float32;
- each configuration is fitted with random_state = each seed and scored on the test
  split (accuracy, or R^2 for regression) with the estimator's own ``score``;
- configurations: "default" (no argument but random_state); a grid over
  learning_rate x max_iter, each either trained for exactly max_iter epochs or
  with early_stopping=True (see ``grid``); and the candidate defaults of
  ``CANDIDATES`` (other arguments at their defaults);
- the best of the grid is the configuration with the highest mean score over seeds
  on the test split: an optimistic, oracle search, so the gap default-vs-best is an
  upper bound on what a user's own search would gain;
- "search (3-fold CV)" is the search a user can run (classification sets only): for
  each seed, every grid configuration is scored by 3-fold stratified cross-validation
  on the training split alone, and the best one is refitted on the whole training
  split and scored on the test split.
"""

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.append(REPO)  # an installed numlstm wins; otherwise this checkout

LEARNING_RATES = (3e-3, 1e-2, 3e-2)
MAX_ITERS = (30, 100, 300)

# The defaults before issue 15, which the first candidates change one or two of.
FORMER = dict(learning_rate=1e-2, max_iter=100, n_iter_no_change=10)

CANDIDATES = {
    # name: the arguments that set what the name says (the others at the estimators' defaults)
    "patience 20": dict(FORMER, n_iter_no_change=20),
    "patience 30": dict(FORMER, n_iter_no_change=30),
    "epochs 200, patience 30": dict(FORMER, max_iter=200, n_iter_no_change=30),
    "epochs 300, patience 30": dict(FORMER, max_iter=300, n_iter_no_change=30),
    "epochs 300, patience 50": dict(FORMER, max_iter=300, n_iter_no_change=50),
    "lr 3e-3, epochs 300, patience 30": dict(learning_rate=3e-3, max_iter=300, n_iter_no_change=30),
    "batch 16, epochs 200, patience 30": dict(FORMER, batch_size=16, max_iter=200, n_iter_no_change=30),
    "epochs 200, patience 50": dict(FORMER, max_iter=200, n_iter_no_change=50),
    "epochs 200, all epochs": dict(FORMER, max_iter=200, n_iter_no_change=200),
    "epochs 300, patience 50, plateau": dict(FORMER, max_iter=300, n_iter_no_change=50,
                                             learning_rate_schedule="plateau"),
    "epochs 300, patience 100": dict(FORMER, max_iter=300, n_iter_no_change=100),
    "lr 3e-3, epochs 300, patience 50": dict(learning_rate=3e-3, max_iter=300, n_iter_no_change=50),
    "lr 3e-3, epochs 300, patience 100": dict(learning_rate=3e-3, max_iter=300, n_iter_no_change=100),
    "lr 3e-3, epochs 500, patience 50": dict(learning_rate=3e-3, max_iter=500, n_iter_no_change=50),
    "lr 3e-3, epochs 200, all epochs": dict(learning_rate=3e-3, max_iter=200, n_iter_no_change=200),
    "lr 3e-3, epochs 400, all epochs": dict(learning_rate=3e-3, max_iter=400, n_iter_no_change=None),
    "lr 4e-3, epochs 300, all epochs": dict(learning_rate=4e-3, max_iter=300, n_iter_no_change=None),
    "lr 5e-3, epochs 300, all epochs": dict(learning_rate=5e-3, max_iter=300, n_iter_no_change=None),
    "lr 3e-3, epochs 300, batch 16": dict(learning_rate=3e-3, max_iter=300, n_iter_no_change=None, batch_size=16),
    "lr 3e-3, epochs 300, cosine": dict(learning_rate=3e-3, max_iter=300, n_iter_no_change=None,
                                        learning_rate_schedule="cosine"),
    "lr 1e-2, epochs 300, cosine": dict(learning_rate=1e-2, max_iter=300, n_iter_no_change=None,
                                        learning_rate_schedule="cosine"),
    "lr 3e-2, epochs 300, cosine": dict(learning_rate=3e-2, max_iter=300, n_iter_no_change=None,
                                        learning_rate_schedule="cosine"),
}


def grid():
    """The search grid, {name: arguments}: learning rate x epochs, either run to the last epoch
    ("all epochs": ``n_iter_no_change=max_iter``, so nothing stops training) or with
    ``early_stopping=True`` and a patience of 10 epochs (which watches the training loss
    when too few sequences are left to validate on)."""
    configs = {}
    for lr, epochs in itertools.product(LEARNING_RATES, MAX_ITERS):
        configs[f"lr {lr:g}, {epochs} epochs, all epochs"] = dict(learning_rate=lr, max_iter=epochs,
                                                                  n_iter_no_change=epochs)
        configs[f"lr {lr:g}, {epochs} epochs, early stopping"] = dict(learning_rate=lr, max_iter=epochs,
                                                                      early_stopping=True, n_iter_no_change=10)
    return configs


# ---- data -------------------------------------------------------------------------------------


def _pool(x, max_length):
    """Average ``x`` (time, feature) over non-overlapping blocks so it has at most ``max_length`` steps."""
    factor = math.ceil(len(x) / max_length)
    if factor <= 1:
        return x
    n = len(x) // factor * factor
    head = x[:n].reshape(-1, factor, x.shape[1]).mean(axis=1)
    return head if n == len(x) else np.concatenate([head, x[n:].mean(axis=0, keepdims=True)])


def _subsample(n, cap, y, stratify):
    """Indices of at most ``cap`` of ``n`` rows, drawn with seed 0 (stratified by y if asked)."""
    if n <= cap:
        return np.arange(n)
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(n), train_size=cap, random_state=0, stratify=y if stratify else None)
    return np.sort(keep)


def _sktime_sequences(X):
    """sktime's numpy3D (instance, channel, time) or nested frame as a list of (time, channel) arrays."""
    if isinstance(X, np.ndarray):
        return list(X.transpose(0, 2, 1))
    return [np.column_stack([np.asarray(cell, dtype=float) for cell in row]) for row in X.itertuples(index=False)]


def _sktime_set(name):
    import sktime.datasets as D

    def load(split):
        loader = getattr(D, f"load_{name}")
        try:
            X, y = loader(split=split, return_type="numpy3D")
        except ValueError:  # unequal lengths: the nested frame
            X, y = loader(split=split)
        return _sktime_sequences(X), np.asarray(y)

    return load("train"), load("test")


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    seqs = list(X.reshape(-1, 8, 8))  # 8 rows (steps) of 8 pixels (features)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.5, random_state=0, stratify=y)
    return ([seqs[i] for i in tr], y[tr]), ([seqs[i] for i in te], y[te])


def _windows(loader, window):
    """Windows of ``window`` years predicting the next, the first 70% for training (in time order)."""
    from numlstm.data import sliding_windows

    X, y = sliding_windows(loader().values, window)
    n = int(0.7 * len(y))
    return (list(X[:n, :, None]), y[:n]), (list(X[n:, :, None]), y[n:])


def _numlstm_series(name, window):
    import numlstm.datasets as D

    return _windows(getattr(D, f"load_{name}"), window)


SETS = {
    # name: (task, loader)
    "arrow_head": ("classification", lambda: _sktime_set("arrow_head")),
    "gunpoint": ("classification", lambda: _sktime_set("gunpoint")),
    "italy_power_demand": ("classification", lambda: _sktime_set("italy_power_demand")),
    "basic_motions": ("classification", lambda: _sktime_set("basic_motions")),
    "japanese_vowels": ("classification", lambda: _sktime_set("japanese_vowels")),
    "osuleaf": ("classification", lambda: _sktime_set("osuleaf")),
    "acsf1": ("classification", lambda: _sktime_set("acsf1")),
    "plaid": ("classification", lambda: _sktime_set("plaid")),
    "unit_test": ("classification", lambda: _sktime_set("unit_test")),
    "digits": ("classification", _digits),
    "tecator": ("regression", lambda: _sktime_set("tecator")),
    "sunspots": ("regression", lambda: _numlstm_series("sunspots", 20)),
    "nile": ("regression", lambda: _numlstm_series("nile", 10)),
}


def load_set(name, max_train, max_test, max_length):
    """(X_train, y_train, X_test, y_test, info) of a set, subsampled, pooled and NaN-padded (float32)."""
    from numlstm.data import pad

    task, loader = SETS[name]
    classify = task == "classification"
    splits = []
    for (seqs, y), cap in zip(loader(), (max_train, max_test)):
        keep = _subsample(len(y), cap, y, classify)
        seqs = [_pool(np.asarray(seqs[i], dtype=np.float64), max_length) for i in keep]
        splits += [pad(seqs, dtype=np.float32), y[keep] if classify else y[keep].astype(np.float32)]
    X_train, y_train, X_test, y_test = splits
    info = dict(task=task, n_train=len(y_train), n_test=len(y_test), length=X_train.shape[1],
                n_features=X_train.shape[2], n_classes=len(np.unique(y_train)) if classify else None)
    return X_train, y_train, X_test, y_test, info


# ---- fitting ----------------------------------------------------------------------------------


def fit_one(task, params, seed, X_train, y_train, X_test, y_test):
    """Fit one configuration; its test score, epochs, fit seconds and whether it validated.

    A configuration that ``fit`` rejects with a ValueError (early stopping cannot
    hold out a stratified validation set with a member of every class) scores
    None, with the error.
    """
    from numlstm import LSTMClassifier, LSTMRegressor

    cls = LSTMClassifier if task == "classification" else LSTMRegressor
    est = cls(random_state=seed, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        try:
            est.fit(X_train, y_train)
        except ValueError as exc:
            return dict(score=None, n_iter=None, fit_s=None, validated=None, error=str(exc))
        seconds = time.perf_counter() - start
    return dict(score=float(est.score(X_test, y_test)), n_iter=int(est.n_iter_), fit_s=round(seconds, 3),
                validated=est.validation_scores_ is not None)


SEARCH = "search (3-fold CV)"


def fit_search(seed, X_train, y_train, X_test, y_test, folds=3):
    """The grid search a user can run: pick by cross-validation on the training split, score on test.

    Every grid configuration is fitted on each of ``folds`` stratified folds
    (shuffled with ``seed``) and scored on the held-out fold; the one with the
    best mean (a configuration that ``fit`` rejects on any fold is out) is
    refitted on all of the training split; should ``fit`` reject it there
    (early stopping that can hold out a stratified set of all the sequences
    but of no fold's), the next best is.
    """
    from sklearn.model_selection import StratifiedKFold

    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X_train, y_train))
    configs, cv = grid(), {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer members than folds
        for name, params in configs.items():
            scores = [fit_one("classification", params, seed, X_train[fit], y_train[fit], X_train[held],
                              y_train[held])["score"] for fit, held in splits]
            if None not in scores:
                cv[name] = float(np.mean(scores))
    for chosen in sorted(cv, key=cv.get, reverse=True):
        result = fit_one("classification", configs[chosen], seed, X_train, y_train, X_test, y_test)
        if result["score"] is not None:
            return dict(result, fit_s=round(time.perf_counter() - start, 3), chosen=chosen,
                        cv_score=round(cv[chosen], 4))
    return dict(score=None, n_iter=None, fit_s=None, validated=None,
                error="fit rejected every grid configuration, on a fold or on the whole training split")


def run(args):
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["set"], r["config"], r["seed"]) for r in map(json.loads, f)}
    configs = {"default": {}, **grid(), **CANDIDATES, SEARCH: None}
    if args.configs:
        configs = {name: configs[name] for name in args.configs}
    data = {}
    for seed in args.seeds:  # seed by seed, so that partial results cover every set alike
        for name in args.sets:
            todo = [c for c in configs if (name, c, seed) not in done]
            if not todo:
                continue
            if name not in data:
                data[name] = load_set(name, args.max_train, args.max_test, args.max_length)
            X_train, y_train, X_test, y_test, info = data[name]
            print(f"{name} seed={seed}: {info}, {len(todo)} fits", flush=True)
            for config in todo:
                if config == SEARCH:
                    if info["task"] != "classification":
                        continue
                    result = fit_search(seed, X_train, y_train, X_test, y_test)
                else:
                    result = fit_one(info["task"], configs[config], seed, X_train, y_train, X_test, y_test)
                record = dict(set=name, config=config, params=configs[config], seed=seed, **info, **result)
                with open(args.out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                print(f"  {config:40s} " + (f"error: {result['error']}" if result["score"] is None else
                      f"score={result['score']:.3f} epochs={result['n_iter']} {result['fit_s']:.2f}s"
                      + (f" chose {result['chosen']} (CV {result['cv_score']:.3f})" if "chosen" in result else "")),
                      flush=True)


# ---- report -----------------------------------------------------------------------------------


def report(path, columns):
    """Print Markdown tables of the results in ``path``.

    First, per set: the default's score, the best of the grid and the gap, and the
    score (and gap) of each configuration in ``columns``. Then, for every
    configuration, its gaps to the best of the grid over the classification sets
    and its mean scores.
    """
    with open(path) as f:
        records = [json.loads(line) for line in f]
    sets = [s for s in SETS if any(r["set"] == s for r in records)]
    mean = {}  # (set, config): means over seeds of score, epochs and fit seconds; not if a fit failed
    for s, c in {(r["set"], r["config"]) for r in records}:
        rows = [r for r in records if r["set"] == s and r["config"] == c]
        if all(r["score"] is not None for r in rows):
            mean[s, c] = tuple(float(np.mean([r[key] for r in rows])) for key in ("score", "n_iter", "fit_s"))
    failed = sorted({(r["set"], r["config"]) for r in records if r["score"] is None})
    info = {r["set"]: r for r in records}
    best = {}
    for s in sets:
        scored = [(mean[s, g][0], g) for g in grid() if (s, g) in mean]
        if scored:
            best[s] = max(scored)
    seeds = sorted({r["seed"] for r in records})
    print(f"Seeds {seeds}; scores are means over seeds: accuracy for classification, R^2 for regression.\n")
    head = ["set", "task", "train/test", "steps x features", "default", "best of grid", "best configuration",
            "gap"] + [f"{c} (gap)" for c in columns]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in sets:
        if s not in best or (s, "default") not in mean:
            continue
        r, (top, top_name), default = info[s], best[s], mean[s, "default"][0]
        task = f"classification ({r['n_classes']} classes)" if r["n_classes"] else "regression"
        cells = [s, task, f"{r['n_train']}/{r['n_test']}", f"{r['length']} x {r['n_features']}",
                 f"{default:.3f}", f"{top:.3f}", top_name, f"{top - default:+.3f}"]
        cells += [f"{mean[s, c][0]:.3f} ({top - mean[s, c][0]:+.3f})" if (s, c) in mean else "" for c in columns]
        print("| " + " | ".join(cells) + " |")
    if failed:
        print("\nLeft out, as fit raised ValueError: " + "; ".join(f"{c} on {s}" for s, c in failed))
    clf = [s for s in sets if info[s]["task"] == "classification" and s in best]
    reg = [s for s in sets if info[s]["task"] == "regression" and s in best]
    searched = [s for s in sets if (s, SEARCH) in mean and (s, "default") in mean]
    if searched:
        print(f"\nThe default against the {SEARCH}, which picks by cross-validation on the training split:\n")
        print("| set | default | search | gap | configurations the search chose (by seed) | search s |")
        print("|---|---|---|---|---|---|")
        for s in searched:
            chosen = [r["chosen"] for r in sorted(records, key=lambda r: r["seed"])
                      if r["set"] == s and r["config"] == SEARCH]
            default, found = mean[s, "default"][0], mean[s, SEARCH][0]
            print(f"| {s} | {default:.3f} | {found:.3f} | {found - default:+.3f} | {'; '.join(chosen)} "
                  f"| {mean[s, SEARCH][2]:.0f} |")
    print(f"\nEvery configuration on the {len(clf)} classification sets (gap: best of grid minus its score), "
          "and its mean R^2 on the regression sets:\n")
    print("| configuration | within 0.03 | mean gap | worst gap | mean accuracy | mean epochs | mean fit s "
          "| mean R^2 (regression) |")
    print("|---|---|---|---|---|---|---|---|")
    for c in ["default", *grid(), *CANDIDATES]:
        here = [s for s in clf if (s, c) in mean]
        if not here:
            continue
        gaps = [best[s][0] - mean[s, c][0] for s in here]
        r2 = [mean[s, c][0] for s in reg if (s, c) in mean]
        print(f"| {c} | {sum(g <= 0.03 for g in gaps)}/{len(here)} | {np.mean(gaps):.3f} | {max(gaps):.3f} | "
              f"{np.mean([mean[s, c][0] for s in here]):.3f} | {np.mean([mean[s, c][1] for s in here]):.0f} | "
              f"{np.mean([mean[s, c][2] for s in here]):.2f} | " + (f"{np.mean(r2):.3f} |" if r2 else " |"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--configs", nargs="+", help="run only these configurations (names as in the report)")
    parser.add_argument("--max-train", type=int, default=100)
    parser.add_argument("--max-test", type=int, default=500)
    parser.add_argument("--max-length", type=int, default=150)
    parser.add_argument("--out", default="small_data_defaults.jsonl")
    parser.add_argument("--report", action="store_true", help="print the Markdown tables of --out and exit")
    parser.add_argument("--columns", nargs="*", default=list(CANDIDATES),
                        help="configurations whose score on each set --report shows")
    args = parser.parse_args(argv)
    if args.report:
        report(args.out, args.columns)
        return
    print(f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}", flush=True)
    run(args)


if __name__ == "__main__":
    main()
