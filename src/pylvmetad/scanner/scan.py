"""``pylvmetad-scan``: read PVs from disk and tell lvmetad, as ``pvscan --cache`` does.

Rules of this module:

* Disk format knowledge lives in ``ondisk`` (this module never unpacks a
  byte); wire knowledge lives in ``client`` (this module never formats a
  message).  What is here: which devices to read, how a PV read from disk
  becomes a ``pv_found`` (``build_pvmeta``), and the order of requests
  LVM's tools send (docs/protocol.md §4, population).
* Only reading: no device is ever written.

Theory of operation
-------------------
*Full population* (no DEVICE, or ``--full``), as ``pvscan --cache`` with
lvmetad: ``token_update "update in progress"`` (pid, cmd ``pvscan``,
update_timeout) → ``pv_clear_all`` → one ``pv_found`` per device with a PV
label, in device-number order (with ``vgname`` and ``metadata`` when the PV
has a usable metadata area) → ``token_update "filter:<crc>"`` (Appendix B:
the CRC of the filter list) → ``get_global_info``; then, as the recorded
traffic shows, ``set_global_info global_disable=1 disable_reason=DUPLICATES``
when two devices carry the same PV uuid (the first device in order is used,
the others get ``pv_gone`` by device), or ``set_global_info global_disable=0``
when the daemon was disabled for duplicates and there are none any more.
Nothing is sent otherwise (LVM 2.02.188 does not either).

*Single devices* (DEVICE arguments without ``--full``), as ``pvscan --cache
DEV``: ``get_global_info``; when the daemon's token is not ours (empty cache,
another filter) the cache must be repopulated first, so a full population
runs over the system's devices plus the named ones; otherwise each named
device gets ``pv_found`` (with metadata when it has some) or ``pv_gone`` by
device number when it holds no PV label any more.

*Watch the disks* (``--watch-disks``): see ``watcher`` and ``diskwatch``.

*Watch* (``--watch``): one iteration (:meth:`Scanner.watch_once`) does what an
LVM command does when it meets the invalidation flags (docs/protocol.md §7):
a foreign or empty token, or ``global_invalid``, → full population, then
``set_global_info global_invalid=0``; every VG of ``vg_list`` is looked up and
one whose reply carries ``vg_invalid`` is re-read from its PVs' devices and
sent with ``vg_update`` (which clears the flag when the disk seqno has reached
the invalidating version), followed by a metadata-less ``pv_found`` per PV,
as LVM does after ``vg_update``.

Devices
-------
Without DEVICE arguments the devices are the block devices of
``/sys/class/block`` with a non-zero size (attached loop devices included),
or of ``/proc/partitions`` when ``/sys`` is not mounted, named ``/dev/NAME``.
The device number sent is ``st_rdev``.  A regular file (an image file, for
tests and benchmarks) has no device number: ``--device-number PATH=N`` (or
``PATH=MAJOR:MINOR``) gives it one; otherwise it gets a stable fake one,
``makedev(120, st_ino mod 2**19)`` — major 120 is reserved for local use by
the kernel's device list, and 19 bits of minor keep the value below 2**31, so
the daemon's 32-bit ``device`` getters (``pv_gone``, ``pv_lookup``) find it.
Two files mapping to the same fake number are refused (use
``--device-number``).

The filter is LVM's ``devices/global_filter``, read from ``lvm.conf`` as LVM
2.02 reads it (``lvmconf``), so the token sent is the one LVM's commands send
and neither side takes the other's population for a foreign one; ``--filter``
entries replace it (and so change the token).  Filters are LVM's: each entry is ``a<d>REGEX<d>`` (accept) or ``r<d>REGEX<d>``
(reject) for any delimiter ``<d>``; the first entry whose regex matches the
device path decides, a path no entry matches is accepted.  A bare REGEX is
taken as ``a|REGEX|``.  The filter also applies to named devices.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..metad.client import Client, LvmetadError, NotFound, RequestFailed, TokenUpdating, check_ok
from ..metad.protocol import DEFAULT_SOCKET, SOCKET_ENV, UPDATE_IN_PROGRESS
from ..wire.codec import Section
from .lvmconf import LvmConfigError, config_for, lvmetad_token
from .ondisk import OnDiskError, PhysicalVolume, read_pv

__all__ = [
    "DEFAULT_FILTER",
    "Device",
    "DeviceFilter",
    "DeviceScan",
    "ScanReport",
    "Scanner",
    "build_pvmeta",
    "fake_devno",
    "filter_token",
    "main",
    "read_device",
    "system_block_devices",
]

#: LVM's default ``devices/global_filter`` (its token is filter:3239235440)
DEFAULT_FILTER = ("a|.*/|",)
#: the command name LVM's pvscan puts in ``cmd``
CMD = "pvscan"
#: LVM's default ``global/lvmetad_update_wait_time``
UPDATE_TIMEOUT = 10
FAKE_MAJOR = 120
FAKE_MINOR_BITS = 19


# -- tokens and filters ---------------------------------------------------------


def filter_token(filters: Iterable[str]) -> str:
    """LVM's cache token for a ``global_filter`` list (docs/protocol.md §4; see ``lvmconf``)."""
    return lvmetad_token(filters)


