"""Builders for realistic lvmetad requests, and a socket-less LVM "command".

What this module holds:

* text builders that produce what LVM 2.02 really sends (``pvmeta``,
  ``pv_found``, VG ``metadata``, ``vg_update``, any other request), shaped
  after the recorded traffic in ``shared/conformance``;
* :class:`FakeClock`, so token timeouts are tested without sleeping;
* :class:`Session`, which plays an LVM command against a
  :class:`~pylvmetad.metad.handlers.RequestHandler`: it adds ``token``, ``pid``,
  ``cmd`` and ``update_timeout`` to every request, runs the cache
  population protocol and parses replies.

Builders return request *text* (what goes on the wire, without the ``##``
terminator); nothing here touches a socket or the cache tables directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pylvmetad.metad.cache import CacheState
from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.wire.codec import Atom, Section, Value, format_tree, parse
from pylvmetad.wire.replies import Reply

IP = "update in progress"
#: the token LVM computes for its default filter ``[ "a|.*/|" ]``
FILTER = "filter:3239235440"
OTHER_FILTER = "filter:1698858266"
MISMATCH_REASON = "another command has populated the cache"
STALE_UPDATER_REASON = "another command has populated the lvmetad cache"
PV_DEV_SIZE = 20971520

Fields = Sequence[tuple[str, Value | Section]]


def pvid(n: int) -> str:
    """A PV uuid in LVM's format, distinct per ``n``."""
    return f"PV{n:04d}-bbbb-cccc-dddd-eeee-ffff-{n:06d}"


def vgid(n: int) -> str:
    """A VG uuid in LVM's format, distinct per ``n``."""
    return f"VG{n:04d}-bbbb-cccc-dddd-eeee-ffff-{n:06d}"


def section_text(key: str, items: Fields) -> str:
    """``key { ... }`` written by LVM's tree writer."""
    return format_tree(Section([(key, Section(list(items)))]))


def fields_text(**fields: Value | None) -> str:
    """Top-level ``key=value`` lines (skipping fields given as None)."""
    return format_tree(Section([(k, v) for k, v in fields.items() if v is not None]))


# ---------------------------------------------------------------------------
# PVs
# ---------------------------------------------------------------------------
def pvmeta_items(
    pv: str,
    device: int,
    *,
    dev_size: int = PV_DEV_SIZE,
    mda_ignore: int | None = 0,
    ext_flags: int = 1,
) -> list[tuple[str, Value | Section]]:
    """The children of a ``pvmeta`` section in LVM's order.

    ``mda_ignore=None`` leaves out the metadata area (a PV created with
    ``--metadatacopies 0``).
    """
    items: list[tuple[str, Value | Section]] = [
        ("device", device),
        ("dev_size", dev_size),
        ("format", "lvm2"),
        ("label_sector", 1),
        ("id", pv),
        ("ext_version", 2),
        ("ext_flags", ext_flags),
    ]
    if mda_ignore is not None:
        items.append(
            ("mda0", Section([("ignore", mda_ignore), ("start", 4096), ("size", 1044480), ("free_sectors", 0)]))
        )
    items.append(("da0", Section([("offset", 1048576), ("size", 0)])))
    return items


def pvmeta(pv: str, device: int, *, dev_size: int = PV_DEV_SIZE, mda_ignore: int | None = 0, ext_flags: int = 1) -> str:
    """A ``pvmeta { ... }`` section as ``pv_found`` carries it (see :func:`pvmeta_items`)."""
    return section_text(
        "pvmeta", pvmeta_items(pv, device, dev_size=dev_size, mda_ignore=mda_ignore, ext_flags=ext_flags)
    )


def pv_found(
    pv: str,
    device: int,
    *,
    vgname: str | None = None,
    metadata: str | None = None,
    dev_size: int = PV_DEV_SIZE,
    mda_ignore: int | None = 0,
    ext_flags: int = 1,
) -> str:
    """A ``pv_found``: the PV record and, when the PV has an in-use mda, the VG metadata on it."""
    text = 'request="pv_found"\n' + pvmeta(pv, device, dev_size=dev_size, mda_ignore=mda_ignore, ext_flags=ext_flags)
    if vgname is not None:
        text += fields_text(vgname=vgname)
    if metadata is not None:
        text += metadata
    return text


