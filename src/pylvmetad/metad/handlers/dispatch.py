"""Requests in, replies out: the dispatcher, the token gate's replies and every handler.

Rules of this module:

* A handler reads request fields with LVM's getters (docs/protocol.md
  §2.8), calls one :class:`~pylvmetad.metad.cache.CacheState` operation and
  builds the reply.  It never changes a table itself and never does I/O.
* Every message gets exactly one reply; no exception escapes
  :meth:`RequestHandler.handle`.  An unexpected one becomes ``failed``, and
  the cache is as it was before the request: a refusing operation refuses
  before it changes anything, and the operations that make several changes
  are all or nothing (:func:`~pylvmetad.metad.cache.all_or_nothing`;
  tests/test_merge_atomic.py raises at every step of them).
* Replies keep LVM's two layouts: the "simple" ``key = value`` one for short
  replies (:mod:`pylvmetad.wire.replies`) and the tree writer for the four
  structured ones, whose texts :class:`~.texts.ReplyTexts` keeps for reuse.
* The reply memo (:mod:`.memo`) is the one shortcut past the parser: a short
  read (:data:`~.memo.MEMO_REQUESTS`) that arrives as bytes through
  :meth:`RequestHandler.handle_bytes` is answered with the reply (and its
  encoding) kept for the very same bytes, while the cache's ``generation``
  is unchanged.  :meth:`RequestHandler.handle` empties the memo before it
  runs any other request, so whatever a request changes, nothing kept from
  before it is served after it.

Theory of operation: :meth:`RequestHandler.handle` answers ``hello`` first
(never gated), asks the token table (:mod:`pylvmetad.metad.tokens`, through
the cache) what to do with the request, and then either runs the request's
handler (SERVE, or CANCEL of an expired update followed by serving) or
turns the table's action into the token reply.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from ...wire.codec import (
    DEFAULT_PARSER,
    FieldKey,
    Node,
    ParseError,
    Section,
    accelerated_function,
    first_fields,
    format_tree,
    release_steps,
)
from ...wire.framing import encode_reply
from ...wire.replies import Reply, failed, ok, simple, unknown
from ..cache import CacheState, GlobalFlag, PVFoundResult
from ..protocol import LAZY_SECTIONS, PROTOCOL, PROTOCOL_VERSION, UPDATE_IN_PROGRESS
from ..tokens import Action, decide
from .dump import format_dump
from .memo import MEMO_MAX_MESSAGE, MEMO_REQUESTS, ReplyMemo
from .texts import ReplyTexts, pv_vg_lines

if TYPE_CHECKING:
    from ...shell.server import Peer

MISMATCH_REASON = "another command has populated the cache"
STALE_UPDATER_REASON = "another command has populated the lvmetad cache"
GLOBAL_INVALID_MARK = "global_invalid {\n}\n"
VG_INVALID_MARK = "vg_invalid {\n}\n"
_INVALID_BIT = int(GlobalFlag.INVALID)
_SERVE, _CANCEL = Action.SERVE, Action.CANCEL  # read per request: no Enum class look-up
#: pv_found replies kept by their fields (each a few hundred bytes)
KEPT_PV_FOUND_REPLIES = 64
#: the reply of every accepted vg_update (a Reply is immutable: one object serves all)
VG_UPDATE_OK = ok("vg_update")
KEPT_PV_FOUND_CHARS = 512
#: the top-level keys every request is read for (:meth:`Request.from_tree`)
REQUEST_FIELDS = ("request", "token", "pid", "cmd", "update_timeout")
#: what :meth:`Request.from_tree` reads in one walk (:func:`~pylvmetad.wire.codec.first_fields`):
#: the request fields, then for the handlers that read them at once (:attr:`Request.fields`)
#: the sections of a pv_found or vg_update, the uuid and device of the ``pvmeta``, the VG name
#: and the uuid and seqno of the ``metadata``; with their defaults: what the getters give when
#: the key is missing ("NONE" for a str field, as the request fields read; 0 or -1 for an int
#: one; "" for "missing" where the getter gives None), None for "the first value as it is"
REQUEST_KEYS: tuple[FieldKey, ...] = (
    *REQUEST_FIELDS,
    "pvmeta",
    "metadata",
    ("pvmeta", "id"),
    ("pvmeta", "device"),
    "vgname",
    ("metadata", "id"),
    ("metadata", "seqno"),
)
REQUEST_DEFAULTS: tuple[str | int | None, ...] = ("NONE", "NONE", 0, "NONE", 0, None, None, "", None, "", "", -1)
#: the top-level keys of REQUEST_KEYS (the first of each is what a long message's view keeps)
VIEW_KEYS = frozenset(key for key in REQUEST_KEYS if type(key) is str)
#: :func:`~pylvmetad.wire.codec.first_fields` without its wrapper's frame: the accelerator's walk
#: itself where it is built; its NotImplemented (a pair that is not a (str, value) tuple) leaves
#: the pairs to first_fields
_first_fields: Callable[[list[tuple[str, Node]], tuple[FieldKey, ...], tuple[str | int | None, ...]], Any] = (
    accelerated_function("first_fields") or first_fields
)
#: DEFAULT_PARSER.parse(text, LAZY_SECTIONS)'s fast path without its Python frames (Parser.quick):
#: its tree, or anything else when parse() must decide (which gives the same tree or raises)
_quick_parse = DEFAULT_PARSER.quick(LAZY_SECTIONS)
_new_object = object.__new__
#: top-level pairs looked at per step when a long message's fields are read
FIELD_STEP = 16 * 1024  # ~1.5 ms a step (64 Ki pairs were ~6 ms)


@dataclass(slots=True)
class Request:
    """The fields every request is read for (docs/protocol.md §4).

    :meth:`from_tree` reads them, and what pv_found and vg_update read
    (:attr:`fields`), in one walk of the top level: the getters' answers
    where they are plain values, the getters themselves for anything else.
    """

    tree: Section
    name: str
    token: str
    pid: int
    cmd: str
    update_timeout: int
    parse_error: ParseError | None = None
    #: the values of REQUEST_KEYS as :func:`~pylvmetad.wire.codec.first_fields` reads them
    #: (None: the handler reads its fields itself)
    fields: tuple[Any, ...] | None = None

    @classmethod
    def from_text(cls, text: str) -> Request:
        """Parse a message; text that does not parse reads as an empty request."""
        tree = _quick_parse(text)  # the accelerator's tree in one C call, or "ask parse()"
        if type(tree) is not Section:
            return cls.from_parse(text)
        return cls.from_tree(tree)

    @classmethod
    def from_parse(cls, text: str) -> Request:
        """:meth:`from_text` by :meth:`~pylvmetad.wire.codec.Parser.parse` (what its quick parse leaves to it)."""
        try:
            tree = DEFAULT_PARSER.parse(text, LAZY_SECTIONS)
        except ParseError as exc:
            return cls.from_tree(Section(), exc)
        except RecursionError:
            return cls.from_tree(Section(), ParseError("sections nested too deeply", 0, 0))
        return cls.from_tree(tree)

    @classmethod
    def parsing(cls, text: str) -> Generator[None, None, Request]:
        """:meth:`from_text` in bounded steps (:meth:`~pylvmetad.wire.codec.Parser.steps`)."""
        try:
            tree = yield from DEFAULT_PARSER.steps(text, LAZY_SECTIONS)
        except ParseError as exc:
            return cls.from_tree(Section(), exc)
        except RecursionError:
            return cls.from_tree(Section(), ParseError("sections nested too deeply", 0, 0))
        items = tree.items
        if len(items) <= FIELD_STEP:
            return cls.from_tree(tree)
        # each field's look-up walks the top level to its first match (all of it when it is
        # missing): with millions of keys that is ~50 ms a field, so find them all in one
        # walk of bounded steps; the first match of each is what the getters would read
        firsts: list[tuple[str, Node]] = []
        wanted = set(VIEW_KEYS)
        walk = iter(items)
        while wanted:
            chunk = list(islice(walk, FIELD_STEP))
            if not chunk:
                break
            for pair in chunk:
                if pair[0] in wanted:
                    wanted.discard(pair[0])
                    firsts.append(pair)
            del chunk
            yield
        return cls.from_tree(tree, view=Section(firsts))

    @classmethod
    def from_tree(cls, tree: Section, error: ParseError | None = None, view: Section | None = None) -> Request:
        """The request in ``tree``; its fields are read from ``view`` when given (the first of each)."""
        fields = tree if view is None else view
        items = fields._items  # fields.items without the property's frame when they are built (a
        if items is None:  # lazy section's are built on first access), as Section's getters read them
            items = fields.items
        # the first value of each field in one walk of the top level, as the getters read it:
        # a non-empty str or 32-bit int is their answer (a missing field their default),
        # None asks them
        values = _first_fields(items, REQUEST_KEYS, REQUEST_DEFAULTS)
        if values is NotImplemented:
            values = first_fields(items, REQUEST_KEYS, REQUEST_DEFAULTS)
        name, token, pid, cmd, timeout, _, _, _, _, _, _, _ = values  # one unpack: no slice, no subscripts
        if name is None:
            name = fields.get_str("request") or "NONE"
        if token is None:
            token = fields.get_str("token") or "NONE"
        if pid is None:
            pid = fields.get_int("pid", 0)
        if cmd is None:
            cmd = fields.get_str("cmd") or "NONE"
        if timeout is None:
            timeout = fields.get_int("update_timeout", 0)
        # the dataclass's __init__ without its call through type() (3.11 does not inline
        # it: ~1 k instructions a request); every field is set, as __init__ sets them
        req = _new_object(cls)
        req.tree = tree
        req.name = name
        req.token = token
        req.pid = pid
        req.cmd = cmd
        req.update_timeout = timeout
        req.parse_error = error
        req.fields = values
        return req


def _read_fields(tree: Section) -> tuple[Any, ...]:
    """REQUEST_KEYS of ``tree`` as :meth:`Request.from_tree` reads them (for a request read without them)."""
    return first_fields(tree.items, REQUEST_KEYS, REQUEST_DEFAULTS)


# ---------------------------------------------------------------------------
# The handler
# ---------------------------------------------------------------------------
class RequestHandler:
    """Maps one parsed request to a cache operation and builds its reply.

    Holds the kept reply texts (:attr:`texts`); the cache state is passed in
    so tests and the server share one :class:`CacheState`.
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
        #: the kept texts of pv_list, vg_list and vg_lookup
        self.texts = ReplyTexts(self.state)
        #: pv_found's replies by their field values (a reply is immutable, so one object serves all)
        self._pv_found_replies: dict[PVFoundResult, Reply] = {}
        #: the last pv_found's result (never a failed one) and its reply: a result object met
        #: again (the cache answers most pv_founds with one of its constants) skips the hash
        self._last_pv_found: tuple[object, Reply] = (None, VG_UPDATE_OK)
        #: the encodings of the kept replies above and VG_UPDATE_OK, by the reply's identity
        #: (each entry holds its reply, so an id is never reused while it is here); a write
        #: request answered with one of them skips encoding it (:meth:`handle_bytes`)
        self._encoded: dict[int, tuple[Reply, bytes]] = {}
        self._keep_encoded(VG_UPDATE_OK)
        #: the encoded replies of short reads by their message bytes (:mod:`.memo`)
        self.memo = ReplyMemo()

    # -- entry points ---------------------------------------------------
    def handle_message(self, text: str, peer: Peer) -> Reply:
        """The server's interface (:class:`~pylvmetad.shell.server.MessageHandler`)."""
        return self.handle(Request.from_text(text))

    def handle_bytes(self, message: bytes, peer: Peer) -> tuple[Reply, bytes | None]:
        """:meth:`handle_message` on a message's bytes: the reply, and its encoding when it has one.

        The server's optional fast path.  A short read is answered from the
        memo (:mod:`.memo`) when it is there, and kept there when it is not.
        """
        memo = self.memo
        short = len(message) <= MEMO_MAX_MESSAGE
        stamp = self.state.generation
        if short and memo.entries:  # an empty memo holds no answer, whatever its stamp
            hit = memo.get(message, stamp)
            if hit is not None:
                return hit
        text = message.decode("utf-8", "surrogateescape")  # framing.decode(), inline
        tree = _quick_parse(text)  # Request.from_text(text), inline
        req = Request.from_tree(tree) if type(tree) is Section else Request.from_parse(text)
        del text, tree
        name = req.name  # memo_read: self._memo_read(name) (inline), decided on the token state before the request
        memo_read = (
            short
            and name in MEMO_REQUESTS
            and (name != "get_global_info" or self.state.tokens.token != UPDATE_IN_PROGRESS)
        )
        reply = self.handle(req)
        if memo_read and reply.response != "failed" and self.state.generation == stamp:
            data = encode_reply(reply.body)
            memo.put(message, reply, data, stamp)
            return reply, data
        kept = self._encoded.get(id(reply))
        if kept is not None and kept[0] is reply:
            return reply, kept[1]
        return reply, None

    def _keep_encoded(self, reply: Reply) -> None:
        """Keep ``reply``'s encoding for :meth:`handle_bytes` (bounded like the replies kept)."""
        encoded = self._encoded
        if len(encoded) > KEPT_PV_FOUND_REPLIES:
            encoded.clear()
            encoded[id(VG_UPDATE_OK)] = (VG_UPDATE_OK, encode_reply(VG_UPDATE_OK.body))
        encoded[id(reply)] = (reply, encode_reply(reply.body))

    def _memo_read(self, name: str) -> bool:
        """Whether a request's reply may be kept: a memo read whose token action cannot depend on the time."""
        if name not in MEMO_REQUESTS:
            return False
        # get_global_info cancels an update past its timeout: while one runs, its action reads the clock
        return name != "get_global_info" or self.state.tokens.token != UPDATE_IN_PROGRESS

    def message_steps(self, text: str, peer: Peer) -> Generator[None, None, Reply]:
        """:meth:`handle_message` for a long message: the parse yields between bounded steps."""
        request = yield from Request.parsing(text)
        del text
        reply = self.handle(request)
        # a huge tree freed at once is a pause for everyone: taken apart in steps
        # (what the cache keeps of it is left alone)
        holder = [request.tree]
        del request
        yield from release_steps(holder)
        return reply

    def peer_gone(self, peer: Peer) -> None:
        """lvmetad keeps no per-client state: nothing to drop."""

    def handle_text(self, text: str) -> Reply:
        return self.handle(Request.from_text(text))

    def handle(self, req: Request) -> Reply:
        """Answer one request; never raises."""
        name = req.name  # not self._memo_read(name), inlined: this runs for every request
        if name not in MEMO_REQUESTS or (name == "get_global_info" and self.state.tokens.token == UPDATE_IN_PROGRESS):
            memo = self.memo
            if memo.entries:
                memo.clear()  # it may change the cache or the token: nothing kept survives it
        try:  # the dispatch, in the same frame: this runs for every request
            if name == "hello":
                return ok("hello", ("protocol", PROTOCOL), ("version", PROTOCOL_VERSION))
            state = self.state
            tokens = state.tokens
            held = tokens.token
            if req.token == held and held != UPDATE_IN_PROGRESS and name != "token_update":
                action = _SERVE  # decide()'s first case, inline (tests/metad/test_dispatch_fast.py)
            else:
                action = decide(tokens, name, req.token, req.pid, state.now)  # state.token_action(), inline
            if action is _SERVE or action is _CANCEL:
                if action is _CANCEL:
                    state.apply_token_action(action, req.token, req.pid, req.cmd, req.update_timeout)
                handler = self._handlers.get(name)
                if handler is None:
                    return failed(name, "request not implemented")
                return handler(req)
            return self._token_reply(req, action)
        except Exception as exc:  # a bug must cost one request, not the daemon
            return failed(name, f"internal error: {type(exc).__name__}: {exc}")

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
        # the two sections, and the PV's uuid and device, as Request.from_tree read them
        # (REQUEST_KEYS: a non-empty str is get_str's answer, "" a missing uuid, None asks it)
        fields: tuple[Any, ...] | None = req.fields
        if fields is None:
            fields = _read_fields(tree)
        _, _, _, _, _, pvmeta, metadata, pvid, device, vgname, vgid, seqno = fields
        if pvmeta is None:
            return failed("pv_found", "Ignore PV without PV metadata")
        # section.get_*(k) is tree.get_*("section/k"): the path walk takes the first child too
        if not isinstance(pvmeta, Section):
            return failed("pv_found", "Ignore PV without PV UUID")
        if pvid is None:
            pvid = pvmeta.get_str("id")
        if not pvid:
            return failed("pv_found", "Ignore PV without PV UUID")
        if type(device) is not int:
            device = pvmeta.get_int64("device")
            if device is None:
                return failed("pv_found", "Ignore PV without device")
        if metadata is None:
            vgname = vgid = None
        else:
            # as from_tree read them ("" a missing name or uuid, None asks the getter)
            if vgname is None:
                vgname = tree.get_str("vgname")
            if not vgname:
                return failed("pv_found", "Ignore VG metadata from PV without VG name")
            if not isinstance(metadata, Section):
                return failed("pv_found", "Ignore VG metadata from PV without VG vgid")
            if vgid is None:
                vgid = metadata.get_str("id")
            if not vgid:
                return failed("pv_found", "Ignore VG metadata from PV without VG vgid")
            if seqno is None:
                seqno = metadata.get_int("seqno", -1)
            if seqno < 0:
                return failed("pv_found", "Ignore VG metadata from PV without VG seqno")
        result = self.state.pv_found(pvmeta, pvid, device, vgname, vgid, metadata)
        last = self._last_pv_found
        if last[0] is result:  # the very result of the last one (the cache's constants): its reply
            return last[1]
        if result.failed is not None:
            return failed("pv_found", result.failed)
        replies = self._pv_found_replies
        reply = replies.get(result)  # a result is a tuple of the reply's fields
        if reply is None:
            # a rescan answers thousands of pv_founds with a handful of distinct replies
            reply = ok(
                "pv_found",
                ("status", result.status),
                ("changed", result.changed),
                ("vgid", result.vgid),
                ("vgname", result.vgname),
                ("seqno_before", result.seqno_before),
                ("seqno_after", result.seqno_after),
            )
            if len(reply.body) <= KEPT_PV_FOUND_CHARS:  # a client-chosen VG name may be long
                if len(replies) >= KEPT_PV_FOUND_REPLIES:
                    replies.clear()
                replies[result] = reply
                self._keep_encoded(reply)
        self._last_pv_found = (result, reply)
        return reply

    def pv_gone(self, req: Request) -> Reply:
        reason = self.state.pv_gone(req.tree.get_str("uuid"), req.tree.get_int("device", 0))
        if reason is not None:
            return unknown("pv_gone", reason)
        return ok("pv_gone")

    def pv_clear_all(self, req: Request) -> Reply:
        self.state.pv_clear_all()
        return ok("pv_clear_all")

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
            + pv_vg_lines(state, pvid, "\t")
            + "}\n"
            + self._global_mark()
            + "\n\n"
        )
        return Reply(body, "pv_lookup", "OK")

    def pv_list(self, req: Request) -> Reply:
        return self.texts.pv_list(self._global_mark() + "\n\n")

    # -- VGs --------------------------------------------------------------
    def vg_update(self, req: Request) -> Reply:
        tree = req.tree
        fields = req.fields  # read by Request.from_tree (REQUEST_KEYS), or not read yet
        if fields is None:
            fields = _read_fields(tree)
        # metadata.get_*(k) is tree.get_*("metadata/k"): the path walk takes the first "metadata" too;
        # as from_tree read them, "" is a missing name or uuid and None asks the getter
        _, _, _, _, _, _, metadata, _, _, vgname, vgid, seqno = fields
        if metadata is None:
            return VG_UPDATE_OK
        if not isinstance(metadata, Section):
            return failed("vg_update", "vg_update: need VG UUID")
        if vgid is None:
            vgid = metadata.get_str("id")
        if not vgid:
            return failed("vg_update", "vg_update: need VG UUID")
        if vgname is None:
            vgname = tree.get_str("vgname")
        if not vgname:
            return failed("vg_update", "vg_update: need VG name")
        if seqno is None:
            seqno = metadata.get_int("seqno", -1)
        if seqno < 0:
            return failed("vg_update", "vg_update: need VG seqno")
        if not self.state.vg_update(vgname, vgid, metadata, seqno):
            return failed("vg_update", "vg_update: failed metadata update")
        return VG_UPDATE_OK

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
        return self.texts.vg_list(self._global_mark() + "\n\n")

    def vg_lookup(self, req: Request) -> Reply:
        state = self.state
        response, found, name = state.resolve_vg(req.tree.get_str("uuid"), req.tree.get_str("name"))
        if response != "OK":
            return simple("vg_lookup", response, ("reason", found))
        tail = self._global_mark() + (VG_INVALID_MARK if state.vg_invalid(found) else "") + "\n\n"
        return self.texts.vg_lookup(found, name, tail)

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
        tokens = state.tokens
        return ok(
            "get_global_info",
            ("global_invalid", int(bool(state.flags & GlobalFlag.INVALID))),
            ("global_disable", int(bool(state.flags & GlobalFlag.DISABLE))),
            ("disable_reason", state.disable_reason()),
            ("daemon_pid", self.daemon_pid),
            ("token", tokens.token or "none"),
            ("update_cmd", tokens.update_cmd),
            ("update_pid", tokens.update_pid),
            ("update_begin", tokens.update_begin),
            ("update_timeout", tokens.update_timeout),
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


__all__ = ["Request", "RequestHandler"]
