"""The adopt file: what a pylvmlockd instance holds, for a successor started with ``-A 1``.

Rules of this module:

* Text in, text out; no files.  The daemon (:mod:`.cli`) writes
  :func:`render` of the core's :meth:`~.core.Lockd.adopt_table` whenever it
  changes, and reads the file back at start-up; the core
  (:meth:`~.core.Lockd.adopt`) carries out :func:`parse`'s table.
* LVM 2.02.188's lvmlockd has no adopt file (§8.6): its ``-A 1`` rebuilds the
  list from lvmetad (shared VGs, their LVs with lock args) and device-mapper
  (which LVs are active).  pylvmlockd runs without device-mapper
  (``--lease-device pv``), so "which LV locks were held, in which mode" is
  recorded here instead, in the spirit of later lvmlockd releases' adopt file
  (one ``VG:`` line per lockspace, one ``LV:`` line per persistent LV lock).
  Whatever the file says, only lockspaces sanlock still holds for this host
  are started, and only leases sanlock still keeps as our orphans are
  adopted (``SANLK_ACQUIRE_ORPHAN_ONLY``), so a stale file is harmless.
* Malformed lines are skipped (a half-written file is never trusted more
  than its well-formed lines; the daemon writes it by rename anyway).

Format (fields separated by one space; an empty field is written ``.``)::

    pylvmlockd adopt_version 1.0 pid <pid>
    VG: <vg_uuid> <vg_name> <lock type> <vg_lock_args> <host_id>
    LV: <vg_uuid> <lv_uuid> <lv_lock_args> <ex|sh>
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import Mode

HEADER = "pylvmlockd adopt_version 1.0"
DEFAULT_ADOPT_FILE = "/run/lvm/lvmlockd.adopt"


@dataclass(frozen=True)
class AdoptLv:
    lv_uuid: str
    lv_lock_args: str
    mode: Mode


@dataclass(frozen=True)
class AdoptVg:
    vg_uuid: str
    vg_name: str
    lock_type: str
    vg_lock_args: str
    host_id: int
    lvs: tuple[AdoptLv, ...] = ()

    @property
    def ls_name(self) -> str:
        return f"lvm_{self.vg_name}"


@dataclass(frozen=True)
class AdoptTable:
    vgs: tuple[AdoptVg, ...] = field(default_factory=tuple)


def _f(value: str) -> str:
    return value if value and " " not in value else "."


def _v(value: str) -> str:
    return "" if value == "." else value


def render(table: AdoptTable, pid: int) -> str:
    lines = [f"{HEADER} pid {pid}"]
    for vg in table.vgs:
        lines.append(f"VG: {_f(vg.vg_uuid)} {_f(vg.vg_name)} {_f(vg.lock_type)} {_f(vg.vg_lock_args)} {vg.host_id}")
        for lv in vg.lvs:
            lines.append(f"LV: {_f(vg.vg_uuid)} {_f(lv.lv_uuid)} {_f(lv.lv_lock_args)} {lv.mode.text}")
    return "\n".join(lines) + "\n"


def parse(text: str) -> AdoptTable:
    """The table of an adopt file; an unknown header gives an empty table."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith(HEADER):
        return AdoptTable()
    vgs: list[AdoptVg] = []
    for line in lines[1:]:
        words = line.split(" ")
        if words[0] == "VG:" and len(words) == 6 and words[5].isdigit() and words[2] != ".":
            vgs.append(AdoptVg(_v(words[1]), words[2], _v(words[3]), _v(words[4]), int(words[5])))
        elif (
            words[0] == "LV:"
            and len(words) == 5
            and words[4] in ("ex", "sh")
            and words[2] != "."
            and vgs
            and _f(vgs[-1].vg_uuid) == words[1]  # an LV line belongs to the VG line before it
        ):
            vg = vgs[-1]
            lv = AdoptLv(words[2], _v(words[3]), Mode.EX if words[4] == "ex" else Mode.SH)
            vgs[-1] = AdoptVg(vg.vg_uuid, vg.vg_name, vg.lock_type, vg.vg_lock_args, vg.host_id, (*vg.lvs, lv))
    return AdoptTable(tuple(vgs))
