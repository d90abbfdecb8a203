"""Both daemons listen before they import anything heavy, and serve who connected meanwhile.

A script that restarts a daemon and waits for its socket *file* (``[ -S path ]``,
``../shared/multihost/scenario.sh``) passes at once on the file a SIGKILLed daemon
left, and its next client connects within tens of milliseconds, while importing
asyncio, the core and the sanlock binding takes longer than that.  So the commands
lock the pid file and bind and listen first (``shell.sockets``, stale file removed only
when nobody answers on it) and import the rest afterwards; a connection made in
between waits in the kernel's backlog.

Each test runs the daemon's ``main`` with ``shell.startup``'s ``bind_unix_socket`` wrapped: right
after the socket listens, the wrapper reports which heavy modules are loaded and
then holds the daemon until the test says go.  No timing is involved.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

#: loaded by neither command before its socket listens (unless the interpreter's own start loaded it)
HEAVY = (
    "asyncio",
    "logging",
    "ctypes",
    "uvloop",
    "prometheus_client",
    "dataclasses",
    "typing",
    "pylvmetad.shell.server",
    "pylvmetad.wire.codec",
    "pylvmetad.lockd.core",
    "pylvmetad.lockd.sanlock",
    "pylvmetad.metad.cache",
    "pylvmetad.metad.handlers",
)

HOLD_AFTER_LISTEN = """
import sys
before = set(sys.modules)
from pylvmetad.shell import startup
from pylvmetad.{kind} import cli
real = startup.bind_unix_socket

def bind_and_hold(path, *args):
    sock = real(path, *args)
    loaded = [m for m in {heavy!r} if m in sys.modules and m not in before]
    print("listening", ",".join(loaded), flush=True)
    sys.stdin.readline()  # held here until the test writes a line
    return sock

startup.bind_unix_socket = bind_and_hold
sys.exit(cli.main(sys.argv[1:]))
"""

DAEMONS = {
    # kind: (extra options, a request and what its reply carries)
    "metad": ((), 'request = "hello"\n', 'protocol = "lvmetad"'),
    "lockd": (("-T", "-g", "sanlock"), 'request = "hello"\n', 'protocol = "lvmlockd"'),
}


def start_held(kind: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], Path, Path]:
    sock, pidfile, log = tmp_path / f"{kind}.sock", tmp_path / f"{kind}.pid", tmp_path / f"{kind}.log"
    options, _, _ = DAEMONS[kind]
    argv = ["-f", *options, "-s", str(sock), "-p", str(pidfile), *extra]
    if kind == "lockd":
        argv += ["--lvmetad-socket", str(tmp_path / "no-lvmetad.sock")]
    code = HOLD_AFTER_LISTEN.format(kind=kind, heavy=HEAVY)
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True
        )
    return proc, sock, log


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def recv_reply(sock: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\n##\n"):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {buf!r}"
        buf += chunk
    return buf.decode()


def stale_socket_file(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a SIGKILLed daemon leaves


@pytest.mark.parametrize("kind", DAEMONS)
def test_a_client_that_connects_before_the_daemon_is_up_is_served(tmp_path: Path, kind: str) -> None:
    _, request, answer = DAEMONS[kind]
    proc, sock_path, log = start_held(kind, tmp_path)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        assert line == "listening \n", f"heavy modules loaded before listening: {line!r}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(sock_path))  # the daemon has not imported its event loop yet
            client.sendall(request.encode() + b"##\n")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            reply = recv_reply(client)
        assert answer in reply
        assert "result = 0" in reply or 'response = "OK"' in reply
    finally:
        assert stop(proc) == 0, log.read_text()
    assert not sock_path.exists()
    assert not (tmp_path / f"{kind}.pid").exists()


@pytest.mark.parametrize("kind", DAEMONS)
def test_a_stale_socket_file_is_replaced_and_logged_once_logging_is_up(tmp_path: Path, kind: str) -> None:
    _, request, answer = DAEMONS[kind]
    stale_socket_file(tmp_path / f"{kind}.sock")
    proc, sock_path, log = start_held(kind, tmp_path)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline() == "listening \n"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(sock_path))
            client.sendall(request.encode() + b"##\n")
            assert answer in recv_reply(client)
    finally:
        assert stop(proc) == 0, log.read_text()
    assert f"removing stale socket {sock_path}" in log.read_text()


@pytest.mark.parametrize("kind", DAEMONS)
def test_a_second_daemon_leaves_the_first_ones_socket_and_pid_file_alone(tmp_path: Path, kind: str) -> None:
    """Same pid file: refused by the lock (13); other pid file, same socket: refused (1) by the
    probe that finds the first daemon answering.  The first keeps serving on its socket."""
    _, request, answer = DAEMONS[kind]
    first, sock_path, log = start_held(kind, tmp_path)
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline() == "listening \n"
        first.stdin.write("go\n")
        first.stdin.flush()
        pid_before = (tmp_path / f"{kind}.pid").read_text()
        options, _, _ = DAEMONS[kind]
        module = f"pylvmetad.{kind}.cli"
        base = [sys.executable, "-m", module, "-f", *options, "-s", str(sock_path)]
        same_pidfile = subprocess.run(
            [*base, "-p", str(tmp_path / f"{kind}.pid")], capture_output=True, text=True, timeout=60
        )
        assert same_pidfile.returncode == 13, same_pidfile.stderr
        other_pidfile = subprocess.run(
            [*base, "-p", str(tmp_path / "other.pid")], capture_output=True, text=True, timeout=60
        )
        assert other_pidfile.returncode == 1, other_pidfile.stderr
        assert "already in use" in other_pidfile.stderr
        assert (tmp_path / f"{kind}.pid").read_text() == pid_before == f"{first.pid}\n"
        assert not (tmp_path / "other.pid").exists()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(30)
            client.connect(str(sock_path))
            client.sendall(request.encode() + b"##\n")
            assert answer in recv_reply(client)
    finally:
        assert stop(first) == 0, log.read_text()
    assert os.listdir(tmp_path) == [f"{kind}.log"]


def test_the_light_modules_name_what_the_heavy_ones_use() -> None:
    import logging

    from pylvmetad.lockd import cli, metadlink
    from pylvmetad.shell.loglevels import LOG_LEVELS, WIRE

    assert cli.DEFAULT_LVMETAD_SOCKET == metadlink.DEFAULT_LVMETAD_SOCKET
    assert LOG_LEVELS == {
        "fatal": logging.CRITICAL,
        "error": logging.ERROR,
        "warn": logging.WARNING,
        "info": logging.INFO,
        "wire": WIRE,
        "debug": logging.DEBUG,
    }
    assert logging.DEBUG < WIRE < logging.INFO
