"""lvmlockd's wire vocabulary: numbers, request fields, the four reply layouts.

Rules of this module:

* No I/O and no state: it turns a parsed request into a :class:`Request`
  and results into reply text.  What a request *does* is :mod:`.core`.
* Every number here is on the wire (§0.4); names follow lvmlockd's so a
  reader can hold this file beside the contract.
* Replies are written by hand, not with the codec's writer: lvmlockd quotes
  strings without escaping them (§1.2), and its field orders are fixed (§1.3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..wire.codec import Section


class Op(enum.IntEnum):
    """The ``op`` field of replies (§0.4)."""

    HELLO = 1
    QUIT = 2
    INIT = 3
    FREE = 4
    START = 5
    STOP = 6
    LOCK = 7
    UPDATE = 8
    CLOSE = 9
    ENABLE = 10
    DISABLE = 11
    START_WAIT = 12
    STOP_ALL = 13
    DUMP_INFO = 14
    DUMP_LOG = 15
    RENAME_BEFORE = 16
    RENAME_FINAL = 17
    RUNNING_LM = 18
    FIND_FREE_LOCK = 19
    KILL_VG = 20
    DROP_VG = 21
    BUSY = 22


#: op names of ``info`` lines (§3.19)
OP_NAMES = {
    Op.INIT: "init", Op.FREE: "free", Op.START: "start", Op.STOP: "stop", Op.LOCK: "lock",
    Op.UPDATE: "update", Op.CLOSE: "close", Op.ENABLE: "enable", Op.DISABLE: "disable",
    Op.START_WAIT: "start_wait", Op.STOP_ALL: "stop_all", Op.RENAME_BEFORE: "rename_before",
    Op.RENAME_FINAL: "rename_final", Op.RUNNING_LM: "running_lm", Op.FIND_FREE_LOCK: "find_free_lock",
    Op.KILL_VG: "kill_vg", Op.DROP_VG: "drop_vg", Op.DUMP_LOG: "dump_log", Op.DUMP_INFO: "dump_info",
    Op.BUSY: "busy",
}  # fmt: skip


class Rt(enum.Enum):
    """Resource types: the global lock, a VG lock, an LV lock (§4.2)."""

    GL = "gl"
    VG = "vg"
    LV = "lv"


class Mode(enum.IntEnum):
    """Lock modes (§0.4); IV is "invalid or absent"."""

    IV = -1
    UN = 0
    NL = 1
    SH = 2
    EX = 3

    @property
    def text(self) -> str:
        return self.name.lower()


MODES = {"un": Mode.UN, "nl": Mode.NL, "sh": Mode.SH, "ex": Mode.EX}

# lock manager numbers (equal to lvm's LOCK_TYPE_*), the positive result of running_lm
LM_NONE = 0
LM_DLM = 2
LM_SANLOCK = 3
LOCK_TYPES = {"none": LM_NONE, "dlm": LM_DLM, "sanlock": LM_SANLOCK}
LOCK_TYPE_NAMES = {LM_NONE: "none", LM_DLM: "dlm", LM_SANLOCK: "sanlock"}
LM_UNKNOWN = -2  # a vg_lock_type string that names nothing

# errors carried in op_result / lm_result (always negative on the wire, §0.4)
EPERM = -1
ENOENT = -2
EAGAIN = -11
ENOMEM = -12
EBUSY = -16
EEXIST = -17
EINVAL = -22
ENOSPC = -28
ENOLCK = -37
EUNATCH = -49
EXFULL = -54
EMSGSIZE = -90
EPROTONOSUPPORT = -93
EALREADY = -114
ESTALE = -116
EUCLEAN = -117
ECANCELED = -125
ENOLS = -210
ESTARTING = -211
EARGS = -212
EHOSTID = -213
EMANAGER = -214
EVGKILLED = -217
ELOCKIO = -218
EREMOVED = -219
EDEVOPEN = -220
ELMERR = -221


class Opt(enum.Flag):
    """``opts`` keywords, matched as substrings (§2.2)."""

    NONE = 0
    PERSISTENT = enum.auto()
    UNLOCK_CANCEL = enum.auto()
    NEXT_VERSION = enum.auto()
    WAIT = enum.auto()
    FORCE = enum.auto()
    EX_DISABLE = enum.auto()
    ENABLE = enum.auto()
    DISABLE = enum.auto()


_OPT_WORDS = (
    ("persistent", Opt.PERSISTENT),
    ("unlock_cancel", Opt.UNLOCK_CANCEL),
    ("next_version", Opt.NEXT_VERSION),
    ("wait", Opt.WAIT),
    ("force", Opt.FORCE),
    ("ex_disable", Opt.EX_DISABLE | Opt.DISABLE),
    ("enable", Opt.ENABLE),
    ("disable", Opt.DISABLE),
)


def parse_opts(text: str) -> Opt:
    """Each keyword found anywhere in ``text`` sets its flag; unknown words (``nodelay``,
    ``adopt``, ``start_init`` ...) match nothing and are ignored, as in 2.02.188."""
    flags = Opt.NONE
    for word, flag in _OPT_WORDS:
        if word in text:
            flags |= flag
    return flags


#: request name -> (op, resource type it addresses)
REQUESTS: dict[str, tuple[Op, Rt | None]] = {
    "hello": (Op.HELLO, None),
    "quit": (Op.QUIT, None),
    "info": (Op.DUMP_INFO, None),
    "dump": (Op.DUMP_LOG, None),
    "init_vg": (Op.INIT, Rt.VG),
    "init_lv": (Op.INIT, Rt.LV),
    "free_vg": (Op.FREE, Rt.VG),
    "free_lv": (Op.FREE, Rt.LV),
    "start_vg": (Op.START, Rt.VG),
    "stop_vg": (Op.STOP, Rt.VG),
    "start_wait": (Op.START_WAIT, None),
    "stop_all": (Op.STOP_ALL, None),
    "lock_gl": (Op.LOCK, Rt.GL),
    "lock_vg": (Op.LOCK, Rt.VG),
    "lock_lv": (Op.LOCK, Rt.LV),
    "vg_update": (Op.UPDATE, Rt.VG),
    "enable_gl": (Op.ENABLE, Rt.GL),
    "disable_gl": (Op.DISABLE, Rt.GL),
    "rename_vg_before": (Op.RENAME_BEFORE, Rt.VG),
    "rename_vg_final": (Op.RENAME_FINAL, Rt.VG),
    "running_lm": (Op.RUNNING_LM, None),
    "find_free_lock": (Op.FIND_FREE_LOCK, Rt.VG),
    "kill_vg": (Op.KILL_VG, Rt.VG),
    "drop_vg": (Op.DROP_VG, Rt.VG),
    "busy_vg": (Op.BUSY, Rt.VG),
}

NAME_MAX = 64  # vg_name and lv_uuid are kept to 64 bytes (§2.1)
VG_NAME_MAX = 60  # a longer VG name leaves the lockspace name empty (§4.1)


@dataclass
class Request:
    """The fields lvmlockd reads from every request (§2.1), with their defaults."""

    name: str
    op: Op
    rt: Rt | None
    cmd: str = ""
    pid: int = 0
    vg_name: str = ""
    vg_uuid: str = ""
    mode: Mode = Mode.IV
    opts: Opt = Opt.NONE
    #: LM_NONE, LM_SANLOCK, LM_DLM, or LM_UNKNOWN; None when the request named none
    lock_type: int | None = None
    lv_name: str = ""
    lv_uuid: str = ""
    version: int = 0
    vg_lock_args: str = ""
    lv_lock_args: str = ""
    host_id: int = 0
    max_retries: int = 4

    @property
    def ls_name(self) -> str:
        """The lockspace a VG request addresses: ``lvm_<vg>`` (empty for a too-long name)."""
        if not self.vg_name or len(self.vg_name) > VG_NAME_MAX:
            return ""
        return "lvm_" + self.vg_name


def _field(tree: Section, key: str) -> str:
    """lvmlockd's string getter: empty reads as absent, and so does ``none`` (§1.2)."""
    value = tree.get_str(key) or ""
    return "" if value == "none" else value


