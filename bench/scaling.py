"""Does a request cost what it carries, or what the cache holds?  ``python -m bench.scaling`` (from a checkout).

Rules of this module:

* It measures pylvmetad and the C lvmetad in the same run, with the same
  harness and request texts (:mod:`bench.daemon`), each on a daemon spawned
  on a temporary socket; every reply must be OK or the run fails.
* Table 1 (cache size): the cache holds N PVs in N/10 VGs of 10 PVs (1k/100,
  10k/1k, 100k/10k); each request type is timed one request at a time
  (median of ``--samples`` latencies), so a row that is flat across the
  columns is a request whose cost does not grow with the cache.  ``pv_list``,
  ``vg_list`` and ``dump`` return the whole cache, so they grow by the
  protocol; they are timed too, for scale.  The RSS row is the daemon's after
  population.
* Table 2 (VG size): one VG of K PVs (1k, 2k, 5k).  A scan (pv_found of
  each PV, per PV), one PV reporting metadata at a newer seqno (it marks the
  other K-1 outdated: one request that carries the K PVs), every PV gone
  (pv_gone, per PV).  Linear work shows as a flat per-PV figure and a
  newer-seqno time that grows like K; quadratic work as a per-PV figure that
  grows like K.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS

from .daemon import (
    FINAL_TOKEN,
    PV,
    BenchError,
    Connection,
    Identity,
    VGUpdate,
    daemon_memory,
    lvm_uuid,
    pv_found_request,
    reply_tree,
    simple_request,
    spawned_daemon,
)

C_LVMETAD = "env LD_LIBRARY_PATH=/opt/lvm2-2.02/lib /opt/lvm2-2.02/sbin/lvmetad -f -s {socket} -p {pidfile}"
#: (PVs, VGs) of table 1: ten PVs per VG
CACHE_SIZES = ((1_000, 100), (10_000, 1_000), (100_000, 10_000))
#: PVs of the one VG of table 2
VG_SIZES = (1_000, 2_000, 5_000)
#: requests whose reply is the whole cache: they grow by the protocol
WHOLE_CACHE = ("pv_list", "vg_list", "dump")


@dataclass
class Figures:
    """One daemon's medians (seconds) per row key, per column, and its RSS per column."""

    latency: dict[str, dict[int, float]] = field(default_factory=dict)
    rss_kb: dict[int, int | None] = field(default_factory=dict)

    def put(self, key: str, column: int, seconds: float) -> None:
        self.latency.setdefault(key, {})[column] = seconds


def take_token(c: Connection, pid: int) -> tuple[Identity, int | None]:
    """pvscan's token protocol: update in progress, clear, final token; returns (identity, daemon pid)."""
    begin = Identity(UPDATE_IN_PROGRESS, pid, "pvscan")
    who = Identity(FINAL_TOKEN, pid, "pvscan")
    c.call("token_update (begin)", simple_request("token_update", begin))
    c.call("pv_clear_all", simple_request("pv_clear_all", begin))
    c.call("token_update (final)", simple_request("token_update", who))
    info = reply_tree(c.call("get_global_info", simple_request("get_global_info", who)))
    return who, info.get_int64("daemon_pid")


def median_latency(c: Connection, what: str, requests: Sequence[bytes]) -> float:
    clock = time.perf_counter
    samples = []
    for data in requests:
        t0 = clock()
        if what == "dump":  # the one reply without a response field
            reply = c.exchange(data)
            if not reply.startswith(b"# VG METADATA"):
                raise BenchError(f"dump: unexpected reply {reply[:200]!r}")
        else:
            c.call(what, data)
        samples.append(clock() - t0)
    return statistics.median(samples)


