"""Read LVM2 physical volumes from disk: label, PV header, metadata areas, VG text.

Rules of this module:

* Pure reading.  The input is ``bytes`` or a seekable binary file; nothing is
  written, no daemon is contacted, no device is opened here (``scan`` opens
  devices and talks to the daemon).  The only import from pylvmetad is
  ``codec``, to parse the metadata text.
* A damaged device never raises anything but :class:`OnDiskError` (with a
  machine-readable ``kind`` and a human ``reason``).  Damage confined to one
  metadata area does not reject the PV: the area is reported in
  :attr:`PhysicalVolume.problems` and left out, as LVM does.

The format (LVM2 "text" format, label type ``LVM2 001``)
========================================================

All integers are little-endian.  A sector is 512 bytes.  The CRC used
everywhere is LVM's: the reflected CRC-32 (polynomial 0xEDB88320, table
driven, one byte at a time) started from the register value ``0xf597a6cf``
and with *no* final inversion.  In terms of zlib:
``crc(data) = ~zlib.crc32(data, ~0xf597a6cf) & 0xffffffff``; a CRC over two
pieces continues the register from the first piece into the second.

Label (one of the first four sectors)
-------------------------------------
LVM looks for the label in sectors 0..3 and uses the first sector that
carries a valid one.  The label header is the first 32 bytes of that sector:

==========  =====  ===================================================
offset      size   field
==========  =====  ===================================================
0           8      ``id`` = ``LABELONE``
8           8      ``sector_xl``: the sector number the label is in
16          4      ``crc_xl``: CRC of bytes 20..511 of the sector
20          4      ``offset_xl``: where the PV header starts in the
                   sector (32 in practice)
24          8      ``type`` = ``LVM2 001``
==========  =====  ===================================================

A sector whose ``sector_xl`` is not its own number, or whose CRC does not
match, is not a label (LVM warns and goes on looking in the next sectors).

PV header (at ``offset_xl`` inside the label sector)
----------------------------------------------------
* ``pv_uuid``: 32 ASCII characters, shown with hyphens after characters
  6, 10, 14, 18, 22 and 26 (groups 6-4-4-4-4-4-6).
* ``device_size_xl`` (u64): the device size in bytes when the PV was written.
* Data area list: ``(offset u64, size u64)`` pairs in bytes from the start of
  the device, ended by an entry whose offset is 0.  A PV has one data area
  whose size is 0 ("up to the end of the device").
* Metadata area list: same shape, same terminator.  Each entry locates a
  metadata area (normally one at 4096, optionally a second at the end).
* Extension (version 2 since LVM 2.02.143; absent on older PVs, where the
  version reads as 0): ``version`` (u32), ``flags`` (u32; bit 0 "PV in use by
  a VG"), then a bootloader area list of the same shape as the others.

All of this must fit in the 512-byte label sector.

Metadata area
-------------
An area starts with a 512-byte header:

==========  =====  ===================================================
offset      size   field
==========  =====  ===================================================
0           4      ``checksum``: CRC of bytes 4..511 of the header
4           16     ``magic`` = `` LVM2 x[5A%r0N*>``
20          4      ``version`` = 1
24          8      ``start``: the area's offset on the device (equals
                   the PV header's entry)
32          8      ``size``: the area's size in bytes, header included
40          24*n   ``raw_locn`` list: ``offset u64`` (from the area
                   start), ``size u64`` (bytes of text), ``checksum u32``
                   (CRC of the text), ``flags u32`` (bit 0: the area is
                   *ignored*), ended by an all-zero entry
==========  =====  ===================================================

The first ``raw_locn`` locates the current VG metadata text; an orphan PV
has no entry (or a zero one).  The rest of the area after the header is a
circular buffer: text that would run past the end of the area continues at
``start + 512``.  The text is NUL-terminated (the NUL is inside ``size`` and
the checksum).  An area whose first ``raw_locn`` has the *ignored* flag set
holds no metadata that LVM uses (``pvchange --metadataignore y``).

Metadata text
-------------
LVM config syntax: one section named after the VG, holding the VG
(``id``, ``seqno``, ``format``, ``status``, ``flags``, ``extent_size``, ...,
``physical_volumes { pvN {...} }``, ``logical_volumes {...}``), then header
fields at the top level: ``contents = "Text Format Volume Group"``,
``version = 1``, ``description``, ``creation_host``, ``creation_time``.

Free space LVM reports for an area (``free_sectors``)
----------------------------------------------------
After reading an area's metadata, LVM records how much room a further copy
of the metadata would still have: with ``used`` = the text size rounded up to
whole sectors and ``buffer`` = area size - 512, ``free_sectors`` is 0 when
``2 * used >= buffer`` and otherwise ``(buffer - 2 * used) / 2 / 512`` (integer
division).  An empty area (orphan PV) thus reports ``buffer / 1024``.  This
is the LVM 2.02 computation the recorded ``pv_found`` traffic shows (1019 for
an orphan's 1020 KiB area, 1017 for a fresh one-PV VG); LVM 2.03's
``pvs -o pv_mda_free`` computes it differently (up to a sector less), so do
not compare with that.  An ignored area, or one whose text could not be read,
reports 0.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from ..wire.codec import ParseError, Section, parse

__all__ = [
    "INITIAL_CRC",
    "DiskArea",
    "MetadataArea",
    "OnDiskError",
    "PhysicalVolume",
    "RawLocation",
    "VgMetadata",
    "decode_metadata_text",
    "format_uuid",
    "lvm_crc",
    "read_pv",
    "text_extents",
]

SECTOR_SIZE = 512
LABEL_SCAN_SECTORS = 4
LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MDA_HEADER_SIZE = 512
MDA_VERSION = 1
INITIAL_CRC = 0xF597A6CF
RAW_LOCN_IGNORED = 0x1
PV_EXT_USED = 0x1

_LABEL_HEADER = struct.Struct("<8sQII8s")
_DISK_LOCN = struct.Struct("<QQ")
_MDA_HEADER = struct.Struct("<I16sIQQ")
_RAW_LOCN = struct.Struct("<QQII")
_UUID_GROUPS = (6, 4, 4, 4, 4, 4, 6)

#: top-level fields of the metadata text that describe the write, not the VG
TEXT_HEADER_FIELDS = ("contents", "version", "description", "creation_host", "creation_time")


def lvm_crc(data: bytes | bytearray | memoryview, crc: int = INITIAL_CRC) -> int:
    """LVM's CRC-32 of ``data``, continuing from ``crc`` (default: LVM's initial value)."""
    return ~zlib.crc32(data, ~crc & 0xFFFFFFFF) & 0xFFFFFFFF


def format_uuid(raw: str) -> str:
    """``32 characters`` → ``6-4-4-4-4-4-6`` groups joined by hyphens."""
    parts = []
    pos = 0
    for n in _UUID_GROUPS:
        parts.append(raw[pos : pos + n])
        pos += n
    return "-".join(parts)


class OnDiskError(Exception):
    """The device holds no usable PV.

    ``kind`` is one of: ``no_label`` (no LVM label at all — not a PV),
    ``bad_label`` (a ``LABELONE`` sector with a wrong CRC, sector number or
    type), ``bad_pv_header`` (the PV header does not fit its sector or its uuid
    is not text), ``truncated`` (the source ends before the label sector),
    ``io`` (reading failed).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class DiskArea:
    """One ``(offset, size)`` entry of a PV header list, in bytes."""

    offset: int
    size: int


