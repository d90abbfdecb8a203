"""Time from exec to a listening socket: the C daemons and ours, same run.

``python -m bench.startup [--runs N] [--no-stale]`` (from a checkout).  Each run
starts one daemon in the foreground in a fresh temporary directory, with a
*stale* socket file already at its path (bound, then closed: what a SIGKILLed
daemon leaves, the case of ``../shared/multihost/scenario.sh``'s host-3
restart), and polls ``connect()`` on the path from just before the fork until
a connect succeeds; that interval is the figure.  The daemon is then stopped
with SIGTERM and waited for.  Rows:

* the C lvmetad and lvmlockd of LVM 2.02 (``$LVM202``, default /opt/lvm2-2.02);
* ``python: bind+listen only``: an interpreter that binds and listens and does
  nothing else, the floor of any Python daemon on this machine (started the
  same way as ours: the interpreter with its ``site``);
* ``python -S: bind+listen only``: the same without ``site`` (no ``.pth``
  files run): the interpreter's own start;
* pylvmetad and pylvmlockd as ``python -m ...cli`` (how the tests and the
  multihost beds start them), and as ``python -S -m`` with ``PYTHONPATH``:
  what the daemon's own code costs above the interpreter.

``--baseline-src DIR`` adds both daemons run from another source tree (e.g. a
``git archive`` of an older commit's ``src``), in the same interleaved runs:
before and after a change under the same load.

pylvmlockd runs with ``SANLOCK_RUN_DIR`` at an empty directory (no sanlock:
its probe fails at once) and ``--lvmetad-socket`` at a path nobody serves.
Median, min and max of N runs, in ms, and the median's ratio to the C daemon.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LVM202 = Path(os.environ.get("LVM202", "/opt/lvm2-2.02"))
SRC = str(Path(__file__).resolve().parent.parent / "src")
LISTEN_ONLY = (
    "import socket, sys, time\n"
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
    "import os; os.unlink(sys.argv[1]); s.bind(sys.argv[1]); s.listen(64)\n"
    "time.sleep(60)\n"
)

#: row name -> (argv builder from (socket, pidfile, dir), C reference row or None)
Command = Callable[[str, str, str], list[str]]


def commands(baseline_src: str | None = None) -> dict[str, tuple[Command, str | None]]:
    py = sys.executable
    rows: dict[str, tuple[Command, str | None]] = {}
    if (LVM202 / "sbin/lvmetad").exists():
        rows["lvmetad (C)"] = (lambda s, p, d: [str(LVM202 / "sbin/lvmetad"), "-f", "-s", s, "-p", p], None)
    if (LVM202 / "sbin/lvmlockd").exists():
        rows["lvmlockd (C)"] = (lambda s, p, d: [str(LVM202 / "sbin/lvmlockd"), "-f", "-s", s, "-p", p], None)
    rows["python: bind+listen only"] = (lambda s, p, d: [py, "-c", LISTEN_ONLY, s], None)
    rows["python -S: bind+listen only"] = (lambda s, p, d: [py, "-S", "-c", LISTEN_ONLY, s], None)
    metad = ["-m", "pylvmetad.metad.cli", "-f"]
    lockd = ["-m", "pylvmetad.lockd.cli", "-f", "-g", "sanlock"]
    rows["pylvmetad"] = (lambda s, p, d: [py, *metad, "-s", s, "-p", p], "lvmetad (C)")
    rows["pylvmetad, python -S"] = (lambda s, p, d: [py, "-S", *metad, "-s", s, "-p", p], "lvmetad (C)")

    def pylvmlockd(*flags: str) -> Command:
        return lambda s, p, d: [py, *flags, *lockd, "-s", s, "-p", p, "--lvmetad-socket", os.path.join(d, "none")]

    rows["pylvmlockd"] = (pylvmlockd(), "lvmlockd (C)")
    rows["pylvmlockd, python -S"] = (pylvmlockd("-S"), "lvmlockd (C)")
    if baseline_src is not None:
        env = ["env", f"PYTHONPATH={baseline_src}"]
        rows["pylvmetad (baseline src)"] = (lambda s, p, d: [*env, py, *metad, "-s", s, "-p", p], "lvmetad (C)")
        lockd_argv = pylvmlockd()
        rows["pylvmlockd (baseline src)"] = (lambda s, p, d: [*env, *lockd_argv(s, p, d)], "lvmlockd (C)")
    return rows


def stale_socket(path: str) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)  # mode 0600, as the daemons make theirs (the C ones refuse others)
    try:
        s.bind(path)
    finally:
        os.umask(old)
    s.listen(1)
    s.close()  # the file stays; nobody listens


def one_run(argv: Command, stale: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as d:
        sock, pidfile = os.path.join(d, "daemon.socket"), os.path.join(d, "daemon.pid")
        os.mkdir(os.path.join(d, "sanlock"))
        if stale:
            stale_socket(sock)
        else:  # the bind+listen-only rows unlink the path first
            open(sock, "w").close()
        env = dict(
            os.environ,
            PYTHONPATH=SRC,
            LD_LIBRARY_PATH=str(LVM202 / "lib"),
            SANLOCK_RUN_DIR=os.path.join(d, "sanlock"),
            LC_ALL="C",
        )
        cmd = argv(sock, pidfile, d)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    try:
                        c.connect(sock)
                        break
                    except OSError:
                        pass
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before listening")
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"{cmd} did not listen within 30 s")
            elapsed = time.perf_counter() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.startup")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--no-stale", action="store_true", help="no stale socket file at the path")
    ap.add_argument("--baseline-src", default=None, help="also run both daemons from this source tree")
    args = ap.parse_args()
    rows = commands(args.baseline_src)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.runs):  # interleaved: every row sees the same load
        for name, (argv, _ref) in rows.items():
            times[name].append(one_run(argv, not args.no_stale))
    print("| daemon | median ms | min ms | max ms | ratio to C |")
    print("|---|---:|---:|---:|---:|")
    for name, (_, ref) in rows.items():
        med = statistics.median(times[name])
        ratio = f"{med / statistics.median(times[ref]):.2f}" if ref in times else ""
        print(
            f"| {name} | {med * 1000:.1f} | {min(times[name]) * 1000:.1f} | {max(times[name]) * 1000:.1f} | {ratio} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