def cache_size_column(path: str, column: int, n_pvs: int, n_vgs: int, samples: int, figures: Figures) -> None:
    rng = random.Random(2_02_188 + column)
    pid = 4242
    with Connection(path) as c:
        who, daemon_pid = take_token(c, pid)
        pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(n_pvs)]
        per = n_pvs // n_vgs
        vgs = [VGUpdate.build(f"vg{j}", pvs[j * per : (j + 1) * per], 2, who, rng) for j in range(n_vgs)]
        for vg in vgs:
            c.call("vg_update", vg.request(1))
        for pv in pvs:
            c.call("pv_found", pv_found_request(pv, who))
        figures.rss_kb[column] = daemon_memory(daemon_pid).rss_kb
        seqno = dict.fromkeys(range(n_vgs), 1)
        pick = [rng.randrange(n_pvs) for _ in range(samples)]
        pick_vg = [rng.randrange(n_vgs) for _ in range(samples)]
        cmd = Identity(FINAL_TOKEN, pid, "lvs")
        figures.put(
            "get_global_info",
            column,
            median_latency(c, "get_global_info", [simple_request("get_global_info", cmd)] * samples),
        )
        figures.put(
            "pv_lookup",
            column,
            median_latency(c, "pv_lookup", [simple_request("pv_lookup", cmd, ("uuid", pvs[i].pvid)) for i in pick]),
        )
        figures.put(
            "vg_lookup",
            column,
            median_latency(c, "vg_lookup", [simple_request("vg_lookup", cmd, ("uuid", vgs[j].vgid)) for j in pick_vg]),
        )
        figures.put(
            "pv_found_known", column, median_latency(c, "pv_found", [pv_found_request(pvs[i], who) for i in pick])
        )
        updates = []
        for j in pick_vg:
            seqno[j] += 1
            updates.append(vgs[j].request(seqno[j]))
        figures.put("vg_update", column, median_latency(c, "vg_update", updates))
        # a PV goes and comes back (its VG keeps its nine others)
        clock = time.perf_counter
        gone, found = [], []
        for i in dict.fromkeys(pick):
            t0 = clock()
            c.call("pv_gone", simple_request("pv_gone", who, ("uuid", pvs[i].pvid), ("device", pvs[i].device)))
            t1 = clock()
            c.call("pv_found", pv_found_request(pvs[i], who))
            gone.append(t1 - t0)
            found.append(clock() - t1)
        figures.put("pv_gone", column, statistics.median(gone))
        figures.put("pv_found_back", column, statistics.median(found))
        for name in WHOLE_CACHE:
            request = simple_request(name, cmd)
            figures.put(name, column, median_latency(c, name, [request] * 3))


def vg_size_column(path: str, column: int, k: int, figures: Figures) -> None:
    rng = random.Random(2_02_188_000 + column)
    with Connection(path) as c:
        who, _ = take_token(c, 4242)
        pvs = [PV(lvm_uuid(rng), 2048 + i) for i in range(k)]
        vg = VGUpdate.build("big", pvs, 2, who, rng)
        c.call("vg_update", vg.request(1))
        clock = time.perf_counter
        t0 = clock()
        for pv in pvs:
            reply = c.call("pv_found", pv_found_request(pv, who))
        figures.put("scan_per_pv", column, (clock() - t0) / k)
        if b'"complete"' not in reply:
            raise BenchError(f"the VG of {k} PVs is not complete after the scan:\n{reply.decode()}")
        newer = vg.pv_found_request(pvs[0], 2, who)
        t0 = clock()
        c.call("pv_found (newer seqno)", newer)
        figures.put("newer_seqno", column, clock() - t0)
        t0 = clock()
        for pv in pvs:
            c.call("pv_gone", simple_request("pv_gone", who, ("uuid", pv.pvid), ("device", pv.device)))
        figures.put("gone_per_pv", column, (clock() - t0) / k)
        listing = reply_tree(c.call("vg_list", simple_request("vg_list", who)))
        if listing.section("volume_groups") is not None and listing.section("volume_groups").items:  # type: ignore[union-attr]
            raise BenchError("the VG survived the loss of all its PVs")


