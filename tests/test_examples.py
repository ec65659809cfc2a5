"""Smoke tests of the scripts in ``examples/``: each runs on its own, from any directory, and draws.

Every example except ``pos_tagger.py`` (``test_example_pos_tagger.py`` tests it)
runs in a subprocess from a temporary working directory, with ``--quick`` where
the script offers it, and must exit 0, emit no ``ConvergenceWarning`` (their
settings let training stop by itself) and write a PNG there when matplotlib is
installed. ``PYTHONWARNINGS`` is removed from the subprocesses' environment, so
Python's default warning filters apply.
"""

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(path for path in EXAMPLES_DIR.glob("*.py") if path.name != "pos_tagger.py")
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BLOCKING = """
import runpy, sys

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Blocker())
sys.argv = {argv!r}
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(args, cwd, blocked=(), **extra_env):
    """Run ``python args...`` in ``cwd``; ``blocked`` modules fail to import there, as if not installed."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"} | extra_env
    if blocked:  # a finder that refuses them (None in sys.modules would trip scipy's torch check)
        script, *rest = args
        args = ["-c", BLOCKING.format(blocked=set(blocked), argv=[str(script), *map(str, rest)])]
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def pngs(folder):
    return sorted(path for path in Path(folder).rglob("*.png") if path.read_bytes()[:8] == PNG_MAGIC)


def test_there_are_examples():
    assert {"sine_wave.py", "sunspots.py", "variable_length_classification.py", "gates.py",
            "vanishing_gradient.py", "compare_torch.py", "layer_training_loop.py"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_is_self_contained_and_documented(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    siblings = {path.stem for path in EXAMPLES_DIR.glob("*.py")}
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & siblings, f"{script.name} imports another example: {imported & siblings}"
    docstring = ast.get_docstring(tree)
    assert docstring and f"python examples/{script.name}" in docstring, "say what it shows and how to run it"
    assert "--out" in docstring and "simplefilter" not in script.read_text(encoding="utf-8")


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda path: path.stem)
def test_example_runs_from_another_directory_and_draws(script, tmp_path):
    quick = ["--quick"] if "--quick" in script.read_text(encoding="utf-8") else []
    # PyTorch's OpenMP threads slow down many times over when other work holds the cores (its
    # small-batch training took 0.3 s on one thread and 3-16 s on two on a busy 2-core machine).
    extra_env = {"OMP_NUM_THREADS": "1"} if script.name == "compare_torch.py" else {}
    result = run([script, *quick], cwd=tmp_path, **extra_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ConvergenceWarning" not in result.stderr, result.stderr[-3000:]
    assert result.stdout.strip()
    if script.name == "compare_torch.py" and not HAS_TORCH:
        assert "skipped" in result.stdout and not pngs(tmp_path)
    elif HAS_MATPLOTLIB:
        assert pngs(tmp_path), f"no PNG in {tmp_path}: {result.stdout[-2000:]}"
        assert f"figure: {script.stem}.png" in result.stdout
    else:
        assert 'pip install -e ".[plot]"' in result.stdout


def test_out_chooses_the_figure_path(tmp_path):
    out = tmp_path / "figures" / "loss.png"
    out.parent.mkdir()
    result = run([EXAMPLES_DIR / "layer_training_loop.py", "--out", out], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    if HAS_MATPLOTLIB:
        assert pngs(tmp_path) == [out]


def test_without_matplotlib_the_numbers_still_print(tmp_path):
    result = run([EXAMPLES_DIR / "layer_training_loop.py"], cwd=tmp_path, blocked=["matplotlib"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "final mse" in result.stdout and 'pip install -e ".[plot]"' in result.stdout
    assert not pngs(tmp_path)


def test_compare_torch_skips_cleanly_without_torch(tmp_path):
    result = run([EXAMPLES_DIR / "compare_torch.py"], cwd=tmp_path, blocked=["torch"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped" in result.stdout and "pip install torch" in result.stdout
    assert not pngs(tmp_path)


def test_forecast_backtest_baselines_and_table():
    spec = importlib.util.spec_from_file_location("forecast_backtest", EXAMPLES_DIR / "forecast_backtest.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    train = np.arange(30.0)
    np.testing.assert_array_equal(example.seasonal_naive(train, 5, 12), [18, 19, 20, 21, 22])
    np.testing.assert_array_equal(example.seasonal_naive(train, 14, 12)[12:], [18, 19])
    np.testing.assert_array_equal(example.seasonal_naive(train, 3, 1), [29, 29, 29])
    assert example.rmse([1.0, 3.0], np.array([0.0, 0.0])) == pytest.approx(np.sqrt(5))
    scores = {"LSTM": 2.0, "seasonal naive": 4.0, "ARIMA": 2.5, "ETS": 1.6}
    seconds = dict.fromkeys(("LSTM", "ARIMA", "ETS"), 1.0)
    assert example.print_table([("a", scores, seconds)]) == [pytest.approx(2.0 / 1.6)]
    assert len(example.SERIES) >= 4
