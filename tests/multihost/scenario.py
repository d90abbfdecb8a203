"""The shared-storage scenario of issue 14, run on one :class:`~support.multihost.Bed`.

Theory of operation:

* :func:`run` drives real LVM 2.02 commands on the bed's hosts (real lvmlockd and sanlock
  on each, one lvmetad per host) and records every command as a :class:`Step`: the host,
  a label, the command, its exit status and output, its start and end, and — for the
  reports (``lvs``/``vgs``/``pvs``) — the on-disk truth read right after it from the PVs
  (:func:`support.multihost.on_disk`), and the host's lvmetad's view of the VG.
* The same function runs with pylvmetad and with the C lvmetad on every host (two beds,
  in parallel); the tests compare the two transcripts step by step (masked: UUIDs, the
  bed's devices and VG names), and check each transcript's own facts.
* What is not a step: the polling for the takeover of a crashed host's lock and the
  retries of ``vgremove`` while the other hosts' leases expire (obstacle 7 of NOTES.md);
  how long they took and how often they were refused depends on sanlock's clock, so only
  their final, successful command is a step, and their durations are facts.
* The concurrent ``lvcreate`` of two hosts is made deterministic: the first host's
  command is held, while it owns the VG lock, on its own local file lock (LVM takes the
  ``V_<vg>`` flock in its locking dir after lvmlockd granted the VG lock); the second
  host's command starts, and is seen retrying the VG lock in its lvmlockd log
  (``res_lock EAGAIN retry``) before the first is let go.  Both must succeed, the second
  after the first, and the second's metadata must contain the first's LV.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.multihost import Bed, Host, Timed, on_disk_lvs, on_disk_pvs, on_disk_seqnos, wait_for

#: report steps print sizes in bytes so the safety check can compare them with the disk
REPORT_LVS = ("lvs", "--units", "b", "--nosuffix", "-o", "vg_name,lv_name,lv_size")
EXTENT = 4 << 20
#: how long to wait for the takeover of a dead host's lease (io_timeout 2: about 80 s)
TAKEOVER_LIMIT = 400.0
VGREMOVE_LIMIT = 120.0


@dataclass
class Step:
    label: str
    host: int
    timed: Timed
    #: for reports: VG → {LV: bytes} on disk right after the command (shared VGs only)
    truth: dict[str, dict[str, int]] | None = None
    #: for reports: device → VG name ("" for an orphan PV) on disk right after the command
    pv_truth: dict[str, str] | None = None
    #: for reports: VG name → seqno of its newest metadata on disk right after the command
    seqnos: dict[str, int] | None = None
    #: for reports: the host's lvmetad's view, VG name → (cached seqno, vg_invalid), right after it
    cache: dict[str, tuple[int, bool]] | None = None


@dataclass
class Run:
    """What one run of the scenario recorded."""

    metad: str
    vg: dict[str, str]
    pvs: list[str]
    steps: list[Step] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)
    #: per host: the lvmlockd -> lvmetad requests (name, text) its tap saw
    invalidations: dict[int, list[tuple[float, str, str]]] = field(default_factory=dict)
    #: per host: pylvmetad's ``stats`` text at the end (pylvmetad runs only)
    stats: dict[int, str] = field(default_factory=dict)
    #: per host: the lvmetad's log, read once the daemon has stopped (all of it written)
    metad_logs: dict[int, str] = field(default_factory=dict)
    metad_log_paths: dict[int, Path] = field(default_factory=dict)
    #: per host: the lock daemon's log (lvmlockd -D, each line stamped with the time in ms)
    lockd_logs: dict[int, str] = field(default_factory=dict)

    def step(self, label: str) -> Step:
        found = [s for s in self.steps if s.label == label]
        assert len(found) == 1, (label, [s.label for s in self.steps])
        return found[0]

    def mask(self) -> dict[str, str]:
        """Literal replacements that make two beds' outputs comparable."""
        pairs = {dev: f"<pv{i + 1}>" for i, dev in enumerate(self.pvs)}
        pairs.update({name: f"<{key}>" for key, name in self.vg.items()})
        return dict(sorted(pairs.items(), key=lambda kv: -len(kv[0])))


def vg_names(tag: str) -> dict[str, str]:
    """The bed's VG names: two beds run at once and the lvmlock links are global."""
    return {"vgs1": f"{tag}s1", "vgs2": f"{tag}s2", "vgl": f"{tag}l1"}


