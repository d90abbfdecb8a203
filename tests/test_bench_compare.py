"""``python -m bench.daemon --compare CMD``: two daemons, same harness, alternating rounds.

No timing is asserted; the tests check that both daemons ran every workload in every
round, in alternating order, and that the table has both figures, the ratio and both
peak RSS values.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

from bench import compare as bench_compare
from bench import daemon as bench

from support import lvm202
from support.paths import REPO

QUICK = bench.Settings(duration=0.0, n_pvs=20, big_lvs=10, small_lvs=3, clients=2, min_ops=3)


def test_rounds_alternate_and_both_daemons_run_every_workload() -> None:
    started: list[str] = []
    other = f"{shlex.quote(sys.executable)} -m pylvmetad.metad.cli -f -s {{socket}} -p {{pidfile}}"
    c_side, py_side = bench_compare.compare(
        other, QUICK, rounds=3, log=lambda line: started.append(line) if line.startswith("round") else None
    )
    assert started == [
        "round 1/3: C lvmetad",
        "round 1/3: pylvmetad",
        "round 2/3: pylvmetad",
        "round 2/3: C lvmetad",
        "round 3/3: C lvmetad",
        "round 3/3: pylvmetad",
    ]
    for side in (c_side, py_side):
        assert all(len(rows) == 3 and all(r.ops >= 3 for r in rows) for rows in side.rows.values())
        assert side.peak_kb is not None and side.peak_kb > 0
    table = bench_compare.format_comparison(c_side, py_side, 3)
    assert table.count("\n| ") == 13 + 1, table  # 13 workloads, RSS
    assert "| pylvmetad / C |" in table and "peak RSS" in table
    # each daemon's CPU was read from /proc for every row of every round
    for side in (c_side, py_side):
        assert all(r.daemon_cpu is not None and r.daemon_cpu >= 0 for rows in side.rows.values() for r in rows)
    assert "| C CPU µs/op | pylvmetad CPU µs/op |" in table and "n/a" not in table


def test_daemon_cpu_is_read_from_proc_and_grows_with_work() -> None:
    pid = os.getpid()
    before = bench.daemon_cpu_seconds(pid)
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = bench.daemon_cpu_seconds(pid)
    assert before is not None and after is not None and after >= before + 0.03
    assert bench.daemon_cpu_seconds(None) is None
    assert bench.daemon_cpu_seconds(2**22 + 12345) is None  # no such process


def test_the_command_line_against_the_c_lvmetad() -> None:
    built = lvm202.ensure()
    command = f"env LD_LIBRARY_PATH={built.lib} {built.lvmetad} -f -s {{socket}} -p {{pidfile}}"
    result = subprocess.run(
        [sys.executable, "-m", "bench.daemon", "--quick", "--rounds", "1", "--compare", command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| # | workload | C lvmetad ops/s | pylvmetad ops/s | pylvmetad / C | C CPU µs/op |")
    assert len(rows) == 1 + 13 + 1
    assert "MB" in rows[-1]
