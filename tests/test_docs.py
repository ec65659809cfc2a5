"""The documentation site: every referenced image exists, and ``mkdocs build --strict`` passes."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")          # ![alt](path "title")
HTML_IMAGE = re.compile(r"<img[^>]*\ssrc=[\"']([^\"']+)")


def _image_references():
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for target in IMAGE.findall(text) + HTML_IMAGE.findall(text):
            if not re.match(r"[a-z]+:", target):          # skip http:, https:, data:
                yield page, target.split("#")[0]


def test_every_referenced_image_exists():
    refs = list(_image_references())
    assert refs, "no image references found under docs/"
    missing = [f"{page.relative_to(ROOT)} -> {target}" for page, target in refs
               if not (page.parent / target).resolve().is_file()]
    assert not missing, "missing images:\n" + "\n".join(missing)


def test_figures_are_small_and_all_made_by_the_script():
    figures = DOCS / "figures"
    script = (figures / "make_figures.py").read_text(encoding="utf-8")
    for png in figures.glob("*.png"):
        assert png.stat().st_size < 150_000, f"{png.name} is {png.stat().st_size} bytes"
        assert f'"{png.stem}"' in script, f"{png.name} is not drawn by make_figures.py"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_build_strict(tmp_path):
    mkdocs = [sys.executable, "-m", "mkdocs"]
    if importlib.util.find_spec("mkdocs.__main__") is None and shutil.which("mkdocs"):
        mkdocs = ["mkdocs"]
    result = subprocess.run([*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "api" / "index.html").is_file()
