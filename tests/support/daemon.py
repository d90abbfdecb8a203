"""A real pylvmetad process on a socket in a temp dir, and a bare connection to it.

:class:`RawConnection` is the tests' one raw wire client (for bytes the typed
client would refuse to send); everything else talks through
:mod:`pylvmetad.metad.client`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pylvmetad.wire.framing import Framer, encode_request


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    socket_path: str
    pidfile: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def wait_for_socket(path: str | Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 20.0) -> None:
    """Block until something accepts connections on ``path`` (polls connect, no fixed sleep).

    ``proc``, when given, is the daemon that should listen: its exit ends the wait at once.
    ``timeout`` is a hang guard, not a speed bound.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited with status {proc.returncode} before listening on {path}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"nothing listened on {path} within {timeout}s")


def start_daemon(tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> DaemonProcess:
    sock = str(tmp_path / "lvmetad.socket")
    pidfile = str(tmp_path / "lvmetad.pid")
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-s", sock, "-p", pidfile, *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    wait_for_socket(sock, proc)
    return DaemonProcess(proc, sock, pidfile, log_path)


class RawConnection:
    """A bare protocol connection: send a request text, read one framed reply."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        #: splits what the daemon sends into replies (the daemon's own framer, used for replies)
        self.reply_framer = Framer()
        self.pending: list[bytes] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_reply(self) -> str:
        while not self.pending:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            self.pending.extend(self.reply_framer.feed(chunk))
        return self.pending.pop(0).decode()

    def request(self, body: str) -> str:
        self.send_raw(encode_request(body))
        return self.read_reply()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