# ---------------------------------------------------------------------------
# VGs
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PVRef:
    """One entry of a VG's ``physical_volumes``.

    By default it is what LVM writes (``id``, a ``device`` path hint,
    ``status``, ...); ``items`` replaces the whole body for the odd shapes
    the daemon must cope with.
    """

    pvid: str
    status: Value | None = "ALLOCATABLE"
    device_hint: str | None = "/dev/loop0"
    items: Fields | None = None

    def body(self) -> list[tuple[str, Value | Section]]:
        if self.items is not None:
            return list(self.items)
        out: list[tuple[str, Value | Section]] = [("id", self.pvid)]
        if self.device_hint is not None:
            out.append(("device", self.device_hint))
        if self.status is not None:
            out.append(("status", self.status))
        out += [("flags", []), ("dev_size", 131072), ("pe_start", 2048), ("pe_count", 15)]
        return out


def vg_metadata(
    vg_id: str,
    seqno: int,
    pvs: Sequence[str | PVRef] = (),
    lvs: Sequence[str] = (),
    *,
    extra: Fields = (),
) -> str:
    """A VG ``metadata { ... }`` section as LVM exports it.

    ``pvs`` become ``pv0``, ``pv1``, ...; each name in ``lvs`` becomes a
    one-segment linear LV on ``pv0``; ``extra`` fields (e.g. ``tags``) are
    added before ``physical_volumes`` to vary the content at one seqno.
    """
    items: list[tuple[str, Value | Section]] = [
        ("id", vg_id),
        ("seqno", seqno),
        ("format", "lvm2"),
        ("status", ["RESIZEABLE", "READ", "WRITE"]),
        ("flags", []),
        ("extent_size", 8192),
        ("max_lv", 0),
        ("max_pv", 0),
        ("metadata_copies", 0),
        *extra,
    ]
    pv_sections = Section()
    for i, pv in enumerate(pvs):
        ref = pv if isinstance(pv, PVRef) else PVRef(pv)
        pv_sections.add(f"pv{i}", Section(ref.body()))
    items.append(("physical_volumes", pv_sections))
    if lvs:
        lv_sections = Section()
        for i, name in enumerate(lvs):
            segment = Section(
                [
                    ("start_extent", 0),
                    ("extent_count", 1),
                    ("type", "striped"),
                    ("stripe_count", 1),
                    ("stripes", ["pv0", i]),
                ]
            )
            lv = Section(
                [
                    ("id", f"LV{i:04d}-aaaa-bbbb-cccc-dddd-eeee-{i:06d}"),
                    ("status", ["READ", "WRITE", "VISIBLE"]),
                    ("flags", []),
                    ("creation_time", 1795579059),
                    ("creation_host", "vm"),
                    ("segment_count", 1),
                    ("segment1", segment),
                ]
            )
            lv_sections.add(name, lv)
        items.append(("logical_volumes", lv_sections))
    return section_text("metadata", items)


def vg_update(vgname: str, metadata: str) -> str:
    """A ``vg_update`` as a command sends it after committing new metadata."""
    return 'request="vg_update"\n' + fields_text(vgname=vgname) + metadata


def request(name: str, /, **fields: Value | None) -> str:
    """Any other request: ``request="name"`` plus top-level fields (None ones skipped)."""
    return f'request="{name}"\n' + fields_text(**{k: v for k, v in fields.items() if v is not None})


