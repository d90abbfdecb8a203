"""Benchmark ``pylvmetad-scan --watch-disks``: CPU per poll per PV, and detection latency.

Usage: python3 -m bench.watch [--pvs 10,100,1000] [--loops 10,50] [--polls 20]
                              [--changes 15] [--intervals 0.1,1] [--daemons pylvmetad,lvmetad]

Needs root, loop devices and an ``lvm`` (LVM 2.02's from /opt/lvm2-2.02 when it is
there, else the system's).  What it does:

1. *Steady state.*  Ten PVs (one VG, one LV each) are written by LVM on loop devices;
   their first MiB is copied into as many image files as ``--pvs`` asks, and a
   :class:`~pylvmetad.scanner.watcher.DiskWatcher` polls them (``--polls`` times after
   its baseline) in this process; the same on ``--loops`` loop devices (the real case:
   O_DIRECT on a block device).  Printed per row: reads per poll, wall and CPU time per
   poll, CPU per PV per poll, how many PVs one watcher (one thread) can poll every
   100 ms and every 1 s (``interval / max(CPU, wall) per PV``: the poll must fit in
   the interval), and how many within 10 % of one core (``0.1 * interval / CPU per PV``).  Nothing changes
   on disk, so nothing is sent to any daemon (the steady state sends nothing).
2. *Detection latency.*  The real command ``pylvmetad-scan --watch-disks --interval I``
   watches two loop devices of a VG that LVM made through the daemon; ``--changes``
   times, LVM with ``use_lvmetad=0`` runs ``lvcreate``/``lvremove`` behind the cache's
   back, and the time from that command's exit to the watcher's ``sent`` line is
   recorded (negative: seen before the command had exited — the commit is written
   before the command's last steps).  Printed: min / median / p90 / max per interval
   and daemon, and the watcher's CPU time per poll while nothing changes (``--idle``
   seconds; /proc/PID/schedstat).
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.scan import start_daemon
from pylvmetad.metad.client import Client
from pylvmetad.scanner.lvmconf import read_lvm_config
from pylvmetad.scanner.scan import Device, DeviceFilter, Scanner, resolve_device
from pylvmetad.scanner.watcher import DiskWatcher

LVM202 = Path(os.environ.get("PYLVMETAD_LVM202_PREFIX", "/opt/lvm2-2.02"))
HEAD = 1 << 20
IMAGE_SIZE = 32 << 20


def sh(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout.strip()


class Loops:
    """Loop devices over sparse files in ``root``; detached and deleted by :meth:`close`."""

    def __init__(self, root: Path, count: int, name: str) -> None:
        self.devices: list[str] = []
        self.images: list[Path] = []
        try:
            for i in range(count):
                image = root / f"{name}{i:03d}.img"
                with open(image, "wb") as f:
                    f.truncate(IMAGE_SIZE)
                self.images.append(image)
                self.devices.append(sh(["losetup", "--find", "--show", str(image)]))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for dev in reversed(self.devices):
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)
        for image in self.images:
            image.unlink(missing_ok=True)
        self.devices.clear()


class Lvm:
    """``lvm`` confined to some devices by its own lvm.conf; use_lvmetad on or off."""

    def __init__(self, root: Path, devices: list[str], socket_path: str, *, use_lvmetad: bool) -> None:
        self.etc = root / ("etc" if use_lvmetad else "etc-outside")
        self.etc.mkdir(parents=True, exist_ok=True)
        (root / "lock").mkdir(exist_ok=True)
        flist = ", ".join([f'"a|^{d}$|"' for d in devices] + ['"r|.*|"'])
        lvm202 = (LVM202 / "sbin" / "lvm").exists()
        (self.etc / "lvm.conf").write_text(
            f'devices {{\n scan = [ "/dev" ]\n filter = [ {flist} ]\n global_filter = [ {flist} ]\n'
            " obtain_device_list_from_udev = 0\n write_cache_state = 0\n}\n"
            "activation {\n udev_sync = 0\n udev_rules = 0\n monitoring = 0\n}\n"
            f'global {{\n activation = 0\n locking_dir = "{root / "lock"}"\n'
            + (f" use_lvmetad = {int(use_lvmetad)}\n" if lvm202 else " event_activation = 0\n")
            + "}\nbackup {\n backup = 0\n archive = 0\n}\n"
        )
        self.argv0 = str(LVM202 / "sbin" / "lvm") if lvm202 else "lvm"
        self.env = dict(
            os.environ,
            LVM_SYSTEM_DIR=str(self.etc),
            LVM_SUPPRESS_FD_WARNINGS="1",
            LVM_LVMETAD_SOCKET=socket_path,
            LD_LIBRARY_PATH=str(LVM202 / "lib"),
        )

    def __call__(self, *args: str) -> str:
        return sh([self.argv0, *args], self.env)


# -- 1. steady state ---------------------------------------------------------------------


def steady_row(label: str, devices: list[Device], sock: str, polls: int) -> str:
    with Client(sock) as client:
        watcher = DiskWatcher(Scanner(client, lambda: devices, DeviceFilter()), lambda: devices, complete=False)
        watcher.enumerate()
        base = watcher.poll()
        assert sum(1 for s in watcher.core.devices.values() if s.label is not None) == len(devices), base
        reads = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(polls):
            report = watcher.poll()
            assert not report.changed and not watcher.core.pending()
            reads += report.reads
        wall, cpu = (time.perf_counter() - wall0) / polls, (time.process_time() - cpu0) / polls
        direct = all(r.direct for r in watcher.readers.values())
        watcher.close()
    per_pv = cpu / len(devices)
    slowest = max(per_pv, wall / len(devices))  # one poll must also end within the interval
    return (
        f"{label:<14} {len(devices):>5} {reads / polls / len(devices):>6.2f} {'yes' if direct else 'no':>7}"
        f" {wall * 1e3:>9.2f} {cpu * 1e3:>9.2f} {per_pv * 1e6:>9.1f}"
        f" {int(0.1 / slowest):>9} {int(1.0 / slowest):>9} {int(0.01 / per_pv):>9} {int(0.1 / per_pv):>9}"
    )


def steady(root: Path, sizes: list[int], loop_counts: list[int], polls: int, sock: str) -> None:
    maker = Loops(root, 10, "made")
    try:
        lvm = Lvm(root, maker.devices, sock, use_lvmetad=False)
        lvm("pvcreate", "-q", *maker.devices)
        lvm("vgcreate", "-q", "benchvg", *maker.devices)
        for i in range(10):
            lvm("lvcreate", "-q", "-an", "-Zn", "-l", "1", "-n", f"lv{i}", "benchvg")
        heads = []
        for dev in maker.devices:
            with open(dev, "rb") as f:
                heads.append(f.read(HEAD))
    finally:
        maker.close()
    print(
        f"{'devices':<14} {'PVs':>5} {'reads':>6} {'O_DIRECT':>7} {'wall/poll':>9} {'CPU/poll':>9} {'CPU/PV':>9}"
        f" {'@100ms':>9} {'@1s':>9} {'10%@100ms':>9} {'10%@1s':>9}"
    )
    print(
        f"{'':<14} {'':>5} {'/PV':>6} {'':>7} {'ms':>9} {'ms':>9} {'us':>9} {'PVs':>9} {'PVs':>9} {'PVs':>9} {'PVs':>9}"
    )
    files = root / "files"
    files.mkdir()
    images = []
    for i in range(max(sizes)):
        image = files / f"pv{i:04d}.img"
        with open(image, "wb") as f:
            f.write(heads[i % len(heads)])
            f.truncate(4 * HEAD)
        images.append(image)
    for n in sizes:
        print(steady_row("image files", [resolve_device(str(p)) for p in images[:n]], sock, polls))
    shutil.rmtree(files)
    for n in loop_counts:
        loops = Loops(root, n, "loop")
        try:
            for i, dev in enumerate(loops.devices):
                fd = os.open(dev, os.O_WRONLY)
                try:
                    os.pwrite(fd, heads[i % len(heads)], 0)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            print(steady_row("loop devices", [resolve_device(d) for d in loops.devices], sock, polls))
        finally:
            loops.close()


# -- 2. detection latency ----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """The process's time on a CPU so far (schedstat: nanoseconds, not clock ticks)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def latency(root: Path, kind: str, interval: float, changes: int, idle: float) -> str:
    run_dir = root / f"run-{kind}-{interval:g}"
    run_dir.mkdir()
    sock = str(run_dir / "lvmetad.socket")
    if kind == "lvmetad":
        daemon = subprocess.Popen(
            [str(LVM202 / "sbin" / "lvmetad"), "-f", "-s", sock, "-p", str(run_dir / "pid")],
            env=dict(os.environ, LD_LIBRARY_PATH=str(LVM202 / "lib")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        daemon, sock = start_daemon(run_dir)
    loops = Loops(run_dir, 2, "lat")
    watcher: subprocess.Popen[str] | None = None
    try:
        inside = Lvm(run_dir, loops.devices, sock, use_lvmetad=True)
        outside = Lvm(run_dir, loops.devices, sock, use_lvmetad=False)
        inside("pvcreate", "-q", *loops.devices)
        inside("vgcreate", "-q", "latvg", *loops.devices)
        assert read_lvm_config(inside.etc).global_filter
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pylvmetad.scanner.scan",
                "--watch-disks",
                "--interval",
                str(interval),
                "--socket",
                sock,
                *loops.devices,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, LVM_SYSTEM_DIR=str(inside.etc)),
        )
        lines: queue.Queue[tuple[float, str]] = queue.Queue()

        def pump() -> None:
            assert watcher is not None and watcher.stdout is not None
            for line in watcher.stdout:
                lines.put((time.monotonic(), line))

        threading.Thread(target=pump, daemon=True).start()
        while "watching" not in lines.get(timeout=30)[1]:
            pass
        cpu0, t0 = cpu_seconds(watcher.pid), time.monotonic()
        time.sleep(idle)  # nothing changes: the steady state's cost
        idle_cpu, idle_polls = cpu_seconds(watcher.pid) - cpu0, (time.monotonic() - t0) / interval
        delays = []
        for i in range(changes):
            # a change lands at a random phase of the poll cycle, as it would in life
            time.sleep(random.uniform(0, interval))
            outside(
                *(
                    ["lvcreate", "-q", "-an", "-Zn", "-l", "1", "-n", "lv", "latvg"]
                    if i % 2 == 0
                    else ["lvremove", "-q", "-f", "latvg/lv"]
                )
            )
            done = time.monotonic()
            while True:
                at, line = lines.get(timeout=30)
                if " sent " in line:
                    delays.append(at - done)
                    break
    finally:
        if watcher is not None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(20)
        loops.close()
        daemon.terminate()
        daemon.wait(10)
    delays.sort()
    ms = [d * 1e3 for d in delays]
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return (
        f"{kind:<10} {interval:>8g} {len(ms):>7} {ms[0]:>8.1f} {statistics.median(ms):>8.1f} {p90:>8.1f} {ms[-1]:>8.1f}"
        f" {idle_cpu / idle_polls * 1e3:>16.3f} {idle_cpu / idle * 100:>6.2f}%"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pvs", default="10,100,1000")
    ap.add_argument("--loops", default="10,50")
    ap.add_argument("--polls", type=int, default=20)
    ap.add_argument("--changes", type=int, default=15)
    ap.add_argument("--intervals", default="0.1,1")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of the steady state whose CPU is measured")
    ap.add_argument("--daemons", default="pylvmetad,lvmetad")
    args = ap.parse_args()
    kinds = [k for k in args.daemons.split(",") if k and (k != "lvmetad" or (LVM202 / "sbin" / "lvmetad").exists())]
    with tempfile.TemporaryDirectory(prefix="pylvmetad-bench-watch-") as tmp:
        root = Path(tmp)
        proc, sock = start_daemon(root)
        try:
            print("## steady state: one poll of every PV, nothing changed (in-process DiskWatcher)")
            steady(
                root,
                [int(n) for n in args.pvs.split(",") if n],
                [int(n) for n in args.loops.split(",") if n],
                args.polls,
                sock,
            )
        finally:
            proc.terminate()
            proc.wait(10)
        print()
        print("## detection latency: end of an LVM command (use_lvmetad=0) -> the watcher's request, 2 PVs")
        print(
            f"{'daemon':<10} {'interval':>8} {'changes':>7} {'min ms':>8} {'median':>8} {'p90':>8} {'max':>8} {'idle CPU ms/poll':>16} {'CPU':>7}"
        )
        for kind in kinds:
            for interval in [float(i) for i in args.intervals.split(",") if i]:
                print(latency(root, kind, interval, args.changes, args.idle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
