"""shell.startup.run_daemon, the start-up sequence of both daemons, on a toy daemon.

The toy (:mod:`support.toy_daemon`, run as its own process) serves a
one-line reply through :func:`run_daemon` and :meth:`Launch.serve` with
nothing of pylvmetad's or pylvmlockd's, so these tests pin the sequence
itself: exit status 13 and the message on a pid file held by a live
daemon, 1 on a socket path another daemon answers at, the stderr echo
only when asked, the pid file released on a failed start, a daemonised
parent that exits only once the child serves (or with the child's
status), a bounded shutdown on SIGTERM with an idle client connected,
signals remembered before the loop ran.  Readiness is waited on through
the "serving" log line or the daemonised parent's exit, never a sleep.
About 3 s.
"""

from __future__ import annotations

import os
import select
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.shell.process import EXIT_LOCKED
from support.toy_daemon import HANG_GUARD, Toy, run_toy


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[Toy]:
    t = Toy(tmp_path / "toy.sock", tmp_path / "toy.pid")
    yield t
    t.kill()


def hello(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(HANG_GUARD)
        c.connect(str(path))
        c.sendall(b'request = "hello"\n##\n')
        return c.recv(4096)


def test_serves_then_sigterm_is_a_bounded_shutdown(toy: Toy) -> None:
    assert f"toyd 0.1.0 (pid {toy.proc.pid}) serving {toy.sock}" in toy.lines[-1]
    assert toy.pid.read_text() == f"{toy.proc.pid}\n"
    assert hello(toy.sock).startswith(b'response = "OK"')
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(HANG_GUARD)
    idle.connect(str(toy.sock))
    try:
        assert hello(toy.sock).startswith(b'response = "OK"')  # the idle one is accepted before the signal
        toy.proc.send_signal(signal.SIGUSR1)
        toy.proc.send_signal(signal.SIGTERM)
        status, log = toy.finish()  # an idle client that never leaves does not hold it up
        assert idle.recv(1) == b""  # closed by the daemon after the grace
    finally:
        idle.close()
    assert status == 0, log
    assert "SIGUSR1 received and ignored" in log
    assert not toy.sock.exists() and not toy.pid.exists()


@pytest.mark.parametrize("echo", [True, False])
def test_pid_file_held_by_a_live_daemon_exits_13(toy: Toy, tmp_path: Path, echo: bool) -> None:
    other = tmp_path / "other.sock"
    second = run_toy(other, toy.pid, *(["--echo"] if echo else []))
    assert second.returncode == EXIT_LOCKED
    message = f"Failed to acquire lock on {toy.pid}. Already running?"
    assert f"E: {message}" in second.stderr  # logged, as critical
    assert (f"toyd: {message}" in second.stderr) is echo  # and echoed only when asked
    assert not other.exists()
    assert toy.pid.read_text() == f"{toy.proc.pid}\n"  # the live daemon's pid file untouched
    assert hello(toy.sock).startswith(b'response = "OK"')


def test_socket_path_in_use_exits_1_and_releases_its_pid_file(toy: Toy, tmp_path: Path) -> None:
    pid = tmp_path / "other.pid"
    second = run_toy(toy.sock, pid, "--echo")
    assert second.returncode == 1, second.stderr
    assert f"toyd: socket {toy.sock} already in use: another daemon answers there" in second.stderr
    assert not pid.exists()
    assert hello(toy.sock).startswith(b'response = "OK"')  # the live daemon's socket left alone


def test_started_refusing_exits_1_and_removes_the_socket(tmp_path: Path) -> None:
    sock, pid = tmp_path / "s", tmp_path / "p"
    result = run_toy(sock, pid, "--fail-started")
    assert result.returncode == 1, result.stderr
    assert " serving " not in result.stderr
    assert not sock.exists() and not pid.exists()


def test_signals_before_the_loop_are_acted_on_once_serving(tmp_path: Path) -> None:
    sock, pid = tmp_path / "s", tmp_path / "p"
    result = run_toy(sock, pid, "--early")  # the remembered SIGTERM ends it: exit 0, not a hang
    assert result.returncode == 0, result.stderr
    ignored, serving = result.stderr.index("SIGUSR1 received and ignored"), result.stderr.index(" serving ")
    assert ignored < serving  # acted on as the loop began serving, before readiness
    assert not sock.exists()


def wait_gone(pid: int) -> None:
    """Wait (on a pidfd, no polling) until a process that is not our child has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], HANG_GUARD)[0], f"pid {pid} still runs"
    finally:
        os.close(fd)


def test_daemonised_parent_exits_0_only_once_the_child_serves(tmp_path: Path) -> None:
    sock, pid = tmp_path / "s", tmp_path / "p"
    parent = run_toy(sock, pid, "--daemon")
    assert parent.returncode == 0, parent.stderr
    child = int(pid.read_text())
    try:
        assert child != os.getpid() and hello(sock).startswith(b'response = "OK"')  # serving already
        held = run_toy(tmp_path / "other.sock", pid, "--daemon")  # the parent passes the child's 13 on
        assert held.returncode == EXIT_LOCKED
        assert "toyd: failed to acquire the pid file lock. Already running?" in held.stderr
        in_use = run_toy(sock, tmp_path / "other.pid", "--daemon")
        assert in_use.returncode == 1 and not (tmp_path / "other.pid").exists()
    finally:
        os.kill(child, signal.SIGTERM)
        wait_gone(child)
    assert not sock.exists() and not pid.exists()
