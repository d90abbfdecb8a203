"""The ``dump`` reply: every table of the cache as text (docs/protocol.md §5, dump).

Rules of this module: it only reads a :class:`~pylvmetad.metad.cache.CacheState`
and writes the original's layout exactly (its section titles, its
``key = value`` lines with four spaces, tables in table order).  The text
has no ``response`` field, as the C daemon's has not.
"""

from __future__ import annotations

from ...wire.codec import MarkedList, Section, format_tree, quote, to_int32
from ..cache import CacheState


def _table(title: str, name: str, pairs: list[tuple[str, str]]) -> str:
    lines = [f"\n# {title}\n\n{name} {{\n"]
    lines.extend(f"    {k} = {v}\n" for k, v in pairs)
    lines.append("}\n")
    return "".join(lines)


def format_dump(state: CacheState) -> str:
    """The ``dump`` text: every table, in table order."""
    out = ["# VG METADATA\n\n"]
    for metadata in state.vgid_to_metadata.values():
        out.append(format_tree(Section([(metadata.get_str("id") or "unknown", metadata)])))
    out.append("\n# PV METADATA\n\n")
    for pvmeta in state.pvid_to_pvmeta.values():
        out.append(format_tree(Section([(pvmeta.get_str("id") or "unknown", pvmeta)])))
    out.append(
        _table("VGID to VGNAME mapping", "vgid_to_vgname", [(k, quote(v)) for k, v in state.vgid_to_vgname.items()])
    )
    out.append("\n# VGID to outdated PVs mapping\n\n")
    for vgid, pvids in state.vgid_to_outdated_pvs.items():
        record = Section([("pv_list", MarkedList(pvids)), ("vgid", vgid)])
        out.append(format_tree(Section([(vgid, record)])))
    out.append(
        _table(
            "VGNAME to VGID mapping",
            "vgname_to_vgid",
            [(name, quote(vgid)) for name, ids in state.vgname_to_vgid.items() for vgid in ids],
        )
    )
    out.append(_table("PVID to VGID mapping", "pvid_to_vgid", [(k, quote(v)) for k, v in state.pvid_to_vgid.items()]))
    out.append(
        _table(
            "DEVICE to PVID mapping",
            "device_to_pvid",
            [(str(to_int32(d)), quote(p)) for d, p in state.device_to_pvid.items()],
        )
    )
    infos = state.vgid_to_info.items()
    out.append(_table("VGID to INFO version mapping", "vgid_to_info", [(k, str(i.external_version)) for k, i in infos]))
    out.append(_table("VGID to INFO flags mapping", "vgid_to_info", [(k, format(i.flags, "x")) for k, i in infos]))
    return "".join(out)
