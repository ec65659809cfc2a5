"""The estimators learn: real sunspot data and a variable-length classification task.

Both use the settings of the examples in ``examples/``, which these tests import.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from numlstm import LSTMClassifier, LSTMRegressor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import variable_length_classification as vlc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_sunspots_beat_persistence():
    import sunspots

    X_train, y_train, X_test, y_test, _ = sunspots.load_windows()
    model = LSTMRegressor(**sunspots.SETTINGS).fit(X_train, y_train)
    lstm, persistence = sunspots.rmse(model.predict(X_test), y_test), sunspots.rmse(X_test[:, -1], y_test)
    assert lstm < 0.7 * persistence, (lstm, persistence)


def test_variable_length_classification():
    X_train, y_train = vlc.make_sequences(400, seed=0)
    X_test, y_test = vlc.make_sequences(300, seed=1)
    model = LSTMClassifier(**vlc.SETTINGS).fit(X_train, y_train)
    assert model.score(X_test, y_test) >= 0.95
    # and the task really is variable-length
    lengths = X_test.notnull().all("feature").sum("time").values
    assert len(np.unique(lengths)) > 20
