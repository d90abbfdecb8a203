"""The layers contract of pyproject.toml (docs/architecture.md), checked by import-linter.

The first test runs the project's contract on the source tree.  The second
runs the same contract on a copy of the package with one import pointing up
(the wire layer importing the shell) and requires import-linter to call it
broken, so the first test cannot pass by checking nothing.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from support.paths import REPO

SRC = REPO / "src"
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]


def lint_imports(config: Path, src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [*LINT, "--no-cache", "--no-logo", str(config)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_layers() -> None:
    proc = lint_imports(REPO / "pyproject.toml", SRC, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_import_pointing_up_breaks_the_contract(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC / "pylvmetad", src / "pylvmetad", ignore=shutil.ignore_patterns("__pycache__"))
    replies = src / "pylvmetad" / "wire" / "replies.py"
    replies.write_text(replies.read_text() + "\nfrom ..shell import server as _server  # pointing up\n")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    proc = lint_imports(tmp_path / "pyproject.toml", src, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert "BROKEN" in proc.stdout
    assert "pylvmetad.wire.replies -> pylvmetad.shell.server" in proc.stdout


def test_console_scripts_and_the_old_client_path_resolve() -> None:
    """Every console script of pyproject names a real ``main``; ``import pylvmetad.client`` works."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"pylvmetad", "pylvmetactl", "pylvmetad-scan"} <= set(scripts)
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target
    old = importlib.import_module("pylvmetad.client")
    from pylvmetad.metad import client

    assert old.Client is client.Client and old.AsyncClient is client.AsyncClient
