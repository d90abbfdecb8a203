"""The code base stays ruff-clean, ruff-formatted and mypy-clean (run as part of the test command).

Each check also runs on a file with one planted error and must report it, so a
check that cannot run (tool missing, wrong paths) fails instead of passing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.paths import REPO

PLANTED = "import os\n\n\ndef half(n: int) -> int:\n    return n / 2\n"  # unused import; float returned as int


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_reports_nothing() -> None:
    result = run("ruff", "check", "src", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reports_a_planted_error(tmp_path: Path) -> None:
    (tmp_path / "planted.py").write_text(PLANTED)
    result = run("ruff", "check", "--isolated", "--select", "F", "planted.py", cwd=tmp_path)
    assert result.returncode == 1 and "F401" in result.stdout, result.stdout + result.stderr


def test_ruff_format_would_change_nothing() -> None:
    """One layout for everyone: ``ruff format src tests bench`` fixes what this reports."""
    result = run("ruff", "format", "--check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_reports_a_planted_layout(tmp_path: Path) -> None:
    (tmp_path / "planted.py").write_text("x = [1,2 ,3]\n")
    result = run("ruff", "format", "--isolated", "--check", "planted.py", cwd=tmp_path)
    assert result.returncode == 1 and "planted.py" in result.stdout + result.stderr, result.stdout + result.stderr


def test_mypy_strict_reports_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_a_planted_error(tmp_path: Path) -> None:
    (tmp_path / "planted.py").write_text(PLANTED)
    result = run("mypy", "--strict", "--no-incremental", "planted.py", cwd=tmp_path)
    assert result.returncode == 1 and "Incompatible return value type" in result.stdout, result.stdout
