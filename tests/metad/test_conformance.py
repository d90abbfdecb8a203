"""The recorded LVM 2.02 traffic, replayed against a real pylvmetad process.

This is the acceptance test of the whole daemon: every request recorded
between real LVM commands and the original lvmetad must get the recorded
reply (compared as config trees by the corpus's own ``replay.py``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from support.paths import conformance_dir


def test_replay_of_recorded_lvm_traffic_passes_completely() -> None:
    corpus = conformance_dir()
    files = sorted(str(p) for p in corpus.glob("*.jsonl"))
    assert files, f"no *.jsonl in {corpus}"
    daemon = f"{shlex.quote(sys.executable)} -m pylvmetad.metad.cli -f -s {{socket}} -p {{pidfile}}"
    result = subprocess.run(
        [sys.executable, str(corpus / "replay.py"), "--daemon", daemon, *files],
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary.endswith(" 0 failed"), summary
