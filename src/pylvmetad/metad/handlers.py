"""Requests in, replies out: the dispatcher, the token gate and every handler.

Rules of this module:

* A handler reads request fields with LVM's getters (docs/protocol.md
  §2.8), calls one :class:`~pylvmetad.cache.CacheState` operation and
  builds the reply text.  It never changes a table itself and never does I/O.
* Every message gets exactly one reply; no exception escapes
  :meth:`RequestHandler.handle` (an unexpected one becomes ``failed`` and the
  cache is left as the failing operation found it, which the cache's
  refuse-before-change rule makes safe).
* Replies keep LVM's two layouts: the "simple" ``key = value`` one for short
  replies and the tree writer for the four structured ones.

Theory of operation: serialised forms are reused
------------------------------------------------
Stored PV records and VG metadata do not change between writes, so their
text is kept: per PV, where the body of its ``pv_list`` entry sits in the
last pv_list reply; per VG, the text of its metadata around the
``physical_volumes`` section (the only part vg_lookup edits).  Both are keyed
by the identity of the stored tree, which the cache replaces (never edits)
on change, so a stale text cannot be served.
Whole replies of pv_list, vg_list and vg_lookup are also kept, keyed by the
cache's ``generation`` counter and by their invalidation markers, which are
computed fresh for every request (a changed marker means a new reply).  A hit
returns the very same :class:`Reply` object: no per-request copy of a large
reply (pv_list of 5000 PVs is ~1.7 MB) beyond the server's encoding.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..wire.codec import (
    MarkedList,
    Node,
    ParseError,
    Section,
    atoms,
    format_key,
    format_tree,
    parse,
    quote,
    to_int32,
)
from ..wire.replies import Reply, failed, ok, simple, unknown
from .cache import ORPHAN, CacheState, GlobalFlag
from .protocol import LAZY_SECTIONS, PROTOCOL, PROTOCOL_VERSION, UPDATE_IN_PROGRESS
from .tokens import Action

if TYPE_CHECKING:
    from ..shell.server import Peer

MISMATCH_REASON = "another command has populated the cache"
STALE_UPDATER_REASON = "another command has populated the lvmetad cache"
GLOBAL_INVALID_MARK = "global_invalid {\n}\n"
VG_INVALID_MARK = "vg_invalid {\n}\n"
_INVALID_BIT = int(GlobalFlag.INVALID)
_SERVE, _CANCEL = Action.SERVE, Action.CANCEL  # read per request: no Enum class look-up


@dataclass
class Request:
    """The fields every request is read for (docs/protocol.md §4)."""

    tree: Section
    name: str
    token: str
    pid: int
    cmd: str
    update_timeout: int
    parse_error: ParseError | None = None

    @classmethod
    def from_text(cls, text: str) -> Request:
        """Parse a message; text that does not parse reads as an empty request."""
        error: ParseError | None = None
        try:
            tree = parse(text, LAZY_SECTIONS)
        except ParseError as exc:
            tree, error = Section(), exc
        except RecursionError:
            tree, error = Section(), ParseError("sections nested too deeply", 0, 0)
        return cls(
            tree=tree,
            name=tree.get_str("request", "NONE") or "NONE",
            token=tree.get_str("token", "NONE") or "NONE",
            pid=tree.get_int("pid", 0),
            cmd=tree.get_str("cmd", "NONE") or "NONE",
            update_timeout=tree.get_int("update_timeout", 0),
            parse_error=error,
        )


# ---------------------------------------------------------------------------
# vg_lookup's edits of a PV section (docs/protocol.md §5 vg_lookup)
# ---------------------------------------------------------------------------
def pvmeta_for_vg(pvmeta: Section) -> list[tuple[str, Node]]:
    """The pvmeta children vg_lookup puts in front of a PV: less ``id`` and ``dev_size``.

    The original's cursor walk never drops the first child nor a node that
    directly follows a dropped one; with LVM's field order this drops both.
    """
    kids = list(pvmeta.items)
    i = 0
    while i + 1 < len(kids):
        if kids[i + 1][0] in ("id", "dev_size"):
            del kids[i + 1]
        i += 1
    return kids


def edit_pv_section(pv: Section, pvmeta: Section | None) -> Section:
    """A PV section as vg_lookup returns it: pvmeta merged in, or ``MISSING`` flagged."""
    items = list(pv.items)
    status_at = next((i for i, (k, _) in enumerate(items) if k == "status"), None)
    if pvmeta is None:
        if status_at is None:
            items.insert(0, ("status", MarkedList(["MISSING"])))
        else:
            status = atoms(items[status_at][1])
            if status and "MISSING" not in status:
                items[status_at] = ("status", MarkedList(["MISSING", *status]))
        return Section(items)
    if status_at is not None:
        status = atoms(items[status_at][1])
        if status and "MISSING" in status:
            status.remove("MISSING")
            items[status_at] = ("status", status if len(status) != 1 else status[0])
    return Section(pvmeta_for_vg(pvmeta) + items)


# ---------------------------------------------------------------------------
# The handler
# ---------------------------------------------------------------------------
class RequestHandler:
    """Maps one parsed request to a cache operation and builds its reply.

    Holds the reply-text caches; the cache state is passed in so tests and
    the server share one :class:`CacheState`.
    """

    def __init__(self, state: CacheState | None = None, daemon_pid: int | None = None) -> None:
        self.state = state if state is not None else CacheState()
        self.daemon_pid = os.getpid() if daemon_pid is None else daemon_pid
        self._handlers: dict[str, Callable[[Request], Reply]] = {
            "pv_found": self.pv_found,
            "pv_gone": self.pv_gone,
            "pv_clear_all": self.pv_clear_all,
            "pv_lookup": self.pv_lookup,
            "pv_list": self.pv_list,
            "vg_update": self.vg_update,
            "vg_remove": self.vg_remove,
            "vg_lookup": self.vg_lookup,
            "vg_list": self.vg_list,
            "vg_clear_outdated_pvs": self.vg_clear_outdated_pvs,
            "set_global_info": self.set_global_info,
            "get_global_info": self.get_global_info,
            "set_vg_info": self.set_vg_info,
            "dump": self.dump,
            "stats": self.stats,
        }
        #: supplies the figures of the ``stats`` request (set by the daemon)
        self.stats_provider: Callable[[], Section] | None = None
        # serialised forms of stored trees, keyed by the tree's identity
        # where each PV record's text (depth 2) sits in the last pv_list
        # reply, so a rebuild copies unchanged records instead of formatting
        # them again (a copy of the record's text would cost 2 MB per 5000 PVs)
        self._pv_list_text = ""
        self._pv_spans: dict[str, tuple[Section, int, int]] = {}
        self._vg_text: dict[str, tuple[Section, str, str, Section | None]] = {}
        # whole replies, keyed by generation and their invalidation marks
        self._reply_cache: dict[tuple[str, str], tuple[int, str, Reply]] = {}

    # -- entry points ---------------------------------------------------
    def handle_message(self, text: str, peer: Peer) -> Reply:
        """The server's interface (:class:`~pylvmetad.shell.server.MessageHandler`)."""
        return self.handle(Request.from_text(text))

    def peer_gone(self, peer: Peer) -> None:
        """lvmetad keeps no per-client state: nothing to drop."""

    def handle_text(self, text: str) -> Reply:
        return self.handle(Request.from_text(text))

    def handle(self, req: Request) -> Reply:
        """Answer one request; never raises."""
        try:
            return self._dispatch(req)
        except Exception as exc:  # a bug must cost one request, not the daemon
            return failed(req.name, f"internal error: {type(exc).__name__}: {exc}")

    def _dispatch(self, req: Request) -> Reply:
        if req.name == "hello":
            return ok("hello", ("protocol", PROTOCOL), ("version", PROTOCOL_VERSION))
        state = self.state
        action = state.token_action(req.name, req.token, req.pid)
        if action is _SERVE or action is _CANCEL:
            if action is _CANCEL:
                state.apply_token_action(action, req.token, req.pid, req.cmd, req.update_timeout)
            handler = self._handlers.get(req.name)
            if handler is None:
                return failed(req.name, "request not implemented")
            return handler(req)
        return self._token_reply(req, action)

    def _token_reply(self, req: Request, action: Action) -> Reply:
        """The reply of every token-table action but SERVE (docs/protocol.md §4)."""
        tokens = self.state.tokens
        if action is Action.REFUSE_MISMATCH or action is Action.REFUSE_STALE:
            reason = MISMATCH_REASON if action is Action.REFUSE_MISMATCH else STALE_UPDATER_REASON
            return simple(
                req.name,
                "token_mismatch",
                ("expected", tokens.token),
                ("received", req.token),
                ("update_pid", tokens.update_pid),
                ("reason", reason),
            )
        if action is Action.REFUSE_UPDATING:
            return simple(
                "token_update",
                "token_updating",
                ("expected", UPDATE_IN_PROGRESS),
                ("update_pid", tokens.update_pid),
                ("reason", MISMATCH_REASON),
            )
        if action is Action.REFUSE_NOT_OWNER:
            return simple(
                "token_update",
                "token_mismatch",
                ("expected", UPDATE_IN_PROGRESS),
                ("received", req.token),
                ("update_pid", tokens.update_pid),
                ("reason", MISMATCH_REASON),
            )
        prev = self.state.apply_token_action(action, req.token, req.pid, req.cmd, req.update_timeout)
        if action is Action.START:
            return ok("token_update", ("prev_token", prev), ("update_pid", req.pid))
        if action is Action.FINISH:
            return ok("token_update", ("prev_token", UPDATE_IN_PROGRESS), ("update_pid", 0))
        # IGNORE: a token is set only by ending an update
        return ok("token_update", ("prev_token", ""), ("update_pid", tokens.update_pid))

    # -- PVs --------------------------------------------------------------
    def pv_found(self, req: Request) -> Reply:
        tree = req.tree
        pvmeta = tree.child("pvmeta")
        if pvmeta is None:
            return failed("pv_found", "Ignore PV without PV metadata")
        pvid = tree.get_str("pvmeta/id")
        if pvid is None or not isinstance(pvmeta, Section):
            return failed("pv_found", "Ignore PV without PV UUID")
        device = tree.get_int64("pvmeta/device")
        if device is None:
            return failed("pv_found", "Ignore PV without device")
        metadata = tree.child("metadata")
        vgname = vgid = None
        if metadata is not None:
            vgname = tree.get_str("vgname")
            if vgname is None:
                return failed("pv_found", "Ignore VG metadata from PV without VG name")
            vgid = tree.get_str("metadata/id")
            if vgid is None or not isinstance(metadata, Section):
                return failed("pv_found", "Ignore VG metadata from PV without VG vgid")
            if tree.get_int("metadata/seqno", -1) < 0:
                return failed("pv_found", "Ignore VG metadata from PV without VG seqno")
        result = self.state.pv_found(pvmeta, pvid, device, vgname, vgid, metadata)
        if result.failed is not None:
            return failed("pv_found", result.failed)
        return ok(
            "pv_found",
            ("status", result.status),
            ("changed", result.changed),
            ("vgid", result.vgid),
            ("vgname", result.vgname),
            ("seqno_before", result.seqno_before),
            ("seqno_after", result.seqno_after),
        )

    def pv_gone(self, req: Request) -> Reply:
        reason = self.state.pv_gone(req.tree.get_str("uuid"), req.tree.get_int("device", 0))
        if reason is not None:
            return unknown("pv_gone", reason)
        return ok("pv_gone")

    def pv_clear_all(self, req: Request) -> Reply:
        self.state.pv_clear_all()
        return ok("pv_clear_all")

    def _pv_vg_lines(self, pvid: str, indent: str) -> str:
        vgid, name = self.state.pv_vg(pvid)
        lines = ""
        if vgid is not None:
            lines += f"{indent}vgid={quote(vgid)}\n"
        if name is not None:
            lines += f"{indent}vgname={quote(name)}\n"
        return lines

    def _global_mark(self) -> str:
        # int(): IntFlag's own "&" is a slow Python-level method, and this runs per request
        return GLOBAL_INVALID_MARK if int(self.state.flags) & _INVALID_BIT else ""

    def pv_lookup(self, req: Request) -> Reply:
        state = self.state
        pvid = req.tree.get_str("uuid")
        if pvid is None:
            device = req.tree.get_int("device", 0)
            if device == 0:
                return failed("pv_lookup", "need PVID or device")
            pvid = state.device_to_pvid.get(device)
            if pvid is None:
                return unknown("pv_lookup", "device not found")
        pvmeta = state.pvid_to_pvmeta.get(pvid)
        if pvmeta is None:
            return unknown("pv_lookup", "PV not found")
        body = (
            'response="OK"\nphysical_volume {\n'
            + format_tree(pvmeta, 1)
            + self._pv_vg_lines(pvid, "\t")
            + "}\n"
            + self._global_mark()
            + "\n\n"
        )
        return Reply(body, "pv_lookup", "OK")

    def _cached_reply(self, request: str, key: str, tail: str, build: Callable[[], str]) -> Reply:
        """The OK reply ``build() + tail``, reused while the cache and ``tail`` are unchanged.

        ``tail`` (invalidation marks and the closing blank line) is computed
        fresh by every caller, so a reused reply always carries today's marks.
        """
        generation = self.state.generation
        hit = self._reply_cache.get((request, key))
        if hit is not None and hit[0] == generation and hit[1] == tail:
            return hit[2]
        reply = Reply(build() + tail, request, "OK")
        if len(self._reply_cache) > 4096:
            self._reply_cache.clear()
        self._reply_cache[(request, key)] = (generation, tail, reply)
        return reply

    def pv_list(self, req: Request) -> Reply:
        old_text, old_spans = self._pv_list_text, self._pv_spans
        spans: dict[str, tuple[Section, int, int]] = {}
        rebuilt: list[bool] = []

        def build() -> str:
            rebuilt.append(True)
            parts = ['response="OK"\nphysical_volumes {\n']
            at = len(parts[0])
            for pvid, pvmeta in self.state.pvid_to_pvmeta.items():
                head = f"\t{format_key(pvid)} {{\n"
                span = old_spans.get(pvid)
                unchanged = span is not None and span[0] is pvmeta  # same record: copy its text
                body = old_text[span[1] : span[2]] if span is not None and unchanged else format_tree(pvmeta, 2)
                tail = self._pv_vg_lines(pvid, "\t\t") + "\t}\n"
                start = at + len(head)
                spans[pvid] = (pvmeta, start, start + len(body))
                parts += (head, body, tail)
                at = start + len(body) + len(tail)
            parts.append("}\n")
            return "".join(parts)

        reply = self._cached_reply("pv_list", "", self._global_mark() + "\n\n", build)
        if rebuilt:  # the spans are offsets into the text just built, a prefix of reply.body
            self._pv_list_text, self._pv_spans = reply.body, spans
        return reply

    # -- VGs --------------------------------------------------------------
    def vg_update(self, req: Request) -> Reply:
        tree = req.tree
        metadata = tree.child("metadata")
        if metadata is None:
            return ok("vg_update")
        vgid = tree.get_str("metadata/id")
        if vgid is None or not isinstance(metadata, Section):
            return failed("vg_update", "vg_update: need VG UUID")
        vgname = tree.get_str("vgname")
        if vgname is None:
            return failed("vg_update", "vg_update: need VG name")
        if tree.get_int("metadata/seqno", -1) < 0:
            return failed("vg_update", "vg_update: need VG seqno")
        if not self.state.vg_update(vgname, vgid, metadata):
            return failed("vg_update", "vg_update: failed metadata update")
        return ok("vg_update")

    def vg_remove(self, req: Request) -> Reply:
        vgid = req.tree.get_str("uuid")
        if vgid is None:
            return failed("vg_remove", "need VG UUID")
        self.state.vg_remove(vgid)
        return ok("vg_remove")

    def vg_clear_outdated_pvs(self, req: Request) -> Reply:
        vgid = req.tree.get_str("vgid")
        if vgid is None:
            return failed("vg_clear_outdated_pvs", "need VG UUID")
        self.state.vg_clear_outdated_pvs(vgid)
        return ok("vg_clear_outdated_pvs")

    def vg_list(self, req: Request) -> Reply:
        def build() -> str:
            parts = ['response="OK"\nvolume_groups {\n']
            for vgid, name in self.state.vgid_to_vgname.items():
                parts.append(f"\t{format_key(vgid)} {{\n\t\tname={quote(name)}\n\t}}\n")
            parts.append("}\n")
            return "".join(parts)

        return self._cached_reply("vg_list", "", self._global_mark() + "\n\n", build)

    def _vg_around_pvs(self, vgid: str, metadata: Section) -> tuple[str, str, Section | None]:
        """Metadata text before and after its ``physical_volumes`` section (depth 1)."""
        cached = self._vg_text.get(vgid)
        if cached is not None and cached[0] is metadata:
            return cached[1], cached[2], cached[3]
        before: list[tuple[str, Node]] = []
        after: list[tuple[str, Node]] = []
        pvs: Section | None = None
        for key, value in metadata.items:
            if pvs is None and key == "physical_volumes" and isinstance(value, Section):
                pvs = value
            elif pvs is None:
                before.append((key, value))
            else:
                after.append((key, value))
        texts = format_tree(Section(before), 1), format_tree(Section(after), 1)
        self._vg_text[vgid] = (metadata, texts[0], texts[1], pvs)
        cached_vgs = self.state.vgid_to_metadata
        if len(self._vg_text) > 2 * len(cached_vgs) + 16:
            # drop the texts of VGs that are gone or changed, so churn cannot grow this
            self._vg_text = {k: v for k, v in self._vg_text.items() if cached_vgs.get(k) is v[0]}
        return texts[0], texts[1], pvs

    def _vg_metadata_text(self, vgid: str, metadata: Section) -> str:
        state = self.state
        before, after, pvs = self._vg_around_pvs(vgid, metadata)
        parts = ["metadata {\n"]
        outdated = state.vgid_to_outdated_pvs.get(vgid)
        if outdated is not None:
            parts.append("\toutdated_pvs {\n")
            for outdated_pvid in reversed(outdated):  # oldest mark first
                pvmeta = state.pvid_to_pvmeta.get(outdated_pvid)
                if pvmeta is not None:
                    parts.append(f"\t\t{format_key(outdated_pvid)} {{\n")
                    parts.append(format_tree(pvmeta, 3))
                    parts.append("\t\t}\n")
            parts.append("\t}\n")
        parts.append(before)
        if pvs is not None:
            parts.append("\tphysical_volumes {\n")
            for key, pv in pvs.items:
                pv_id = pv.get_str("id") if isinstance(pv, Section) else None
                if pv_id is not None:
                    assert isinstance(pv, Section)
                    pv = edit_pv_section(pv, state.pvid_to_pvmeta.get(pv_id))
                parts.append(format_tree(Section([(key, pv)]), 2))
            parts.append("\t}\n")
        parts.append(after)
        parts.append("}\n")
        return "".join(parts)

    def vg_lookup(self, req: Request) -> Reply:
        state = self.state
        response, found, name = state.resolve_vg(req.tree.get_str("uuid"), req.tree.get_str("name"))
        if response != "OK":
            return simple("vg_lookup", response, ("reason", found))
        vgid = found
        metadata = state.vgid_to_metadata[vgid]

        def build() -> str:
            return f'response="OK"\nname={quote(name)}\n' + self._vg_metadata_text(vgid, metadata)

        tail = self._global_mark() + (VG_INVALID_MARK if state.vg_invalid(vgid) else "") + "\n\n"
        return self._cached_reply("vg_lookup", vgid, tail, build)

    # -- global -----------------------------------------------------------
    def set_global_info(self, req: Request) -> Reply:
        tree = req.tree
        self.state.set_global_info(
            tree.get_int("global_invalid", -1),
            tree.get_int("global_disable", -1),
            tree.get_str("disable_reason"),
        )
        return ok("set_global_info")

    def get_global_info(self, req: Request) -> Reply:
        state = self.state  # an expired update was cancelled by the token table
        t = state.tokens
        return ok(
            "get_global_info",
            ("global_invalid", int(bool(state.flags & GlobalFlag.INVALID))),
            ("global_disable", int(bool(state.flags & GlobalFlag.DISABLE))),
            ("disable_reason", state.disable_reason()),
            ("daemon_pid", self.daemon_pid),
            ("token", t.token or "none"),
            ("update_cmd", t.update_cmd),
            ("update_pid", t.update_pid),
            ("update_begin", t.update_begin),
            ("update_timeout", t.update_timeout),
        )

    def set_vg_info(self, req: Request) -> Reply:
        tree = req.tree
        self.state.set_vg_info(tree.get_int("version", -1), tree.get_str("uuid"), tree.get_str("name"))
        return ok("set_vg_info")

    # -- dump and stats ---------------------------------------------------
    def dump(self, req: Request) -> Reply:
        return Reply(format_dump(self.state), "dump", "OK")

    def stats(self, req: Request) -> Reply:
        """pylvmetad's own request: the daemon's figures as config text."""
        figures = self.stats_provider() if self.stats_provider is not None else Section()
        return Reply('response="OK"\n' + format_tree(figures) + "\n\n", "stats", "OK")


