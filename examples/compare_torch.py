"""Side by side: numlstm's estimators and the same model in PyTorch, on the two example tasks.

Both sides get the same data, standardization, architecture (one LSTM layer,
forget-gate bias +1, then a dense layer), initialization ranges, Adam settings,
batch size, gradient clipping (global norm 5) and number of epochs, in
float32. PyTorch handles the variable lengths with packed sequences. The
script prints test scores and fit times; PyTorch is needed only here, never by
numlstm itself.

Run: ``python examples/compare_torch.py`` (needs torch).
"""

import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import sunspots
import variable_length_classification as vlc
from numlstm import LSTMClassifier, LSTMRegressor
from numlstm.data import Standardizer, check_sequences

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit("this comparison needs PyTorch: pip install torch")

CLIP_NORM = 5.0  # numlstm's default clip_norm


class TorchModel(nn.Module):
    """An LSTM layer read at each sequence's last valid step, then a dense layer."""

    def __init__(self, input_size, hidden_size, n_outputs):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        with torch.no_grad():
            self.lstm.bias_ih_l0[hidden_size : 2 * hidden_size] += 1.0  # forget_bias=1.0
        self.head = nn.Linear(hidden_size, n_outputs)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.head(h_n[-1])


def fit_torch(x, lengths, target, n_outputs, loss_fn, settings, epochs):
    """Train like numlstm's loop: shuffled mini-batches, Adam, global-norm clipping."""
    torch.manual_seed(settings["random_state"])
    model = TorchModel(x.shape[2], settings["hidden_size"], n_outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    x, lengths, target = torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(target)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), settings["batch_size"]):
            batch = order[i : i + settings["batch_size"]]
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch], lengths[batch]), target[batch])
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            optimizer.step()
    return model, time.perf_counter() - start


def prepared(X, scaler):
    """Sequences as padded float32 (standardized with ``scaler``) and their lengths."""
    seqs = check_sequences(X, dtype=np.float32)
    return np.where(seqs.mask[..., None], scaler.transform(seqs.values), 0).astype(np.float32), seqs.lengths


def timed_fit(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return estimator, time.perf_counter() - start


def compare_sunspots():
    X_train, y_train, X_test, y_test, _ = sunspots.load_windows()
    X_train, X_test, y_train = (a.astype(np.float32) for a in (X_train, X_test, y_train))
    ours, ours_time = timed_fit(LSTMRegressor(**sunspots.SETTINGS), X_train, y_train)
    x_scaler = Standardizer.fit(X_train.reshape(-1, 1))
    y_scaler = Standardizer.fit(y_train[:, None])
    x, lengths = prepared(X_train, x_scaler)
    model, torch_time = fit_torch(
        x, lengths, y_scaler.transform(y_train[:, None]), 1, nn.MSELoss(), sunspots.SETTINGS, ours.n_iter_
    )
    with torch.no_grad():
        x_test, test_lengths = prepared(X_test, x_scaler)
        pred = y_scaler.inverse_transform(model(torch.from_numpy(x_test), torch.from_numpy(test_lengths)).numpy())[:, 0]
    return (
        f"sunspots 1951-2008, RMSE ({ours.n_iter_} epochs; persistence {sunspots.rmse(X_test[:, -1], y_test):.2f})",
        (sunspots.rmse(ours.predict(X_test), y_test), ours_time),
        (sunspots.rmse(pred, y_test), torch_time),
    )


def compare_classification():
    X_train, y_train = vlc.make_sequences(400, seed=0)
    X_test, y_test = vlc.make_sequences(300, seed=1)
    ours, ours_time = timed_fit(LSTMClassifier(**vlc.SETTINGS), X_train.astype(np.float32), y_train)
    seqs = check_sequences(X_train, dtype=np.float32)
    scaler = Standardizer.fit(seqs.values[seqs.mask])
    x, lengths = prepared(X_train, scaler)
    labels = np.searchsorted(ours.classes_, y_train.values)
    model, torch_time = fit_torch(x, lengths, labels, len(ours.classes_), nn.CrossEntropyLoss(), vlc.SETTINGS, ours.n_iter_)
    with torch.no_grad():
        x_test, test_lengths = prepared(X_test, scaler)
        pred = ours.classes_[model(torch.from_numpy(x_test), torch.from_numpy(test_lengths)).argmax(1).numpy()]
    return (
        f"variable-length classification, accuracy ({ours.n_iter_} epochs)",
        (ours.score(X_test.astype(np.float32), y_test), ours_time),
        (float(np.mean(pred == y_test.values)), torch_time),
    )


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)  # fixed epoch budgets, on purpose
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for title, (ours_score, ours_time), (torch_score, torch_time) in (compare_sunspots(), compare_classification()):
        print(title)
        print(f"  numlstm  {ours_score:8.3f}   fit {ours_time:6.2f} s")
        print(f"  PyTorch  {torch_score:8.3f}   fit {torch_time:6.2f} s")


if __name__ == "__main__":
    main()