_FILTER_ENTRY = re.compile(r"^([ar])([^A-Za-z0-9\s])(.*)\2$", re.DOTALL)


class DeviceFilter:
    """An LVM filter list: first matching entry decides, no match accepts."""

    def __init__(self, entries: Sequence[str] = DEFAULT_FILTER) -> None:
        self.entries: list[str] = []
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for entry in entries:
            m = _FILTER_ENTRY.match(entry)
            if m is None:
                entry = f"a|{entry}|"
                m = _FILTER_ENTRY.match(entry)
                assert m is not None
            try:
                pattern = re.compile(m.group(3))
            except re.error as e:
                raise ValueError(f"bad filter regex in {entry!r}: {e}") from e
            self.entries.append(entry)
            self.rules.append((m.group(1) == "a", pattern))

    @property
    def token(self) -> str:
        return filter_token(self.entries)

    def accepts(self, path: str) -> bool:
        for accept, pattern in self.rules:
            if pattern.search(path):
                return accept
        return True


# -- devices --------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    path: str
    devno: int
    #: a regular file standing in for a block device (its devno is made up)
    is_file: bool = False


def fake_devno(st: os.stat_result) -> int:
    """The stable made-up device number of a regular file (see the module docstring)."""
    return os.makedev(FAKE_MAJOR, st.st_ino % (1 << FAKE_MINOR_BITS))


def parse_devno(text: str) -> int:
    """``N`` or ``MAJOR:MINOR``."""
    if ":" in text:
        major, minor = text.split(":", 1)
        return os.makedev(int(major), int(minor))
    return int(text, 0)


def resolve_device(path: str, devnos: dict[str, int] | None = None) -> Device:
    """A named device: a block device (st_rdev) or a regular file (given or fake devno)."""
    st = os.stat(path)
    given = {os.path.abspath(k): v for k, v in (devnos or {}).items()}.get(os.path.abspath(path))
    if stat.S_ISBLK(st.st_mode):
        return Device(path, given if given is not None else st.st_rdev)
    if stat.S_ISREG(st.st_mode):
        return Device(path, given if given is not None else fake_devno(st), is_file=True)
    raise ValueError(f"{path}: neither a block device nor a regular file")


def system_block_devices(
    sys_block: str = "/sys/class/block", proc_partitions: str = "/proc/partitions"
) -> list[Device]:
    """The block devices with a non-zero size, in device-number order."""
    found: dict[int, Device] = {}
    try:
        names = sorted(os.listdir(sys_block))
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(sys_block, name, "dev")) as f:
                major, minor = f.read().strip().split(":")
            with open(os.path.join(sys_block, name, "size")) as f:
                size = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if size > 0:
            devno = os.makedev(int(major), int(minor))
            found.setdefault(devno, Device(f"/dev/{name}", devno))
    if not names:
        try:
            with open(proc_partitions) as f:
                lines = f.read().splitlines()[2:]
        except OSError:
            lines = []
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[2] != "0":
                devno = os.makedev(int(parts[0]), int(parts[1]))
                found.setdefault(devno, Device(f"/dev/{parts[3]}", devno))
    return [d for _, d in sorted(found.items()) if os.path.exists(d.path)]