CACHE_ROWS = (
    ("get_global_info", "get_global_info"),
    ("pv_lookup", "pv_lookup of a random PV"),
    ("vg_lookup", "vg_lookup of a random VG (10 PVs, 2 LVs)"),
    ("pv_found_known", "pv_found of a known PV, unchanged"),
    ("vg_update", "vg_update of a random VG, seqno + 1"),
    ("pv_gone", "pv_gone of a random PV (its VG keeps 9)"),
    ("pv_found_back", "pv_found of that PV again"),
    ("pv_list", "pv_list (reply: every PV)"),
    ("vg_list", "vg_list (reply: every VG)"),
    ("dump", "dump (reply: everything)"),
)
VG_ROWS = (
    ("scan_per_pv", "scan: pv_found of each PV, per PV"),
    ("newer_seqno", "one pv_found at a newer seqno (marks K-1 outdated)"),
    ("gone_per_pv", "every PV gone: pv_gone, per PV"),
)


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 0.1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def table(heads: Sequence[str], rows: Sequence[tuple[str, str]], c_side: Figures, py_side: Figures, rss: bool) -> str:
    cols = range(len(heads))
    out = ["| request | " + " | ".join(f"{h}: C | {h}: py" for h in heads) + " |"]
    out.append("|---|" + "---:|---:|" * len(heads))
    for key, title in rows:
        cells = []
        for col in cols:
            cells.append(fmt(c_side.latency.get(key, {}).get(col)))
            cells.append(fmt(py_side.latency.get(key, {}).get(col)))
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    if rss:
        cells = []
        for col in cols:
            for side in (c_side, py_side):
                kb = side.rss_kb.get(col)
                cells.append(f"{kb / 1024:.0f} MB" if kb else "-")
        out.append("| RSS after population | " + " | ".join(cells) + " |")
    return "\n".join(out)


def count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def run(c_command: str, py_command: str | None, samples: int, log: Callable[[str], None], divide: int = 1) -> str:
    cache_sizes = [(n // divide, v // divide) for n, v in CACHE_SIZES]
    vg_sizes = [k // divide for k in VG_SIZES]
    sides = {"C": (c_command, Figures(), Figures()), "py": (py_command, Figures(), Figures())}
    for column, (n_pvs, n_vgs) in enumerate(cache_sizes):
        for name, (command, cache_figs, _) in sides.items():
            log(f"{name}: cache of {n_pvs} PVs in {n_vgs} VGs")
            with spawned_daemon(command) as path:
                cache_size_column(path, column, n_pvs, n_vgs, samples, cache_figs)
    for column, k in enumerate(vg_sizes):
        for name, (command, _, vg_figs) in sides.items():
            log(f"{name}: one VG of {k} PVs")
            with spawned_daemon(command) as path:
                vg_size_column(path, column, k, vg_figs)
    (_, c_cache, c_vg), (_, py_cache, py_vg) = sides["C"], sides["py"]
    heads1 = [f"{count(n)} PVs / {count(v)} VGs" for n, v in cache_sizes]
    heads2 = [f"K = {count(k)}" for k in vg_sizes]
    return (
        "Median latency of one request (C = lvmetad 2.02.188, py = pylvmetad), by cache size:\n\n"
        + table(heads1, CACHE_ROWS, c_cache, py_cache, rss=True)
        + "\n\nOne VG of K PVs:\n\n"
        + table(heads2, VG_ROWS, c_vg, py_vg, rss=False)
        + "\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n\n")[0])
    p.add_argument("--c-lvmetad", default=C_LVMETAD, help="command starting the C daemon ({socket}, {pidfile})")
    p.add_argument("--pylvmetad", default=None, help="command starting pylvmetad (default: this checkout's)")
    p.add_argument("--samples", type=int, default=300, help="requests timed per cheap row (default 300)")
    p.add_argument("--divide", type=int, default=1, help="divide every size by this (a quick run: 10)")
    args = p.parse_args(argv)
    try:
        log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
        print(run(args.c_lvmetad, args.pylvmetad, args.samples, log, args.divide))
    except BenchError as exc:
        print(f"bench.scaling: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
