"""Start-up costs, each sample in a fresh Python process (asv ``timeraw_``).

- ``import numlstm``;
- the first LSTM forward (inference, T=100 B=8 I=32 H=128) after the import,
  with a warm on-disk Numba cache;
- the same with a cold cache: NUMBA_CACHE_DIR points at a new empty temporary
  directory, so every kernel the forward needs is compiled. The import is timed
  too here, in case kernels are compiled eagerly at import;
- a cold first ``fit`` of a default ``LSTMRegressor`` on a small problem (64
  sequences of 20 steps, 3 epochs), with the import, in a cold cache too.
"""

import subprocess
import sys

from ._common import REPO, have_layers

_PRELUDE = f"""
import sys
if {REPO!r} not in sys.path:
    sys.path.append({REPO!r})
"""

_BUILD = """
import numpy as np
import numlstm
layer = numlstm.{cls}(32, 128, seed=0)
x = np.random.default_rng(0).standard_normal((100, 8, 32)).astype(np.float32)
"""

_FORWARD = """
with numlstm.no_grad():
    layer(x)
"""

# a fresh, empty Numba cache for the timed process
_COLD_CACHE = _PRELUDE + ("import os, tempfile\n"
                          "os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='numlstm-cold-')\n")

_warmed = set()


def _warm_cache(cls):
    """Run the first forward once in a child process so the on-disk cache holds the kernels."""
    if cls in _warmed:
        return
    code = _PRELUDE + _BUILD.format(cls=cls) + _FORWARD
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    _warmed.add(cls)


class Startup:
    number = 1
    repeat = (1, 5, 30.0)
    timeout = 300

    def timeraw_import_numlstm(self):
        return "import numlstm", _PRELUDE


class FirstForward:
    params = (["LSTM", "GRU"],)
    param_names = ["cls"]
    number = 1
    repeat = (1, 5, 60.0)
    timeout = 600

    def setup(self, cls):
        if not have_layers():
            raise NotImplementedError("numlstm.LSTM / numlstm.GRU not available yet")

    def timeraw_first_forward_warm_cache(self, cls):
        _warm_cache(cls)
        return _FORWARD, _PRELUDE + _BUILD.format(cls=cls)


class FirstForwardColdCache:
    params = (["LSTM", "GRU"],)
    param_names = ["cls"]
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 600

    def setup(self, cls):
        if not have_layers():
            raise NotImplementedError("numlstm.LSTM / numlstm.GRU not available yet")

    def timeraw_first_forward_cold_cache(self, cls):
        setup = _COLD_CACHE
        stmt = _BUILD.format(cls=cls) + _FORWARD
        return stmt, setup


_FIT = """
import numpy as np
import numlstm
X = np.random.default_rng(0).standard_normal((64, 20, 3)).astype(np.float32)
numlstm.LSTMRegressor(max_iter=3, random_state=0).fit(X, X[:, :, 0].sum(axis=1))
"""


class FirstFitColdCache:
    number = 1
    repeat = (1, 3, 120.0)
    timeout = 600

    def setup(self):
        if not have_layers():
            raise NotImplementedError("numlstm.LSTMRegressor not available yet")

    def timeraw_first_fit_cold_cache(self):
        return _FIT, _COLD_CACHE + "import warnings\nwarnings.simplefilter('ignore')\n"
