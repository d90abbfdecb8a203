"""A load harness for any lvmetad-compatible daemon: ``python -m bench.daemon`` (from a checkout).

Rules of this module:

* It speaks only the wire protocol (docs/protocol.md): it builds request texts,
  sends them over the UNIX socket and reads replies.  It uses the wire layer
  as text helpers, the client transport (:mod:`pylvmetad.rpc`) to exchange
  them and the protocol's names, and imports nothing of the daemon itself, so
  the same run measures the original C ``lvmetad`` (``--socket`` or
  ``--spawn-cmd 'lvmetad -f -s {socket} -p {pidfile}'``).
* Every reply is checked: anything but ``response = "OK"`` raises
  :class:`BenchError` and the run exits non-zero.  A fast wrong answer must
  never look like a good figure.
* Request texts are shaped like the traffic LVM 2.02 tools send (see
  ``conformance/basic.jsonl``): the request line, the payload written by
  LVM's tree writer (TAB indentation, ``key=value``), then the
  ``token``/``update_timeout``/``pid``/``cmd`` header fields with the
  client's ``key =value`` spacing.

The workloads (rows of the table) run in this order on one daemon:

1. command sessions: connect, hello, get_global_info, vg_list, close
2. pv_found of N new PVs on one connection (N = 5000)
3. pv_list with those N PVs cached
4. vg_update of a 10-LV VG (~4 KiB), seqno increasing
5. vg_lookup of that VG
6. vg_update of a 1000-LV VG (~300 KiB), seqno increasing
7. vg_lookup of the 1000-LV VG
8. 8 concurrent clients doing vg_lookup of the 10-LV VG (aggregate figure)
9. (no target) as 6, but one LV changes in every update, so nothing derived
   from an earlier text can be reused

and then the rows of issue 17 (no fixed target; ``--compare`` gives the C
daemon's figure), the traffic real commands send:

10. vg_update of the 10-LV VG, one LV changed each time (what lvextend writes)
11. vg_update then vg_lookup of the 10-LV VG, one LV changed (lvcreate-like)
12. pv_found of the N known PVs again (what ``pvscan --cache`` sends on every boot)
13. pv_found of a PV of the known 1000-LV VG, with its metadata at the same
    seqno (a rescan: the daemon compares the metadata with its copy)

Before them the harness follows the token protocol as ``pvscan --cache``
does: ``token_update`` to "update in progress", ``pv_clear_all``, then
``token_update`` to the final token, all with one pid.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS
from pylvmetad.rpc import DaemonError, Transport
from pylvmetad.wire.codec import Section, parse, quote
from pylvmetad.wire.framing import TERMINATOR, decode, encode_request

FINAL_TOKEN = "filter:3239235440"
#: the C daemon's figures on this harness (2 cores); rows 3, 5 and 7 must reach 3x
TARGETS: dict[str, tuple[float, float]] = {
    "session": (4700, 1),
    "pv_found": (12400, 1),
    "pv_list": (38, 3),
    "vg_update_10": (9400, 1),
    "vg_lookup_10": (6500, 3),
    "vg_update_1000": (485, 1),
    "vg_lookup_1000": (257, 3),
    "vg_lookup_8c": (19500, 1),
}
RSS_TARGET_MB = 39.0
_RESPONSE = re.compile(rb'\A\s*response\s*=\s*"((?:[^"\\]|\\.)*)"')


class BenchError(Exception):
    """A reply other than OK, or a reply whose content is wrong: the run fails."""


# ---------------------------------------------------------------------------
# Request texts
# ---------------------------------------------------------------------------
def lvm_uuid(rng: random.Random) -> str:
    """An LVM-style uuid: 32 characters in groups of 6-4-4-4-4-4-6."""
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    raw = "".join(rng.choice(chars) for _ in range(32))
    cuts = (6, 4, 4, 4, 4, 4, 6)
    parts, at = [], 0
    for n in cuts:
        parts.append(raw[at : at + n])
        at += n
    return "-".join(parts)


@dataclass
class Identity:
    """The header fields every command request carries."""

    token: str
    pid: int
    cmd: str
    update_timeout: int = 10

    def header(self) -> str:
        # LVM's client writes these with a space before "=" (daemon_client.c)
        return (
            f"token ={quote(self.token)}\n"
            f"update_timeout ={self.update_timeout}\n"
            f"pid ={self.pid}\n"
            f"cmd ={quote(self.cmd)}\n"
        )


def simple_request(name: str, who: Identity, *fields: tuple[str, str | int]) -> bytes:
    lines = [f"request={quote(name)}\n"]
    for key, value in fields:
        lines.append(f"{key} ={quote(value) if isinstance(value, str) else value}\n")
    lines.append(who.header())
    return encode_request("".join(lines))


@dataclass
class PV:
    pvid: str
    device: int


def pv_found_request(pv: PV, who: Identity) -> bytes:
    """pv_found of a PV without VG metadata, as ``pvscan --cache`` sends it."""
    return encode_request('request="pv_found"\n' + pvmeta_text(pv) + who.header())


def pvmeta_text(pv: PV) -> str:
    """The ``pvmeta`` section of a pv_found request."""
    return (
        "pvmeta  {\n"
        f"\tdevice ={pv.device}\n"
        "\tdev_size =67108864\n"
        '\tformat ="lvm2"\n'
        "\tlabel_sector =1\n"
        f"\tid ={quote(pv.pvid)}\n"
        "\text_version =2\n"
        "\text_flags =1\n"
        "\tmda0 {\n\t\tignore =0\n\t\tstart =4096\n\t\tsize =1044480\n\t\tfree_sectors =0\n\t}\n"
        "\tda0 {\n\t\toffset =1048576\n\t\tsize =0\n\t}\n"
        "\tba0 {\n\t\toffset =0\n\t\tsize =0\n\t}\n"
        "}\n"
    )


def vg_metadata_parts(name: str, vgid: str, pvs: Sequence[PV], n_lvs: int, rng: random.Random) -> tuple[str, str]:
    """A VG's ``metadata`` section split around its seqno: (text before, text after).

    The shape is what LVM 2.02's ``vgcreate``/``lvcreate`` send: VG fields,
    ``physical_volumes`` with device hints, and linear LVs of one segment
    each, spread over the PVs.
    """
    before = f"metadata  {{\n\tid={quote(vgid)}\n\tseqno="
    lines = [
        "\n",
        '\tformat="lvm2"\n',
        '\tstatus=["RESIZEABLE","READ","WRITE"]\n',
        "\tflags=[]\n",
        "\textent_size=8192\n",
        "\tmax_lv=0\n",
        "\tmax_pv=0\n",
        "\tmetadata_copies=0\n",
        "\tphysical_volumes {\n",
    ]
    extents_per_pv = 1 + (n_lvs * 4) // max(len(pvs), 1)
    for i, pv in enumerate(pvs):
        lines.append(
            f"\t\tpv{i} {{\n"
            f"\t\t\tid={quote(pv.pvid)}\n"
            f'\t\t\tdevice="/dev/sd{chr(ord("a") + i % 26)}{i // 26 or ""}"\n'
            '\t\t\tstatus="ALLOCATABLE"\n'
            "\t\t\tflags=[]\n"
            f"\t\t\tdev_size={extents_per_pv * 8192 + 2048}\n"
            "\t\t\tpe_start=2048\n"
            f"\t\t\tpe_count={extents_per_pv}\n"
            "\t\t}\n"
        )
    lines.append("\t}\n")
    if n_lvs:
        lines.append("\tlogical_volumes {\n")
        for j in range(n_lvs):
            pv_index = j % max(len(pvs), 1)
            lines.append(
                f"\t\tlvol{j} {{\n"
                f"\t\t\tid={quote(lvm_uuid(rng))}\n"
                '\t\t\tstatus=["READ","WRITE","VISIBLE"]\n'
                "\t\t\tflags=[]\n"
                f"\t\t\tcreation_time={1527120000 + j}\n"
                '\t\t\tcreation_host="bench.example.com"\n'
                "\t\t\tsegment_count=1\n"
                "\t\t\tsegment1 {\n"
                "\t\t\t\tstart_extent=0\n"
                "\t\t\t\textent_count=4\n"
                '\t\t\t\ttype="striped"\n'
                "\t\t\t\tstripe_count=1\n"
                f'\t\t\t\tstripes=["pv{pv_index}",{(j // max(len(pvs), 1)) * 4}]\n'
                "\t\t\t}\n"
                "\t\t}\n"
            )
        lines.append("\t}\n")
    lines.append("}\n")
    return before, "".join(lines)


@dataclass
class VGUpdate:
    """A vg_update request template; :meth:`request` fills in the seqno.

    With ``touch_lv`` the first LV's ``creation_time`` changes with the
    seqno, so the LV sections differ from every earlier update (a daemon
    cannot reuse anything it derived from the previous text).
    """

    name: str
    vgid: str
    head: bytes
    tail: bytes
    pvids: list[str]
    n_lvs: int
    #: the ``metadata`` section around its seqno, for pv_found requests
    metadata_before: str = ""
    metadata_after: str = ""

    @classmethod
    def build(cls, name: str, pvs: Sequence[PV], n_lvs: int, who: Identity, rng: random.Random) -> VGUpdate:
        vgid = lvm_uuid(rng)
        before, after = vg_metadata_parts(name, vgid, pvs, n_lvs, rng)
        head = f'request="vg_update"\nvgname ={quote(name)}\n' + before
        tail = after + who.header() + "\n" + TERMINATOR.decode()
        return cls(name, vgid, head.encode(), tail.encode(), [pv.pvid for pv in pvs], n_lvs, before, after)

    def pv_found_request(self, pv: PV, seqno: int, who: Identity) -> bytes:
        """pv_found of one of this VG's PVs with the VG's metadata, as ``pvscan --cache`` sends it."""
        metadata = f"vgname ={quote(self.name)}\n{self.metadata_before}{seqno}{self.metadata_after}"
        return encode_request('request="pv_found"\n' + pvmeta_text(pv) + metadata + who.header())

    def request(self, seqno: int, touch_lv: bool = False) -> bytes:
        if touch_lv and self.n_lvs:
            mark = b"creation_time=1527120000\n"
            at = self.tail.index(mark) + len(mark) - 1
            stamp = str(1527120000 + seqno).encode()
            return self.head + str(seqno).encode() + self.tail[: at - 10] + stamp + self.tail[at:]
        return self.head + str(seqno).encode() + self.tail

    def size(self) -> int:
        return len(self.request(1))


# ---------------------------------------------------------------------------
# The client side of the wire
# ---------------------------------------------------------------------------
def response_of(reply: bytes) -> str:
    """The ``response`` field of a reply body (LVM's daemons write it first)."""
    m = _RESPONSE.match(reply)
    if m is not None:
        return m.group(1).decode("utf-8", "replace")
    try:  # not first: read it the slow way
        tree = parse(decode(reply))
    except ValueError:
        return "<unparsable>"
    return tree.get_str("response", "<none>") or "<none>"


def check_ok(what: str, reply: bytes) -> bytes:
    response = response_of(reply)
    if response != "OK":
        raise BenchError(f"{what}: response {response!r}, expected OK:\n{reply[:2000].decode(errors='replace')}")
    return reply


class Connection:
    """One blocking client connection over the client transport: no hello, no timeout.

    The typed client (:class:`pylvmetad.metad.client.Client`) is not used:
    the requests here are pre-built bytes in LVM's own layout, sent as they are.
    """

    def __init__(self, path: str) -> None:
        self.transport = Transport(path)
        self.transport.open(None)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exchange(self, data: bytes) -> bytes:
        """Send one request, return its reply body (terminator removed)."""
        return self.transport.exchange_bytes(data, None)

    def call(self, what: str, data: bytes) -> bytes:
        return check_ok(what, self.exchange(data))


def reply_tree(reply: bytes) -> Section:
    return parse(decode(reply))


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------
@dataclass
class Row:
    key: str
    title: str
    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    #: CPU seconds the daemon used during the row (user + system, all its threads), if readable
    daemon_cpu: float | None = None
    #: CPU seconds this harness (the client side) used during the row
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    @property
    def daemon_cpu_us(self) -> float | None:
        """The daemon's CPU time per operation, µs (None when its /proc entry was unreadable)."""
        if self.daemon_cpu is None or not self.ops:
            return None
        return self.daemon_cpu / self.ops * 1e6

    @property
    def client_cpu_us(self) -> float:
        return self.client_cpu / self.ops * 1e6 if self.ops else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(row: Row, duration: float, min_ops: int, one: Callable[[int], object]) -> Row:
    """Call ``one(i)`` until ``duration`` has passed (and at least ``min_ops`` times)."""
    clock = time.perf_counter
    lat = row.latencies
    start = clock()
    deadline = start + duration
    i = 0
    while True:
        t0 = clock()
        one(i)
        t1 = clock()
        lat.append(t1 - t0)
        i += 1
        if t1 >= deadline and i >= min_ops:
            break
    row.ops, row.seconds = i, clock() - start
    return row


@dataclass
class Settings:
    duration: float = 3.0
    n_pvs: int = 5000
    big_lvs: int = 1000
    small_lvs: int = 10
    clients: int = 8
    min_ops: int = 20


@dataclass
class Memory:
    rss_kb: int | None = None
    hwm_kb: int | None = None


def daemon_memory(pid: int | None) -> Memory:
    """VmRSS and VmHWM of the daemon from /proc (None where unreadable)."""
    mem = Memory()
    if pid is None:
        return mem
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    mem.rss_kb = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    mem.hwm_kb = int(line.split()[1])
    except OSError:
        pass
    return mem


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def daemon_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` and all its threads, dead ones included.

    From ``/proc/PID/stat`` (fields 14 and 15, in clock ticks: 10 ms steps, so a
    row should use a few hundred ms of the daemon's CPU to be read to a few per
    cent).  None where the file is unreadable.
    """
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


class Bench:
    """Runs the workloads against the daemon at ``path``."""

    def __init__(
        self, path: str, settings: Settings, log: Callable[[str], None] = print, memory_pid: int | None = None
    ) -> None:
        self.path = path
        #: whose /proc/PID/status to read (None: get_global_info's daemon_pid)
        self.memory_pid = memory_pid
        self.settings = settings
        self.log = log
        self.rng = random.Random(2_02_187)
        self.pid = os.getpid()
        self.who = Identity(FINAL_TOKEN, self.pid, "pvscan")
        self.pvs = [PV(lvm_uuid(self.rng), 2048 + i) for i in range(settings.n_pvs)]
        self.rows: list[Row] = []
        self.daemon_pid: int | None = None
        #: last seqno sent per VG
        self.seqno: dict[str, int] = {}
        #: the daemon's memory after the rows the C daemon was measured with
        self.memory = Memory()

    def connect(self) -> Connection:
        return Connection(self.path)

    # -- setup -------------------------------------------------------------
    def take_token(self) -> None:
        """The token protocol as pvscan --cache runs it (docs/protocol.md §4)."""
        begin = Identity(UPDATE_IN_PROGRESS, self.pid, "pvscan")
        with self.connect() as c:
            c.call("hello", simple_request("hello", begin))
            c.call("token_update (begin)", simple_request("token_update", begin))
            c.call("pv_clear_all", simple_request("pv_clear_all", begin))
            c.call("token_update (final)", simple_request("token_update", self.who))
            info = reply_tree(c.call("get_global_info", simple_request("get_global_info", self.who)))
        if info.get_str("token") != FINAL_TOKEN:
            raise BenchError(f"token not taken: daemon reports {info.get_str('token')!r}")
        self.daemon_pid = info.get_int64("daemon_pid")

    # -- workloads -----------------------------------------------------------
    def session(self) -> Row:
        cmd = Identity(FINAL_TOKEN, self.pid, "lvs")
        hello = simple_request("hello", cmd)
        info = simple_request("get_global_info", cmd)
        vg_list = simple_request("vg_list", cmd)
        path = self.path

        def one(_: int) -> None:
            with Connection(path) as c:
                c.call("hello", hello)
                c.call("get_global_info", info)
                c.call("vg_list", vg_list)

        return timed(
            Row("session", "command session (connect + 3 requests)"), self.settings.duration, self.settings.min_ops, one
        )

    def pv_found(self) -> Row:
        requests = [pv_found_request(pv, self.who) for pv in self.pvs]
        row = Row("pv_found", f"pv_found, {len(requests)} new PVs")
        with self.connect() as c:
            clock = time.perf_counter
            start = clock()
            for data in requests:
                t0 = clock()
                reply = c.call("pv_found", data)
                row.latencies.append(clock() - t0)
                if b"changed = 1" not in reply:
                    raise BenchError(f"pv_found of a new PV did not report a change:\n{reply.decode()}")
            row.seconds = clock() - start
            row.ops = len(requests)
        return row

    def pv_found_known(self) -> Row:
        """pv_found of PVs the daemon knows, unchanged: nothing to store."""
        requests = [pv_found_request(pv, self.who) for pv in self.pvs[10:]]  # not the VGs' PVs
        row = Row("pv_found_known", f"pv_found, {len(requests)} known PVs (a rescan)")
        with self.connect() as c:
            return timed(
                row,
                self.settings.duration,
                self.settings.min_ops,
                lambda i: c.call("pv_found", requests[i % len(requests)]),
            )

    def pv_found_of_vg(self, vg: VGUpdate) -> Row:
        """pv_found of the PVs of a known VG with its metadata at the stored seqno (a rescan)."""
        seqno = self.seqno[vg.vgid] + 1
        members = set(vg.pvids)
        requests = [vg.pv_found_request(pv, seqno, self.who) for pv in self.pvs if pv.pvid in members]
        row = Row(f"pv_found_vg_{vg.n_lvs}", f"pv_found of a PV of a known {vg.n_lvs}-LV VG (same seqno)")
        with self.connect() as c:
            c.call("vg_update", vg.request(seqno))  # the text the pv_founds carry is the stored one
            self.seqno[vg.vgid] = seqno
            return timed(
                row,
                self.settings.duration,
                self.settings.min_ops,
                lambda i: c.call("pv_found", requests[i % len(requests)]),
            )

    def vg_update_then_lookup(self, key: str, vg: VGUpdate) -> Row:
        """vg_update (one LV changed) then vg_lookup, as lvcreate does; one op is the pair."""
        row = Row(key, f"vg_update then vg_lookup, {vg.n_lvs} LVs, one LV changed (lvcreate-like)")
        first = self.seqno.get(vg.vgid, 0)
        lookup = self.lookup_request(vg)

        def one(i: int) -> None:
            c.call("vg_update", vg.request(first + i + 1, touch_lv=True))
            c.call("vg_lookup", lookup)

        with self.connect() as c:
            timed(row, self.settings.duration, self.settings.min_ops, one)
        self.seqno[vg.vgid] = first + row.ops
        return row

    def pv_list(self) -> Row:
        data = simple_request("pv_list", self.who)
        with self.connect() as c:
            tree = reply_tree(c.call("pv_list", data))
            pvs = tree.section("physical_volumes")
            if pvs is None or len(pvs) != len(self.pvs):
                raise BenchError(f"pv_list lists {len(pvs) if pvs else 0} PVs, expected {len(self.pvs)}")
            return timed(
                Row("pv_list", f"pv_list, {len(self.pvs)} PVs"),
                self.settings.duration,
                min(self.settings.min_ops, 5),
                lambda _: c.call("pv_list", data),
            )

    def vg_update(self, key: str, vg: VGUpdate, touch_lv: bool = False) -> Row:
        changed = ", one LV changed each time" if touch_lv else ""
        row = Row(key, f"vg_update, {vg.n_lvs} LVs ({vg.size() / 1024:.0f} KiB){changed}")
        first = self.seqno.get(vg.vgid, 0)
        with self.connect() as c:
            timed(
                row,
                self.settings.duration,
                self.settings.min_ops,
                lambda i: c.call("vg_update", vg.request(first + i + 1, touch_lv)),
            )
        self.seqno[vg.vgid] = first + row.ops
        return row

    def check_lookup(self, reply: bytes, vg: VGUpdate) -> None:
        tree = reply_tree(reply)
        lvs = tree.section("metadata/logical_volumes")
        pvs = tree.section("metadata/physical_volumes")
        if tree.get_str("name") != vg.name or tree.get_str("metadata/id") != vg.vgid:
            raise BenchError(f"vg_lookup returned another VG:\n{reply[:500].decode()}")
        if (lvs is None and vg.n_lvs) or (lvs is not None and len(lvs) != vg.n_lvs):
            raise BenchError(f"vg_lookup of {vg.name}: expected {vg.n_lvs} LVs")
        if pvs is None or len(pvs) != len(vg.pvids):
            raise BenchError(f"vg_lookup of {vg.name}: expected {len(vg.pvids)} PVs")
        for _, pv in pvs.sections():
            if pv.get_str("format") != "lvm2":  # pvmeta merged in front: the PV is present
                raise BenchError(f"vg_lookup of {vg.name}: PV {pv.get_str('id')} not merged with its pvmeta")

    def lookup_request(self, vg: VGUpdate, who: Identity | None = None) -> bytes:
        return simple_request("vg_lookup", who or self.who, ("uuid", vg.vgid), ("name", vg.name))

    def vg_lookup(self, key: str, vg: VGUpdate) -> Row:
        data = self.lookup_request(vg)
        row = Row(key, f"vg_lookup, {vg.n_lvs} LVs")
        with self.connect() as c:
            self.check_lookup(c.call("vg_lookup", data), vg)
            return timed(row, self.settings.duration, self.settings.min_ops, lambda _: c.call("vg_lookup", data))

    def concurrent_lookups(self, vg: VGUpdate) -> Row:
        """``clients`` connections, each with one vg_lookup in flight, driven by one selector."""
        n = self.settings.clients
        row = Row("vg_lookup_8c", f"vg_lookup, {vg.n_lvs} LVs, {n} clients")
        data = self.lookup_request(vg, Identity(FINAL_TOKEN, self.pid, "lvs"))
        # one selector drives every connection with a request in flight, so
        # these are bare sockets: a client transport waits on one reply at a time
        conns: list[socket.socket] = []
        sel = selectors.DefaultSelector()
        clock = time.perf_counter
        bufs: dict[int, bytearray] = {}
        sent_at: dict[int, float] = {}
        try:
            with self.connect() as first:
                self.check_lookup(first.call("vg_lookup", data), vg)
            for _ in range(n):
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conns.append(conn)
                conn.connect(self.path)
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
            start = clock()
            deadline = start + self.settings.duration
            for conn in conns:
                fd = conn.fileno()
                bufs[fd] = bytearray()
                sent_at[fd] = clock()
                conn.sendall(data)
            in_flight = n
            while in_flight:
                for key, _ in sel.select():
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    fd = sock.fileno()
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise BenchError("daemon closed a connection before replying")
                    buf = bufs[fd]
                    buf += chunk
                    if not buf.endswith(TERMINATOR):
                        continue
                    now = clock()
                    check_ok("vg_lookup", bytes(buf[: -len(TERMINATOR)]))
                    buf.clear()
                    row.latencies.append(now - sent_at[fd])
                    row.ops += 1
                    if now < deadline or row.ops < self.settings.min_ops:
                        sent_at[fd] = clock()
                        # small request: the kernel takes it whole
                        sock.setblocking(True)
                        sock.sendall(data)
                        sock.setblocking(False)
                    else:
                        in_flight -= 1
            row.seconds = clock() - start
        finally:
            sel.close()
            for conn in conns:
                conn.close()
        return row

    # -- the run ---------------------------------------------------------------
    def run(self) -> list[Row]:
        self.take_token()
        self.log(f"daemon pid {self.daemon_pid}; {self.settings.duration:g} s per timed row")
        small = VGUpdate.build("vg_bench_small", self.pvs[:2], self.settings.small_lvs, self.who, self.rng)
        big = VGUpdate.build("vg_bench_big", self.pvs[2:10], self.settings.big_lvs, self.who, self.rng)
        steps: list[Callable[[], Row]] = [
            self.session,
            self.pv_found,
            self.pv_list,
            lambda: self.vg_update("vg_update_10", small),
            lambda: self.vg_lookup("vg_lookup_10", small),
            lambda: self.vg_update("vg_update_1000", big),
            lambda: self.vg_lookup("vg_lookup_1000", big),
            lambda: self.concurrent_lookups(small),
            lambda: self.vg_update("vg_update_1000_changed", big, touch_lv=True),
            lambda: self.vg_update("vg_update_10_changed", small, touch_lv=True),
            lambda: self.vg_update_then_lookup("vg_update_lookup_10", small),
            self.pv_found_known,
            lambda: self.pv_found_of_vg(big),
        ]
        cpu_pid = self.memory_pid or self.daemon_pid
        for step in steps:
            daemon_before, client_before = daemon_cpu_seconds(cpu_pid), time.process_time()
            row = step()
            daemon_after, row.client_cpu = daemon_cpu_seconds(cpu_pid), time.process_time() - client_before
            if daemon_before is not None and daemon_after is not None:
                row.daemon_cpu = daemon_after - daemon_before
            self.rows.append(row)
            cpu = f", daemon CPU {row.daemon_cpu_us:,.1f} µs/op" if row.daemon_cpu_us is not None else ""
            self.log(f"  {row.title}: {row.rate:,.0f}/s ({row.ops} ops{cpu})")
            if row.key == "vg_lookup_8c":  # the C daemon's figure is taken after these rows
                self.memory = daemon_memory(self.memory_pid or self.daemon_pid)
        return self.rows


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def verdict(key: str, rate: float) -> tuple[str, str, bool]:
    """(target text, need text, passed) for a row; rows without a target always pass."""
    if key not in TARGETS:
        return "-", "-", True
    target, factor = TARGETS[key]
    need = target * factor
    return f"{target:,.0f}", (f"{need:,.0f}" + (f" ({factor:g}x)" if factor != 1 else "")), rate >= need


def format_table(rows: Sequence[Row], memory: Memory, final: Memory | None = None) -> tuple[str, bool]:
    """The Markdown table; ``memory`` is compared with the C daemon's RSS, ``final`` only shown."""
    header = "| # | workload | ops/s | p50 ms | p99 ms | C target ops/s | needed | pass |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---|"]
    all_pass = True
    for n, row in enumerate(rows, 1):
        target, need, passed = verdict(row.key, row.rate)
        all_pass &= passed
        verdict_text = ("pass" if passed else "FAIL") if row.key in TARGETS else "(info)"
        lines.append(
            f"| {n} | {row.title} | {row.rate:,.0f} | {row.percentile(50) * 1e3:.3f} | "
            f"{row.percentile(99) * 1e3:.3f} | {target} | {need} | {verdict_text} |"
        )
    if memory.rss_kb is not None:
        rss_mb = memory.rss_kb / 1024
        hwm = f", peak (VmHWM) {memory.hwm_kb / 1024:.1f} MB" if memory.hwm_kb is not None else ""
        passed = rss_mb <= RSS_TARGET_MB
        all_pass &= passed
        lines.append(
            f"| | daemon RSS (VmRSS) after rows 1-8{hwm} | {rss_mb:.1f} MB | | | {RSS_TARGET_MB:g} MB | "
            f"≤ {RSS_TARGET_MB:g} MB | {'pass' if passed else 'FAIL'} |"
        )
    else:
        lines.append("| | daemon RSS | n/a (daemon pid not readable in /proc) | | | | | |")
    if final is not None and final.rss_kb is not None and final.hwm_kb is not None:
        lines.append(
            f"| | daemon RSS at the end, peak (VmHWM) {final.hwm_kb / 1024:.1f} MB | {final.rss_kb / 1024:.1f} MB "
            "| | | - | - | (info) |"
        )
    return "\n".join(lines), all_pass


# ---------------------------------------------------------------------------
# Spawning a daemon (--spawn, --spawn-cmd)
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def spawned_daemon(command: str | None) -> Iterator[str]:
    """Start a daemon on a temporary socket, yield the socket path, stop it."""
    with tempfile.TemporaryDirectory(prefix="lvmetad-bench-") as tmp:
        sock = os.path.join(tmp, "lvmetad.socket")
        pidfile = os.path.join(tmp, "lvmetad.pid")
        if command is None:
            argv = [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-s", sock, "-p", pidfile, "-l", "fatal,error"]
        else:
            argv = shlex.split(command.format(socket=sock, pidfile=pidfile))
        log_path = os.path.join(tmp, "daemon.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    with open(log_path, errors="replace") as f:
                        raise BenchError(f"daemon exited with {proc.returncode}:\n{f.read()}")
                try:
                    Connection(sock).close()
                    break
                except DaemonError:
                    if time.monotonic() > deadline:
                        raise BenchError(f"nothing listens on {sock}") from None
                    time.sleep(0.02)
            yield sock
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.daemon",
        description="Measure an lvmetad-compatible daemon over its socket (protocol only).",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="socket of a running daemon")
    where.add_argument("--spawn", action="store_true", help="start a pylvmetad on a temporary socket")
    where.add_argument("--spawn-cmd", metavar="CMD", help="start CMD ({socket} and {pidfile} filled in)")
    where.add_argument(
        "--compare",
        metavar="CMD",
        help="measure CMD (e.g. the C lvmetad: 'lvmetad -f -s {socket} -p {pidfile}') and pylvmetad side by side",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of each daemon with --compare (default 3)")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per timed row (default 3)")
    pid = p.add_mutually_exclusive_group()
    pid.add_argument("--pid-of-daemon", type=int, metavar="PID", help="read RSS of this pid")
    pid.add_argument(
        "--daemon-pid", default="auto", metavar="auto|PID", help="auto (default): get_global_info's daemon_pid"
    )
    p.add_argument("--quick", action="store_true", help="tiny counts for a smoke test (figures meaningless)")
    p.add_argument("--strict", action="store_true", help="exit 2 when a row misses its target")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings(duration=args.duration)
    if args.quick:
        settings = Settings(duration=min(args.duration, 0.05), n_pvs=40, big_lvs=30, small_lvs=3, clients=3, min_ops=3)

    def run(path: str) -> tuple[Bench, Memory]:
        pid = args.pid_of_daemon
        if pid is None and args.daemon_pid != "auto":
            pid = int(args.daemon_pid)
        bench = Bench(path, settings, log=lambda s: print(s, file=sys.stderr, flush=True), memory_pid=pid)
        bench.run()
        return bench, daemon_memory(pid or bench.daemon_pid)

    if args.compare:
        # Imported here: run as ``-m bench.daemon`` this file is __main__, and
        # bench.compare sees it as bench.daemon, with its own BenchError class.
        from . import daemon as harness
        from .compare import compare, format_comparison

        try:
            c_side, py_side = compare(args.compare, settings, rounds=args.rounds)
        except (BenchError, harness.BenchError, DaemonError, OSError) as exc:
            print(f"bench FAILED: {exc}", file=sys.stderr)
            return 1
        print(format_comparison(c_side, py_side, args.rounds))
        return 0
    try:
        if args.socket:
            bench, memory = run(args.socket)
        else:
            with spawned_daemon(args.spawn_cmd) as path:
                bench, memory = run(path)
    except (BenchError, DaemonError, OSError) as exc:
        print(f"bench FAILED: {exc}", file=sys.stderr)
        return 1
    table, all_pass = format_table(bench.rows, bench.memory, memory)
    print(table)
    if args.quick:
        print("(quick mode: counts are tiny, figures mean nothing)")
    return 2 if args.strict and not all_pass else 0


if __name__ == "__main__":
    sys.exit(main())
