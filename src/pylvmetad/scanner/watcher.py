"""``pylvmetad-scan --watch-disks``: the I/O around ``diskwatch`` — devices, reads, daemon, clock.

Rules of this module:

* Every decision is ``diskwatch``'s; this module reads what it asks for
  (``directio``: ``O_DIRECT``, one aligned read per PV per poll in the usual
  layout), sends what it decides, and reports back what the daemon took.
* Nothing is written to any device.  The requests sent (``set_vg_info``,
  ``set_global_info``, with ``--refresh`` ``vg_update``/``pv_found``/
  ``pv_gone``/``vg_remove``) change only the cache, never a disk, so the
  next poll cannot see an echo of them: there is nothing to loop on.
* In the steady state (nothing changed) a poll sends nothing to the daemon.
  Only when there is something to tell is ``get_global_info`` asked first:
  a cache whose token is not LVM's (empty: never populated; another filter)
  is not told anything, since LVM's next command repopulates it anyway;
  a cache being populated right now ("update in progress") is told at the
  next poll, after the population (which may have read the disks before
  the change) has ended.

Theory of operation
-------------------
Start: enumerate the devices (the named ones, or the system's block devices
through lvm.conf's ``global_filter``), read each one once (the baseline),
and :meth:`~diskwatch.DiskWatch.reconcile` with the cache (``vg_list`` and a
``vg_lookup`` per VG): a VG the cache holds at an older seqno than the disks
gets its ``set_vg_info`` at once.  Then poll every ``interval`` seconds.

Devices that appear or go away are learnt from the kernel's uevents (a
``NETLINK_KOBJECT_UEVENT`` socket; events of the ``block`` subsystem make
the next poll re-enumerate), and, where that socket cannot be had, by
re-enumerating every :data:`ENUMERATE_SECONDS`.  A device that cannot be
opened or read, or reads short (a loop device detached, a disk of size 0),
is *lost* for that poll and read again at the next.

Stopping: SIGTERM or SIGINT end the wait at once (``signal.set_wakeup_fd``);
the poll under way finishes, the connection is closed, exit status 0.
SIGUSR1 polls at once and then prints ``polled on request: ...``: once that
line is out, everything that was on disk when the signal came has been told
(what a script or a test that just wrote behind the cache's back waits for).
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from ..metad.client import Client, LvmetadError, NotFound, RequestFailed, TokenMismatch, TokenUpdating
from ..metad.protocol import UPDATE_IN_PROGRESS
from ..wire.codec import Section
from .directio import DirectReader
from .diskwatch import Action, DiskWatch, Extent, Observation, PvSetChange, VgChange
from .scan import Device, DeviceSource, ScanError, Scanner

__all__ = ["ENUMERATE_SECONDS", "DiskWatcher", "PollReport", "UeventHints", "run"]

#: without uevents, re-enumerate the device set this often
ENUMERATE_SECONDS = 5.0
NETLINK_KOBJECT_UEVENT = 15
#: the kernel's uevent multicast group
UEVENT_KERNEL_GROUP = 1


class UeventHints:
    """The kernel's block-device uevents (add, remove, change) as a "re-enumerate" hint.

    ``available`` is False where the socket cannot be had (no netlink in this
    namespace); the caller then re-enumerates by the clock.
    """

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        try:
            s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT)
            s.bind((0, UEVENT_KERNEL_GROUP))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock = s
        except (OSError, AttributeError):
            self.sock = None

    @property
    def available(self) -> bool:
        return self.sock is not None

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def drain(self) -> bool:
        """Read every queued event; True when one was about a block device (or some were lost)."""
        if self.sock is None:
            return False
        block = False
        while True:
            try:
                message = self.sock.recv(1 << 16)
            except BlockingIOError:
                return block
            except OSError:  # ENOBUFS: events were dropped; treat as "something changed"
                return True
            if b"\0SUBSYSTEM=block\0" in message + b"\0":
                block = True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@dataclass
class PollReport:
    """What one poll did."""

    reads: int = 0
    observations: dict[int, Observation] = field(default_factory=dict)
    #: one line per request sent (for humans and tests)
    sent: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def changed(self) -> dict[int, Observation]:
        return {d: o for d, o in self.observations.items() if o not in (Observation.SAME, Observation.BASELINE)}


class DiskWatcher:
    """The watch over one device set, telling one daemon (through ``scanner``'s client)."""

    def __init__(
        self, scanner: Scanner, devices: DeviceSource, *, refresh: bool = False, complete: bool = True
    ) -> None:
        self.scanner = scanner
        self.client: Client = scanner.client
        self.devices = devices
        self.refresh = refresh
        #: the device set is the system's (a cached VG on none of them is gone)
        self.complete = complete
        self.core = DiskWatch()
        self.paths: dict[int, Device] = {}
        self.readers: dict[int, DirectReader] = {}

    # -- devices -----------------------------------------------------------------------
    def enumerate(self) -> None:
        """Bring the watched set in line with the device source."""
        now = {d.devno: d for d in self.devices()}
        for devno in [d for d in self.core.devices if d not in now]:
            self.core.remove_device(devno)
            self._close(devno)
            # its path stays known: a --refresh rescan of it sends its pv_gone
        for devno, device in now.items():
            if devno in self.paths and self.paths[devno].path != device.path:
                self._close(devno)
            self.paths[devno] = device
            self.core.add_device(devno, device.path)

    def _close(self, devno: int) -> None:
        reader = self.readers.pop(devno, None)
        if reader is not None:
            reader.close()

    def _read_device(self, devno: int, report: PollReport) -> None:
        want = self.core.plan(devno)
        data: dict[Extent, bytes] = {}
        try:
            reader = self.readers.get(devno)
            if reader is None:
                reader = self.readers[devno] = DirectReader(self.paths[devno].path)
            while want:
                for extent in want:
                    data[extent] = reader.read(extent.offset, extent.size)
                    report.reads += 1
                want = self.core.step(devno, data)
        except OSError as e:
            self._close(devno)
            self.core.lost(devno, f"cannot read: {e.strerror or e}")
        else:
            if not self.core.devices[devno].present:
                self._close(devno)  # reopen next time: a loop device may be attached anew

    # -- polls -------------------------------------------------------------------------
    def poll(self) -> PollReport:
        """Read every watched device once and decide (no request is sent here)."""
        report = PollReport()
        for devno in sorted(self.core.devices):
            self._read_device(devno, report)
        self.core.end_poll()
        report.observations = {d: s.last for d, s in self.core.devices.items()}
        return report

    def start(self) -> PollReport:
        """Enumerate, take the baseline, reconcile with the cache, tell it what is behind."""
        self.enumerate()
        report = self.poll()
        info = self.scanner.global_info()
        if info.get_str_allow_empty("token") == self.scanner.token:
            self.core.reconcile(self._cached_seqnos(), complete=self.complete)
        self.flush(report)
        return report

    def _cached_seqnos(self) -> dict[str, int | None]:
        cached: dict[str, int | None] = {}
        vgs = self.client.vg_list().section("volume_groups") or Section()
        for vgid, _entry in vgs.sections():
            try:
                cached[vgid] = self.client.vg_lookup(uuid=vgid).get_int64("metadata/seqno")
            except NotFound:
                continue
        return cached

    def flush(self, report: PollReport) -> None:
        """Send what the core holds pending; keep what the daemon cannot take now."""
        actions = self.core.pending()
        if not actions:
            return
        info = self.scanner.global_info()
        token = info.get_str_allow_empty("token")
        if token == UPDATE_IN_PROGRESS:
            report.messages.append("the cache is being populated: telling it at the next poll")
            return
        if token != self.scanner.token:
            for action in actions:
                self.core.done(action)
            report.messages.append(
                f"the cache's token is {token!r}, not LVM's {self.scanner.token!r}: "
                "LVM's next command repopulates it; nothing to tell"
            )
            return
        for action in actions:
            try:
                self._send(action, report)
            except (TokenUpdating, TokenMismatch):
                report.messages.append("a population started: telling the cache at the next poll")
                return
            except (RequestFailed, ScanError) as e:
                report.messages.append(f"refused, not retried: {e}")
            self.core.done(action)

    def _send(self, action: Action, report: PollReport) -> None:
        if isinstance(action, VgChange):
            if self.refresh:
                try:
                    self.client.vg_update(action.name, action.metadata)
                    report.sent.append(f"vg_update {action.name} seqno {action.seqno}")
                    return
                except RequestFailed as e:
                    report.messages.append(f"vg_update {action.name} refused ({e}); invalidating instead")
            self.client.set_vg_info(action.version, uuid=action.vgid, name=action.name)
            report.sent.append(f"set_vg_info {action.name} version {action.version}")
            return
        self._send_pv_set(action, report)

    def _send_pv_set(self, action: PvSetChange, report: PollReport) -> None:
        paths = tuple(f"{d.path}: " for d in self.paths.values())
        # a device's own reason is printed as its observation already
        report.messages += [r for r in action.reasons if not r.startswith(paths)]
        if self.refresh:
            devices = [self.paths[d] for d in sorted(action.devnos) if d in self.paths]
            if devices:
                rescan = self.scanner.rescan(devices)
                report.messages += rescan.messages
                report.sent.append(
                    f"rescan of {len(devices)} device(s): {len(rescan.found)} pv_found, {len(rescan.gone)} pv_gone"
                    + (" (cache repopulated)" if rescan.populated else "")
                )
            for vgid in sorted(action.gone_vgs):
                try:
                    self.client.vg_remove(vgid)
                except NotFound:
                    pass
                report.sent.append(f"vg_remove {vgid}")
            return
        self.client.set_global_info(global_invalid=1)
        report.sent.append("set_global_info global_invalid=1")
        for vgid in sorted(action.gone_vgs):
            self.client.set_vg_info(0, uuid=vgid)
            report.sent.append(f"set_vg_info {vgid} version 0")

    def close(self) -> None:
        for devno in list(self.readers):
            self._close(devno)


# -- the loop ----------------------------------------------------------------------------


def _describe(watcher: DiskWatcher, report: PollReport, out: Callable[[str], None]) -> None:
    for devno, obs in sorted(report.changed.items()):
        device = watcher.paths.get(devno)
        out(f"watch-disks: {device.path if device else devno}: {obs.value}")
    for message in report.messages:
        out(f"watch-disks: {message}")
    for line in report.sent:
        out(f"watch-disks: sent {line}")


def _print(line: str) -> None:
    print(line)
    sys.stdout.flush()


def run(
    watcher: DiskWatcher,
    interval: float,
    *,
    iterations: int = 0,
    out: Callable[[str], None] = _print,
) -> int:
    """Watch until SIGTERM/SIGINT (or ``iterations`` polls); returns the exit status.

    The daemon going away between polls is not fatal: what could not be told
    stays pending and is sent once it answers again.
    """
    stop = False
    poll_now = False
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop, poll_now
        if signum == signal.SIGUSR1:
            poll_now = True
        else:
            stop = True

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    old_wakeup = signal.set_wakeup_fd(wake_w)
    hints = UeventHints()
    try:
        report = watcher.start()
        _describe(watcher, report, out)
        pvs = sum(1 for s in watcher.core.devices.values() if s.label is not None)
        out(
            f"watch-disks: watching {len(watcher.core.devices)} device(s), {pvs} PV(s), "
            f"{len(watcher.core.vgs)} VG(s) every {interval:g} s"
            + (" (uevents)" if hints.available else f" (re-enumerating every {ENUMERATE_SECONDS:g} s)")
        )
        polls = 0
        last_enumeration = time.monotonic()
        while not stop and (not iterations or polls < iterations):
            waitables = [wake_r] + ([hints.fileno()] if hints.available else [])
            deadline = time.monotonic() + interval
            while not stop and not poll_now:
                # a uevent does not cut the wait short: the poll comes at its time
                ready, _, _ = select.select(waitables, [], [], max(0.0, deadline - time.monotonic()))
                if wake_r in ready:
                    while True:
                        try:
                            if not os.read(wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                if not ready or time.monotonic() >= deadline:
                    break
                if hints.available and hints.fileno() in ready and hints.drain():
                    watcher.enumerate()
                    last_enumeration = time.monotonic()
            if stop:
                break
            if not hints.available and time.monotonic() - last_enumeration >= ENUMERATE_SECONDS:
                watcher.enumerate()
                last_enumeration = time.monotonic()
            requested, poll_now = poll_now, False
            report = watcher.poll()
            try:
                watcher.flush(report)
            except LvmetadError as e:
                report.messages.append(f"daemon unreachable ({e}); telling it at the next poll")
            _describe(watcher, report, out)
            if requested:
                out(
                    f"watch-disks: polled on request: {len(report.changed)} change(s), "
                    f"{len(report.sent)} request(s) sent, {len(watcher.core.pending())} pending"
                )
            polls += 1
    except (ScanError, LvmetadError) as e:
        print(f"pylvmetad-scan: {e}", file=sys.stderr)
        return 1
    finally:
        hints.close()
        watcher.close()
        signal.set_wakeup_fd(old_wakeup)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        os.close(wake_r)
        os.close(wake_w)
    out("watch-disks: stopped")
    return 0
