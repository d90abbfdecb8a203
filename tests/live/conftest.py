"""Fixtures of the live tests: the LVM 2.02 build and loop devices shared per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import lvm202
from support.differential import DEVICE_SIZE, DEVICES
from support.lvm202 import LoopDevices, Lvm202


@pytest.fixture(scope="session")
def lvm2_02() -> Lvm202:
    """The LVM 2.02.188 build (built on first use when the source is at hand)."""
    return lvm202.ensure()


@pytest.fixture(scope="module")
def loops(lvm2_02: Lvm202, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopDevices]:
    """Loop devices over small sparse files, shared by the tests of one module."""
    with LoopDevices(tmp_path_factory.mktemp("disks"), DEVICES, DEVICE_SIZE) as devices:
        yield devices
