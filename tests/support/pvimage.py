"""Small LVM2 PV images in memory, written from the format described in ``scanner.ondisk``.

For tests of the watcher's core that need exact control of what is on disk: a label,
one metadata area, VG text at a chosen place with a chosen seqno, a header whose CRC is
wrong (a torn write), text that wraps around the circular buffer.  ``ondisk.read_pv``
reads what this writes (checked by the tests that use it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pylvmetad.scanner.ondisk import LABEL_ID, LABEL_TYPE, MDA_HEADER_SIZE, MDA_MAGIC, SECTOR_SIZE, lvm_crc

MiB = 1 << 20


def vg_text(name: str, vgid: str, seqno: int, pv_uuids: list[str], extra: str = "") -> str:
    pvs = "".join(
        f'pv{i} {{\nid = "{u}"\ndevice = "/dev/x{i}"\nstatus = ["ALLOCATABLE"]\npe_start = 2048\npe_count = 10\n}}\n'
        for i, u in enumerate(pv_uuids)
    )
    return (
        f'{name} {{\nid = "{vgid}"\nseqno = {seqno}\nformat = "lvm2"\nstatus = ["RESIZEABLE", "READ", "WRITE"]\n'
        f"flags = []\nextent_size = 8192\nmax_lv = 0\nmax_pv = 0\nmetadata_copies = 0\n"
        f"physical_volumes {{\n{pvs}}}\n{extra}}}\n"
        'contents = "Text Format Volume Group"\nversion = 1\ndescription = ""\n'
        'creation_host = "test"\ncreation_time = 1700000000\n'
    )


@dataclass
class PvImage:
    """One PV: ``data`` is the device's bytes; the helpers rewrite parts of it as LVM would."""

    uuid: str  # 32 characters, no dashes
    size: int = 4 * MiB
    mda_start: int = 4096
    mda_size: int = 64 * 1024
    ext_flags: int = 1

    def __post_init__(self) -> None:
        self.data = bytearray(self.size)
        self.write_label()
        self.write_header(None)

    def write_label(self) -> None:
        sector = bytearray(SECTOR_SIZE)
        body = bytearray()
        body += self.uuid.encode()
        body += struct.pack("<Q", self.size)
        body += struct.pack("<QQQQ", self.mda_start + self.mda_size, 0, 0, 0)  # data areas
        body += struct.pack("<QQQQ", self.mda_start, self.mda_size, 0, 0)  # metadata areas
        body += struct.pack("<II", 2, self.ext_flags) + struct.pack("<QQ", 0, 0)  # extension
        sector[32 : 32 + len(body)] = body
        struct.pack_into("<8sQ", sector, 0, LABEL_ID, 1)
        struct.pack_into("<I8s", sector, 20, 32, LABEL_TYPE)
        struct.pack_into("<I", sector, 16, lvm_crc(bytes(sector[20:])))
        self.data[SECTOR_SIZE : 2 * SECTOR_SIZE] = sector

    def wipe_label(self) -> None:
        self.data[0 : 4 * SECTOR_SIZE] = bytes(4 * SECTOR_SIZE)

    def write_header(self, locn: tuple[int, int, int, int] | None, *, torn: bool = False) -> None:
        header = bytearray(MDA_HEADER_SIZE)
        struct.pack_into("<16sIQQ", header, 4, MDA_MAGIC, 1, self.mda_start, self.mda_size)
        if locn is not None:
            struct.pack_into("<QQII", header, 40, *locn)
        crc = lvm_crc(bytes(header[4:]))
        struct.pack_into("<I", header, 0, crc ^ (1 if torn else 0))
        self.data[self.mda_start : self.mda_start + MDA_HEADER_SIZE] = header

    def write_text(self, text: str, offset: int = MDA_HEADER_SIZE, *, commit: bool = True) -> tuple[int, int, int, int]:
        """Text at ``offset`` of the area (wrapping past its end), then (``commit``) the header."""
        raw = text.encode() + b"\0"
        first = min(len(raw), self.mda_size - offset)
        base = self.mda_start
        self.data[base + offset : base + offset + first] = raw[:first]
        rest = raw[first:]
        if rest:
            self.data[base + MDA_HEADER_SIZE : base + MDA_HEADER_SIZE + len(rest)] = rest
        locn = (offset, len(raw), lvm_crc(raw), 0)
        if commit:
            self.write_header(locn)
        return locn
