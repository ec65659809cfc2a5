"""``python -m numlstm``: help, demo and warmup in a subprocess, and the first-compile notice."""

import logging
import os
import warnings
import subprocess
import sys
import types

import numpy as np
import pytest
from numba import njit

from numlstm import _compile_notice


def run_cli(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "numlstm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_help(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "demo" in result.stdout and "warmup" in result.stdout
    assert run_cli(cwd=tmp_path).returncode == 2  # a command is required
    assert files_under(tmp_path) == []


def test_demo_writes_the_figure_in_the_current_directory(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_cli("demo", "--max-iter", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LSTM         test RMSE" in result.stdout and "persistence  test RMSE" in result.stdout
    assert "(2 epochs, fit" in result.stdout
    assert files_under(tmp_path) == ["numlstm-demo.png"]
    assert (tmp_path / "numlstm-demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_out_and_nothing_else(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "figures").mkdir()
    result = run_cli("demo", "--max-iter", "2", "--out", "figures/spots.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "figures/spots.png" in result.stdout
    assert files_under(tmp_path) == ["figures/spots.png"]


@pytest.mark.parametrize("out, message", [("missing/spots.png", "no such directory"),
                                          ("spots.xyz", "cannot write a .xyz file")])
def test_demo_rejects_an_unusable_out_before_fitting(tmp_path, out, message):
    pytest.importorskip("matplotlib")
    result = run_cli("demo", "--out", out, cwd=tmp_path)
    assert result.returncode != 0 and message in result.stderr
    assert "RMSE" not in result.stdout
    assert files_under(tmp_path) == []


def test_demo_without_matplotlib_prints_and_says_how_to_get_the_figure(tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    result = run_cli("demo", "--max-iter", "2", cwd=work, env=env)
    assert result.returncode == 0, result.stderr
    assert "RMSE" in result.stdout and "pip install 'numlstm[plot]'" in result.stdout
    assert files_under(work) == []


def test_demo_settings_beat_persistence():
    from sklearn.exceptions import ConvergenceWarning

    from numlstm import LSTMRegressor
    from numlstm.__main__ import SETTINGS, rmse, sunspot_windows

    X_train, y_train, X_test, y_test, spots = sunspot_windows()
    assert (len(X_train), len(X_test)) == (231, 58) and int(spots.time[-len(y_test)]) == 1951
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the demo's fit stops by itself
        model = LSTMRegressor(**SETTINGS).fit(X_train, y_train)
    assert model.n_iter_ < SETTINGS["max_iter"]
    assert rmse(model.predict(X_test), y_test) < 0.7 * rmse(X_test[:, -1], y_test)


def test_max_iter_must_be_positive(tmp_path):
    result = run_cli("demo", "--max-iter", "0", cwd=tmp_path)
    assert result.returncode == 2 and "--max-iter" in result.stderr


def test_warmup(tmp_path):
    result = run_cli("warmup", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for cell in ("LSTM", "GRU", "RNN"):
        for dtype in ("float32", "float64"):
            assert f"{cell:<4} {dtype}" in result.stdout
    assert "done in" in result.stdout
    assert files_under(tmp_path) == []


def fake_cell_module(name):
    """A module that defines one fresh, uncached Numba kernel, as a cell module does."""
    module = types.ModuleType(name)
    exec("def kernel(x):\n    return x.sum()\n", module.__dict__)
    module.kernel = njit(cache=False)(module.kernel)
    return module


def test_compile_notice_once_per_cell_and_dtype(caplog, capsys):
    module = fake_cell_module("numlstm_test_fake_cell_a")
    assert not _compile_notice.is_compiled(module, np.float32)
    assert _compile_notice.uncompiled(module, np.float32) == ["kernel"]
    with caplog.at_level(logging.INFO, logger="numlstm"):
        _compile_notice.announce(module, "FAKE", np.float32)
        _compile_notice.announce(module, "FAKE", np.float32)
    assert [r.getMessage() for r in caplog.records] == [_compile_notice.message("FAKE", np.float32)]
    assert caplog.records[0].getMessage().startswith("compiling float32 FAKE kernels (")
    assert capsys.readouterr().err == f"numlstm: {_compile_notice.message('FAKE', 'float32')}\n"  # once

    module.kernel(np.ones(3, np.float64))
    assert _compile_notice.is_compiled(module, np.float64) and not _compile_notice.is_compiled(module, np.float32)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="numlstm"):
        _compile_notice.announce(module, "FAKE", np.float64)  # compiled already: silent
    assert caplog.records == [] and capsys.readouterr().err == ""


def test_a_module_without_cpu_kernels_counts_as_compiled():
    assert _compile_notice.is_compiled(types.ModuleType("numlstm_test_empty"), np.float32)
