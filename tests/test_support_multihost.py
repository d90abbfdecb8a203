"""The parts of the multi-host bed that need no root: teardown by pid, lock waits, masks, log figures."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

from bench.multihost import lock_figures

from multihost.scenario import Run, flock_waiters
from support import multihost


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"])


def test_down_kills_recorded_processes_by_pid_and_removes_files_but_spares_a_reused_pid(tmp_path: Path) -> None:
    ours, stranger = sleeper(), sleeper()
    try:
        image, link = tmp_path / "pv1.img", tmp_path / "vg-lvmlock"
        image.write_bytes(b"")
        link.symlink_to(image)
        state = {
            "procs": [
                ["sanlock1", ours.pid, multihost._start_time(ours.pid)],
                # same pid number, another start time: a process that reused the pid, not ours
                ["lockd1", stranger.pid, "1"],
            ],
            "links": [str(link)],
            "images": [str(image)],
            "loops": [],
        }
        (tmp_path / "bed.json").write_text(json.dumps(state))
        assert multihost.down(tmp_path) == []
        assert ours.wait(10) != 0  # killed (SIGTERM)
        assert stranger.poll() is None
        assert not image.exists() and not link.is_symlink() and not (tmp_path / "bed.json").exists()
    finally:
        for p in (ours, stranger):
            p.kill()
            p.wait()


def test_a_zombie_is_not_alive() -> None:
    p = sleeper()
    started = multihost._start_time(p.pid)
    assert started is not None
    p.kill()
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: a zombie
    try:
        assert multihost._start_time(p.pid) is None
        assert not multihost.Proc("x", p.pid, started).alive()
    finally:
        p.wait()


def test_flock_waiters_sees_a_process_blocked_on_our_lock(tmp_path: Path) -> None:
    path = tmp_path / "V_vg"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    inode = os.fstat(fd).st_ino
    assert flock_waiters(inode) == 0
    waiter = subprocess.Popen(["flock", str(path), "true"])
    try:
        multihost.wait_for(lambda: flock_waiters(inode) == 1, 30, "flock(1) to block")
    finally:
        os.close(fd)
    assert waiter.wait(30) == 0
    assert flock_waiters(inode) == 0


def test_run_mask_replaces_longer_device_names_first() -> None:
    run = Run("pylvmetad", {"vgs1": "pys1"}, ["/dev/loop1", "/dev/loop10"])
    mask = run.mask()
    assert next(iter(mask)) == "/dev/loop10"
    text = "/dev/loop10 /dev/loop1 pys1"
    for old, new in mask.items():
        text = text.replace(old, new)
    assert text == "<pv2> <pv1> <vgs1>"


def test_lock_figures_pair_lease_operations_and_requests() -> None:
    log = "\n".join(
        [
            '100.000 100 recv lvs[1] cl 3 lock vg "vg" mode sh flags 0',
            "100.001 100 S lvm_vg R VGLK lock_san sh at /dev/mapper/vg-lvmlock:69206016",
            "100.007 100 S lvm_vg R VGLK res_lock rv 0 read vb 101 0 4",
            "100.008 100 send lvs[1] cl 3 lock vg rv 0",
            "101.000 101 S lvm_vg R abc lock_san ex at /dev/mapper/vg-lvmlock:70254592",
            "101.002 101 S lvm_vg R abc res_lock rv -11",
            "not a stamped line",
        ]
    )
    figures = lock_figures([log])
    assert [round(x, 3) for x in figures["lease VGLK sh granted"]] == [6.0]
    assert [round(x, 3) for x in figures["lease LV ex refused"]] == [2.0]
    assert [round(x, 3) for x in figures["request lock vg"]] == [8.0]
