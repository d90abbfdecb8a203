"""The crash guardian (shell.guardian): a killed daemon's socket and pid file go with it.

Each test runs a real daemon (pylvmetad, or pylvmlockd in test mode), finds its
guardian among its children by the name in ``/proc/PID/comm``, and kills or
stops the daemon.  The waits poll a condition against a deadline (a hang
guard, not a speed bound).  A guardian orphaned by its daemon's death is
reaped by pid 1; "gone" counts a zombie as gone (it has exited).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pylvmetad.shell.guardian import GUARDIAN_COMM
from support.daemon import DaemonProcess, RawConnection, start_daemon, wait_for_socket

KINDS = ("pylvmetad", "pylvmlockd")


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.005)


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return found


def comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def guardians(pid: int) -> list[int]:
    return [c for c in children(pid) if comm(c) == GUARDIAN_COMM]


def the_guardian(pid: int) -> int:
    wait_until(lambda: len(guardians(pid)) == 1, f"one guardian child of {pid}")
    return guardians(pid)[0]


def gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError:
            return False
        return True


def start(kind: str, tmp_path: Path, *extra: str, name: str = "d") -> DaemonProcess:
    """A daemon of ``kind`` that serves (answered hello: a stop signal is then a clean stop)."""
    if kind == "pylvmetad":
        sub = tmp_path / name
        sub.mkdir(exist_ok=True)
        d = start_daemon(sub, *extra)
    else:
        d = _start_lockd(tmp_path, *extra, name=name)
    with RawConnection(d.socket_path) as conn:
        assert "response" in conn.request('request = "hello"\n')
    return d


def _start_lockd(tmp_path: Path, *extra: str, name: str) -> DaemonProcess:
    sock, pidfile, log_path = str(tmp_path / "lockd.sock"), str(tmp_path / "lockd.pid"), tmp_path / f"{name}.log"
    argv = [sys.executable, "-m", "pylvmetad.lockd.cli", "-f", "-T", "-s", sock, "-p", pidfile]
    argv += ["--lvmetad-socket", str(tmp_path / "no-metad.sock"), "--adopt-file", str(tmp_path / "adopt"), *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_for_socket(sock, proc)
    return DaemonProcess(proc, sock, pidfile, log_path)


@pytest.fixture
def stop_all() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.stop()
        for pid in guardians(d.proc.pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("kind", KINDS)
def test_a_sigkilled_daemons_socket_and_pid_file_are_removed(
    tmp_path: Path, kind: str, stop_all: list[DaemonProcess]
) -> None:
    d = start(kind, tmp_path)
    stop_all.append(d)
    guard = the_guardian(d.proc.pid)
    assert Path(d.pidfile).read_text().strip() == str(d.proc.pid)  # the pid file names the daemon
    assert sorted(int(fd.name) for fd in Path(f"/proc/{guard}/fd").iterdir()) == [0, 1, 2, 3]  # closed the rest
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    wait_until(lambda: not os.path.lexists(d.socket_path), "socket removed")
    wait_until(lambda: not os.path.lexists(d.pidfile), "pid file removed")
    wait_until(lambda: gone(guard), "guardian exited")


@pytest.mark.parametrize("kind", KINDS)
def test_a_clean_stop_leaves_no_guardian_and_no_files(tmp_path: Path, kind: str, stop_all: list[DaemonProcess]) -> None:
    d = start(kind, tmp_path)
    stop_all.append(d)
    guard = the_guardian(d.proc.pid)
    os.kill(guard, signal.SIGTERM)  # what a process-group stop also sends it: ignored
    os.kill(guard, signal.SIGINT)
    assert d.stop() == 0
    wait_until(lambda: gone(guard), "guardian exited")
    assert not os.path.lexists(d.socket_path)
    assert not os.path.lexists(d.pidfile)


@pytest.mark.parametrize("kind", KINDS)
def test_the_guardian_never_removes_a_newer_daemons_files(
    tmp_path: Path, kind: str, stop_all: list[DaemonProcess]
) -> None:
    first = start(kind, tmp_path)
    stop_all.append(first)
    guard = the_guardian(first.proc.pid)
    os.kill(guard, signal.SIGSTOP)  # the guardian wakes only after the next daemon made its files
    try:
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        assert os.path.lexists(first.socket_path)
        second = start(kind, tmp_path)  # same paths: the stale socket replaced, the same pid file reopened
        stop_all.append(second)
        assert second.socket_path == first.socket_path and second.pidfile == first.pidfile
    finally:
        os.kill(guard, signal.SIGCONT)
    wait_until(lambda: gone(guard), "the first guardian exited")
    assert connectable(second.socket_path)
    assert Path(second.pidfile).read_text().strip() == str(second.proc.pid)
    assert second.stop() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_no_guardian_leaves_the_stale_socket(tmp_path: Path, kind: str, stop_all: list[DaemonProcess]) -> None:
    d = start(kind, tmp_path, "--no-guardian")
    stop_all.append(d)
    assert guardians(d.proc.pid) == []
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    assert os.path.lexists(d.socket_path) and not connectable(d.socket_path)
    assert os.path.lexists(d.pidfile)


def test_a_daemonised_daemon_has_its_guardian(tmp_path: Path) -> None:
    sock, pidfile = str(tmp_path / "s"), str(tmp_path / "p")
    argv = [sys.executable, "-m", "pylvmetad.metad.cli", "-s", sock, "-p", pidfile]
    assert subprocess.run(argv, timeout=30).returncode == 0  # returns once the child serves
    pid = int(Path(pidfile).read_text())
    try:
        guard = the_guardian(pid)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        raise
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not os.path.lexists(sock) and not os.path.lexists(pidfile), "socket and pid file removed")
    wait_until(lambda: gone(guard), "guardian exited")
