"""pylvmlockd's metrics: the core's figures on simulated hosts, and a scrape of a running daemon.

The first tests drive the core (``Lockd`` on the in-memory lock manager, two or
three hosts sharing one disk) with a hand-stepped clock and check that each
figure moves exactly when its event happens: requests by op/rt/mode/result, the
wait of a request queued behind a local holder, hold times, the locks held now,
EAGAIN retries and the final refusal, invalidations sent, lockspaces started
and stopped, lock-manager errors.  The last test starts ``pylvmlockd -T
--metrics-listen 127.0.0.1:0`` and reads its ``/metrics`` over HTTP.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pylvmetad import __version__
from pylvmetad.lockd import protocol as P
from pylvmetad.lockd.cli import LVM_VERSION
from pylvmetad.lockd.figures import LockdFigures, result_name
from pylvmetad.lockd.memory import SharedDisk
from pylvmetad.lockd.metrics import Metrics, prometheus_families
from pylvmetad.shell.metrics import metrics_registry
from support.lockd_sim import SimHost, create_vg, lock

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def samples_of(metrics: Metrics) -> Samples:
    text = generate_latest(metrics_registry(lambda: prometheus_families(metrics.snapshot()))).decode()
    return parse_samples(text)


def parse_samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_result_names_come_from_the_protocol() -> None:
    assert result_name(0) == "ok" and result_name(P.LM_SANLOCK) == "ok"
    assert result_name(P.EAGAIN) == "eagain" and result_name(P.ENOLS) == "enols"
    assert result_name(-9999) == "other"  # a code nobody named: bounded labels


def test_a_queued_lock_counts_a_local_wait_its_wait_time_and_the_holders_hold_time() -> None:
    async def main() -> None:
        clock = Clock()
        figures = LockdFigures(clock)
        h = SimHost(SharedDisk(), 1, gl_type=P.LM_SANLOCK, figures=figures)
        await create_vg(h, "vgs1")
        metrics = Metrics(h.lockd)
        assert figures.lockspaces_started == 1
        a, b = h.client(), h.client()
        assert await h.result(a, "lock_vg", **lock("vgs1", "ex")) == 0
        assert metrics.snapshot().held[("vg", "ex")] == 1
        waiting = h.send(b, "lock_vg", **lock("vgs1", "sh"))
        await h.lockd.quiesce()
        assert not waiting.done() and figures.local_waits == 1
        clock.t += 0.3  # b waits 0.3 s behind a's ex
        assert await h.result(a, "lock_vg", **lock("vgs1", "un")) == 0
        await h.lockd.quiesce()
        assert "op_result = 0" in waiting.result()
        snap = metrics.snapshot()
        assert snap.held.get(("vg", "ex"), 0) == 0 and snap.held[("vg", "sh")] == 1
        buckets, total = snap.waits[("vg", "sh")]
        assert sum(buckets) == 1 and total == pytest.approx(0.3)
        hold_buckets, hold_total = snap.holds[("vg", "ex")]
        assert sum(hold_buckets) == 1 and hold_total == pytest.approx(0.3)
        s = samples_of(metrics)
        assert s[("pylvmlockd_lock_wait_seconds_bucket", (("le", "0.2"), ("mode", "sh"), ("rt", "vg")))] == 0
        assert s[("pylvmlockd_lock_wait_seconds_bucket", (("le", "0.5"), ("mode", "sh"), ("rt", "vg")))] == 1
        assert s[("pylvmlockd_lock_hold_seconds_count", (("mode", "ex"), ("rt", "vg")))] == 1
        assert s[("pylvmlockd_locks_held", (("mode", "sh"), ("rt", "vg")))] == 1
        assert s[("pylvmlockd_locks_held", (("mode", "ex"), ("rt", "vg")))] == 0
        assert s[("pylvmlockd_lock_local_waits_total", ())] == 1
        key = (("mode", "ex"), ("op", "lock"), ("result", "ok"), ("rt", "vg"))
        assert s[("pylvmlockd_requests_total", key)] == 1
        assert s[("pylvmlockd_requests_total", (("mode", "un"), ("op", "lock"), ("result", "ok"), ("rt", "vg")))] == 1
        h.gone(b)  # b's sh goes with its connection: its hold ends
        await h.lockd.quiesce()
        assert sum(metrics.snapshot().holds[("vg", "sh")][0]) == 1
        assert metrics.snapshot().held.get(("vg", "sh"), 0) == 0
        await h.lockd.close()

    run(main())


def test_eagain_retries_the_refusal_invalidations_and_lockspace_stops_are_counted() -> None:
    async def main() -> None:
        disk = SharedDisk()
        f1, f2 = LockdFigures(Clock()), LockdFigures(Clock())
        h1 = SimHost(disk, 1, gl_type=P.LM_SANLOCK, figures=f1)
        h2 = SimHost(disk, 2, gl_type=P.LM_SANLOCK, figures=f2)
        await create_vg(h1, "vgs1")
        await h2.start_vg("vgs1")
        assert (f1.lockspaces_started, f2.lockspaces_started) == (1, 1)
        c1 = h1.client()
        assert await h1.result(c1, "lock_vg", **lock("vgs1", "ex")) == 0
        assert await h1.result(c1, "vg_update", pid=1, vg_name="vgs1", version=4) == 0
        # host2 wants ex while host1 holds it: EAGAIN, retried max_retries + 1 times, then refused
        c2 = h2.client()
        assert await h2.result(c2, "lock_vg", **lock("vgs1", "ex", max_retries=2)) == P.EAGAIN
        assert f2.retries == 3 and f2.refused_by_other_host == 1
        assert f2.lm_errors == {("acquire", "eagain"): 4}
        assert f2.requests[("lock", "vg", "ex", "eagain")] == 1
        assert await h1.result(c1, "lock_vg", **lock("vgs1", "un")) == 0
        # host2's next reader sees host1's version 4 and tells its lvmetad
        sent_before = f2.invalidations["set_vg_info"]
        assert await h2.result(c2, "lock_vg", **lock("vgs1", "sh")) == 0
        assert h2.metad.vg_invalid["vgs1"] == 4
        assert f2.invalidations["set_vg_info"] == sent_before + 1
        assert f2.invalidation_failures["set_vg_info"] == 0
        assert await h2.result(c2, "lock_vg", **lock("vgs1", "un")) == 0
        assert await h2.result(c2, "stop_vg", pid=1, vg_name="vgs1", opts="none") == 0
        await h2.lockd.quiesce()
        assert f2.lockspaces_stopped == {"stop": 1, "free": 0, "drop": 0}
        s = samples_of(Metrics(h2.lockd))
        assert s[("pylvmlockd_lock_retries_total", ())] == 3
        assert s[("pylvmlockd_lock_refused_by_other_host_total", ())] == 1
        assert s[("pylvmlockd_lock_manager_errors_total", (("call", "acquire"), ("result", "eagain")))] == 4
        assert s[("pylvmlockd_lvmetad_invalidations_total", (("request", "set_vg_info"),))] == sent_before + 1
        assert s[("pylvmlockd_lockspaces_stopped_total", (("how", "stop"),))] == 1
        assert s[("pylvmlockd_lockspaces_started_total", ())] == 1
        await h1.lockd.close()
        await h2.lockd.close()

    run(main())


class BrokenMetad:
    """An lvmetad that cannot be reached: every invalidation fails."""

    async def set_vg_info(self, uuid: str, name: str, version: int) -> None:
        raise ConnectionRefusedError("no lvmetad")

    async def set_global_invalid(self) -> None:
        raise ConnectionRefusedError("no lvmetad")


def test_failed_invalidations_and_lock_manager_errors_are_counted() -> None:
    async def main() -> None:
        disk = SharedDisk()
        h = SimHost(disk, 1, gl_type=P.LM_SANLOCK, figures=LockdFigures(Clock()))
        h.lockd.metad = BrokenMetad()
        await create_vg(h, "vgs1")
        f = h.lockd.figures
        assert f.invalidations == {"set_vg_info": 0, "set_global_info": 0}
        # the first GL and VG readers find all-zero LVBs: both invalidations fail, the locks do not
        c = h.client()
        assert await h.result(c, "lock_gl", cmd="pvs", pid=2, mode="sh", opts="none", vg_lock_type="none") == 0
        assert await h.result(c, "lock_vg", **lock("vgs1", "sh")) == 0
        assert f.invalidations == {"set_vg_info": 1, "set_global_info": 1}
        assert f.invalidation_failures == {"set_vg_info": 1, "set_global_info": 1}
        # a lockspace whose lease area does not exist: prepare fails in the lock manager
        start = dict(vg_name="nolease", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", vg_uuid="U-2")
        assert await h.result(c, "start_vg", pid=1, version=1, host_id=1, opts="none", **start) == P.EARGS
        assert f.lm_errors[("prepare", "eargs")] == 1
        assert f.requests[("start", "vg", "none", "eargs")] == 1
        assert f.lockspaces_started == 1  # only vgs1
        await h.lockd.close()

    run(main())


# ---------------------------------------------------------------------------
# a running pylvmlockd, scraped over HTTP
# ---------------------------------------------------------------------------
def call(sock_path: Path, *bodies: str) -> list[str]:
    replies = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(str(sock_path))
        for body in bodies:
            s.sendall(body.encode() + b"\n##\n")
            buf = b""
            while not buf.endswith(b"\n##\n"):
                chunk = s.recv(65536)
                assert chunk, "connection closed"
                buf += chunk
            replies.append(buf.decode())
    return replies


def req(name: str, **fields: str | int) -> str:
    lines = [f'request="{name}"'] + [f'{k} ="{v}"' if isinstance(v, str) else f"{k} ={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


class Running:
    """``pylvmlockd -D`` with its stderr read by a thread; :attr:`port` once the endpoint listens."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.port: int | None = None
        self.listening = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
            if m:
                self.port = int(m.group(1))
                self.listening.set()
        self.listening.set()  # exited: the wait ends, the port stays None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(20)
        return self.proc.returncode


