"""A private sanlock daemon for tests: its own run dir, unprivileged, no watchdog.

As in ../shared/multihost/NOTES.md (obstacle 9): ``SANLOCK_PRIVILEGED=0``,
``-w 0`` (no wdmd), ``-l 0`` (no mlockall), ``-U root -G root``, ``-L -1 -S -1``
(no shared log file, no syslog), ``-D`` (foreground, log to stderr), ``-e NAME``
(the host name stamped into delta leases).  Clients reach it through
``SANLOCK_RUN_DIR``.  Stopped with SIGTERM (then SIGKILL) by its pid.  The
tests' and the lock benchmark's (``bench/lockd.py``) one sanlock launcher.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from support.lvm202 import wait_for_socket


def available() -> bool:
    """The sanlock daemon and libsanlock.so.1 are installed (Debian: sanlock, libsanlock1)."""
    if shutil.which("sanlock") is None:
        return False
    try:
        import ctypes

        ctypes.CDLL("libsanlock.so.1")
    except OSError:
        return False
    return True


class Sanlock:
    def __init__(self, run_dir: Path, host_name: str) -> None:
        self.run_dir = run_dir
        self.host_name = host_name
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SANLOCK_RUN_DIR=str(self.run_dir), SANLOCK_PRIVILEGED="0")

    def start(self) -> Sanlock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            "sanlock",
            "daemon",
            "-D",
            "-w",
            "0",
            "-l",
            "0",
            "-U",
            "root",
            "-G",
            "root",
            "-L",
            "-1",
            "-S",
            "-1",
            "-e",
            self.host_name,
        ]
        with open(self.run_dir / "sanlock.log", "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            wait_for_socket(self.run_dir / "sanlock.sock", self.proc)
        except BaseException:
            self.stop()  # one that never listened is not left running (``with`` would not stop it)
            raise
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def client_status(self) -> str:
        out = subprocess.run(["sanlock", "client", "status"], capture_output=True, text=True, env=self.env, timeout=10)
        return out.stdout

    def __enter__(self) -> Sanlock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(condition: object, timeout: float = 30.0) -> bool:
    """Poll ``condition()`` (each call itself does I/O on the daemon) until true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False
