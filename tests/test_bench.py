"""The load harness (``python -m bench.daemon``) in its tiny mode.

No timing is asserted: the test checks that every workload ran against a
real daemon and that the harness accepts only OK replies.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import daemon as bench

from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS
from support.daemon import start_daemon
from support.paths import REPO

ROWS = ["session", "pv_found", "pv_list", "vg_update_10", "vg_lookup_10", "vg_update_1000", "vg_lookup_1000",
        "vg_lookup_8c", "vg_update_1000_changed", "vg_update_10_changed", "vg_update_lookup_10", "pv_found_known",
        "pv_found_vg_25"]  # fmt: skip


def quick_settings() -> bench.Settings:
    return bench.Settings(duration=0.0, n_pvs=30, big_lvs=25, small_lvs=3, clients=3, min_ops=4)


def test_every_workload_runs_with_only_ok_replies(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path)
    try:
        run = bench.Bench(daemon.socket_path, quick_settings(), log=lambda _: None)
        rows = run.run()
    finally:
        daemon.stop()
    assert [row.key for row in rows] == ROWS
    for row in rows:
        assert row.ops >= 3, row  # every request of these was checked to be OK
        assert len(row.latencies) == row.ops
    assert run.daemon_pid == daemon.proc.pid


def test_a_reply_other_than_ok_fails_the_run(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path)
    try:
        run = bench.Bench(daemon.socket_path, quick_settings(), log=lambda _: None)
        run.take_token()
        # another command starts an update: the harness' token no longer matches
        other = bench.Identity(UPDATE_IN_PROGRESS, run.pid + 1, "pvscan")
        with run.connect() as c:
            c.call("token_update", bench.simple_request("token_update", other))
        with pytest.raises(bench.BenchError, match="token_mismatch"):
            run.pv_found()
    finally:
        daemon.stop()


def test_response_of_reads_both_layouts() -> None:
    assert bench.response_of(b'response = "OK"\nx = 1\n') == "OK"
    assert bench.response_of(b'response="failed"\nreason="x"\n') == "failed"
    assert bench.response_of(b'x = 1\nresponse = "unknown"\n') == "unknown"
    with pytest.raises(bench.BenchError):
        bench.check_ok("x", b'response = "token_mismatch"\n\n##\n')


def test_request_texts_look_like_lvm_traffic() -> None:
    who = bench.Identity(bench.FINAL_TOKEN, 4242, "vgchange")
    text = bench.pv_found_request(bench.PV("AAAAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGGGG", 2049), who).decode()
    assert text.startswith('request="pv_found"\npvmeta  {\n\tdevice =2049\n')
    assert '\ntoken ="filter:3239235440"\nupdate_timeout =10\npid =4242\ncmd ="vgchange"\n\n##\n' in text
    vg = bench.VGUpdate.build("vg0", [bench.PV("p", 1)], 2, who, random.Random(1))
    update = vg.request(7).decode()
    assert re.search(
        r'\tlogical_volumes \{\n\t\tlvol0 \{\n\t\t\tid="[^"]+"\n\t\t\tstatus=\["READ","WRITE","VISIBLE"\]', update
    )
    assert "\n\tseqno=7\n" in update and '\t\t\t\tstripes=["pv0",0]\n' in update


def test_command_line_quick_spawn() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.daemon", "--spawn", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    table = [line for line in proc.stdout.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == len(ROWS)
    assert "daemon RSS" in proc.stdout


def test_steps_runs_every_row_with_only_ok_replies() -> None:
    """``python -m bench.steps`` in tiny counts: a row per workload, figures for each step."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.steps", "--pvs", "30", "--ops", "5", "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    from bench.steps import ROWS as STEP_ROWS

    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(STEP_ROWS)
    assert all(re.search(r"\| \d+\.\d \|$", r) for r in rows)  # the whole-request figure of every row
