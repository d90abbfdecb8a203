"""shell.process.tune_collector: start-up frozen, young passes rarer, cycles still collected.

Each check runs in its own interpreter (the collector's settings are the
process's), and one runs the toy daemon of :mod:`support.toy_daemon`
through :func:`run_daemon` with ``tune_runtime`` to see that serving tunes
it (its debug log line comes before the "serving" one) and that a daemon
without it is left alone.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from pylvmetad.shell.process import YOUNG_GENERATION_THRESHOLD
from support.toy_daemon import HANG_GUARD, Toy

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


def test_tuned_and_cycles_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=HANG_GUARD)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def log_until_serving(tmp_path: Path, *flags: str) -> list[str]:
    """The toy daemon's log lines up to "serving", then it is stopped and reaped."""
    toy = Toy(tmp_path / "toy.socket", tmp_path / "toy.pid", *flags)
    try:
        toy.proc.send_signal(signal.SIGTERM)
        status, log = toy.finish()
        assert status == 0, log
    finally:
        toy.kill()
    assert any(" serving " in line for line in toy.lines), toy.lines
    return toy.lines


def test_serving_tunes_the_collector_when_asked(tmp_path: Path) -> None:
    lines = log_until_serving(tmp_path, "--tune")
    tuned = [line for line in lines if "start-up objects frozen" in line]
    assert len(tuned) == 1 and f"young generation threshold {YOUNG_GENERATION_THRESHOLD}" in tuned[0], lines
    assert lines.index(tuned[0]) < len(lines) - 1  # before the serving line


def test_left_alone_without_tune_runtime(tmp_path: Path) -> None:
    lines = log_until_serving(tmp_path)
    assert not any("start-up objects frozen" in line for line in lines), lines
