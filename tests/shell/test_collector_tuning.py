"""shell.process.tune_collector: start-up frozen, young passes rarer, cycles still collected.

Each check runs in its own interpreter (the collector's settings are the
process's), and one runs a toy daemon through :func:`run_daemon` with
``tune_runtime`` to see that serving tunes it (its debug log line comes
before the "serving" one) and that a daemon without it is left alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from pylvmetad.shell.process import YOUNG_GENERATION_THRESHOLD

HANG_GUARD = 30

CHECK = r"""
import gc, weakref
from pylvmetad.shell.process import tune_collector, YOUNG_GENERATION_THRESHOLD

frozen, young = tune_collector()
assert young == YOUNG_GENERATION_THRESHOLD == gc.get_threshold()[0], gc.get_threshold()
assert frozen == gc.get_freeze_count() > 1000, frozen  # the interpreter's and our modules' objects

class Node:
    pass

collected = []
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle reference counting cannot free
probe = weakref.ref(a, lambda ref: collected.append(True))
del a, b
keep = [[] for _ in range(3 * YOUNG_GENERATION_THRESHOLD)]  # enough allocations for a young pass
assert collected == [True], "a cycle made after tuning was never collected"
print("ok")
"""

TOY = r"""
import sys
from pylvmetad.shell.server import Server
from pylvmetad.shell.startup import Launch, run_daemon
from pylvmetad.wire.replies import ok

sock_path, pid_path, tune = sys.argv[1:]

class Handler:
    def handle_message(self, text, peer):
        return ok("hello")

    def peer_gone(self, peer):
        pass

async def serve(launch: Launch) -> int:
    server = Server(Handler(), launch.sock, socket_path=launch.socket_path, shutdown_grace=0.2)
    return await launch.serve(server)

sys.exit(run_daemon(
    "toyd", serve, socket_path=sock_path, pidfile_path=pid_path, foreground=True,
    log_levels={10, 20, 30, 40, 50}, tune_runtime=tune == "tune",
))
"""


def test_tuned_and_cycles_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def log_until_serving(tmp_path: Path, tune: str) -> list[str]:
    """The toy daemon's log lines up to "serving", then it is stopped and reaped."""
    argv = [sys.executable, "-c", TOY, str(tmp_path / "toy.socket"), str(tmp_path / "toy.pid"), tune]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if " serving " in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=HANG_GUARD) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert any(" serving " in line for line in lines), lines
    return lines


def test_serving_tunes_the_collector_when_asked(tmp_path: Path) -> None:
    lines = log_until_serving(tmp_path, "tune")
    tuned = [line for line in lines if "start-up objects frozen" in line]
    assert len(tuned) == 1 and f"young generation threshold {YOUNG_GENERATION_THRESHOLD}" in tuned[0], lines
    assert lines.index(tuned[0]) < len(lines) - 1  # before the serving line


def test_left_alone_without_tune_runtime(tmp_path: Path) -> None:
    lines = log_until_serving(tmp_path, "no")
    assert not any("start-up objects frozen" in line for line in lines), lines
