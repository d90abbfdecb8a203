"""pylvmetactl: look into a running lvmetad, and poke it, from a shell.

Rules of this module:

* Every command of LVM's own ``lvmetactl`` (docs/protocol.md §5, dump)
  exists under the same name with the same arguments and, by default, the
  same output: the raw reply text for the look-ups, and
  ``response "…" status "…" reason "…"`` for the ``set_*`` commands, so
  scripts and habits written for the original keep working.
* What the original lacked is added on top: ``--json`` (the parsed reply, or
  for ``dump`` the daemon's tables as one sorted document that two dumps can
  be diffed on), ``--socket``, an exit status that says whether the daemon
  answered ``OK``, and ``stats`` (pylvmetad's counters as a table).
* It talks to the daemon only through :mod:`pylvmetad.client`, so it works
  against the original C daemon too (except ``stats``, which is ours).

Exit status: 0 when the daemon answered ``OK`` (for ``dump``: answered at
all), 1 when it answered anything else (the reply is still printed, and the
reason goes to stderr), 2 for usage errors, 3 when the daemon could not be
reached or did not answer properly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..wire.codec import Node, ParseError, Section, atoms, parse
from .client import Client, LvmetadError, check_ok, parse_reply
from .protocol import DEFAULT_SOCKET, SOCKET_ENV

EXIT_OK = 0
EXIT_RESPONSE = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3

PROG = "pylvmetactl"

#: the disable reason the original lvmetactl sends with set_global_disable
DIRECT_REASON = "DIRECT"


class _UsageError(Exception):
    """A request the original would refuse before sending (e.g. set_vg_version - -)."""


# ---------------------------------------------------------------------------
# Pure conversions (unit-tested without a daemon)
# ---------------------------------------------------------------------------
DUMP_TABLES = (
    "vgid_to_metadata",
    "pvid_to_pvmeta",
    "vgid_to_vgname",
    "vgid_to_outdated_pvs",
    "vgname_to_vgid",
    "pvid_to_vgid",
    "device_to_pvid",
    "vgid_to_info",
)


def _json_value(node: Node) -> object:
    """A config node as JSON data (one-atom lists are already scalars after parsing)."""
    if isinstance(node, Section):
        return node.to_python()
    if isinstance(node, list):
        return list(node)
    return node


def _hex_flags(node: Node) -> object:
    """The flags line of vgid_to_info is hexadecimal without a prefix; the parser read it as decimal."""
    if isinstance(node, (int, str)) and not isinstance(node, bool):
        try:
            return int(str(node), 16)
        except ValueError:
            return node
    return _json_value(node)


def dump_to_tables(text: str) -> dict[str, dict[str, object]]:
    """The text of a ``dump`` reply as the tables of docs/protocol.md §3.

    The dump is config text in a fixed order (docs/protocol.md §5, dump): one
    section per VG (keyed by VG uuid), one per PV (keyed by PV uuid), the
    ``vgid_to_vgname`` table, one outdated-PV record per VG, then the
    ``vgname_to_vgid``, ``pvid_to_vgid``, ``device_to_pvid`` tables and
    ``vgid_to_info`` twice (versions, then flags in hex).  Comments are not
    relied on: position says which part a section belongs to, and a VG
    section is told from a PV section by its ``seqno``.  A VG name shared by
    several VGs repeats its key in ``vgname_to_vgid``; here it maps to the
    sorted list of its uuids (every name does, so consumers need one case).
    Raises :class:`~pylvmetad.codec.ParseError` for text that is not a dump.
    """
    tree = parse(text)
    vgid_to_metadata: dict[str, object] = {}
    pvid_to_pvmeta: dict[str, object] = {}
    vgid_to_vgname: dict[str, object] = {}
    vgid_to_outdated_pvs: dict[str, object] = {}
    vgname_to_vgid: dict[str, list[str]] = {}
    pvid_to_vgid: dict[str, object] = {}
    device_to_pvid: dict[str, object] = {}
    vgid_to_info: dict[str, dict[str, object]] = {}
    pairs_tables: dict[str, dict[str, object]] = {
        "vgid_to_vgname": vgid_to_vgname,
        "pvid_to_vgid": pvid_to_vgid,
        "device_to_pvid": device_to_pvid,
    }
    seen_mapping = False  # past vgid_to_vgname: sections are outdated-PV records
    info_parts = 0
    for key, node in tree.items:
        if not isinstance(node, Section):
            raise ParseError(f"unexpected top-level value {key!r} in a dump", 0, 0)
        if key in pairs_tables:
            seen_mapping = True
            for k, v in node.items:
                pairs_tables[key][k] = _json_value(v)
        elif key == "vgname_to_vgid":
            for name, vgid in node.items:
                vgname_to_vgid.setdefault(name, []).extend(str(a) for a in atoms(vgid))
        elif key == "vgid_to_info":
            field = "version" if info_parts == 0 else "flags"
            info_parts += 1
            for vgid, value in node.items:
                record = vgid_to_info.setdefault(vgid, {"version": None, "flags": None})
                record[field] = _hex_flags(value) if field == "flags" else _json_value(value)
        elif seen_mapping:
            vgid_to_outdated_pvs[key] = atoms(node.child("pv_list") or [])
        elif node.child("seqno") is not None:
            vgid_to_metadata[key] = node.to_python()
        else:
            pvid_to_pvmeta[key] = node.to_python()
    return {
        "vgid_to_metadata": vgid_to_metadata,
        "pvid_to_pvmeta": pvid_to_pvmeta,
        "vgid_to_vgname": vgid_to_vgname,
        "vgid_to_outdated_pvs": vgid_to_outdated_pvs,
        "vgname_to_vgid": {name: sorted(vgids) for name, vgids in vgname_to_vgid.items()},
        "pvid_to_vgid": pvid_to_vgid,
        "device_to_pvid": device_to_pvid,
        "vgid_to_info": dict(vgid_to_info),
    }


def _display(node: Node) -> str:
    if isinstance(node, list):
        return ", ".join(_display(a) for a in node) if node else "[]"
    if node == "":
        return '""'  # an empty string must not look like a missing column
    return str(node)


def format_stats(reply: Section) -> str:
    """A ``stats`` reply as aligned ``name  value`` rows, one group per section.

    Generic on purpose: the figures are defined by the daemon, and a new
    counter or section must show up without a change here.  A nested
    section's group is headed by its path (``requests/pv_found``).
    """
    groups: list[tuple[str, list[tuple[str, str]]]] = []

    def walk(section: Section, path: str) -> None:
        rows = [
            (key, _display(value))
            for key, value in section.items
            if not isinstance(value, Section) and not (not path and key == "response")
        ]
        children = list(section.sections())
        if rows or (path and not children):
            groups.append((path, rows))
        for key, child in children:
            walk(child, f"{path}/{key}" if path else key)

    walk(reply, "")
    out: list[str] = []
    for path, rows in groups:
        if out:
            out.append("")
        indent = ""
        if path:
            out.append(path)
            indent = "  "
        if not rows:
            out.append(f"{indent}(none)")
        width = max((len(name) for name, _ in rows), default=0)
        out.extend(f"{indent}{name.ljust(width)}  {value}" for name, value in rows)
    if not out:
        out.append("(no figures)")
    return "\n".join(out) + "\n"


def format_set_reply(reply: Section) -> str:
    """The original lvmetactl's one-line summary of a ``set_*`` reply (``print_reply``)."""
    fields = [reply.get_str_allow_empty(key) or "" for key in ("response", "status", "reason")]
    return 'response "%s" status "%s" reason "%s"\n' % tuple(fields)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
