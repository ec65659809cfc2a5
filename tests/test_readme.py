"""The README's code runs as pasted, and CI runs exactly its Quick start commands.

A python block right after a line ``<!-- needs: torch -->`` or
``<!-- needs: gpu -->`` is skipped where that is missing.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"(?:<!-- needs: (?P<needs>\w+) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)


def blocks(lang):
    return [(m["code"], m["needs"]) for m in BLOCK.finditer(README) if m["lang"] == lang]


def section(title):
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start: end if end != -1 else None]


def _missing(needs):
    if needs == "torch":
        return subprocess.run([sys.executable, "-c", "import torch"], capture_output=True).returncode != 0
    if needs == "gpu":
        from numlstm import _backend

        return not _backend.cuda_available()
    return needs is not None


@pytest.mark.parametrize("code, needs", blocks("python"),
                         ids=[code.splitlines()[-1][:40] for code, _ in blocks("python")])
def test_python_block_runs_as_pasted(code, needs, tmp_path):
    if _missing(needs):
        pytest.skip(f"needs {needs}")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr


def test_first_forecast_beats_persistence(tmp_path):
    (code, _), = [block for block in blocks("python") if "load_sunspots" in block[0]]
    assert len(code.splitlines()) <= 15
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    lstm, persistence = (float(x) for x in re.findall(r"RMSE (\d+\.\d)", result.stdout))
    assert lstm < 0.7 * persistence, result.stdout


def quick_start_commands():
    (code,) = re.findall(r"```bash\n(.*?)```", section("Quick start"), re.S)
    return code.strip().splitlines()


def test_quick_start_has_two_commands_and_ci_runs_exactly_them():
    commands = quick_start_commands()
    assert commands == ['pip install -e ".[plot]" && python -m numlstm demo',
                        'pip install -e ".[test]" && pytest -q']
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    start = ci.index(commands[0])
    assert ci[start : start + len(commands)] == commands  # one after the other, as written
    assert not any("pip install" in line for line in ci[:start])  # nothing installed before them
