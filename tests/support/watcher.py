"""``pylvmetad-scan --watch-disks`` as a process for the tests: started, its lines awaited, stopped.

The tests synchronise on the watcher's own output lines (``wait_for``: a reader thread
puts each line on a queue; the test blocks on the queue with a deadline), never on sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SCAN_MODULE = "pylvmetad.scanner.scan"


class WatcherProcess:
    """A running watcher; a context manager (SIGTERM on exit, then its status is kept)."""

    def __init__(
        self,
        socket_path: Path,
        conf_dir: Path,
        *args: str,
        devices: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = [
            sys.executable,
            "-m",
            SCAN_MODULE,
            "--watch-disks",
            "--socket",
            str(socket_path),
            *args,
            *devices,
        ]
        self.env = dict(os.environ if env is None else env, LVM_SYSTEM_DIR=str(conf_dir))
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.returncode: int | None = None

    def start(self) -> WatcherProcess:
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env, bufsize=1
        )
        self._pumper = threading.Thread(target=self._pump, daemon=True)
        self._pumper.start()
        try:
            self.wait_for(r"^watch-disks: watching ")
        except BaseException:
            self.stop()
            raise
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The next line (after those already consumed) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(0.01, left))
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout}s; got:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                raise AssertionError(
                    f"the watcher exited waiting for {pattern!r}; its output:\n" + "\n".join(self.lines)
                )
            self.lines.append(line)
            m = regex.search(line)
            if m:
                return m

    def drain(self) -> list[str]:
        """Lines printed so far and not yet consumed."""
        out: list[str] = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                return out
            self.lines.append(line)
            out.append(line)

    def sync(self, timeout: float = 30.0) -> re.Match[str]:
        """SIGUSR1, then its "polled on request" line: all that is on disk now has been told."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)
        return self.wait_for(
            r"^watch-disks: polled on request: (\d+) change\(s\), (\d+) request\(s\) sent, (\d+) pending", timeout
        )

    def stop(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._pumper.join(timeout)
        self.drain()  # the rest of its output, up to its last line
        return self.returncode

    def __enter__(self) -> WatcherProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.returncode is None:
            self.stop()
