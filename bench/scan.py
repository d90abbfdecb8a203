"""Benchmark pylvmetad-scan: scan time for 1, 10 and 50 PVs on image files.

Usage: python3 -m bench.scan [--sizes 1,10,50] [--repeat 5] [--per-vg 10]

Needs root, lvm2 and loop devices: the PVs are written by the real LVM tools
(pvcreate/vgcreate/lvcreate on loop devices, at most ``--per-vg`` attached at a
time, all detached again), then scanned as *image files* (``--full``, fake
device numbers) against a pylvmetad started for the run.  Every VG gets
``--per-vg`` PVs and one LV per PV, so the metadata text grows as in a real
system.  Printed: the median over ``--repeat`` runs of

* read:      parsing label, PV header, metadata areas and VG text of every image (no daemon);
* populate:  a full population (get_global_info, token_update, pv_clear_all,
             pv_found x N, token_update, get_global_info) including the reads;
* rescan 1:  ``pvscan --cache DEV`` of one image (token check + pv_found);
* CLI:       the whole ``pylvmetad-scan --cache --full`` process (interpreter start included).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pylvmetad.metad.client import Client
from pylvmetad.scanner.scan import DeviceFilter, Scanner, read_device, resolve_device

IMAGE_SIZE = 32 << 20


def run(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout.strip()


def make_vg(root: Path, images: list[Path]) -> None:
    """Attach the images, build one VG with one LV per PV with LVM, detach."""
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (root / "lock").mkdir(exist_ok=True)
    loops: list[str] = []
    try:
        for img in images:
            with open(img, "wb") as f:
                f.truncate(IMAGE_SIZE)
            loops.append(run(["losetup", "--find", "--show", str(img)]))
        flist = ", ".join([f'"a|^{d}$|"' for d in loops] + ['"r|.*|"'])
        (etc / "lvm.conf").write_text(
            f'devices {{ scan = [ "/dev" ] filter = [ {flist} ] global_filter = [ {flist} ] '
            'obtain_device_list_from_udev = 0 use_devicesfile = 0 hints = "none" }\n'
            f'global {{ activation = 0 event_activation = 0 locking_dir = "{root / "lock"}" }}\n'
            "backup { backup = 0 archive = 0 }\n"
        )
        env = dict(os.environ, LVM_SYSTEM_DIR=str(etc), LVM_SUPPRESS_FD_WARNINGS="1")
        vg = f"bench{uuid.uuid4().hex[:10]}"
        run(["lvm", "pvcreate", "-q", *loops], env)
        run(["lvm", "vgcreate", "-q", vg, *loops], env)
        for i in range(len(loops)):
            run(["lvm", "lvcreate", "-q", "-an", "-Zn", "-l", "1", "-n", f"lv{i}", vg], env)
    finally:
        for dev in reversed(loops):
            subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=60)


def median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def start_daemon(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(root / "lvmetad.socket")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-s", sock, "-p", str(root / "lvmetad.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock)
            return proc, sock
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise SystemExit("pylvmetad did not start")


def measure(sock: str, images: list[Path], repeat: int) -> str:
    """One table row: the four timings for scanning ``images``."""
    devices = [resolve_device(str(p)) for p in images]
    assert all(read_device(d).pv is not None for d in devices)

    def read_all() -> None:
        for d in devices:
            read_device(d)

    with Client(sock) as client:
        scanner = Scanner(client, lambda: devices, DeviceFilter())
        t_read = median_time(read_all, repeat)
        t_pop = median_time(scanner.populate, repeat)
        t_one = median_time(lambda: scanner.rescan(devices[:1]), repeat)
        pvs = client.pv_list().section("physical_volumes")
        assert pvs is not None and len(pvs) == len(images)
    cli = [sys.executable, "-m", "pylvmetad.scanner.scan", "--cache", "--full", "--socket", sock, *map(str, images)]
    t_cli = median_time(lambda: run(cli), repeat)
    return f"{len(images):>4} {t_read * 1e3:>8.1f}ms {t_pop * 1e3:>8.1f}ms {t_one * 1e3:>8.1f}ms {t_cli * 1e3:>8.1f}ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,50")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--per-vg", type=int, default=10)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pylvmetad-bench-scan-") as tmp:
        root = Path(tmp)
        images = [root / f"pv{i:03d}.img" for i in range(max(sizes))]
        t0 = time.perf_counter()
        for start in range(0, len(images), args.per_vg):
            make_vg(root, images[start : start + args.per_vg])
        print(f"built {len(images)} PVs with LVM in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        proc, sock = start_daemon(root)
        try:
            print(f"{'PVs':>4} {'read':>10} {'populate':>10} {'rescan 1':>10} {'CLI':>10}")
            for n in sizes:
                print(measure(sock, images[:n], args.repeat))
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
