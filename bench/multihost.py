"""Several hosts: the issue-14 scenario timed with pylvmetad and with the C lvmetad, side by side.

``python -m bench.multihost [--rounds N] [--io-timeout S]`` (root; needs sanlock and the
LVM 2.02 build, as ``tests/multihost``).

Rules of this module:

* One round runs ``tests/multihost/scenario.py`` on two beds at once (three hosts each:
  real lvmlockd + sanlock per host; the C lvmetad on every host of one bed, pylvmetad on
  every host of the other), so both see the same machine load.  Figures are medians over
  the rounds; the ratio is C / pylvmetad for times (above 1: pylvmetad is faster).
* Cross-host figures come from the scenario's own clocks: *seen after* is the time from
  the writing host's command returning to the reading host's next command returning
  (it showed the change: the tests check that).  Lock figures come from each lvmlockd's
  debug log, stamped in ms as it is written: a sanlock lease operation is
  ``lock_san`` → ``res_lock rv``; an lvm request is ``recv`` → ``send`` of one client,
  and a ``lock vg`` request includes lvmlockd telling lvmetad about a newer VG version.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from multihost.scenario import Run, run_both
from support import lvm202
from support.multihost import Bed, preflight

#: VG-name prefixes, unique per process (/dev/mapper/<vg>-lvmlock is global)
TAGS = {"lvmetad": f"lc{os.getpid() % 100000:05d}", "pylvmetad": f"py{os.getpid() % 100000:05d}"}

#: facts of the scenario reported, in order, with their labels
FACTS = [
    ("visible_after_lvcreate", "host2 lvs sees host1's lvcreate, after it returned"),
    ("visible_after_lvextend", "host3 lvs sees host2's lvextend, after it returned"),
    ("visible_after_vgextend", "host2 pvs sees host1's vgextend (global), after it returned"),
    ("join_host2", "lockspace join (vgchange --lock-start), host2"),
    ("join_host3", "lockspace join (vgchange --lock-start), host3"),
    ("rejoin", "rejoin of host3 after its crash"),
    ("lvs_after_crash", "host1 lvs done, after host3's crash"),
    ("lvcreate_after_crash", "host2 lvcreate done, after host3's crash"),
    ("takeover", "takeover of the crashed host's LV lock"),
]

_LINE = re.compile(r"^(\d+\.\d+) \d+ (.*)$")
_LOCK_SAN = re.compile(r"^S (\S+) R (\S+) lock_san (\w+) at ")
_RES_LOCK = re.compile(r"^S (\S+) R (\S+) res_lock rv (-?\d+)")
_RECV = re.compile(r"^recv \S+ cl (\d+) (\w+(?: (?:vg|lv|gl))?)")
_SEND = re.compile(r"^send \S+ cl (\d+) ")
_TELLS_LVMETAD = re.compile(r"^S \S+ R \S+ res_lock set lvmetad")


def _kind(resource: str) -> str:
    return resource if resource in ("GLLK", "VGLK") else "LV"


def lock_figures(logs: Iterable[str]) -> dict[str, list[float]]:
    """Durations in ms from lvmlockd -D logs: ``lease <res> <mode> <granted|refused>`` and ``request <name>``."""
    out: dict[str, list[float]] = defaultdict(list)
    for log in logs:
        pending: dict[tuple[str, str], tuple[float, str]] = {}
        clients: dict[str, tuple[float, str]] = {}
        told: set[str] = set()  # clients whose request made lvmlockd tell lvmetad
        for raw in log.splitlines():
            m = _LINE.match(raw)
            if not m:
                continue
            t, text = float(m.group(1)), m.group(2)
            if mm := _LOCK_SAN.match(text):
                pending[(mm.group(1), mm.group(2))] = (t, mm.group(3))
            elif (mm := _RES_LOCK.match(text)) and (mm.group(1), mm.group(2)) in pending:
                t0, mode = pending.pop((mm.group(1), mm.group(2)))
                verdict = "granted" if mm.group(3) == "0" else "refused"
                out[f"lease {_kind(mm.group(2))} {mode} {verdict}"].append((t - t0) * 1000)
            elif _TELLS_LVMETAD.match(text):
                told.update(clients)  # every client with a request open: nearly always one
            elif mm := _RECV.match(text):
                clients[mm.group(1)] = (t, mm.group(2))
            elif (mm := _SEND.match(text)) and mm.group(1) in clients:
                t0, name = clients.pop(mm.group(1))
                suffix = " (+ set_vg/global_info to lvmetad)" if mm.group(1) in told else ""
                told.discard(mm.group(1))
                out[f"request {name}{suffix}"].append((t - t0) * 1000)
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(rounds: list[dict[str, Run]]) -> str:
    lines = ["| measure | C lvmetad | pylvmetad | C / py |", "|---|---|---|---|"]
    for key, label in FACTS:
        c_s = _median([r["lvmetad"].facts[key] for r in rounds])
        py_s = _median([r["pylvmetad"].facts[key] for r in rounds])
        lines.append(f"| {label} (s) | {c_s:.3f} | {py_s:.3f} | {c_s / py_s:.2f} |")
    figures = {kind: lock_figures(log for r in rounds for log in r[kind].lockd_logs.values()) for kind in TAGS}
    lines += [
        "",
        "| lvmlockd, all hosts (ms) | C: n, median, max | py: n, median, max | C / py (median) |",
        "|---|---|---|---|",
    ]
    for key in sorted(set(figures["lvmetad"]) | set(figures["pylvmetad"])):
        c, py = figures["lvmetad"].get(key, []), figures["pylvmetad"].get(key, [])
        if len(c) < 3 and len(py) < 3:
            continue
        ratio = _median(c) / _median(py) if py and _median(py) else float("nan")
        lines.append(
            f"| {key} | {len(c)}, {_median(c):.1f}, {max(c, default=float('nan')):.1f} "
            f"| {len(py)}, {_median(py):.1f}, {max(py, default=float('nan')):.1f} | {ratio:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.multihost", description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--io-timeout", type=int, default=2, help="sanlock io_timeout (default 2; sanlock's own: 10)")
    args = p.parse_args(argv)
    lvm = lvm202.ensure()
    preflight(lvm)
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-multihost-") as tmp:

            def make_bed(kind: str, root: Path = Path(tmp)) -> Bed:
                return Bed(root / kind, lvm, metad=kind, io_timeout=args.io_timeout, pv_count=5, tap=True)

            rounds.append(run_both(make_bed, TAGS))
        print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    print(f"io_timeout {args.io_timeout} s, {args.rounds} round(s), 3 hosts per bed, both beds at once\n")
    print(report(rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