def parse_request(tree: Section) -> Request | None:
    """A request tree to a :class:`Request`; None for a missing or unknown name."""
    name = tree.get_str("request") or ""
    known = REQUESTS.get(name)
    if known is None:
        return None
    op, rt = known
    lock_type_text = tree.get_str("vg_lock_type") or "none"
    if lock_type_text == "none":
        lock_type: int | None = None
    else:
        lock_type = LOCK_TYPES.get(lock_type_text, LM_UNKNOWN)
    return Request(
        name=name,
        op=op,
        rt=rt,
        cmd=tree.get_str("cmd") or "",
        pid=tree.get_int("pid", 0),
        vg_name=_field(tree, "vg_name")[:NAME_MAX],
        vg_uuid=_field(tree, "vg_uuid"),
        mode=MODES.get(tree.get_str("mode") or "", Mode.IV),
        opts=parse_opts(tree.get_str("opts") or ""),
        lock_type=lock_type,
        lv_name=_field(tree, "lv_name"),
        lv_uuid=_field(tree, "lv_uuid")[:NAME_MAX],
        version=tree.get_int("version", 0),
        vg_lock_args=_field(tree, "vg_lock_args"),
        lv_lock_args=_field(tree, "lv_lock_args"),
        host_id=tree.get_int("host_id", 0),
        max_retries=tree.get_int("max_retries", 4),
    )


def lock_type_name(lock_type: int | None) -> str:
    if lock_type is None:
        return "none"
    return LOCK_TYPE_NAMES.get(lock_type, "lm_unknown")


# -- replies (§1.3): lvmlockd's simple formatter, strings quoted without escaping ------
def _lines(fields: list[tuple[str, str | int]]) -> str:
    out = ['response = "OK"']
    for key, value in fields:
        out.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(out) + "\n"


def hello_reply(result: int = 0) -> str:
    """Layout (a): hello and quit."""
    return _lines([("result", result), ("protocol", "lvmlockd"), ("version", 1)])


def standard_reply(op: int, lock_type: str, op_result: int, lm_result: int, flags: str) -> str:
    """Layout (b): every request except hello, quit, init_*, info and dump."""
    return _lines(
        [
            ("op", op),
            ("lock_type", lock_type),
            ("op_result", op_result),
            ("lm_result", lm_result),
            ("result_flags", flags or "none"),
        ]
    )


def init_reply(op_result: int, lm_result: int, vg_lock_args: str, lv_lock_args: str, flags: str) -> str:
    """Layout (c): init_vg and init_lv."""
    return _lines(
        [
            ("op", int(Op.INIT)),
            ("op_result", op_result),
            ("lm_result", lm_result),
            ("vg_lock_args", vg_lock_args or "none"),
            ("lv_lock_args", lv_lock_args or "none"),
            ("result_flags", flags or "none"),
        ]
    )


def dump_reply(result: int, dump_len: int) -> str:
    """Layout (d): info and dump; the text follows as datagrams (§3.19)."""
    return _lines([("result", result), ("dump_len", dump_len)])