class Scenario:
    def __init__(self, bed: Bed, tag: str) -> None:
        self.bed = bed
        self.vg = vg_names(tag)
        self.run = Run(bed.metad, self.vg, list(bed.pvs))
        self.t0 = time.time()

    # -- recording

    def cmd(self, label: str, host: int, *args: str) -> Step:
        timed = self.bed.host(host).lvm(*args)
        return self.record(label, timed)

    def record(self, label: str, timed: Timed) -> Step:
        step = Step(label, timed.host, timed)
        self.run.steps.append(step)
        return step

    def report(self, label: str, host: int, *args: str) -> Step:
        """A report command, then the on-disk truth and the host's cache right after it."""
        step = self.cmd(label, host, *args)
        shared = {self.vg["vgs1"], self.vg["vgs2"]}
        truth = on_disk_lvs(self.bed.pvs)
        step.truth = {vg: {lv: n * EXTENT for lv, n in lvs.items()} for vg, lvs in truth.items() if vg in shared}
        step.pv_truth = on_disk_pvs(self.bed.pvs)
        step.seqnos = on_disk_seqnos(self.bed.pvs)
        step.cache = cache_view(self.bed.host(host))
        return step

    def fact(self, name: str, value: float) -> None:
        self.run.facts[name] = value

    def parallel(self, *jobs: tuple[str, int, tuple[str, ...]]) -> list[Step]:
        running = [(label, self.bed.host(h).popen_lvm(*args)) for label, h, args in jobs]
        return [self.record(label, r.wait()) for label, r in running]

    # -- the scenario

    def all(self) -> Run:
        self.bootstrap()
        self.visibility()
        self.concurrent_lvcreate()
        self.second_vg_and_local_vg()
        self.crash_takeover_rejoin()
        self.stop_and_remove()
        self.collect()
        return self.run

    def bootstrap(self) -> None:
        b, s1 = self.bed, self.vg["vgs1"]
        pv1, pv2, pv3, pv4, pv5 = b.pvs
        self.cmd("pvcreate before any sanlock VG", 1, "pvcreate", pv1, pv2, pv3)
        b.emulate_lvmlock(s1, pv1)
        self.cmd("vgcreate --shared", 1, "vgcreate", "--shared", "-s", "4m", "--dataalignment", "1m", s1, pv1)
        self.fact("lvmlock_where_emulated", float(b.lvmlock_matches(s1, pv1)))
        self.cmd("pvcreate after the GL exists", 1, "pvcreate", pv2, pv3, pv4, pv5)
        self.cmd("lock-start host1", 1, "vgchange", "--lock-start", s1)
        j2, j3 = self.parallel(
            ("lock-start host2", 2, ("vgchange", "--lock-start", s1)),
            ("lock-start host3", 3, ("vgchange", "--lock-start", s1)),
        )
        self.fact("join_host2", j2.timed.duration)
        self.fact("join_host3", j3.timed.duration)

    def visibility(self) -> None:
        s1 = self.vg["vgs1"]
        pv2 = self.bed.pvs[1]
        made = self.cmd("h1 lvcreate lv1", 1, "lvcreate", "-n", "lv1", "-L", "8m", s1)
        seen = self.report("h2 lvs after lvcreate", 2, *REPORT_LVS, s1)
        self.fact("visible_after_lvcreate", seen.timed.end - made.timed.end)
        self.report("h3 lvs after lvcreate", 3, *REPORT_LVS, s1)
        self.cmd("h2 lvextend while h1 holds lv1", 2, "lvextend", "-L", "+4m", f"{s1}/lv1")
        self.cmd("h1 lvchange -an lv1", 1, "lvchange", "-an", f"{s1}/lv1")
        ext = self.cmd("h2 lvextend", 2, "lvextend", "-L", "+4m", f"{s1}/lv1")
        seen = self.report("h3 lvs after lvextend", 3, *REPORT_LVS, s1)
        self.fact("visible_after_lvextend", seen.timed.end - ext.timed.end)
        self.report("h1 lvs after lvextend", 1, *REPORT_LVS, s1)
        self.cmd("h3 lvrename lv1 lvr", 3, "lvrename", s1, "lv1", "lvr")
        self.report("h1 lvs after lvrename", 1, *REPORT_LVS, s1)
        self.report("h2 lvs after lvrename", 2, *REPORT_LVS, s1)
        vgx = self.cmd("h1 vgextend pv2", 1, "vgextend", s1, pv2)
        seen = self.report("h2 pvs after vgextend", 2, "pvs", "-o", "pv_name,vg_name")
        self.fact("visible_after_vgextend", seen.timed.end - vgx.timed.end)
        self.report("h3 vgs after vgextend", 3, "vgs", "-o", "vg_name,pv_count,lv_count,vg_size", s1)

    def concurrent_lvcreate(self) -> None:
        s1 = self.vg["vgs1"]
        h2, h3 = self.bed.host(2), self.bed.host(3)
        lock_file = h2.dir / "lock" / f"V_{s1}"
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            inode = os.fstat(fd).st_ino
            first = h2.popen_lvm("lvcreate", "-an", "-n", "lv2", "-L", "4m", s1)
            # h2's lvcreate holds the VG lock once it waits for the file lock
            wait_for(lambda: flock_waiters(inode) > 0, 120, "host2's lvcreate to wait for its V_ file lock")
            retries_before = h3.lockd_log_text().count("res_lock EAGAIN retry")
            second = h3.popen_lvm("lvcreate", "-an", "-n", "lv3", "-L", "4m", s1)
            wait_for(
                lambda: h3.lockd_log_text().count("res_lock EAGAIN retry") > retries_before,
                120,
                "host3's lvmlockd to retry the VG lock host2 holds",
            )
            self.fact("second_retried_while_first_held", 1.0)
        finally:
            os.close(fd)  # lets host2 go on
        a = self.record("h2 lvcreate lv2 (holds the VG lock)", first.wait())
        b = self.record("h3 lvcreate lv3 (waits for it)", second.wait())
        self.fact("second_ended_after_first", float(b.timed.end >= a.timed.end))
        self.report("h1 lvs after concurrent lvcreate", 1, *REPORT_LVS, s1)

    def second_vg_and_local_vg(self) -> None:
        b, s2, local = self.bed, self.vg["vgs2"], self.vg["vgl"]
        pv4, pv5 = b.pvs[3], b.pvs[4]
        b.emulate_lvmlock(s2, pv4)
        self.cmd("h2 vgcreate --shared second VG", 2, "vgcreate", "--shared", "-s", "4m", s2, pv4)
        self.fact("lvmlock2_where_emulated", float(b.lvmlock_matches(s2, pv4, host=2)))
        self.cmd("h1 lock-start second VG", 1, "vgchange", "--lock-start", s2)
        self.cmd("h1 lvcreate in second VG", 1, "lvcreate", "-an", "-n", "lvx", "-L", "4m", s2)
        self.report("h2 lvs second VG", 2, *REPORT_LVS, s2)
        self.cmd("h1 vgcreate local VG", 1, "vgcreate", local, pv5)
        self.cmd("h1 lvcreate in local VG", 1, "lvcreate", "-an", "-n", "lvl", "-L", "4m", local)
        self.report("h1 lvs local VG", 1, *REPORT_LVS, local)
        self.report("h2 vgs after local VG", 2, "vgs", "-o", "vg_name,pv_count,vg_lock_type")
        self.report("h3 pvs after local VG", 3, "pvs", "-o", "pv_name,vg_name")

    def crash_takeover_rejoin(self) -> None:
        b, s1, s2 = self.bed, self.vg["vgs1"], self.vg["vgs2"]
        pv3 = b.pvs[2]
        self.cmd("h3 lvchange -aey lv3", 3, "lvchange", "-aey", f"{s1}/lv3")
        self.cmd("h1 lvchange -aey lv3 while h3 holds it", 1, "lvchange", "-aey", f"{s1}/lv3")
        crashed = b.host(3).crash()
        after = self.report("h1 lvs after crash", 1, *REPORT_LVS, s1)
        self.fact("lvs_after_crash", after.timed.end - crashed)
        made = self.cmd("h2 lvcreate after crash", 2, "lvcreate", "-an", "-n", "lv4", "-L", "4m", s1)
        self.fact("lvcreate_after_crash", made.timed.end - crashed)
        vgx = self.cmd("h1 vgextend after crash", 1, "vgextend", s1, pv3)
        self.fact("vgextend_after_crash", vgx.timed.end - crashed)
        self.report("h2 lvs after crash", 2, *REPORT_LVS, s1)
        # while host3's lease ages: more work on the live hosts
        self.cmd("h1 lvremove lvr", 1, "lvremove", "-y", f"{s1}/lvr")
        self.report("h2 lvs after lvremove", 2, *REPORT_LVS, s1)
        self.cmd("h2 lvextend in second VG", 2, "lvextend", "-L", "+4m", f"{s2}/lvx")
        self.report("h1 lvs second VG after lvextend", 1, *REPORT_LVS, s2)
        refused = 0
        while True:
            t = b.host(1).lvm("lvchange", "-aey", f"{s1}/lv3")
            if t.rc == 0:
                self.record("h1 takes over lv3", t)
                break
            refused += 1
            if t.end - crashed > TAKEOVER_LIMIT:
                self.record("h1 takes over lv3", t)
                break
            time.sleep(1.0)  # the poll interval of the measurement (a dead lease is not signalled)
        self.fact("takeover", t.end - crashed)
        self.fact("takeover_refusals", refused)
        b.host(3).start_lock_daemons()
        rejoin = self.cmd("h3 lock-start after restart", 3, "vgchange", "--lock-start", s1)
        self.fact("rejoin", rejoin.timed.duration)
        self.report("h3 lvs after rejoin", 3, *REPORT_LVS, s1)
        self.report("h3 pvs after rejoin", 3, "pvs", "-o", "pv_name,vg_name")

    def stop_and_remove(self) -> None:
        s1, s2, local = self.vg["vgs1"], self.vg["vgs2"], self.vg["vgl"]
        # the LVs go first, so that vgremove's output does not depend on how often it is
        # refused while the other hosts' leases are released (it removes LVs before refusing)
        self.cmd("h2 lvremove lvx", 2, "lvremove", "-y", f"{s2}/lvx")
        self.cmd("h1 lock-stop second VG", 1, "vgchange", "--lock-stop", s2)
        self.until_ok("h2 vgremove second VG", 2, "vgremove", "-y", s2)
        self.cmd("h2 lvremove lv4", 2, "lvremove", "-y", f"{s1}/lv4")
        self.cmd("h1 lock-stop refused while lv3 is active", 1, "vgchange", "--lock-stop", s1)
        self.cmd("h1 vgchange -an", 1, "vgchange", "-an", s1)
        self.cmd("h1 lvremove lv2 lv3", 1, "lvremove", "-y", f"{s1}/lv2", f"{s1}/lv3")
        self.parallel(
            ("h2 lock-stop", 2, ("vgchange", "--lock-stop", s1)),
            ("h3 lock-stop", 3, ("vgchange", "--lock-stop", s1)),
        )
        # the local VG goes first: removing a VG takes the global lock, which lives in s1
        self.cmd("h1 vgremove local VG", 1, "vgremove", "-y", local)
        self.until_ok("h1 vgremove", 1, "vgremove", "-y", s1)
        self.report("h2 vgs after vgremove", 2, "vgs", "-o", "vg_name")
        self.report("h3 pvs after vgremove", 3, "pvs", "-o", "pv_name,vg_name")

    def until_ok(self, label: str, host: int, *args: str) -> None:
        start = time.time()
        while True:
            t = self.bed.host(host).lvm(*args)
            if t.rc == 0 or t.end - start > VGREMOVE_LIMIT:
                break
            time.sleep(1.0)  # the other hosts' lease release is seen at sanlock's next renewal read
        self.record(label, t)
        self.fact(f"{label} wait", t.end - start)

    def collect(self) -> None:
        for h in self.bed.hosts:
            self.run.lockd_logs[h.n] = h.lockd_log_text()
            if h.metad is not None:
                self.run.metad_log_paths[h.n] = h.metad.log_path
            if h.tap is not None:
                self.run.invalidations[h.n] = [(m.time, m.name, m.request) for m in h.tap.requests()]
            if self.bed.metad == "pylvmetad":  # also under pylvmlockd
                self.run.stats[h.n] = h.metad_request('request="stats"')