@dataclass
class DeviceScan:
    """What one device held: a PV, or why not."""

    device: Device
    pv: PhysicalVolume | None = None
    error: OnDiskError | None = None


def read_device(device: Device) -> DeviceScan:
    """Read ``device``; never raises for a bad or unreadable device."""
    try:
        with open(device.path, "rb") as f:
            return DeviceScan(device, pv=read_pv(f))
    except OnDiskError as e:
        return DeviceScan(device, error=e)
    except OSError as e:
        return DeviceScan(device, error=OnDiskError("io", f"{device.path}: {e.strerror or e}"))


# -- building requests ----------------------------------------------------------


def build_pvmeta(pv: PhysicalVolume, devno: int) -> Section:
    """The ``pvmeta`` section LVM sends for ``pv`` (field order as on the wire)."""
    meta = Section(
        [
            ("device", devno),
            ("dev_size", pv.device_size),
            ("format", "lvm2"),
            ("label_sector", pv.label_sector),
            ("id", pv.uuid),
            ("ext_version", pv.ext_version),
            ("ext_flags", pv.ext_flags),
        ]
    )
    for i, mda in enumerate(pv.metadata_areas):
        meta.add(
            f"mda{i}",
            Section(
                [
                    ("ignore", int(mda.ignored)),
                    ("start", mda.start),
                    ("size", mda.size),
                    ("free_sectors", mda.free_sectors),
                ]
            ),
        )
    for prefix, areas in (("da", pv.data_areas), ("ba", pv.bootloader_areas)):
        for i, area in enumerate(areas):
            meta.add(f"{prefix}{i}", Section([("offset", area.offset), ("size", area.size)]))
    return meta


def pv_found_args(scan: DeviceScan) -> tuple[Section, str | None, Section | None]:
    """``(pvmeta, vgname, metadata)`` for ``Client.pv_found``."""
    assert scan.pv is not None
    pvmeta = build_pvmeta(scan.pv, scan.device.devno)
    vg = scan.pv.vg
    if vg is None:
        return pvmeta, None, None
    return pvmeta, vg.name, vg.section


# -- talking to the daemon ------------------------------------------------------


@dataclass
class ScanReport:
    """What a scan did; ``messages`` are for humans, the rest for tests and callers."""

    scanned: list[DeviceScan] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # PV uuids sent with pv_found
    gone: list[int] = field(default_factory=list)  # devnos sent with pv_gone
    duplicates: list[DeviceScan] = field(default_factory=list)
    populated: bool = False
    refreshed_vgs: list[str] = field(default_factory=list)  # VG uuids sent with vg_update
    global_invalid_cleared: bool = False
    messages: list[str] = field(default_factory=list)

    def merge(self, other: ScanReport) -> None:
        self.scanned += other.scanned
        self.found += other.found
        self.gone += other.gone
        self.duplicates += other.duplicates
        self.populated |= other.populated
        self.refreshed_vgs += other.refreshed_vgs
        self.global_invalid_cleared |= other.global_invalid_cleared
        self.messages += other.messages


DeviceSource = Callable[[], list[Device]]


class ScanError(Exception):
    """The scan could not be carried out (daemon refused, another command populating)."""


