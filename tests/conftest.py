import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from numlstm import _config  # noqa: E402


@pytest.fixture(autouse=True)
def _uncrowded(monkeypatch):
    """Each test starts with the cores counted free: an earlier test's slow calls do not carry over."""
    monkeypatch.setattr(_config, "_crowded_until", 0.0)
    monkeypatch.setattr(_config, "_slow_splits", 0)
