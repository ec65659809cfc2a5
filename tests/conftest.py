import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from numlstm import _config  # noqa: E402


@pytest.fixture(autouse=True)
def _uncrowded(monkeypatch):
    """The cores count as free whatever else the machine runs, unless a test sets ``CROWDED_PAUSE_S``.

    Tests that assert how many threads a call used must not depend on the
    load of the machine that runs them: slow split calls still count, but
    the pause they would start ends at once. An earlier test's slow calls do
    not carry over.
    """
    monkeypatch.setattr(_config, "_crowded_until", 0.0)
    monkeypatch.setattr(_config, "_slow_splits", 0)
    monkeypatch.setattr(_config, "CROWDED_PAUSE_S", 0.0)