def test_a_running_pylvmlockd_serves_its_metrics(tmp_path: Path) -> None:
    sock = tmp_path / "lockd.sock"
    d = Running(
        [sys.executable, "-m", "pylvmetad.lockd.cli", "-D", "-T", "-g", "sanlock", "-s", str(sock),
         "-p", str(tmp_path / "lockd.pid"), "--lvmetad-socket", str(tmp_path / "none.sock"),
         "--metrics-listen", "127.0.0.1:0"]
    )  # fmt: skip
    try:
        assert d.listening.wait(60) and d.port is not None, "".join(d.lines)
        port = d.port
        start: dict[str, str | int] = dict(
            vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", vg_uuid="U-1", host_id=1
        )
        vg: dict[str, str | int] = dict(
            cmd="t", pid=1, opts="none", vg_name="vgs1", vg_lock_type="none", vg_lock_args="none"
        )
        call(
            sock,
            req("init_vg", pid=1, vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="lvmlock"),
            req("start_vg", pid=1, opts="start_init", version=1, **start),
            req("start_wait", pid=1),
        )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as holder:
            holder.settimeout(20)
            holder.connect(str(sock))
            holder.sendall(req("lock_vg", mode="ex", **vg).encode() + b"\n##\n")
            assert b"op_result = 0" in holder.recv(65536)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as resp:
                s = parse_samples(resp.read().decode())
        lock_ex = (("mode", "ex"), ("op", "lock"), ("result", "ok"), ("rt", "vg"))
        assert s[("pylvmlockd_requests_total", lock_ex)] == 1
        assert (
            s[("pylvmlockd_requests_total", (("mode", "none"), ("op", "start"), ("result", "ok"), ("rt", "vg")))] == 1
        )
        assert s[("pylvmlockd_locks_held", (("mode", "ex"), ("rt", "vg")))] == 1
        assert s[("pylvmlockd_lockspaces_started_total", ())] == 1
        assert s[("pylvmlockd_lockspaces", (("state", "started"),))] == 1
        # the VG's first reader saw an all-zero LVB and told lvmetad (which is not running: a failure)
        assert s[("pylvmlockd_lvmetad_invalidations_total", (("request", "set_vg_info"),))] == 1
        assert s[("pylvmlockd_lvmetad_invalidation_failures_total", (("request", "set_vg_info"),))] == 1
        assert s[("pylvmlockd_lock_wait_seconds_count", (("mode", "ex"), ("rt", "vg")))] == 1
        assert s[("pylvmlockd_connections_total", ())] >= 2
        assert s[("process_open_fds", ())] > 0
        assert ("pylvmlockd_info", (("lvm_version", LVM_VERSION), ("version", __version__))) in s
    finally:
        assert d.stop() == 0, "".join(d.lines)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)  # gone with the daemon


def test_metrics_listen_on_a_bad_address_fails_startup(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pylvmetad.lockd.cli", "-f", "-T", "-s", str(tmp_path / "s"), "-p",
         str(tmp_path / "pid"), "--metrics-listen", "no-port-here"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot serve metrics on no-port-here" in result.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "pid").exists()
