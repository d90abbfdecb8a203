"""Who may talk to the daemon, and what it does to the files around it.

Socket creation (docs/protocol.md §1): mode 0600 from the first
instant (bind under umask 077), a live daemon on the path is never displaced,
a stale socket is replaced, anything that is not a socket is left alone.  The
pid file lock (§1.5), ``--allow-uid`` (SO_PEERCRED), peer logging, and
systemd socket activation with the shipped units (§1.6).
"""

from __future__ import annotations

import configparser
import os
import shlex
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pylvmetad.shell import sockets
from pylvmetad.wire.codec import parse
from support.daemon import DaemonProcess, RawConnection, start_daemon, wait_for_socket
from support.paths import REPO


def run_daemon(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run a daemon that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "pylvmetad.metad.cli", "-f", *args], capture_output=True, text=True, timeout=timeout
    )


def hello(path: str) -> str | None:
    with RawConnection(path) as c:
        return parse(c.request('request="hello"')).get_str("response")


# ---------------------------------------------------------------------------
# the socket file
# ---------------------------------------------------------------------------
def test_socket_is_mode_0600_and_ours(daemon: DaemonProcess) -> None:
    st = os.lstat(daemon.socket_path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


def test_bind_happens_under_umask_077(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No window in which the socket exists with looser permissions: bind itself runs under 077."""
    seen: list[int] = []

    class SpySocket(socket.socket):
        def bind(self, address: object) -> None:
            current = os.umask(0)
            os.umask(current)
            seen.append(current)
            super().bind(address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "socket", SpySocket)  # what sockets.bind_unix_socket calls
    before = os.umask(0o000)  # the most permissive caller
    try:
        sock = sockets.bind_unix_socket(str(tmp_path / "s"))
    finally:
        os.umask(before)
    sock.close()
    assert seen == [0o077]
    assert stat.S_IMODE(os.lstat(tmp_path / "s").st_mode) == 0o600


def test_live_daemon_on_the_socket_is_not_displaced(daemon: DaemonProcess, tmp_path: Path) -> None:
    second = run_daemon("-s", daemon.socket_path, "-p", str(tmp_path / "second.pid"))
    assert second.returncode != 0
    assert "already in use" in second.stderr, second.stderr
    assert hello(daemon.socket_path) == "OK"  # the first one is untouched
    assert os.path.exists(daemon.socket_path)


def test_stale_socket_is_removed_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "lvmetad.socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as old:
        old.bind(str(path))  # closed without unlink: nobody answers there any more
    d = start_daemon(tmp_path)
    try:
        assert hello(d.socket_path) == "OK"
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    finally:
        assert d.stop() == 0
    assert "removing stale socket" in d.log()


@pytest.mark.parametrize("kind", ["regular file", "directory", "symlink to a live socket"])
def test_something_else_at_the_socket_path_is_left_alone(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "lvmetad.socket"
    live: DaemonProcess | None = None
    if kind == "regular file":
        path.write_text("precious\n")
    elif kind == "directory":
        path.mkdir()
    else:
        other = tmp_path / "other"
        other.mkdir()
        live = start_daemon(other)
        path.symlink_to(live.socket_path)
    try:
        result = run_daemon("-s", str(path), "-p", str(tmp_path / "pid"))
        assert result.returncode != 0
        assert "not a socket" in result.stderr, result.stderr
        if kind == "regular file":
            assert path.read_text() == "precious\n"
        elif kind == "directory":
            assert path.is_dir()
        else:
            assert path.is_symlink() and live is not None and hello(live.socket_path) == "OK"
    finally:
        if live is not None:
            live.stop()


def test_pidfile_lock_refuses_a_second_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    second = run_daemon("-s", str(tmp_path / "second.socket"), "-p", daemon.pidfile)
    assert second.returncode == 13
    assert "Already running?" in second.stderr
    assert not os.path.exists(tmp_path / "second.socket")
    assert Path(daemon.pidfile).read_text().strip() == str(daemon.proc.pid)
    assert hello(daemon.socket_path) == "OK"


# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
def test_allow_uid_refuses_other_peers(tmp_path: Path) -> None:
    assert os.getuid() != 4242
    d = start_daemon(tmp_path, "--allow-uid", "4242")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(d.socket_path)
            try:
                s.sendall(b'request="hello"\n\n##\n')
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            assert data == b"", "a refused peer got a reply"
    finally:
        assert d.stop() == 0
    assert f"refused connection from uid {os.getuid()} pid {os.getpid()}" in d.log()


def test_allow_uid_admits_listed_peers(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--allow-uid", f"4242,{os.getuid()}")
    try:
        assert hello(d.socket_path) == "OK"
    finally:
        d.stop()


def test_peer_pid_and_uid_are_logged_at_wire_level(daemon: DaemonProcess) -> None:
    assert hello(daemon.socket_path) == "OK"
    daemon.stop()
    assert f"connection from pid {os.getpid()} uid {os.getuid()}" in daemon.log()


# ---------------------------------------------------------------------------
# systemd
# ---------------------------------------------------------------------------
def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / "contrib" / name)
    return parser


def test_shipped_units_match_the_originals() -> None:
    sock = unit("pylvmetad.socket")
    assert sock["Socket"]["ListenStream"] == "/run/lvm/lvmetad.socket"
    assert sock["Socket"]["SocketMode"] == "0600"
    assert sock["Socket"]["RemoveOnStop"] == "true"
    service = unit("pylvmetad.service")
    assert service["Service"]["Type"] == "simple"
    assert service["Service"]["ExecStart"] == "/usr/local/bin/pylvmetad -f"
    assert service["Service"]["Environment"] == "SD_ACTIVATION=1"
    assert service["Service"]["PIDFile"] == "/run/lvmetad.pid"
    assert service["Service"]["Restart"] == "on-abort"
    assert "pylvmetad.socket" in service["Unit"]["Requires"]
    assert "pylvmetad.socket" in service["Unit"]["After"]


def test_socket_activation_serves_the_inherited_socket_and_leaves_it(tmp_path: Path) -> None:
    """As systemd does it: the socket is bound by someone else and arrives as fd 3."""
    path = str(tmp_path / "lvmetad.socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    inode = os.lstat(path).st_ino
    fd = listener.fileno()
    # the child gets the socket as fd 3; the shell execs the daemon with LISTEN_PID = its own pid
    daemon_cmd = shlex.join(
        [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-l", "all", "-s", path, "-p", str(tmp_path / "pid")]
    )
    env = dict(os.environ, SD_ACTIVATION="1", LISTEN_FDS="1")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["sh", "-c", f"LISTEN_PID=$$ exec {daemon_cmd}"],
            pass_fds=(3,),  # kept open through close_fds; preexec_fn puts the socket there
            preexec_fn=lambda: os.dup2(fd, 3),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    listener.close()  # only the daemon holds it now
    d = DaemonProcess(proc, path, str(tmp_path / "pid"), log_path)
    try:
        wait_for_socket(path, proc)
        assert hello(path) == "OK"
        with RawConnection(path) as c:
            assert parse(c.request('request="vg_list"\ntoken="skip"')).get_str("response") == "OK"
    finally:
        assert d.stop() == 0, d.log()
    assert "inherited from systemd" in d.log()
    assert os.path.exists(path), "the daemon removed systemd's socket"
    assert os.lstat(path).st_ino == inode, "the daemon re-created the socket instead of using fd 3"


def test_socket_activation_for_another_pid_is_ignored(tmp_path: Path) -> None:
    """LISTEN_PID naming another process: the daemon binds its own socket, as the original does."""
    env = dict(os.environ, SD_ACTIVATION="1", LISTEN_FDS="1", LISTEN_PID="1")
    d = start_daemon(tmp_path, env=env)
    try:
        assert hello(d.socket_path) == "OK"
    finally:
        assert d.stop() == 0
    assert not os.path.exists(d.socket_path)  # it was ours, so it is removed