@dataclass(frozen=True)
class RawLocation:
    """One ``raw_locn`` of a metadata area header."""

    offset: int
    size: int
    checksum: int
    flags: int

    @property
    def ignored(self) -> bool:
        return bool(self.flags & RAW_LOCN_IGNORED)


@dataclass
class VgMetadata:
    """The VG metadata text of one metadata area, parsed."""

    name: str
    #: the VG section's content (what ``pv_found``/``vg_update`` send as ``metadata``)
    section: Section
    #: the top-level fields outside the VG section (contents, version, description, ...)
    header: Section
    text: str

    @property
    def id(self) -> str:
        return self.section.get_str("id") or ""

    @property
    def seqno(self) -> int:
        value = self.section.get_int64("seqno")
        return -1 if value is None else value


@dataclass
class MetadataArea:
    """A metadata area whose header was read and checked."""

    start: int
    size: int
    raw_locns: list[RawLocation]
    #: VG metadata, when the area is in use, not ignored and its text is valid
    vg: VgMetadata | None = None
    #: why the text of an in-use area could not be used, if it could not
    error: str | None = None
    #: set once the metadata was read successfully (see the module docstring)
    free_sectors: int = 0

    @property
    def ignored(self) -> bool:
        return bool(self.raw_locns) and self.raw_locns[0].ignored


