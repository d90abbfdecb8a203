"""The skip→fail rule: a test that cannot run here skips outside CI and fails in CI.

Rules:

* A test that needs something the machine may lack (root, loop devices, the
  lvm2 tools, the LVM 2.02 build) calls :func:`require` with the condition and
  one line saying what is missing and how to get it.
* Outside CI that is a skip with exactly that line, so a developer's run stays
  green and says why some tests did not run.
* In CI (``PYLVMETAD_CI=1``, set by ``.ci/run``) a missing requirement is a
  failure: CI installs everything, so a skip there would hide a broken set-up.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

CI_ENV = "PYLVMETAD_CI"


def in_ci() -> bool:
    """True when the run must not skip anything (``PYLVMETAD_CI=1``)."""
    return os.environ.get(CI_ENV, "") not in ("", "0")


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason`` (one line), or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (skips are failures in CI: {CI_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def require(condition: object, reason: str) -> None:
    """Go on when ``condition`` is true; else skip with ``reason`` (fail in CI)."""
    if not condition:
        unavailable(reason)


def require_root(what: str = "loop devices") -> None:
    """These tests create kernel objects only root may create."""
    require(os.geteuid() == 0, f"needs root ({what}); run the test command as root to include it")


def require_program(name: str, package: str) -> str:
    """The path of ``name`` on PATH, or skip/fail saying which package provides it."""
    path = shutil.which(name)
    require(path, f"needs {name!r} (apt-get install {package})")
    assert path is not None
    return path
