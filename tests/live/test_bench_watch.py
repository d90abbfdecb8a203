"""bench.watch in its tiny mode: both parts run on real LVM data and print their tables.

No timing is asserted (speed lives in BENCHMARKS.md); the test keeps the benchmark
runnable.  About 8 s.
"""

from __future__ import annotations

import subprocess
import sys

from support.lvm202 import Lvm202
from support.skips import require_root


def test_bench_watch_runs(lvm2_02: Lvm202) -> None:
    require_root("loop devices")
    argv = [sys.executable, "-m", "bench.watch", "--pvs", "3", "--loops", "2", "--polls", "2"]
    argv += ["--changes", "2", "--idle", "0.3", "--intervals", "0.1", "--daemons", "pylvmetad,lvmetad"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert [row[:2] for row in rows if row[:1] == ["image"]] == [["image", "files"]]
    assert [row[2] for row in rows if row[:2] == ["loop", "devices"]] == ["2"]
    assert [row[0] for row in rows if row[1:2] == ["0.1"]] == ["pylvmetad", "lvmetad"]