@dataclass
class PhysicalVolume:
    """Everything LVM reads from a PV's label sector and metadata areas."""

    label_sector: int
    uuid: str
    device_size: int
    data_areas: list[DiskArea]
    #: the PV header's metadata area entries, in order (whether readable or not)
    metadata_area_locations: list[DiskArea]
    #: the areas whose header was valid, in PV header order
    metadata_areas: list[MetadataArea]
    ext_version: int
    ext_flags: int
    bootloader_areas: list[DiskArea]
    #: damage found that did not disqualify the PV (bad area header, bad text CRC, ...)
    problems: list[str] = field(default_factory=list)

    @property
    def vg(self) -> VgMetadata | None:
        """The VG metadata LVM would use: the highest seqno over the usable areas."""
        best: VgMetadata | None = None
        for mda in self.metadata_areas:
            if mda.vg is not None and (best is None or mda.vg.seqno > best.seqno):
                best = mda.vg
        return best


# -- reading helpers -----------------------------------------------------------

Source = bytes | bytearray | memoryview | BinaryIO


class _Reader:
    """``read_at`` over bytes or a seekable file, with short reads reported."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def read_at(self, offset: int, size: int) -> bytes:
        src = self.source
        if isinstance(src, bytes | bytearray | memoryview):
            return bytes(src[offset : offset + size])
        try:
            src.seek(offset)
            out = bytearray()
            while len(out) < size:
                chunk = src.read(size - len(out))
                if not chunk:
                    break
                out += chunk
        except OSError as e:
            raise OnDiskError("io", f"read of {size} bytes at {offset} failed: {e}") from e
        return bytes(out)


def _disk_list(sector: bytes, pos: int, what: str) -> tuple[list[DiskArea], int]:
    """Read ``(offset, size)`` pairs up to the zero-offset terminator."""
    areas: list[DiskArea] = []
    while True:
        if pos + _DISK_LOCN.size > len(sector):
            raise OnDiskError("bad_pv_header", f"{what} list runs past the end of the label sector")
        offset, size = _DISK_LOCN.unpack_from(sector, pos)
        pos += _DISK_LOCN.size
        if offset == 0:
            return areas, pos
        areas.append(DiskArea(offset, size))


def _find_label(reader: _Reader) -> tuple[int, bytes]:
    """The first valid label sector; raises when there is none."""
    head = reader.read_at(0, LABEL_SCAN_SECTORS * SECTOR_SIZE)
    bad: list[str] = []
    for n in range(LABEL_SCAN_SECTORS):
        sector = head[n * SECTOR_SIZE : (n + 1) * SECTOR_SIZE]
        if not sector.startswith(LABEL_ID):
            continue
        if len(sector) < SECTOR_SIZE:
            raise OnDiskError("truncated", f"label in sector {n} is cut short ({len(sector)} bytes)")
        _ident, sector_xl, crc_xl, offset_xl, label_type = _LABEL_HEADER.unpack_from(sector)
        if sector_xl != n:
            bad.append(f"label in sector {n} claims sector {sector_xl}")
        elif lvm_crc(sector[20:]) != crc_xl:
            bad.append(
                f"label in sector {n} has a bad CRC (stored {crc_xl:#010x}, computed {lvm_crc(sector[20:]):#010x})"
            )
        elif label_type != LABEL_TYPE:
            bad.append(f"label in sector {n} has unknown type {label_type!r}")
        elif not _LABEL_HEADER.size <= offset_xl <= SECTOR_SIZE - 40:
            bad.append(f"label in sector {n} has PV header offset {offset_xl} outside the sector")
        else:
            return n, sector
    if bad:
        raise OnDiskError("bad_label", "; ".join(bad))
    if len(head) < SECTOR_SIZE * LABEL_SCAN_SECTORS:
        raise OnDiskError("truncated", f"only {len(head)} bytes: too short for a label, none found")
    raise OnDiskError("no_label", "no LVM label in the first four sectors")


def _read_mda(reader: _Reader, loc: DiskArea, problems: list[str], with_text: bool = True) -> MetadataArea | None:
    """Read and check one metadata area; None (with a problem noted) if its header is unusable."""
    where = f"metadata area at {loc.offset}"
    header = reader.read_at(loc.offset, MDA_HEADER_SIZE)
    if len(header) < MDA_HEADER_SIZE:
        problems.append(f"{where}: truncated header ({len(header)} bytes)")
        return None
    checksum, magic, version, start, size = _MDA_HEADER.unpack_from(header)
    if lvm_crc(header[4:]) != checksum:
        problems.append(f"{where}: header CRC mismatch")
        return None
    if magic != MDA_MAGIC:
        problems.append(f"{where}: wrong magic {magic!r}")
        return None
    if version != MDA_VERSION:
        problems.append(f"{where}: unknown header version {version}")
        return None
    if start != loc.offset:
        problems.append(f"{where}: header says it starts at {start}")
        return None
    locns: list[RawLocation] = []
    pos = _MDA_HEADER.size
    while pos + _RAW_LOCN.size <= MDA_HEADER_SIZE:
        rl = RawLocation(*_RAW_LOCN.unpack_from(header, pos))
        pos += _RAW_LOCN.size
        if rl.offset == 0 and rl.size == 0 and rl.checksum == 0 and rl.flags == 0:
            break
        locns.append(rl)
    mda = MetadataArea(start=start, size=size, raw_locns=locns)
    if mda.ignored or not with_text:
        return mda
    if not locns or locns[0].offset == 0 or locns[0].size == 0:
        mda.free_sectors = _free_sectors(size, 0)
        return mda
    try:
        mda.vg = _read_text(reader, mda, locns[0])
    except ValueError as e:
        mda.error = str(e)
        problems.append(f"{where}: {e}")
        return mda
    mda.free_sectors = _free_sectors(size, locns[0].size)
    return mda


def _free_sectors(area_size: int, text_size: int) -> int:
    used = -(-text_size // SECTOR_SIZE) * SECTOR_SIZE
    buffer = area_size - MDA_HEADER_SIZE
    if 2 * used >= buffer:
        return 0
    return (buffer - 2 * used) // 2 // SECTOR_SIZE


def text_extents(mda: MetadataArea, rl: RawLocation) -> list[DiskArea]:
    """Where the text located by ``rl`` lies on the device: one extent, or two when it wraps.

    Raises ``ValueError`` when ``rl`` does not fit the area's circular buffer.
    """
    if rl.offset < MDA_HEADER_SIZE or rl.offset >= mda.size:
        raise ValueError(f"metadata offset {rl.offset} outside the area (size {mda.size})")
    first = min(rl.size, mda.size - rl.offset)
    wrap = rl.size - first
    if wrap > rl.offset - MDA_HEADER_SIZE:
        raise ValueError(f"metadata of {rl.size} bytes does not fit the circular buffer")
    extents = [DiskArea(mda.start + rl.offset, first)]
    if wrap:
        extents.append(DiskArea(mda.start + MDA_HEADER_SIZE, wrap))
    return extents


def decode_metadata_text(data: bytes, rl: RawLocation) -> VgMetadata:
    """The text ``rl`` locates, as read from its extents: length and CRC checked, then parsed.

    Raises ``ValueError`` for a short read, a CRC mismatch (e.g. a write still under
    way) or text that is not one VG.
    """
    if len(data) < rl.size:
        raise ValueError(f"metadata text truncated ({len(data)} of {rl.size} bytes)")
    data = data[: rl.size]
    crc = lvm_crc(data)
    if crc != rl.checksum:
        raise ValueError(f"metadata text CRC mismatch (stored {rl.checksum:#010x}, computed {crc:#010x})")
    text = data.rstrip(b"\0").decode("utf-8", errors="replace")
    return parse_metadata_text(text)


def _read_text(reader: _Reader, mda: MetadataArea, rl: RawLocation) -> VgMetadata:
    """The metadata text located by ``rl``, wrap-around resolved, CRC checked, parsed."""
    data = b"".join(reader.read_at(e.offset, e.size) for e in text_extents(mda, rl))
    return decode_metadata_text(data, rl)


def parse_metadata_text(text: str) -> VgMetadata:
    """Split LVM's metadata text into the VG section and the header fields."""
    try:
        tree = parse(text)
    except ParseError as e:
        raise ValueError(f"metadata text does not parse: {e}") from e
    vgs = list(tree.sections())
    if len(vgs) != 1:
        raise ValueError(f"metadata text holds {len(vgs)} top-level sections, expected one VG")
    name, section = vgs[0]
    header = Section([(k, v) for k, v in tree.items if not isinstance(v, Section)])
    if header.get_str("contents") != "Text Format Volume Group" or header.get_int64("version") != 1:
        raise ValueError("metadata text lacks the 'Text Format Volume Group' version 1 header")
    if not section.get_str("id") or section.get_int64("seqno") is None:
        raise ValueError(f"VG {name!r} has no id or seqno")
    return VgMetadata(name=name, section=section, header=header, text=text)