@dataclass
class _Outcome:
    """What a command prints and whether the daemon said OK."""

    stdout: str
    error: str | None = None  # for stderr; set when the reply was not OK


def json_escape(text: str) -> str:
    """A reply string as valid JSON text, reversibly.

    Replies are decoded as UTF-8 with ``surrogateescape``, so a byte that is
    not UTF-8 (a VG name written by another tool, a damaged record) is a lone
    surrogate U+DC80..U+DCFF, which ``json.dumps`` writes as ``\\udcNN`` --
    not valid UTF-16, refused by strict parsers.  Instead such a byte is
    written as the four characters ``\\xNN`` and a backslash as ``\\\\``;
    :func:`json_unescape` gives back the original bytes.  Text without either
    is unchanged (LVM's names and uuids contain no backslash).
    """
    if "\\" not in text and not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def json_unescape(text: str) -> bytes:
    """The bytes :func:`json_escape` was given (as UTF-8 with their invalid bytes)."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] == "\\":
            out += b"\\"
            i += 2
        elif ch == "\\" and text[i + 1 : i + 2] == "x":
            out.append(int(text[i + 2 : i + 4], 16))
            i += 4
        else:
            out += ch.encode("utf-8")
            i += 1
    return bytes(out)


def _escaped(data: object) -> object:
    if isinstance(data, str):
        return json_escape(data)
    if isinstance(data, dict):
        return {json_escape(str(k)): _escaped(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_escaped(v) for v in data]
    return data


def _json(data: object) -> str:
    return json.dumps(_escaped(data), indent=2, sort_keys=True) + "\n"


def _check(request: str, reply: Section) -> str | None:
    try:
        check_ok(request, reply)
    except LvmetadError as exc:
        return str(exc)
    return None


def _raw_request(request: str, **fields: str | int | None) -> Callable[[Client, argparse.Namespace], _Outcome]:
    """A command that prints the raw reply (or its JSON) of one request."""

    def run(client: Client, args: argparse.Namespace) -> _Outcome:
        text = client.call_text(request, None, **{k: v for k, v in fields.items() if v is not None})
        reply = parse_reply(text)
        stdout = _json(reply.to_python()) if args.json else text + "\n"
        return _Outcome(stdout, _check(request, reply))

    return run


def cmd_dump(client: Client, args: argparse.Namespace) -> _Outcome:
    text = client.dump()
    if not args.json:
        return _Outcome(text + "\n")
    try:
        return _Outcome(_json(dump_to_tables(text)))
    except ParseError as exc:
        return _Outcome("", f"dump: cannot read the daemon's dump: {exc}")


def _lookup(request: str, field: str) -> Callable[[Client, argparse.Namespace], _Outcome]:
    def run(client: Client, args: argparse.Namespace) -> _Outcome:
        return _raw_request(request, **{field: args.value})(client, args)

    return run


def _set(
    request: str, fields: Callable[[argparse.Namespace], dict[str, str | int | None]]
) -> Callable[[Client, argparse.Namespace], _Outcome]:
    def run(client: Client, args: argparse.Namespace) -> _Outcome:
        reply = client.call(request, None, **{k: v for k, v in fields(args).items() if v is not None})
        stdout = _json(reply.to_python()) if args.json else format_set_reply(reply)
        return _Outcome(stdout, _check(request, reply))

    return run


def _vg_version_fields(args: argparse.Namespace) -> dict[str, str | int | None]:
    uuid = None if args.uuid == "-" else args.uuid
    name = None if args.name == "-" else args.name
    if uuid is None and name is None:
        raise _UsageError("set_vg_version: name or uuid required")
    return {"uuid": uuid, "name": name, "version": args.version}


def cmd_vg_lock_type(client: Client, args: argparse.Namespace) -> _Outcome:
    reply = client.call("vg_lookup", uuid=args.uuid)
    error = _check("vg_lookup", reply)
    metadata = reply.section("metadata")
    lock_type = metadata.get_str("lock_type") if metadata is not None else None
    if args.json:
        return _Outcome(_json({"response": reply.get_str_allow_empty("response"), "lock_type": lock_type}), error)
    if metadata is None:
        return _Outcome("no metadata\n", error or "vg_lookup: reply has no metadata")
    if lock_type is None:
        return _Outcome("no lock_type\n", error)
    return _Outcome(f"lock_type {lock_type}\n", error)


def cmd_stats(client: Client, args: argparse.Namespace) -> _Outcome:
    reply = client.call("stats")
    stdout = _json(reply.to_python()) if args.json else format_stats(reply)
    error = _check("stats", reply)
    if error is not None and not args.json:
        stdout = ""  # a refusal is not a table; the reason goes to stderr
    return _Outcome(stdout, error)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def _common_options(subcommand: bool) -> argparse.ArgumentParser:
    """--socket/--json/--timeout, accepted before and after the command name.

    On a subcommand the defaults are suppressed, so an option given before
    the command name is not reset by the subparser.
    """
    parent = argparse.ArgumentParser(add_help=False)
    suppress = argparse.SUPPRESS
    parent.add_argument(
        "--socket",
        metavar="PATH",
        default=suppress if subcommand else None,
        help=f"lvmetad socket (default: ${SOCKET_ENV} or {DEFAULT_SOCKET})",
    )
    parent.add_argument(
        "--json",
        action="store_true",
        default=suppress if subcommand else False,
        help="print the reply as JSON (dump: the daemon's tables, keys sorted)",
    )
    parent.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=suppress if subcommand else 10.0,
        help="seconds to wait for the reply (default: 10)",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Query and control a running lvmetad (pylvmetad or LVM's own). "
        'Every request is sent with token "skip".',
        epilog="exit status: 0 OK, 1 the daemon answered something else, 2 usage, 3 daemon not reachable",
        parents=[_common_options(subcommand=False)],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = [_common_options(subcommand=True)]

    def add(
        name: str, help_text: str, run: Callable[[Client, argparse.Namespace], _Outcome]
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=common)
        p.set_defaults(run=run)
        return p

    add("dump", "print the daemon's whole state (--json: its tables as one document)", cmd_dump)
    add("pv_list", "print every cached PV", _raw_request("pv_list"))
    add("vg_list", "print every cached VG", _raw_request("vg_list"))
    add("get_global_info", "print the token, update state and global flags", _raw_request("get_global_info"))
    add("vg_lookup_name", "print a VG's metadata, looked up by name", _lookup("vg_lookup", "name")).add_argument(
        "value", metavar="NAME"
    )
    add("vg_lookup_uuid", "print a VG's metadata, looked up by uuid", _lookup("vg_lookup", "uuid")).add_argument(
        "value", metavar="UUID"
    )
    add("pv_lookup_uuid", "print a PV's record, looked up by uuid", _lookup("pv_lookup", "uuid")).add_argument(
        "value", metavar="UUID"
    )
    add(
        "set_global_invalid",
        "set (1) or clear (0) the global INVALID flag",
        _set("set_global_info", lambda a: {"global_invalid": a.value}),
    ).add_argument("value", type=int, choices=[0, 1], metavar="0|1")
    add(
        "set_global_disable",
        "set (1, reason DIRECT) or clear (0) the global DISABLE flag",
        _set("set_global_info", lambda a: {"global_disable": a.value, "disable_reason": DIRECT_REASON}),
    ).add_argument("value", type=int, choices=[0, 1], metavar="0|1")
    p = add(
        "set_vg_version",
        "invalidate a VG whose cached seqno is below VERSION (0: always); '-' for no UUID or no NAME",
        _set("set_vg_info", _vg_version_fields),
    )
    p.add_argument("uuid", metavar="UUID")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", type=int, metavar="VERSION")
    add("vg_lock_type", "print a VG's lock_type", cmd_vg_lock_type).add_argument("uuid", metavar="UUID")
    add("stats", "print pylvmetad's counters as a table (not in LVM's lvmetad)", cmd_stats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; see the module docstring for the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[Client, argparse.Namespace], _Outcome] = args.run
    if args.command == "set_vg_version":
        try:
            _vg_version_fields(args)  # refuse "- -" before connecting, as the original does
        except _UsageError as exc:
            parser.error(str(exc))
    try:
        with Client(args.socket, timeout=args.timeout, connect_timeout=args.timeout, cmd=PROG) as client:
            outcome = run(client, args)
    except LvmetadError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    try:
        sys.stdout.write(outcome.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (| head) went away: nothing left to report to; keep the
        # interpreter's final flush from complaining about the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK if outcome.error is None else EXIT_RESPONSE
    if outcome.error is not None:
        print(f"{PROG}: {outcome.error}", file=sys.stderr)
        return EXIT_RESPONSE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