def flock_waiters(inode: int) -> int:
    """Processes blocked on an flock of the file with this inode (the ``->`` lines of /proc/locks)."""
    n = 0
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 6 and parts[1:3] == ["->", "FLOCK"] and parts[6].rsplit(":", 1)[-1] == str(inode):
            n += 1
    return n


_SEQNO = re.compile(r"\bseqno\s*=\s*(\d+)")


def cache_view(host: Host) -> dict[str, tuple[int, bool]]:
    """VG name → (cached seqno, vg_invalid flag) as the host's lvmetad answers ``vg_lookup``."""
    view: dict[str, tuple[int, bool]] = {}
    listing = host.metad_request('request="vg_list"')
    for name in re.findall(r'\bname\s*=\s*"([^"]+)"', listing):
        reply = host.metad_request(f'request="vg_lookup"\nname="{name}"')
        m = _SEQNO.search(reply)
        view[name] = (int(m.group(1)) if m else -1, "vg_invalid" in reply)
    return view


def run_both(make_bed: object, tags: dict[str, str]) -> dict[str, Run]:
    """Run the scenario on a bed per lvmetad kind, at once; returns the runs by kind."""
    assert callable(make_bed)
    runs: dict[str, Run] = {}
    errors: dict[str, BaseException] = {}

    def one(kind: str) -> None:
        bed = make_bed(kind)
        try:
            bed.up()
            runs[kind] = Scenario(bed, tags[kind]).all()
        except BaseException as e:
            errors[kind] = e
        finally:
            problems = bed.down()
            if kind in runs:
                for n, path in runs[kind].metad_log_paths.items():
                    runs[kind].metad_logs[n] = path.read_text(errors="replace") if path.exists() else ""
            if problems and kind not in errors:
                errors[kind] = RuntimeError(f"teardown: {problems}")

    threads = [threading.Thread(target=one, args=(kind,)) for kind in tags]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        kind, error = next(iter(errors.items()))
        raise RuntimeError(f"scenario on the {kind} bed failed: {error!r}") from error
    return runs