class Scanner:
    """Runs the population, single-device and watch protocols over a :class:`Client`.

    ``devices`` returns the full device set (already filtered) each time a
    full population runs; ``dev_filter`` decides about named devices.
    """

    def __init__(
        self,
        client: Client,
        devices: DeviceSource,
        dev_filter: DeviceFilter | None = None,
        *,
        update_timeout: int = UPDATE_TIMEOUT,
    ) -> None:
        self.client = client
        self.devices = devices
        self.filter = dev_filter or DeviceFilter()
        self.token = self.filter.token
        self.update_timeout = update_timeout
        client.token = self.token
        client.cmd = CMD
        client.update_timeout = update_timeout

    # -- helpers ---------------------------------------------------------------
    def global_info(self) -> Section:
        """``get_global_info`` with token ``skip``, as LVM's global-info path sends it."""
        return check_ok("get_global_info", self.client.call("get_global_info", token="skip"))

    def _set_global_info(self, **fields: int | str) -> None:
        check_ok("set_global_info", self.client.call("set_global_info", None, token="skip", **fields))

    def _send_device(self, scan: DeviceScan, report: ScanReport) -> None:
        """``pv_found`` for a PV, ``pv_gone`` by device for anything else."""
        if scan.pv is not None:
            pvmeta, vgname, metadata = pv_found_args(scan)
            try:
                self.client.pv_found(pvmeta, vgname, metadata)
                report.found.append(scan.pv.uuid)
            except RequestFailed as e:
                report.messages.append(f"{scan.device.path}: pv_found refused: {e.reason}")
            return
        try:
            self.client.pv_gone(device=scan.device.devno)
        except NotFound:
            pass  # it was not cached: nothing to forget (LVM ignores this too)
        report.gone.append(scan.device.devno)

    @staticmethod
    def _describe(scan: DeviceScan, report: ScanReport, quiet_no_label: bool) -> None:
        if scan.error is not None and not (quiet_no_label and scan.error.kind == "no_label"):
            report.messages.append(f"{scan.device.path}: skipped: {scan.error}")
        if scan.pv is not None:
            for problem in scan.pv.problems:
                report.messages.append(f"{scan.device.path}: PV {scan.pv.uuid}: {problem}")

    # -- full population -------------------------------------------------------
    def populate(
        self, devices: Sequence[Device] | None = None, *, quiet_no_label: bool = True, checked: bool = False
    ) -> ScanReport:
        """Repopulate the whole cache from ``devices`` (default: the device source).

        Like LVM's commands, start with ``get_global_info`` (the token check)
        unless the caller ``checked`` already.
        """
        report = ScanReport(populated=True)
        devs = sorted(self.devices() if devices is None else devices, key=lambda d: (d.devno, d.path))
        scans = [read_device(d) for d in devs]
        report.scanned = scans
        if not checked:
            self.global_info()
        self._start_update()
        try:
            self.client.pv_clear_all()
            seen: dict[str, DeviceScan] = {}
            for scan in scans:
                self._describe(scan, report, quiet_no_label)
                if scan.pv is None:
                    continue
                first = seen.get(scan.pv.uuid)
                if first is not None:
                    report.duplicates.append(scan)
                    report.messages.append(
                        f"{scan.device.path}: duplicate of PV {scan.pv.uuid} on {first.device.path}; not used"
                    )
                    self._send_device(DeviceScan(scan.device), report)
                    continue
                seen[scan.pv.uuid] = scan
                self._send_device(scan, report)
            self.client.token_update(self.token)
        except LvmetadError as e:
            raise ScanError(f"cache population failed: {e}") from e
        info = self.global_info()
        if report.duplicates:
            self._set_global_info(global_disable=1, disable_reason="DUPLICATES")
        elif info.get_int64("global_disable") == 1 and "DUPLICATES" in (info.get_str("disable_reason") or ""):
            self._set_global_info(global_disable=0)
        return report

    def _start_update(self) -> None:
        """``token_update "update in progress"``, waiting while another command populates."""
        deadline = time.monotonic() + self.update_timeout
        delay = 0.05
        while True:
            try:
                self.client.token_update(UPDATE_IN_PROGRESS, update_timeout=self.update_timeout)
                return
            except TokenUpdating as e:
                if time.monotonic() >= deadline:
                    raise ScanError(f"another command (pid {e.update_pid}) is populating the cache") from e
            except LvmetadError as e:
                raise ScanError(f"cannot start cache population: {e}") from e
            time.sleep(delay)  # LVM waits 1-2 s here; we poll faster
            delay = min(delay * 2, 1.0)

    # -- single devices ---------------------------------------------------------
    def rescan(self, devices: Sequence[Device]) -> ScanReport:
        """``pvscan --cache DEV...``: refresh only these devices (populate first if needed)."""
        wanted = [d for d in devices if self.filter.accepts(d.path)]
        report = ScanReport()
        for d in devices:
            if d not in wanted:
                report.messages.append(f"{d.path}: rejected by the filter")
        info = self.global_info()
        if info.get_str_allow_empty("token") != self.token:
            known = {d.devno: d for d in self.devices()}
            for d in wanted:
                known.setdefault(d.devno, d)
            report.merge(self.populate(list(known.values()), checked=True))
            return report
        try:
            for d in wanted:
                scan = read_device(d)
                report.scanned.append(scan)
                self._describe(scan, report, quiet_no_label=False)
                self._send_device(scan, report)
        except LvmetadError as e:
            raise ScanError(f"rescan failed: {e}") from e
        return report

    # -- watch --------------------------------------------------------------------
    def watch_once(self) -> ScanReport:
        """One iteration of ``--watch``: react to a foreign token, global_invalid, vg_invalid."""
        report = ScanReport()
        info = self.global_info()
        if info.get_int64("global_invalid") == 1 or info.get_str_allow_empty("token") != self.token:
            invalid = info.get_int64("global_invalid") == 1
            report.merge(self.populate(checked=True))
            if invalid:
                self._set_global_info(global_invalid=0)
                report.global_invalid_cleared = True
        try:
            vgs = self.client.vg_list().section("volume_groups") or Section()
            for vgid, entry in list(vgs.sections()):
                try:
                    reply = self.client.vg_lookup(uuid=vgid, name=entry.get_str("name"))
                except NotFound:
                    continue  # removed since vg_list
                if reply.find("vg_invalid") is not None:
                    report.merge(self.refresh_vg(vgid, reply))
        except LvmetadError as e:
            raise ScanError(f"watch: {e}") from e
        return report

    def refresh_vg(self, vgid: str, lookup: Section) -> ScanReport:
        """Re-read a VG marked invalid from its PVs and send the disk's metadata with vg_update."""
        report = ScanReport()
        all_devices = {d.devno: d for d in self.devices()}
        pvids: set[str] = set()
        candidates: list[Device] = []
        for _, pv in (lookup.section("metadata/physical_volumes") or Section()).sections():
            pvid = pv.get_str("id")
            if pvid:
                pvids.add(pvid)
            devno = pv.get_int64("device")
            if devno is not None and devno in all_devices:
                candidates.append(all_devices[devno])
        scans = [read_device(d) for d in candidates]
        newest = _newest_vg(scans, vgid)
        if newest is None or not pvids <= {s.pv.uuid for s in scans if s.pv is not None}:
            # PVs moved or the VG is no longer where the cache thinks: read every device
            scans = [read_device(d) for d in all_devices.values()]
            newest = _newest_vg(scans, vgid)
        report.scanned = scans
        if newest is None:
            report.messages.append(f"VG {vgid}: no metadata on disk any more; repopulating")
            report.merge(self.populate())
            return report
        name, metadata = newest
        self.client.vg_update(name, metadata)
        report.refreshed_vgs.append(vgid)
        members = {pv.get_str("id") for _, pv in (metadata.section("physical_volumes") or Section()).sections()}
        for scan in scans:
            if scan.pv is not None and scan.pv.uuid in members:
                self.client.pv_found(build_pvmeta(scan.pv, scan.device.devno))
                report.found.append(scan.pv.uuid)
        return report


