"""Where the tests find the checkout and the conformance corpus."""

from __future__ import annotations

import os
from pathlib import Path

#: the checkout's root
REPO = Path(__file__).resolve().parents[2]


def conformance_dir() -> Path:
    """The recorded LVM traffic: $PYLVMETAD_CONFORMANCE, else the copy in tests/data/conformance."""
    env = os.environ.get("PYLVMETAD_CONFORMANCE")
    path = Path(env) if env else REPO / "tests" / "data" / "conformance"
    if not (path / "replay.py").exists():
        raise AssertionError(f"conformance corpus not found in {path} (PYLVMETAD_CONFORMANCE={env!r})")
    return path
