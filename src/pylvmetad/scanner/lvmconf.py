"""LVM's configuration as the scanner needs it: ``devices/global_filter`` and the lvmetad token.

Rules of this module:

* Only reading: ``lvm.conf`` and ``lvmlocal.conf`` are read, never written.
  No daemon is contacted here.
* The token is LVM's, not ours: an LVM 2.02 command and ``pylvmetad-scan``
  run over the same configuration must send the same ``filter:<n>`` token,
  or each sees the other's token as foreign and repopulates the whole cache
  (a "token war": one full scan per command).

Theory of operation
-------------------
An LVM 2.02 command sets its lvmetad token when it connects, from one
setting only: ``devices/global_filter`` (``devices/filter`` is applied by the
command to what the cache returns and does not enter the token; checked with
the real commands in tests/live/test_lvmconf_token.py).  The token is
``filter:%u`` of a CRC-32 register that starts at 0 and runs over the bytes
of each filter string in turn, without separators and without a final
inversion; the CRC is LVM's table-driven reflected CRC-32 (the one of
``ondisk.lvm_crc``), here continued from 0 instead of LVM's metadata seed.
A setting that is unset gets LVM's default, the one entry ``a|.*/|``
(token ``filter:3239235440``).

Where the configuration comes from, as LVM 2.02 reads it:

* the directory is ``$LVM_SYSTEM_DIR`` when that is set (set and empty: no
  configuration file at all, only defaults), else ``/etc/lvm``;
* ``lvm.conf`` there, then ``lvmlocal.conf`` when it exists, merged into one
  tree: a value in ``lvmlocal.conf`` wins over ``lvm.conf``;
* inside one file, a key given twice (also in two ``devices { }`` sections)
  takes its last value (LVM warns "Ignoring duplicate config value" and yet
  uses the later one);
* the value is an array of strings or one string; an empty array or an
  entry that is not a string makes LVM refuse the setting (the command
  fails), and so does this module (:class:`LvmConfigError`).

Tags (``tags/hosttags``, ``lvm_<tag>.conf``), profiles and ``--config`` are
not read: the scanner has no command line of LVM's to take them from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..wire.codec import Node, ParseError, Section, atoms, parse
from .ondisk import lvm_crc

__all__ = [
    "DEFAULT_GLOBAL_FILTER",
    "DEFAULT_SYSTEM_DIR",
    "LvmConfig",
    "LvmConfigError",
    "config_dir",
    "config_for",
    "lvmetad_token",
    "read_lvm_config",
]

DEFAULT_SYSTEM_DIR = "/etc/lvm"
#: LVM's built-in ``devices/global_filter``
DEFAULT_GLOBAL_FILTER = ("a|.*/|",)
#: the files LVM merges, later ones winning
CONFIG_FILES = ("lvm.conf", "lvmlocal.conf")


class LvmConfigError(Exception):
    """The configuration cannot be used (unreadable, does not parse, bad global_filter)."""


def lvmetad_token(global_filter: Iterable[str]) -> str:
    """The token LVM 2.02 sends to lvmetad for this ``devices/global_filter``."""
    register = 0
    for entry in global_filter:
        register = lvm_crc(entry.encode(), register)
    return f"filter:{register}"


def config_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$LVM_SYSTEM_DIR`` or ``/etc/lvm``; None when the variable is set but empty (no files)."""
    env = os.environ if environ is None else environ
    value = env.get("LVM_SYSTEM_DIR")
    if value is None:
        return Path(DEFAULT_SYSTEM_DIR)
    return Path(value) if value else None


@dataclass(frozen=True)
class LvmConfig:
    """What the scanner takes from LVM's configuration."""

    global_filter: tuple[str, ...] = DEFAULT_GLOBAL_FILTER
    #: the files that were read, in order (for messages)
    sources: tuple[Path, ...] = ()

    @property
    def token(self) -> str:
        return lvmetad_token(self.global_filter)


def _last_value(tree: Section, section: str, key: str) -> Node | None:
    """The last ``section/key`` of a file, over repeated sections and repeated keys."""
    found: Node | None = None
    for name, sub in tree.sections():
        if name != section:
            continue
        for k, v in sub.items:
            if k == key:
                found = v
    return found


def _filter_entries(value: Node, where: Path) -> tuple[str, ...]:
    if isinstance(value, Section):
        raise LvmConfigError(f"{where}: devices/global_filter is a section, not a list of strings")
    entries = atoms(value)
    if not entries:
        raise LvmConfigError(f"{where}: devices/global_filter is empty (LVM refuses an empty value)")
    bad = [e for e in entries if not isinstance(e, str)]
    if bad:
        raise LvmConfigError(f"{where}: devices/global_filter holds {bad[0]!r}, not a string")
    return tuple(str(e) for e in entries)


def read_lvm_config(directory: Path | str | None = None, *, environ: Mapping[str, str] | None = None) -> LvmConfig:
    """Read ``lvm.conf`` (+ ``lvmlocal.conf``) of ``directory`` (default: :func:`config_dir` of ``environ``).

    A missing directory or missing files give LVM's defaults, as LVM does.
    """
    where = Path(directory) if directory is not None else config_dir(environ)
    if where is None:
        return LvmConfig()
    global_filter: tuple[str, ...] = DEFAULT_GLOBAL_FILTER
    sources: list[Path] = []
    for name in CONFIG_FILES:
        path = where / name
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        except OSError as e:
            raise LvmConfigError(f"{path}: {e.strerror or e}") from e
        try:
            tree = parse(text)
        except ParseError as e:
            raise LvmConfigError(f"{path}: does not parse: {e}") from e
        sources.append(path)
        value = _last_value(tree, "devices", "global_filter")
        if value is not None:
            global_filter = _filter_entries(value, path)
    return LvmConfig(global_filter=global_filter, sources=tuple(sources))


def config_for(filters: Sequence[str] | None, directory: Path | str | None = None) -> LvmConfig:
    """``--filter`` entries when given (they replace the configuration's), else the configuration's."""
    if filters:
        return LvmConfig(global_filter=tuple(filters))
    return read_lvm_config(directory)