def _newest_vg(scans: Iterable[DeviceScan], vgid: str) -> tuple[str, Section] | None:
    best: tuple[int, str, Section] | None = None
    for scan in scans:
        vg = scan.pv.vg if scan.pv is not None else None
        if vg is not None and vg.id == vgid and (best is None or vg.seqno > best[0]):
            best = (vg.seqno, vg.name, vg.section)
    return None if best is None else (best[1], best[2])


# -- command line ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pylvmetad-scan",
        description="Read LVM2 PV labels and metadata from devices; with --cache, populate lvmetad as pvscan --cache does.",
    )
    p.add_argument("--cache", action="store_true", help="send what is found to lvmetad (else only print it)")
    p.add_argument(
        "--socket",
        "-s",
        metavar="PATH",
        help=f"lvmetad socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )
    p.add_argument(
        "--filter",
        action="append",
        metavar="REGEX",
        help="an LVM filter entry a|REGEX| or r|REGEX| (repeatable, in order), in place of lvm.conf's "
        "devices/global_filter ($LVM_SYSTEM_DIR or /etc/lvm; LVM's default a|.*/|); a bare REGEX means a|REGEX|",
    )
    p.add_argument(
        "--device-number",
        action="append",
        default=[],
        metavar="PATH=DEVNO",
        help="device number for PATH (N or MAJOR:MINOR); needed for image files that must not get a fake one",
    )
    p.add_argument(
        "--full", action="store_true", help="the DEVICEs are the whole device set: run a full population over them"
    )
    p.add_argument("--watch", action="store_true", help="keep polling lvmetad and rescan what it marks invalid")
    p.add_argument(
        "--watch-disks",
        action="store_true",
        help="keep reading the PVs' metadata area headers (O_DIRECT) and tell lvmetad what changed behind its back",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="with --watch-disks: send the new metadata (vg_update) and rescan changed devices instead of invalidating",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between watch iterations or disk polls (default 1)",
    )
    p.add_argument("--iterations", type=int, default=0, metavar="N", help="stop watching after N iterations (0: never)")
    p.add_argument(
        "--update-timeout", type=int, default=UPDATE_TIMEOUT, metavar="S", help="update_timeout sent (default 10)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also list devices without a label")
    p.add_argument(
        "devices", nargs="*", metavar="DEVICE", help="block devices or image files (default: all block devices)"
    )
    return p


def _print_scans(scans: Iterable[DeviceScan], verbose: bool) -> None:
    for scan in scans:
        pv = scan.pv
        if pv is None:
            if verbose or (scan.error is not None and scan.error.kind != "no_label"):
                print(f"  {scan.device.path}: {scan.error}")
            continue
        vg = pv.vg
        where = f"VG {vg.name} ({vg.id}) seqno {vg.seqno}" if vg is not None else "no VG"
        print(f"  PV {scan.device.path} device {scan.device.devno} {pv.uuid} {where}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        dev_filter = DeviceFilter(config_for(args.filter).global_filter)
        devnos = {}
        for item in args.device_number:
            path, _, value = item.partition("=")
            if not value:
                raise ValueError(f"--device-number wants PATH=DEVNO, got {item!r}")
            devnos[path] = parse_devno(value)
        named = [resolve_device(p, devnos) for p in args.devices]
    except (OSError, ValueError, LvmConfigError) as e:
        print(f"pylvmetad-scan: {e}", file=sys.stderr)
        return 2
    clash: dict[int, Device] = {}
    for d in named:
        other = clash.setdefault(d.devno, d)
        if other.path != d.path:
            print(
                f"pylvmetad-scan: {d.path} and {other.path} have the same device number {d.devno}; use --device-number",
                file=sys.stderr,
            )
            return 2

    def device_set() -> list[Device]:
        base = named if (args.full or args.watch or args.watch_disks) and named else system_block_devices()
        return [d for d in base if dev_filter.accepts(d.path)]

    if args.watch_disks:
        if args.watch:
            print("pylvmetad-scan: --watch and --watch-disks do not go together", file=sys.stderr)
            return 2
        from .watcher import DiskWatcher, run

        client = Client(args.socket, cmd=CMD)
        watcher = DiskWatcher(
            Scanner(client, device_set, dev_filter, update_timeout=args.update_timeout),
            device_set,
            refresh=args.refresh,
            complete=not named,
        )
        try:
            return run(watcher, args.interval, iterations=args.iterations)
        finally:
            client.close()

    if not args.cache and not args.watch:
        _print_scans((read_device(d) for d in (device_set() if not named or args.full else named)), args.verbose)
        return 0

    client = Client(args.socket, cmd=CMD)
    scanner = Scanner(client, device_set, dev_filter, update_timeout=args.update_timeout)
    status = 0
    try:
        if args.watch:
            n = 0
            while True:
                report = scanner.watch_once()
                _report(report)
                n += 1
                if args.iterations and n >= args.iterations:
                    break
                time.sleep(args.interval)
        elif named and not args.full:
            _report(scanner.rescan(named))
        else:
            _report(scanner.populate())
    except (ScanError, LvmetadError) as e:
        print(f"pylvmetad-scan: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        client.close()
    return status


def _report(report: ScanReport) -> None:
    for message in report.messages:
        print(f"  WARNING: {message}", file=sys.stderr)
    if report.populated or report.found or report.gone or report.refreshed_vgs:
        print(
            f"  {len(report.found)} PV(s) sent, {len(report.gone)} device(s) gone"
            + (", cache repopulated" if report.populated else "")
            + (f", {len(report.refreshed_vgs)} VG(s) refreshed" if report.refreshed_vgs else "")
            + (", global_invalid cleared" if report.global_invalid_cleared else "")
        )
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
