"""support.lvm202.LoopDevices.settle: it waits for exclusive claims to go, and names who holds one.

Root only (loop devices; skipped outside CI, failed in CI without root).  A child
process opens one of the devices ``O_EXCL`` — as a leftover ``lvm`` command or a test's
stray process would — and holds it until told to let go on its stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import lvm202
from support.lvm202 import DeviceBusy, LoopDevices, MiB, claimable

HOLD = """
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print("held", flush=True)
sys.stdin.read()
os.close(fd)
"""


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[LoopDevices]:
    with LoopDevices(tmp_path / "disks", 2, 4 * MiB) as devices:
        yield devices


def hold(device: str) -> subprocess.Popen[str]:
    """A process holding ``device`` open O_EXCL (it has, once this returns)."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, device], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "held\n", child.communicate(timeout=30)
    return child


def let_go(child: subprocess.Popen[str]) -> None:
    child.communicate("", timeout=30)
    assert child.returncode == 0


def test_attached_devices_are_settled_and_claimable(loops: LoopDevices) -> None:
    assert all(claimable(dev) for dev in loops.devices)
    loops.settle()
    loops.wipe()


def test_settle_fails_naming_the_pid_that_holds_a_device_exclusively(
    loops: LoopDevices, monkeypatch: pytest.MonkeyPatch
) -> None:
    free, held = loops.devices
    child = hold(held)
    try:
        assert not claimable(held) and claimable(free)
        with pytest.raises(DeviceBusy) as failure:
            loops.settle(timeout=0.2)
        message = str(failure.value)
        assert message.splitlines()[0] == f"loop device(s) still claimed after 0.2 s: {held}", message
        assert f"{held}: open by pid {child.pid} ({sys.executable} -c " in message, message
        assert free not in message
        monkeypatch.setattr(lvm202, "SETTLE_TIMEOUT", 0.2)
        with pytest.raises(DeviceBusy, match=f"pid {child.pid}"):
            loops.wipe(held)  # a wipe settles too
        loops.settle(free)  # only the devices asked for
    finally:
        let_go(child)
    loops.settle()
    assert claimable(held)


def test_settle_names_this_process_when_it_holds_the_device_itself(loops: LoopDevices) -> None:
    dev = loops.devices[0]
    fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
    try:
        with pytest.raises(DeviceBusy, match=f"{dev}: open by pid {os.getpid()} "):
            loops.settle(dev, timeout=0.1)
    finally:
        os.close(fd)
    loops.settle(dev)


def test_settle_waits_for_a_holder_that_lets_go_before_the_deadline(loops: LoopDevices) -> None:
    dev = loops.devices[1]
    child = hold(dev)
    outcome: list[BaseException | None] = []

    def settle() -> None:
        try:
            loops.settle(dev, timeout=30)
            outcome.append(None)
        except BaseException as e:  # reported below, in the test's thread
            outcome.append(e)

    waiter = threading.Thread(target=settle)
    try:
        assert not claimable(dev)  # settle starts while the device is claimed
        waiter.start()
    finally:
        let_go(child)
    waiter.join(60)
    assert outcome == [None]