# ---------------------------------------------------------------------------
# Time and the LVM command
# ---------------------------------------------------------------------------
@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand (never starts at 0: update_begin 0 means "none")."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Session:
    """An LVM command talking to the daemon core: adds the common fields, parses replies."""

    handler: RequestHandler
    clock: FakeClock
    token: str = FILTER
    pid: int = 4242
    cmd: str = "lvs"
    update_timeout: int = 10
    replies: list[Reply] = field(default_factory=list)
    #: cleared by a test that deliberately reaches a state where the original
    #: lets an invariant slip (docs/protocol.md §3, invariants)
    invariants_hold: bool = True

    @property
    def state(self) -> CacheState:
        return self.handler.state

    def send(self, body: str, *, token: str | None = None, pid: int | None = None, cmd: str | None = None) -> Reply:
        """Send ``body`` with this command's token/pid/cmd (overridable per call)."""
        text = body + fields_text(
            token=self.token if token is None else token,
            update_timeout=self.update_timeout,
            pid=self.pid if pid is None else pid,
            cmd=self.cmd if cmd is None else cmd,
        )
        reply = self.handler.handle_text(text)
        self.replies.append(reply)
        return reply

    def ask(self, body: str, *, token: str | None = None, pid: int | None = None, cmd: str | None = None) -> Section:
        """Send and parse the reply body."""
        return parse(self.send(body, token=token, pid=pid, cmd=cmd).body)

    def fields(
        self, body: str, *, token: str | None = None, pid: int | None = None, cmd: str | None = None
    ) -> dict[str, object]:
        """Send and return the reply as a dict (for simple replies)."""
        return self.ask(body, token=token, pid=pid, cmd=cmd).to_python()

    def token_update(self, token: str, *, pid: int | None = None, update_timeout: int | None = None) -> Section:
        saved = self.update_timeout
        if update_timeout is not None:
            self.update_timeout = update_timeout
        try:
            return self.ask('request="token_update"\n', token=token, pid=pid)
        finally:
            self.update_timeout = saved

    def populate(self, *pv_found_requests: str, token: str | None = None) -> list[dict[str, object]]:
        """The population protocol of a command (docs/protocol.md §4, population).

        ``token_update`` to "update in progress", ``pv_clear_all``, one
        ``pv_found`` per device, ``token_update`` to the command's filter
        token.  Returns the ``pv_found`` replies.
        """
        final = self.token if token is None else token
        started = self.token_update(IP)
        assert started.get_str("response") == "OK", started
        assert self.fields('request="pv_clear_all"\n', token=IP) == {"response": "OK"}
        found = [self.fields(r, token=IP) for r in pv_found_requests]
        finished = self.token_update(final)
        assert finished.to_python() == {"response": "OK", "prev_token": IP, "update_pid": 0}, finished
        self.token = final
        return found

    def dump(self) -> str:
        return self.send('request="dump"\n').body

    def vg_lookup(self, uuid: str | None = None, name: str | None = None) -> Section:
        return self.ask(request("vg_lookup", uuid=uuid, name=name))


def new_session(*, clock: FakeClock | None = None, daemon_pid: int = 777, pid: int = 4242) -> Session:
    """A fresh daemon core (empty cache, token "") and a command to talk to it."""
    clock = clock if clock is not None else FakeClock()
    handler = RequestHandler(CacheState(clock=clock), daemon_pid=daemon_pid)
    return Session(handler, clock, pid=pid)


def checked_session() -> Iterator[Session]:
    """Fixture body: a fresh session whose cache must be consistent when the test ends."""
    session = new_session()
    yield session
    if session.invariants_hold:
        problems = session.state.check_invariants()
        assert problems == [], problems


def pv_section(reply: Section, index: int) -> Section:
    """``metadata/physical_volumes/pv<index>`` of a vg_lookup reply."""
    found = reply.section(f"metadata/physical_volumes/pv{index}")
    assert found is not None, f"no pv{index} in reply"
    return found


def atoms(value: object) -> list[Atom]:
    """A parsed value as a list of atoms (a scalar is a one-atom list, as in LVM)."""
    if isinstance(value, list):
        return list(value)
    assert isinstance(value, (str, int, float)), value
    return [value]


#: the dump of an empty cache, as the original writes it (docs/protocol.md §5, dump)
EMPTY_DUMP = """# VG METADATA


# PV METADATA


# VGID to VGNAME mapping

vgid_to_vgname {
}

# VGID to outdated PVs mapping


# VGNAME to VGID mapping

vgname_to_vgid {
}

# PVID to VGID mapping

pvid_to_vgid {
}

# DEVICE to PVID mapping

device_to_pvid {
}

# VGID to INFO version mapping

vgid_to_info {
}

# VGID to INFO flags mapping

vgid_to_info {
}
"""
