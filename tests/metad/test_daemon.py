"""The daemon process: command line, pid file, environment, idle exit, signals, daemonising."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pylvmetad.wire.codec import parse
from support.daemon import RawConnection, start_daemon, wait_for_socket

PYLVMETAD = [sys.executable, "-m", "pylvmetad.metad.cli"]
#: seconds after which a wait is a hang, not slowness (speed is measured by bench/, never here)
HANG_GUARD = 60


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYLVMETAD, *args], capture_output=True, text=True, timeout=30, env=env)


def test_version() -> None:
    result = run("-V")
    assert result.returncode == 0
    assert result.stdout.startswith("lvmetad version: 2.02.188")


def test_help_on_stdout_and_question_mark_on_stderr() -> None:
    h = run("-h")
    assert h.returncode == 0 and "-s SOCKET" in h.stdout and "--max-message" in h.stdout
    q = run("-?")
    assert q.returncode == 0 and q.stdout == "" and "-s SOCKET" in q.stderr


@pytest.mark.parametrize("value", ["-1", "abc", "4294967295"])
def test_bad_timeout_is_refused(value: str) -> None:
    result = run("-f", "-t", value)
    assert result.returncode == 1
    assert "Invalid value of timeout parameter." in result.stderr


def test_unknown_option_prints_usage_and_fails() -> None:
    result = run("--no-such-option")
    assert result.returncode == 1 and "usage:" in result.stderr


def test_clean_shutdown_on_each_signal_removes_socket_and_pidfile(tmp_path: Path) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        d = start_daemon(tmp_path)
        assert Path(d.pidfile).read_text() == f"{d.proc.pid}\n"
        assert os.stat(d.socket_path).st_mode & 0o777 == 0o600
        d.proc.send_signal(signum)
        assert d.proc.wait(HANG_GUARD) == 0, d.log()
        assert not os.path.exists(d.socket_path)
        assert not os.path.exists(d.pidfile)


def test_second_daemon_on_the_same_pidfile_exits_13(tmp_path: Path) -> None:
    d = start_daemon(tmp_path)
    try:
        second = run("-f", "-s", str(tmp_path / "other.socket"), "-p", d.pidfile)
        assert second.returncode == 13
        assert "Already running?" in second.stderr
        with RawConnection(d.socket_path) as c:  # the first one is unaffected
            assert parse(c.request('request="hello"')).get_str("response") == "OK"
    finally:
        d.stop()


def test_environment_variables_name_socket_and_pidfile(tmp_path: Path) -> None:
    sock, pid = str(tmp_path / "env.socket"), str(tmp_path / "env.pid")
    env = dict(os.environ, LVM_LVMETAD_SOCKET=sock, LVM_LVMETAD_PIDFILE=pid)
    proc = subprocess.Popen([*PYLVMETAD, "-f"], env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, proc)
        assert Path(pid).read_text() == f"{proc.pid}\n"
    finally:
        proc.terminate()
        assert proc.wait(HANG_GUARD) == 0


def test_idle_timeout_waits_for_clients_then_exits(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "-t", "1")
    client = RawConnection(d.socket_path)
    assert parse(client.request('request="hello"')).get_str("response") == "OK"
    with pytest.raises(subprocess.TimeoutExpired):
        d.proc.wait(2)  # a connected client keeps it alive past the timeout
    client.close()
    assert d.proc.wait(HANG_GUARD) == 0
    assert not os.path.exists(d.socket_path)
    assert not os.path.exists(d.pidfile)


def test_shutdown_keeps_serving_connected_clients_and_refuses_new_ones(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--shutdown-grace", "60")
    client = RawConnection(d.socket_path)
    assert parse(client.request('request="hello"')).get_str("response") == "OK"
    d.proc.send_signal(signal.SIGTERM)
    # the connected client is still served after the signal ...
    reply = parse(client.request('request="get_global_info"\ntoken="skip"'))
    assert reply.get_str("response") == "OK"
    # ... but nobody new gets in (the socket file is gone or refuses)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        try:
            s.connect(d.socket_path)
            s.sendall(b'request="hello"\n##\n')
            assert s.recv(100) == b""
        except OSError:
            pass
    client.close()
    assert d.proc.wait(HANG_GUARD) == 0


def test_second_signal_closes_lingering_clients(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--shutdown-grace", "60")
    client = RawConnection(d.socket_path)
    assert parse(client.request('request="hello"')).get_str("response") == "OK"
    d.proc.send_signal(signal.SIGTERM)
    assert parse(client.request('request="hello"')).get_str("response") == "OK"  # still served
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(HANG_GUARD) == 0
    client.close()


def test_without_f_the_daemon_forks_and_parent_exits_when_ready(tmp_path: Path) -> None:
    sock, pid = str(tmp_path / "bg.socket"), str(tmp_path / "bg.pid")
    result = run("-s", sock, "-p", pid)
    assert result.returncode == 0, result.stderr
    child = int(Path(pid).read_text())
    # the child is not ours to wait for: a pidfd becomes readable when it exits
    # (opened before any signal, so the pid cannot be reused under us)
    child_fd = os.pidfd_open(child)
    try:
        assert child != os.getpid()
        with RawConnection(sock) as c:
            reply = parse(c.request('request="get_global_info"\ntoken="skip"'))
            assert reply.get_int64("daemon_pid") == child
    finally:
        os.kill(child, signal.SIGTERM)
        try:
            exited, _, _ = select.select([child_fd], [], [], HANG_GUARD)
        finally:
            os.close(child_fd)
    assert exited, f"daemonised pylvmetad did not exit on SIGTERM within the hang guard ({HANG_GUARD} s)"
    assert not os.path.exists(sock)
    assert not os.path.exists(pid)


def test_wire_logging_shows_requests_and_replies(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "-l", "wire")
    try:
        with RawConnection(d.socket_path) as c:
            c.request('request="hello"')
    finally:
        d.stop()
    log = d.log()
    assert '<- request="hello"' in log
    assert '-> response = "OK"' in log
    assert "connection from pid" in log
