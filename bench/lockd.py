"""Lock latency and throughput: the C lvmlockd and pylvmlockd on one real sanlock, same run.

``python -m bench.lockd [--seconds S] [--rounds N]`` (root): one loop device
holding a VG's lease area (linked as ``/dev/mapper/<vg>-lvmlock``, the lease
path both daemons use here), one private sanlock daemon (io_timeout 1,
started by the tests' ``support.sanlockd``), and in turn each lock daemon: ``init_vg``, ``start_vg``, ``start_wait`` over the
wire, then each workload for S seconds on one connection, as an lvm command
would send it:

* ``lock_vg sh`` + ``lock_vg un`` (what every report command does per VG);
* ``lock_vg ex`` + ``vg_update`` + ``lock_vg un`` (a VG change: the LVB is written);
* ``lock_gl sh`` + ``lock_gl un``;
* ``lock_vg sh`` + ``un`` on 4 connections at once (local sharing: one LM lock).

Rounds alternate the daemons; the table gives the median of the rounds'
ops/s (one op = the whole sequence), the p50 per op, and ours / C.  The C
lvmlockd runs in a private mount namespace whose compiled-in run dir is an
empty directory, so it invalidates nobody's lvmetad; pylvmlockd is pointed
at a socket that does not exist.  Everything it starts is stopped and
removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.daemon import wait_for_socket
from support.sanlockd import Sanlock

LVM202 = Path(os.environ.get("LVM202", "/opt/lvm2-2.02"))
MiB = 1 << 20


class Conn:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))

    def call(self, body: str) -> str:
        self.sock.sendall(body.encode() + b"\n##\n")
        buf = b""
        while not buf.endswith(b"\n##\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            buf += chunk
        return buf.decode()

    def result(self, body: str) -> int:
        reply = self.call(body)
        for line in reply.splitlines():
            if line.startswith(("op_result = ", "result = ")):
                return int(line.split(" = ")[1])
        raise ValueError(reply)

    def close(self) -> None:
        self.sock.close()


def req(name: str, **fields: str | int) -> str:
    return (
        "\n".join(
            [f'request="{name}"'] + [f'{k} ="{v}"' if isinstance(v, str) else f"{k} ={v}" for k, v in fields.items()]
        )
        + "\n"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def testbed(root: Path, vg: str) -> Iterator[dict[str, str]]:
    image = root / "pv.img"
    with open(image, "wb") as f:
        f.truncate(300 * MiB)
    loop = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    link = Path(f"/dev/mapper/{vg}-lvmlock")
    try:
        Path("/dev/mapper").mkdir(exist_ok=True)
        link.symlink_to(loop)
        with Sanlock(root / "sanlock", "bench1") as sanlock:
            yield sanlock.env
    finally:
        link.unlink(missing_ok=True)
        subprocess.run(["losetup", "-d", loop], check=False)


def daemon_argv(kind: str, root: Path, sock: Path, pid: Path) -> list[str]:
    if kind == "lvmlockd":
        strings = subprocess.run(["strings", str(LVM202 / "sbin/lvmlockd")], capture_output=True, text=True).stdout
        run_dir = next(line for line in strings.splitlines() if line.endswith("/lvmetad.socket")).rsplit("/", 1)[0]
        empty = root / "empty-run"
        empty.mkdir(exist_ok=True)
        script = f'mount --bind "{empty}" "{run_dir}" && exec "{LVM202}/sbin/lvmlockd" -f -g sanlock -o 1 -s "{sock}" -p "{pid}"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]
    return [
        sys.executable,
        "-m",
        "pylvmetad.lockd.cli",
        "-f",
        "-g",
        "sanlock",
        "-o",
        "1",
        "-s",
        str(sock),
        "-p",
        str(pid),
        "--lvmetad-socket",
        str(root / "no-lvmetad.sock"),
        "--adopt-file",
        str(root / "lvmlockd.adopt"),
    ]


def measure(seconds: float, op: Callable[[], None]) -> tuple[float, float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        op()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 > end:
            break
    return len(times) / sum(times), statistics.median(times) * 1000


def run_daemon(kind: str, root: Path, env: dict[str, str], vg: str, seconds: float) -> dict[str, tuple[float, float]]:
    sock, pid = root / f"{kind}.sock", root / f"{kind}.pid"
    denv = dict(env, LD_LIBRARY_PATH=str(LVM202 / "lib"))
    with open(root / f"{kind}.log", "ab") as log:
        proc = subprocess.Popen(daemon_argv(kind, root, sock, pid), stdout=log, stderr=subprocess.STDOUT, env=denv)
    try:
        wait_for_socket(sock, proc, timeout=30)
        c = Conn(sock)
        c.call('request = "hello"\n')
        assert (
            c.result(req("init_vg", pid=1, vg_name=vg, vg_lock_type="sanlock", vg_lock_args="lvmlock", opts="none"))
            == 0
        )
        start: dict[str, str | int] = dict(
            vg_name=vg,
            vg_lock_type="sanlock",
            vg_lock_args="1.0.0:lvmlock",
            vg_uuid="BENCH",
            version=1,
            host_id=1,
            opts="none",
        )
        assert c.result(req("start_vg", pid=1, **start)) == 0
        assert c.result(req("start_wait", pid=1)) == 0
        vgf: dict[str, str | int] = dict(
            cmd="bench", pid=1, opts="none", vg_name=vg, vg_lock_type="none", vg_lock_args="none"
        )
        glf: dict[str, str | int] = dict(cmd="bench", pid=1, opts="none", vg_lock_type="none")
        sh, un, ex = (
            req("lock_vg", mode="sh", **vgf),
            req("lock_vg", mode="un", **vgf),
            req("lock_vg", mode="ex", **vgf),
        )
        upd = req("vg_update", pid=1, vg_name=vg, version=0, opts="next_version")
        glsh, glun = req("lock_gl", mode="sh", **glf), req("lock_gl", mode="un", **glf)
        out: dict[str, tuple[float, float]] = {}

        def vg_sh() -> None:
            assert c.result(sh) == 0
            c.result(un)

        def vg_ex() -> None:
            assert c.result(ex) == 0
            assert c.result(upd) == 0
            c.result(un)

        def gl_sh() -> None:
            assert c.result(glsh) == 0
            c.result(glun)

        out["lock_vg sh + un"] = measure(seconds, vg_sh)
        out["lock_vg ex + vg_update + un"] = measure(seconds, vg_ex)
        out["lock_gl sh + un"] = measure(seconds, gl_sh)
        conns = [Conn(sock) for _ in range(4)]
        for k in conns:
            k.call('request = "hello"\n')
        counts = [0] * len(conns)
        deadline = time.perf_counter() + seconds

        def worker(i: int) -> None:
            k = conns[i]
            while time.perf_counter() < deadline:
                assert k.result(sh) == 0
                k.result(un)
                counts[i] += 1

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(conns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        out["lock_vg sh + un, 4 connections"] = (
            sum(counts) / elapsed,
            elapsed / max(sum(counts), 1) * 1000 * len(conns),
        )
        for k in conns:
            k.close()
        c.result(req("stop_vg", pid=1, vg_name=vg))
        c.close()
    finally:
        stop(proc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.lockd")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("sanlock") is None or not (LVM202 / "sbin/lvmlockd").exists():
        print("needs root, sanlock and an LVM 2.02 build with lvmlockd", file=sys.stderr)
        return 1
    vg = f"benchlk{os.getpid()}"
    results: dict[str, dict[str, list[tuple[float, float]]]] = {"lvmlockd": {}, "pylvmlockd": {}}
    with tempfile.TemporaryDirectory(prefix="bench-lockd-") as tmp:
        root = Path(tmp)
        with testbed(root, vg) as env:
            for _ in range(args.rounds):
                for kind in ("lvmlockd", "pylvmlockd"):
                    for row, figures in run_daemon(kind, root, env, vg, args.seconds).items():
                        results[kind].setdefault(row, []).append(figures)
    print("| workload | lvmlockd ops/s | pylvmlockd ops/s | ratio | lvmlockd p50 ms | pylvmlockd p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results["lvmlockd"]:
        c_ops = statistics.median(x[0] for x in results["lvmlockd"][row])
        p_ops = statistics.median(x[0] for x in results["pylvmlockd"][row])
        c_p50 = statistics.median(x[1] for x in results["lvmlockd"][row])
        p_p50 = statistics.median(x[1] for x in results["pylvmlockd"][row])
        print(f"| {row} | {c_ops:,.0f} | {p_ops:,.0f} | {p_ops / c_ops:.2f} | {c_p50:.3f} | {p_p50:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
