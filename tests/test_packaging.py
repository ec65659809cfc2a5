"""The distributions: a wheel and an sdist build, and the wheel alone runs the demo on its bundled data."""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("build")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    return out


def test_the_wheel_and_sdist_hold_the_package_data_and_license(dist):
    (wheel,) = dist.glob("numlstm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("numlstm/datasets/sunspots.csv", "numlstm/datasets/nile.csv", "numlstm/__main__.py"):
        assert needed in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in metadata
    assert not any("__pycache__" in n or n.endswith(".nbi") for n in names)  # no compiled kernels
    (sdist,) = dist.glob("numlstm-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("numlstm/datasets/sunspots.csv") for m in members)


def test_the_installed_wheel_runs_the_demo(dist, tmp_path):
    (wheel,) = dist.glob("numlstm-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the editable checkout
    where = subprocess.run([sys.executable, "-c", "import numlstm; print(numlstm.__file__)"], env=env,
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(target)
    result = subprocess.run([sys.executable, "-m", "numlstm", "demo", "--max-iter", "3", "--out", "demo.png"],
                            env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "persistence" in result.stdout