def _pairs(title: str, name: str, pairs: list[tuple[str, str]]) -> str:
    lines = [f"\n# {title}\n\n{name} {{\n"]
    lines.extend(f"    {k} = {v}\n" for k, v in pairs)
    lines.append("}\n")
    return "".join(lines)


def format_dump(state: CacheState) -> str:
    """The ``dump`` text (docs/protocol.md §5, dump): every table, in table order."""
    out = ["# VG METADATA\n\n"]
    for metadata in state.vgid_to_metadata.values():
        out.append(format_tree(Section([(metadata.get_str("id") or "unknown", metadata)])))
    out.append("\n# PV METADATA\n\n")
    for pvmeta in state.pvid_to_pvmeta.values():
        out.append(format_tree(Section([(pvmeta.get_str("id") or "unknown", pvmeta)])))
    out.append(
        _pairs("VGID to VGNAME mapping", "vgid_to_vgname", [(k, quote(v)) for k, v in state.vgid_to_vgname.items()])
    )
    out.append("\n# VGID to outdated PVs mapping\n\n")
    for vgid, pvids in state.vgid_to_outdated_pvs.items():
        record = Section([("pv_list", MarkedList(pvids)), ("vgid", vgid)])
        out.append(format_tree(Section([(vgid, record)])))
    out.append(
        _pairs(
            "VGNAME to VGID mapping",
            "vgname_to_vgid",
            [(name, quote(vgid)) for name, ids in state.vgname_to_vgid.items() for vgid in ids],
        )
    )
    out.append(_pairs("PVID to VGID mapping", "pvid_to_vgid", [(k, quote(v)) for k, v in state.pvid_to_vgid.items()]))
    out.append(
        _pairs(
            "DEVICE to PVID mapping",
            "device_to_pvid",
            [(str(to_int32(d)), quote(p)) for d, p in state.device_to_pvid.items()],
        )
    )
    infos = state.vgid_to_info.items()
    out.append(_pairs("VGID to INFO version mapping", "vgid_to_info", [(k, str(i.external_version)) for k, i in infos]))
    out.append(_pairs("VGID to INFO flags mapping", "vgid_to_info", [(k, format(i.flags, "x")) for k, i in infos]))
    return "".join(out)


__all__ = ["ORPHAN", "Reply", "Request", "RequestHandler", "edit_pv_section", "format_dump", "pvmeta_for_vg"]
