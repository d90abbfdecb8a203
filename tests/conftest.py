"""Shared fixtures: a real pylvmetad process on a socket in a temp dir (see support.daemon)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.daemon import DaemonProcess, start_daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    """A pylvmetad started for this test, stopped (and checked for a clean exit) after it."""
    d = start_daemon(tmp_path, "-l", "all")
    try:
        yield d
    finally:
        d.stop()