def read_pv(source: Source, *, with_text: bool = True) -> PhysicalVolume:
    """Read the PV on ``source`` (bytes or a seekable binary file).

    Raises :class:`OnDiskError` when there is no usable label/PV header;
    damaged metadata areas only add to :attr:`PhysicalVolume.problems`.
    ``with_text=False`` stops at the metadata area headers (their
    ``raw_locns``): no VG text is read, ``vg`` is None and ``free_sectors`` 0.
    """
    reader = _Reader(source)
    label_sector, sector = _find_label(reader)
    offset_xl = _LABEL_HEADER.unpack_from(sector)[3]
    raw_uuid = sector[offset_xl : offset_xl + 32]
    try:
        uuid_text = raw_uuid.decode("ascii")
    except UnicodeDecodeError as e:
        raise OnDiskError("bad_pv_header", f"PV uuid is not ASCII: {raw_uuid!r}") from e
    if not uuid_text.isprintable() or len(uuid_text) != 32:
        raise OnDiskError("bad_pv_header", f"PV uuid is not 32 printable characters: {raw_uuid!r}")
    (device_size,) = struct.unpack_from("<Q", sector, offset_xl + 32)
    pos = offset_xl + 40
    data_areas, pos = _disk_list(sector, pos, "data area")
    mda_locations, pos = _disk_list(sector, pos, "metadata area")
    ext_version = ext_flags = 0
    bootloader_areas: list[DiskArea] = []
    if pos + 8 <= SECTOR_SIZE:
        ext_version, ext_flags = struct.unpack_from("<II", sector, pos)
        if ext_version:
            bootloader_areas, pos = _disk_list(sector, pos + 8, "bootloader area")
        else:
            ext_flags = 0
    problems: list[str] = []
    mdas: list[MetadataArea] = []
    for loc in mda_locations:
        mda = _read_mda(reader, loc, problems, with_text)
        if mda is not None:
            mdas.append(mda)
    return PhysicalVolume(
        label_sector=label_sector,
        uuid=format_uuid(uuid_text),
        device_size=device_size,
        data_areas=data_areas,
        metadata_area_locations=mda_locations,
        metadata_areas=mdas,
        ext_version=ext_version,
        ext_flags=ext_flags,
        bootloader_areas=bootloader_areas,
        problems=problems,
    )
