"""LVM config text: parse it into a tree, write a tree back as text.

Rules of this module:

* No I/O and no imports from the rest of pylvmetad.  Bytes-to-messages is
  ``framing``; what the daemon does with a tree is ``cache`` and ``handlers``.
* Everything here follows LVM's own value model (docs/protocol.md
  §2): a value *is* a list of atoms, so the parser
  stores a one-atom list as the bare atom and the writer prints ``[]`` and
  lists of two or more atoms with brackets.  The single exception is
  :class:`MarkedList`, a list the daemon builds itself, which LVM's writer
  prints with brackets even when it holds one atom (``status=["MISSING"]``).

Theory of operation
-------------------
Two parsers give the same tree.  The general one pulls tokens one at a
time from one compiled regular expression and an iterative loop (an
explicit stack, no recursion, no token list) turns them into
:class:`Section` objects, which are ordered lists of ``(key, value)``
pairs: order is significant (first match wins on lookup, duplicates are
kept, replies echo stored order).  The fast path (see "Fast path" below)
handles the subset of the syntax LVM's tools actually send -- bare keys,
braces, double-quoted strings, decimal integers, lists -- a window of at
most _WINDOW units at a time: one possessive ``match`` proves the window is
in that subset and one ``findall`` yields a tuple per unit; anything else
(floats, quoted or path keys, errors) falls through to the general parser
unchanged.  An optional C accelerator (``_ccodec.c``) does the fast path's
work in one pass, with identical results.  It is used only if it is the
build of the source beside it (:func:`load_accelerator`: every name there,
the same digest); otherwise the pure-Python codec runs and the daemons log a
warning saying why.

Cost is linear in time and bounded in memory for every input shape: every
repetition in every pattern is possessive or a single character class (the
regex engine keeps no backtracking record per repeated item), scratch is a
window or a token, and the memos live in a :class:`Parser` with fixed
budgets (no memo holds a long string).  Both parsers are generators that
yield between bounded steps (:meth:`Parser.steps`), so a server can parse a
huge message a step per turn of its event loop; :func:`parse` runs one to
the end.

Sections that the daemon stores but never looks inside (a VG's
``logical_volumes``, which is most of a 1000-LV VG's metadata) are parsed
*lazily*: :func:`parse` is given their key names, and one regular
expression checks that a body is in the canonical form LVM's writer
produces and finds its closing brace (so echoing the text reads back as the
same tree as re-writing it).  The text is kept; the tree is built only if
somebody asks for the children.  A body that is not canonical is parsed
eagerly, so lazy parsing never changes what a reply says.  Bodies checked
recently are remembered, because the same LV sections arrive again and again
(once per PV in ``pvscan --cache``, and in every vg_update that leaves the
LVs alone): recognising one costs a string comparison instead of a match.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from functools import partial
from types import ModuleType
from typing import Any, TypeVar, Union, overload

__all__ = [
    "DEFAULT_PARSER",
    "Atom",
    "MarkedList",
    "ParseError",
    "Parser",
    "Section",
    "Value",
    "accelerated_function",
    "compare_trees",
    "first_fields",
    "first_values",
    "format_atom",
    "format_key",
    "format_simple",
    "format_tree",
    "format_value",
    "parse",
    "quote",
    "release_steps",
    "same_trees",
]

Atom = str | int | float
Value = Atom | list[Atom]
Node = Union[Value, "Section"]
_R = TypeVar("_R")

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
#: LVM replaces an out-of-range ``creation_time`` with this instead of failing.
CREATION_TIME_FALLBACK = 1527120000
#: Deepest section nesting accepted.  LVM metadata nests five levels; a cap
#: keeps every recursive walk of a stored tree (writer, comparison, copy) far
#: from Python's recursion limit, so no client can store a tree that a later
#: pv_list, vg_lookup or dump cannot write.
MAX_DEPTH = 128


class ParseError(ValueError):
    """A config text that LVM's parser would reject; carries its position."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.reason = message
        self.line = line
        self.column = column


class MarkedList(list[Atom]):
    """A list built by the daemon; always written with brackets.

    LVM's writer prints a one-atom list as a scalar, except lists the daemon
    extended itself (they carry an internal end marker).  Recorded replies
    show ``status=["MISSING"]`` and ``pv_list=["PV..."]`` with brackets.
    """


_MISSING = object()


class Section:
    """An ordered list of ``(key, value-or-Section)`` pairs.

    Look-ups return the first match, as LVM's ``find_config_*`` do.  A
    section parsed lazily holds its body text in ``raw`` and builds its
    children on first access.
    """

    __slots__ = ("_items", "raw")

    def __init__(self, items: Iterable[tuple[str, Node]] | None = None, raw: str | None = None) -> None:
        self._items: list[tuple[str, Node]] | None = (
            list(items) if items is not None else (None if raw is not None else [])
        )
        #: canonical body text (between the braces) when parsed lazily
        self.raw = raw

    # -- children -------------------------------------------------------
    @property
    def items(self) -> list[tuple[str, Node]]:
        """The children, parsed on first access for a lazy section."""
        if self._items is None:
            assert self.raw is not None
            self._items = parse(self.raw).items if self.raw.strip() else []
        return self._items

    def touch(self) -> list[tuple[str, Node]]:
        """Children for editing: the raw text no longer describes them."""
        items = self.items
        self.raw = None
        return items

    def __iter__(self) -> Iterator[tuple[str, Node]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:  # an empty section is still a section
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Section):
            return NotImplemented
        if self.raw is not None and other.raw is not None and self.raw == other.raw:
            return True
        return _plain(self.items) == _plain(other.items)

    def __repr__(self) -> str:
        if self._items is None:
            return f"Section(raw={len(self.raw or '')} chars)"
        return f"Section({self._items!r})"

    def keys(self) -> list[str]:
        return [k for k, _ in self.items]

    def sections(self) -> Iterator[tuple[str, Section]]:
        """The child sections, in order."""
        for k, v in self.items:
            if isinstance(v, Section):
                yield k, v

    # -- look-ups -------------------------------------------------------
    def child(self, key: str) -> Node | None:
        """First direct child named ``key`` (no path splitting)."""
        items = self._items
        if items is None:
            items = self.items
        return _first_value(items, key)

    def find(self, path: str) -> Node | None:
        """First node at ``a/b/c``; a value met before the end stops the walk."""
        if path and "/" not in path:  # the common case: one step, no splitting (child(), inlined)
            items = self._items
            if items is None:
                items = self.items
            return _first_value(items, path)
        node: Node = self
        for part in path.split("/"):
            if not part:
                continue
            if not isinstance(node, Section):
                return None
            found = node.child(part)
            if found is None:
                return None
            node = found
        return node

    def section(self, path: str) -> Section | None:
        node = self.find(path)
        return node if isinstance(node, Section) else None

    def get_str(self, path: str, default: str | None = None) -> str | None:
        """LVM's string getter: the first atom if it is a non-empty string."""
        items = self._items  # find(), inlined for the common one-step path: a call less per field
        node = _first_value(items, path) if items is not None and path and "/" not in path else self.find(path)
        if type(node) is str:  # the common case, without _first_atom's call
            return node or default
        first = _first_atom(node)
        if isinstance(first, str) and first:
            return first
        return default

    def get_str_allow_empty(self, path: str, default: str | None = None) -> str | None:
        first = _first_atom(self.find(path))
        return first if isinstance(first, str) else default

    def get_int64(self, path: str, default: int | None = None) -> int | None:
        """The first atom if it is an integer."""
        items = self._items  # find(), inlined for the common one-step path: a call less per field
        node = _first_value(items, path) if items is not None and path and "/" not in path else self.find(path)
        if type(node) is int:  # the common case, without _first_atom's call
            return node
        first = _first_atom(node)
        if isinstance(first, int):
            return first
        return default

    def get_int(self, path: str, default: int) -> int:
        """LVM's ``int`` getter: an integer truncated to a signed 32-bit value."""
        items = self._items
        if items is not None and path and "/" not in path:  # find(), get_int64(), to_int32(), inlined
            node = _first_value(items, path)
            if type(node) is int and -0x80000000 <= node <= 0x7FFFFFFF:
                return node
        value = self.get_int64(path)
        if value is None:
            return default
        return to_int32(value)

    def get_float(self, path: str, default: float | None = None) -> float | None:
        first = _first_atom(self.find(path))
        if isinstance(first, float):
            return first
        return default

    # -- building -------------------------------------------------------
    def add(self, key: str, value: Node) -> Section:
        """Append a child; returns ``self`` so replies can be chained."""
        self.touch().append((key, value))
        return self

    def add_section(self, key: str) -> Section:
        """Append an empty child section and return it."""
        child = Section()
        self.touch().append((key, child))
        return child

    def remove(self, key: str) -> bool:
        """Remove the first child named ``key``; True if one was removed."""
        items = self.touch()
        for i, (k, _) in enumerate(items):
            if k == key:
                del items[i]
                return True
        return False

    def copy(self) -> Section:
        """A deep copy (values are immutable atoms or lists, copied too)."""
        if self._items is None:
            return Section(raw=self.raw)
        out = Section(raw=self.raw)
        out._items = [(k, v.copy() if isinstance(v, (Section, list)) else v) for k, v in self._items]
        return out

    def to_python(self) -> dict[str, object]:
        """A JSON-friendly dict (first key wins; for display, not round trips)."""
        out: dict[str, object] = {}
        for k, v in self.items:
            if k in out:
                continue
            out[k] = v.to_python() if isinstance(v, Section) else (list(v) if isinstance(v, list) else v)
        return out


def to_int32(value: int) -> int:
    """C's ``(int)`` cast of a 64-bit value: keep the low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def atoms(node: Node) -> list[Atom]:
    """A node's atoms as a new list: a list's items, a scalar alone, none for a section."""
    if isinstance(node, Section):
        return []
    return list(node) if isinstance(node, list) else [node]


def _first_value_py(items: list[tuple[str, Node]], key: str) -> Node | None:
    """The value of the first pair of ``items`` named ``key``, or None (the reference of the C one)."""
    for k, v in items:
        if k == key:
            return v
    return None


def _first_value_c(items: list[tuple[str, Node]], key: str) -> Node | None:
    """:func:`_first_value_py` by the accelerator (``_ccodec.first_value``); the same value."""
    value = _first_value_accel(items, key)
    if value is NotImplemented:  # an item that is not a 2-tuple: the reference's loop decides
        return _first_value_py(items, key)
    return value  # type: ignore[return-value]


#: :func:`_first_value_py`, or the accelerator's through :func:`_first_value_c` (set below)
_first_value: Callable[[list[tuple[str, Node]], str], Node | None] = _first_value_py
_first_value_accel: Callable[[list[tuple[str, Node]], str], object] = _first_value_py


def _first_values_py(items: list[tuple[str, Node]], keys: tuple[str, ...]) -> tuple[Node | None, ...]:
    """:func:`_first_value_py` of each of ``keys`` (the reference of the C one)."""
    return tuple(_first_value_py(items, key) for key in keys)


def _first_values_c(items: list[tuple[str, Node]], keys: tuple[str, ...]) -> tuple[Node | None, ...]:
    """:func:`_first_values_py` by the accelerator (``_ccodec.first_values``): one walk, the same values."""
    values = _first_values_accel(items, keys)
    if values is NotImplemented:  # an item that is not a (str, value) pair: the reference decides
        return _first_values_py(items, keys)
    return values  # type: ignore[return-value]


_first_values_accel: Callable[[list[tuple[str, Node]], tuple[str, ...]], object] = _first_values_py
#: the first value of each of a few keys in one walk (:func:`_first_values_py`, or the accelerator's)
first_values: Callable[[list[tuple[str, Node]], tuple[str, ...]], tuple[Node | None, ...]] = _first_values_py


#: a key of :func:`first_fields`: a child's name, or (a section's name, the name of a child of it)
FieldKey = str | tuple[str, str]
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
#: :func:`_first_checked`'s "a pair of another shape before the match": the getter decides
_ASK = object()


def _first_checked(items: list[tuple[str, Node]], key: str) -> object:
    """:func:`_first_value_py`, or _ASK when a pair before the match is not a (str, value) 2-tuple."""
    for pair in items:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str:
            return _ASK
        if pair[0] == key:
            return pair[1]
    return None


def _field_value(value: Node | None, default: str | int | None) -> Node | None:
    """What :func:`first_fields` reports of a first value for ``default`` (see there)."""
    if default is None:
        return value
    if value is None:
        return default
    if type(default) is str:
        return value if type(value) is str and value else None
    return value if type(value) is int and _INT32_MIN <= value <= _INT32_MAX else None


def _first_fields_py(
    items: list[tuple[str, Node]], keys: tuple[FieldKey, ...], defaults: tuple[str | int | None, ...]
) -> tuple[Node | None, ...]:
    """The getters' answers for a few keys, as far as they are plain (the reference of the C one).

    Each key is a child's name, or (section, name): the child ``name`` of the
    first child named ``section`` (``get_*("section/name")``), read only when
    that is a :class:`Section` whose children are built.  For the first value
    ``v`` of each key, its default says what is reported: None -> ``v`` (None
    when there is none); a str -> ``v`` if it is a non-empty str (what
    ``get_str`` gives), the default if there is no ``v``, else None; an int ->
    ``v`` if it is an int of 32 bits (what ``get_int`` gives), the default if
    there is no ``v``, else None.  None for a default that is not None means
    "ask the getter", which knows every other case (a list, a wide int, an
    unbuilt section, a pair of another shape in the section).
    """
    out: list[Node | None] = []
    for key, default in zip(keys, defaults, strict=True):
        if type(key) is str:
            out.append(_field_value(_first_value_py(items, key), default))
            continue
        section = _first_value_py(items, key[0])
        children = section._items if type(section) is Section else None
        value = _ASK if type(children) is not list else _first_checked(children, key[1])
        out.append(None if value is _ASK else _field_value(value, default))  # type: ignore[arg-type]
    return tuple(out)


def _first_fields_c(
    items: list[tuple[str, Node]], keys: tuple[FieldKey, ...], defaults: tuple[str | int | None, ...]
) -> tuple[Node | None, ...]:
    """:func:`_first_fields_py` by the accelerator (``_ccodec.first_fields``): the same values."""
    values = _first_fields_accel(items, keys, defaults)
    if values is NotImplemented:  # a top-level pair that is not a (str, value) pair: the reference decides
        return _first_fields_py(items, keys, defaults)
    return values  # type: ignore[return-value]


_first_fields_accel: Callable[..., object] = _first_fields_py
#: the getters' plain answers for a few keys in one walk (:func:`_first_fields_py`, or the accelerator's)
first_fields: Callable[
    [list[tuple[str, Node]], tuple[FieldKey, ...], tuple[str | int | None, ...]], tuple[Node | None, ...]
] = _first_fields_py


def _first_atom(node: Node | None) -> Atom | None:
    if node is None or isinstance(node, Section):
        return None
    if isinstance(node, list):
        return node[0] if node else None
    return node


def _plain(items: list[tuple[str, Node]]) -> list[tuple[str, object]]:
    return [
        (k, _plain(v.items) if isinstance(v, Section) else ("L", list(v)) if isinstance(v, list) else v)
        for k, v in items
    ]


# ---------------------------------------------------------------------------
# Tokeniser
# ---------------------------------------------------------------------------
# One pass of one regex.  Each alternative is a numbered group so the parser
# can dispatch on ``lastindex``; whitespace and comments have no group.
# Every repetition is possessive (``*+``) or a single-character class: the
# regex engine keeps no backtracking record per repeated item, so a token's
# cost is linear in its length and its memory constant (a 100 MB string was
# 14 GB with ``(?:[^"\\]|\\.)*``).
_TOKEN = re.compile(
    r"""
    [ \t\n\r\v\f]++ | \#[^\n]*+           # skipped
    | ("[^"\\]*+(?:\\.[^"\\]*+)*+")       # 1 double-quoted string
    | ('[^']*+')                          # 2 single-quoted string
    | ([{}\[\],=])                        # 3 punctuation
    | ([^ \t\n\r\v\f\#={}\[\],"']++)      # 4 word: key, number or bare word
    | ("[^"\\]*+(?:\\.[^"\\]*+)*+\\?|'[^']*+)   # 5 unterminated quote: to the end, once
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"[-+.0-9][0-9]*+(?:\.[0-9]*+)?+")
_OCTAL = re.compile(r"[0-7]*+")
#: tokens (general parser) or characters (fast path) between two steps of
#: :meth:`Parser.steps`
STEP_TOKENS = 2048
STEP_CHARS = 8 * 1024  # ~1.5 ms of the Python fast path for a list of small ints (16 Ki: ~3 ms)


def _unescape(tok: str) -> str:
    """A double-quoted token's text: ``\\"`` and ``\\\\`` undone, any other backslash kept.

    Three ``str.replace`` passes instead of ``_DQ_UNESCAPE.sub`` (a match object
    per escape: 100 ms for 5 MB of ``\\a``).  The same result: in a run of
    backslashes both pair them from the left, and an odd one left over takes a
    following quote with it; NUL, the placeholder, cannot be in a parsed text.
    """
    body = tok[1:-1]
    if "\\" in body:
        return body.replace("\\\\", "\0").replace('\\"', '"').replace("\0", "\\")
    return body


def _number(word: str) -> Atom | None:
    """C ``strtoll(base 0)`` / ``strtod`` semantics of a number token."""
    m = _NUMBER.match(word)
    if m is None or m.end() != len(word):
        return None
    if "." in word:
        try:
            return float(word)
        except ValueError:
            return None
    sign = -1 if word[0] == "-" else 1
    digits = word.lstrip("+-")
    if not digits:
        return 0
    if len(digits) > 1 and digits[0] == "0":
        octal = _OCTAL.match(digits, 1)
        value = int(octal.group(0), 8) if octal and octal.group(0) else 0
    else:
        try:
            value = int(digits)
        except ValueError:  # more digits than int() converts: far out of range anyway
            value = 1 << 64
    return sign * value


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _built(items: list[tuple[str, Node]]) -> Section:
    """A section around a list built here (no copy, never lazy)."""
    section = Section.__new__(Section)
    section._items, section.raw = items, None
    return section


#: a token: (kind, text, offset); kind 0 is the end of the text
_Token = tuple[int, str, int]


def _token_stream(text: str) -> Iterator[_Token]:
    """The tokens of ``text`` one at a time (never a list of them all)."""
    for m in _TOKEN.finditer(text):
        kind = m.lastindex
        if kind is not None:
            yield kind, m.group(kind), m.start()


Steps = Generator[None, None, Section]


def _general(text: str) -> Steps:
    """The general parser: every token, one at a time, through a table-free loop.

    Iterative (an explicit stack of open sections), so depth costs no Python
    recursion, and a generator that yields every STEP_TOKENS tokens.  Memory
    is the tree being built plus one token: no token list.
    """
    eof: _Token = (0, "", len(text))
    stream = _token_stream(text)
    kind, tok, start = next(stream, eof)
    if kind == 0:
        raise ParseError("empty document", *_position(text, len(text)))

    def error(message: str, offset: int) -> ParseError:
        return ParseError(message, *_position(text, offset))

    items: list[tuple[str, Node]] = []
    root = items
    #: open sections: (the parent's items, key, key offset, the parent's depth)
    stack: list[tuple[list[tuple[str, Node]], str, int, int]] = []
    depth = 0
    budget = STEP_TOKENS
    while kind:
        budget -= 1
        if budget <= 0:
            budget = STEP_TOKENS
            yield
        node: Node
        if kind == 3:
            if tok == "}" and stack:
                node = _built(items)
                items, key, key_start, depth = stack.pop()
                kind, tok, start = next(stream, eof)
                _add(items, key, node, key_start, depth, error)
                continue
            raise error(f"unexpected {tok!r}", start)
        if kind == 4:
            key = tok
        elif kind == 1 or kind == 2:
            key = _unescape(tok) if kind == 1 else tok[1:-1]
            if not key:
                raise error("empty section identifier", start)
        else:
            raise error("unterminated string", start)
        key_start = start
        kind, tok, start = next(stream, eof)
        if kind == 3 and tok == "{":
            inner = depth + 1 + (key.count("/") if "/" in key else 0)
            if inner > MAX_DEPTH:
                raise error("sections nested too deeply", start)
            stack.append((items, key, key_start, depth))
            items, depth = [], inner
            kind, tok, start = next(stream, eof)
            continue
        if kind != 3 or tok != "=":
            raise error("expected '=' or '{' after key", start)
        kind, tok, start = next(stream, eof)
        if kind == 3 and tok == "[":
            atoms: list[Atom] = []
            kind, tok, start = next(stream, eof)
            while True:
                if kind == 0:
                    raise error("unterminated list", start)
                if kind == 3 and tok == "]":
                    kind, tok, start = next(stream, eof)
                    break
                atoms.append(_atom(kind, tok, start, key, error))
                kind, tok, start = next(stream, eof)
                if kind == 3 and tok == ",":
                    kind, tok, start = next(stream, eof)
                elif kind == 4:  # only strings may follow each other without a comma
                    raise error("expected ',' or ']'", start)
                budget -= 1
                if budget <= 0:
                    budget = STEP_TOKENS
                    yield
            node = atoms[0] if len(atoms) == 1 else atoms
        else:
            if kind == 0:
                raise error("expected a value", start)
            node = _atom(kind, tok, start, key, error)
            kind, tok, start = next(stream, eof)
        _add(items, key, node, key_start, depth, error)
    if stack:
        raise error("missing '}'", len(text))
    return _built(root)


def _add(
    items: list[tuple[str, Node]],
    key: str,
    node: Node,
    key_start: int,
    depth: int,
    error: Callable[[str, int], ParseError],
) -> None:
    if "/" not in key:
        items.append((key, node))
        return
    if depth + key.count("/") > MAX_DEPTH:  # a/b/c nests as well
        raise error("sections nested too deeply", key_start)
    _add_path(items, key, node)


def _add_path(items: list[tuple[str, Node]], key: str, node: Node) -> None:
    """``a/b/c = 4`` means ``a { b { c = 4 } }``; intermediate sections are reused."""
    parts = [p for p in key.split("/") if p]
    if not parts:
        raise ParseError("empty path", 0, 0)
    for part in parts[:-1]:
        for k, v in items:
            if k == part and isinstance(v, Section):
                items = v.touch()
                break
        else:
            child = Section()
            items.append((part, child))
            items = child.touch()
    items.append((parts[-1], node))


def _atom(kind: int, tok: str, start: int, key: str, error: Callable[[str, int], ParseError]) -> Atom:
    if kind == 1:
        return _unescape(tok)
    if kind == 2:
        return tok[1:-1]
    if kind == 4:
        if tok[0] in "0123456789+-.":
            value = _number(tok)
            if value is None:
                raise error(f"bad number {tok!r}", start)
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                if key == "creation_time":
                    return CREATION_TIME_FALLBACK
                raise error(f"integer out of range {tok!r}", start)
            return value
        return tok
    if kind == 5:
        raise error("unterminated string", start)
    raise error(f"unexpected {tok!r}", start)


#: characters searched for lazy names per step of :meth:`Parser.steps`
NAME_CHUNK = 1024 * 1024


def _nul_in(text: str) -> Generator[None, None, int]:
    """``text.find("\\0")``, NAME_CHUNK * 4 characters a step (a search of 20 MB is a few ms)."""
    chunk = NAME_CHUNK * 4
    for start in range(0, len(text), chunk):
        if start:
            yield
        nul = text.find("\0", start, start + chunk)
        if nul >= 0:
            return nul
    return -1


def _names_in(text: str, names: frozenset[str]) -> Generator[None, None, frozenset[str]]:
    """Those of ``names`` that occur in ``text``, searched NAME_CHUNK characters a step."""
    found: set[str] = set()
    overlap = max(map(len, names)) - 1
    for start in range(0, len(text), NAME_CHUNK):
        for name in names:
            if name not in found and text.find(name, start, start + NAME_CHUNK + overlap) >= 0:
                found.add(name)
        if len(found) == len(names):
            break
        yield
    return frozenset(found)


#: pairs looked at, or atoms dropped, per step of :func:`release_steps`
RELEASE_PAIRS = 2048
RELEASE_ATOMS = 64 * 1024
#: a longer list of atoms is emptied in steps, a shorter one dropped at once
RELEASE_LIST_MIN = 4096


def release_steps(holder: list[Section]) -> Generator[None, None, None]:
    """Drop the tree in ``holder`` (its only element, taken out) a bounded number of objects a step.

    Dropping the last reference to a tree of millions of objects frees them
    all at once (~80 ms for 2 M pairs); this frees them from the leaves up,
    RELEASE_PAIRS pairs or RELEASE_ATOMS list atoms per step.  Only what no
    one else references is taken apart: a container whose reference count
    shows another holder (a section the cache stored, a shared pair) is left
    whole and only this walk's reference dropped, so a tree that is still in
    use elsewhere is never changed.  The caller must hold no other reference
    (hence the holder list).
    """
    getrefcount = sys.getrefcount
    tree = holder.pop()
    items = tree._items
    del tree
    if items is None or getrefcount(items) != 2:  # lazy (a string) or still held elsewhere
        return
    #: lists of this walk's own: (the list, whether it holds pairs (else atoms))
    stack: list[tuple[list[Any], bool]] = [(items, True)]
    del items
    budget = RELEASE_PAIRS
    while stack:
        own, pairs = stack.pop()
        if not pairs:
            while own:
                del own[-RELEASE_ATOMS:]  # atoms hold nothing: a chunk at a time
                yield
            continue
        while own:
            budget -= 1
            if budget <= 0:
                budget = RELEASE_PAIRS
                yield
            pair = own.pop()
            value = pair[1]
            kind = type(value)
            if kind is not Section and kind is not list and kind is not MarkedList:
                continue  # an atom: dropped with its pair, at once
            if getrefcount(pair) != 2:  # a pair shared with someone else
                continue
            del pair
            if getrefcount(value) != 2:
                continue
            if kind is Section:
                inner = value._items
                del value
                if inner and getrefcount(inner) == 2:
                    stack.append((own, True))
                    stack.append((inner, True))
                    break
            elif (kind is list or kind is MarkedList) and len(value) > RELEASE_LIST_MIN:
                stack.append((value, False))


def _run(steps: Generator[None, None, _R]) -> _R:
    """Drive a parse generator to its end in one go."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _parse_eager(text: str) -> Section:
    """The general parser in one go (the reference the fast path is tested against)."""
    return _run(_general(text))


# ---------------------------------------------------------------------------
# Lazy parsing
# ---------------------------------------------------------------------------
# What LVM's writer emits, byte for byte: one statement per line, indented
# with one TAB per level, ``key=value`` without spaces, ``key {`` and ``}``;
# bare keys; double-quoted strings whose only escapes are ``\"`` and ``\\``
# (the only ones the reader undoes); decimal integers without leading zeros
# or ``-0``; floats as ``%f`` prints them with at most 15 significant digits
# (so they read back to the same text); ``[]`` and lists of two or more atoms
# joined by a bare comma.  A body in exactly this form, at the depth it is
# written at, is the writer's own output for its tree: echoing it is the
# same as re-writing it.  Anything else (comments, single quotes, path keys,
# one-atom lists, other layouts) is parsed eagerly and re-written.
_C_STR = r'"[^"\\]*+(?:\\["\\][^"\\]*+)*+"'
_C_NUM = r'(?:0|-?[1-9][0-9]{0,17}|-?(?:0|[1-9][0-9]{0,8})\.[0-9]{6})(?![^ \t\n\r\v\f\#={}\[\],"\'])'
_C_ATOM = f"(?>{_C_STR}|{_C_NUM})"
_C_VALUE = rf"(?>{_C_ATOM}|\[\]|\[{_C_ATOM}(?:,{_C_ATOM})++\])"
_C_KEY = r"[A-Za-z0-9_.+\-]++"
#: nesting accepted inside a lazy body (LVM's LV sections nest two levels)
LAZY_MAX_DEPTH = 6
#: a longer body is parsed eagerly: the check is one regex call, which must
#: not hold the event loop for long (a 1000-LV VG's body is about 300 KiB)
LAZY_MAX_CHARS = 4 * 1024 * 1024


def _writer_body(depth: int, levels: int) -> str:
    """The writer's output for the children of a section whose ``}`` is at ``depth``.

    Python's ``re`` has no recursion, so nesting is unrolled ``levels``
    deep.  Braces are balanced by construction and every line carries its
    exact indentation, so a match ends exactly at the section's own
    closing line (``\n``, ``depth`` TABs), before its ``}``.
    """
    inner = "\t" * (depth + levels)
    body = rf"(?:\n{inner}{_C_KEY}={_C_VALUE})*+"
    for level in range(levels - 1, -1, -1):
        ind = "\t" * (depth + level + 1)
        close = "\t" * (depth + level + 1)
        body = rf"(?:\n{ind}{_C_KEY}(?:={_C_VALUE}| \{{{body}\n{close}\}}))*+"
    return body


_LAZY_BODIES: dict[int, re.Pattern[str]] = {}


def _lazy_body(depth: int) -> re.Pattern[str]:
    """The pattern of a lazy body whose section line is indented ``depth`` TABs."""
    pattern = _LAZY_BODIES.get(depth)
    if pattern is None:
        pattern = re.compile(_writer_body(depth, LAZY_MAX_DEPTH) + "\n" + "\t" * depth + r"(?=\})")
        if depth < 16:  # the writer's own depths; deeper ones are compiled, used and dropped
            _LAZY_BODIES[depth] = pattern
    return pattern


def _lazy_body_end(text: str, start: int, depth: int) -> int:
    """Where the canonical body at ``start`` ends (before its ``}``), or -1: the accelerator or the regex."""
    endpos = start + LAZY_MAX_CHARS + depth + 1
    if _accel is not None:
        end: int = _accel.lazy_body_end(text, start, depth, LAZY_MAX_DEPTH, endpos)
        if end != -2:  # -2: wider characters, the regex decides
            return end
    body = _lazy_body(depth).match(text, start, endpos)
    return -1 if body is None else body.end()


def _lazy_head(lazy: frozenset[str]) -> re.Pattern[str]:
    """``name {`` at the start of a line, for any of the ``lazy`` names.

    Group 1 is the line's indentation, group 2 what stands between the
    name and the brace: a body is kept as text only after a head in the
    writer's own form (TABs, one space).
    """
    names = "|".join(re.escape(n) for n in sorted(lazy))
    return re.compile(r"(?m)^([ \t]*+)(?:" + names + r")([ \t]*+)\{")


_SORTED_NAMES: dict[frozenset[str], tuple[str, ...]] = {}


def _sorted_names(lazy: frozenset[str]) -> tuple[str, ...]:
    """``sorted(lazy)``: the order of the head regex's alternatives (which the accelerator tries in turn)."""
    names = _SORTED_NAMES.get(lazy)
    if names is None:
        names = tuple(sorted(lazy))
        if len(_SORTED_NAMES) < 8:  # callers use one or two fixed sets
            _SORTED_NAMES[lazy] = names
    return names


def _search_head(head: re.Pattern[str], lazy: frozenset[str], text: str, pos: int) -> re.Match[str] | None:
    """``head.search(text, pos)``, started at the line of the first lazy name at or after ``pos``.

    The same match: a head's line holds its name, so no head starts before
    the line of the first name.  The regex has no literal prefix to skip
    ahead with and costs ~10 ns a character; ``str.find`` skips the text
    before the name (most of a VG's) at memory speed, and finds the end of
    the text after the last body at once.
    """
    first = -1
    for name in lazy:
        at = text.find(name, pos)
        if at >= 0 and (first < 0 or at < first):
            first = at
    if first < 0:
        return None
    return head.search(text, max(pos, text.rfind("\n", pos, first) + 1))


def _ends_inside_string(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` leaves a quoted string open."""
    return any(m.lastindex == 5 for m in _TOKEN.finditer(text, start, end))


#: placeholder key of a cut-out body; a NUL cannot come from a client (parse
#: cuts the text at the first one), so no client key can be mistaken for it
_LAZY_MARK = "\0lazy"


def _restore_lazy(section: Section, raws: list[str]) -> None:
    items = section.items
    for idx, (k, v) in enumerate(items):
        if isinstance(v, Section):
            inner = v.items
            if len(inner) == 1 and inner[0][0].startswith(_LAZY_MARK):
                items[idx] = (k, Section(raw=raws[int(inner[0][0][len(_LAZY_MARK) :])]))
            else:
                _restore_lazy(v, raws)


# ---------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------
# Nearly every message LVM sends uses a small subset of the syntax: bare
# keys without ``/``, braces, double-quoted strings, decimal integers that
# fit in 64 bits (no octal, no ``+``) and comma-separated lists of those,
# with blanks and comments between them; no floats, no bare words, no single
# quotes.  (A comment is a blank to the tokeniser too: ``#`` ends a word and
# a number, and no key, number or unit holds one.)  Such a text is cut
# into *units* -- ``key {``, ``key = atom``, ``key = [``, a list's string,
# a run of its integers and commas, ``,``, ``]``, ``}`` -- by one ``findall`` per window of at most _WINDOW units,
# and the tree is built in one loop that also checks the units come in an
# order the grammar allows (a list holds atoms and commas, a section holds
# statements).
#
# Why it is the same tree as the general parser's: each window is first
# matched, possessively, as a run of whole units from where the last one
# ended, so every character belongs to a unit and the units are exactly
# those ``findall`` yields (same alternatives, tried in the same order, none
# revisited).  A unit is a sequence of the general tokeniser's tokens, read
# the same way (same string rule, every number followed by a delimiter);
# strings are unescaped by the same function and integers converted by
# ``int``, which is what ``_number`` does for this digit form.  Anything
# outside the subset, units out of order, unbalanced braces, an empty
# document or nesting past MAX_DEPTH returns None and the general parser
# runs (and raises the error).
#
# Why it is bounded: a window is at most _WINDOW units and at most
# _WINDOW_CHARS characters (the match is given an end), so the tuples
# ``findall`` returns are bounded whatever the text (a 100 MB list is
# millions of units, a window at a time), and the possessive repeats keep
# no backtracking record.  The end never falls inside a word: a number cut
# there would read as a shorter number (``12|3``), so the end moves past the
# word, or, in a word longer than any number (no unit ends inside one), at
# most _WORD_MAX characters on; and a window cut at a limit leaves its last
# unit to the next window when that is a bare number or run of numbers (it
# may be a numeric key whose ``=`` lies past the limit; a run read in two
# parts gives the same atoms).  Every other unit cut at the end fails to
# match whole (a string needs its closing quote, a key its ``=`` or ``{``),
# so the window stops before it and the next one starts there.
#
# A string longer than a window is read in steps (:meth:`Parser._long_string`):
# its head (blanks, ``key =`` or nothing, the opening quote) is matched like
# a unit's, then its body a chunk of _STRING_CHUNK characters at a time
# (``str.find`` for the quote and the backslash, the body pattern where
# there are escapes), each chunk ending before a quote or after a whole
# escape, so each chunk is unescaped alone with the same result; the
# chunks of an ASCII text are then joined _JOIN_CHARS characters a step by
# the accelerator's ``AsciiJoiner`` (its str allocated once and filled: a
# one-piece join copied 20 MB into fresh memory, ~15 ms).  What is
# still one unit: a key, a comment or a run of blanks longer than a window
# (one match, at the speed of a character class).
_F_WS = r"(?:[ \t\n\r\v\f]++|\#[^\n]*+)*+"  # blanks and comments
_F_STR = r'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_F_INT = r'-?+(?:0|[1-9][0-9]{0,17}+)(?![^ \t\n\r\v\f\#={}\[\],"\'])'
_WINDOW = 256
#: characters a window's match may look at (see "Why it is bounded")
_WINDOW_CHARS = 16 * 1024
#: a window's end moves at most this far to leave a word (no number is this long)
_WORD_MAX = 32
#: characters of a long string's body read per chunk (one step at most)
_STRING_CHUNK = 64 * 1024
#: characters of a long string's value joined per step (the accelerator's AsciiJoiner)
_JOIN_CHARS = 1024 * 1024


def _f_unit(g: str) -> str:
    """One unit; ``g`` opens the ten fields findall reports (or none).

    The window pattern uses the same text with non-capturing groups:
    Python 3.11's ``re`` mishandles capturing groups inside ``*+``.
    """
    return (
        rf"{_F_WS}(?:{g}[A-Za-z0-9_.+\-]++){_F_WS}(?:{g}\{{)|={_F_WS}(?:{g}{_F_STR})|{g}{_F_INT})|{g}\[)))"
        rf"|{g}\}})|{g}\])|{g}{_F_STR})|{g}{_F_INT}(?:{_F_WS},{_F_WS}{_F_INT}){{0,15}}+)|{g},))"
    )


_FAST_UNIT = re.compile(_f_unit("("), re.DOTALL)
_FAST_WINDOW = re.compile(rf"(?:{_f_unit('(?:')}){{1,{_WINDOW}}}+", re.DOTALL)
_FAST_BLANK = re.compile(_F_WS)
#: what a window's end skips so as not to cut a word
_F_WORD = re.compile(rf"[^ \t\n\r\v\f\#={{}}\[\],\"']{{0,{_WORD_MAX}}}+")
#: a string unit's head: blanks, then a key and "=" (a statement) or nothing (a list's atom), the quote
_F_STRING_HEAD = re.compile(rf"{_F_WS}(?:([A-Za-z0-9_.+\-]++){_F_WS}={_F_WS})?+\"", re.DOTALL)
#: a string's body up to its closing quote, a lone backslash at the end, or the end
_F_STRING_BODY = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+', re.DOTALL)


class Parser:
    """A config-text parser with bounded memos (one per daemon; :func:`parse` uses a default one).

    Its memos speed up the texts LVM repeats, within fixed budgets:

    * ``pairs``: equal ``(key, atom)`` pairs of stored PV records are one
      object (about a third of a PV record's memory).  Only pairs of an int
      or a string of at most SHARED_STR_MAX characters, at most
      SHARED_PAIRS_MAX of them (cleared when full): request data beyond that
      is never kept.
    * ``keys``: one string object per key name (PV and LV records repeat
      theirs), at most SHARED_KEYS_MAX (a bounded table, unlike
      ``sys.intern``, whose table never shrinks).
    * ``verified``: lazy bodies checked recently (see :meth:`_recently_verified`),
      at most VERIFIED_MAX bodies and VERIFIED_CHARS characters in all.
    * ``spans`` (the accelerator only): a unit's exact source text -> the
      object it parses to (``key = atom`` -> its shared pair, a key -> its
      str, a list's short string -> its str), a fixed table of 1024 spans
      of at most 112 characters (SPAN_MEMO_CHARS).  A unit's parse is a
      function of its characters, so a hit is the parse's own result; what
      follows a number is still checked in place.  It saves the objects,
      hashes and dict probes of the units a small request repeats (a known
      pv_found's build: 53 k -> 18 k instructions).  The pure-Python fast
      path has no such memo (its units come from ``findall``); the trees are
      the same, tests/wire/test_codec_accel.py checks it with a warm memo.
    """

    SHARED_STR_MAX = 64
    SHARED_PAIRS_MAX = 16384
    SHARED_KEYS_MAX = 4096
    VERIFIED_MAX = 4
    VERIFIED_CHARS = 2 * 1024 * 1024
    VERIFIED_MIN_CHARS = 512  # below this the regex is as cheap as the comparisons

    #: characters of request text the accelerator's span memo may hold (its fixed table:
    #: 1024 spans of at most 112 characters, counted twice, the span and what it parsed to)
    SPAN_MEMO_CHARS = 2 * 1024 * 112

    __slots__ = ("_heads", "_limits", "keys", "pairs", "spans", "verified")

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, Node], tuple[str, Node]] = {}
        self.keys: dict[str, str] = {}
        self.verified: list[tuple[int, str]] = []
        self._heads: dict[frozenset[str], re.Pattern[str]] = {}
        #: the accelerator's span memo (a unit's text -> its parsed object, ``_ccodec.SpanMemo``),
        #: None on the pure-Python codec
        self.spans: Any = _accel.SpanMemo() if _accel is not None else None
        #: the budgets ``_ccodec.parse_text`` is given (read once: a subclass's are its own);
        #: the memos above are emptied by :meth:`clear`, never replaced, so its calls see them
        self._limits = (
            self.SHARED_STR_MAX,
            self.SHARED_PAIRS_MAX,
            self.SHARED_KEYS_MAX,
            MAX_DEPTH,
            LAZY_MAX_DEPTH,
            self.VERIFIED_MIN_CHARS,
            self.VERIFIED_CHARS // 2,
            self.VERIFIED_MAX,
            self.VERIFIED_CHARS,
            LAZY_MAX_CHARS,
        )

    def clear(self) -> None:
        """Forget every memo."""
        self.pairs.clear()
        self.keys.clear()
        self.verified.clear()
        if self.spans is not None:
            self.spans.clear()

    def memo_chars(self) -> int:
        """Characters of request text the memos hold (bounded by the budgets above)."""
        strings = sum(len(k) + (len(v) if isinstance(v, str) else 0) for k, v in self.pairs)
        spans: int = 0 if self.spans is None else self.spans.chars()
        return sum(len(raw) for _, raw in self.verified) + strings + sum(map(len, self.keys)) + spans

    # -- entry points ---------------------------------------------------
    def parse(self, text: str, lazy: frozenset[str] = frozenset()) -> Section:
        """Parse ``text`` in one go (see :func:`parse`)."""
        if _accel is not None:
            names = _SORTED_NAMES.get(lazy) if lazy else ()
            if names is None:
                names = _sorted_names(lazy)
            # the NUL cut and :meth:`_accelerated` in one call: the same tree, None or NotImplemented
            # (wider characters, or a shape cut_lazy leaves to Python: what steps() decides)
            tree = _accel.parse_text(names, self.pairs, self.keys, self.verified, self.spans, self._limits, text)
            if tree is None:  # not in the subset: the general parser
                nul = text.find("\0")
                if nul >= 0:
                    text = text[:nul]
                return _run(self._general_lazy(text, lazy) if lazy else _general(text))
            if tree is not NotImplemented:
                return tree  # type: ignore[no-any-return]
        return _run(self.steps(text, lazy))

    def quick(self, lazy: frozenset[str] = frozenset()) -> Callable[[str], object]:
        """A parse of ``text`` with ``lazy`` for a caller's hot path: the tree, or anything else for "call :meth:`parse`".

        With the accelerator it is ``_ccodec.parse_text`` with every argument but the text
        bound (a ``functools.partial``: no Python frame), whose tree is :meth:`parse`'s;
        its None (not in the subset) and NotImplemented (wider characters) leave the text
        to :meth:`parse`, which gives the same tree or raises.  Without it, None always.
        """
        if _accel is None:
            return _no_quick_parse
        names = _sorted_names(lazy) if lazy else ()
        return partial(_accel.parse_text, names, self.pairs, self.keys, self.verified, self.spans, self._limits)

    def _accelerated(self, text: str, lazy: frozenset[str]) -> object:
        """The C fast path: the tree, None (not in the subset) or NotImplemented (ask Python)."""
        assert _accel is not None
        pieces, raws = self._cut_lazy(text, lazy, check_head=False) if lazy else ([text], [])
        return _accel.build(
            pieces,
            raws,
            self.pairs,
            self.keys,
            self.SHARED_STR_MAX,
            self.SHARED_PAIRS_MAX,
            self.SHARED_KEYS_MAX,
            MAX_DEPTH,
            LAZY_MAX_DEPTH,
            self.spans,
        )

    def steps(self, text: str, lazy: frozenset[str] = frozenset()) -> Steps:
        """The same parse as a generator: it yields between bounded steps, returns the tree.

        A server drives it a step per turn of its event loop, so a huge
        message costs its sender's connection and nobody else's.
        """
        nul = yield from _nul_in(text)
        if nul >= 0:  # the C parser sees a C string: a NUL ends the text
            text = text[:nul]
        if lazy and len(text) > NAME_CHUNK:
            # names that are not in the text head no section: dropped, in steps (a search
            # of 20 MB is ~12 ms a name); the parse is the same
            lazy = yield from _names_in(text, lazy)
        fast: object = NotImplemented
        if _accel is not None and len(text) <= ACCEL_ONE_STEP:
            fast = self._accelerated(text, lazy)
        if fast is NotImplemented:
            fast = yield from self._fast(text, lazy)
        if fast is not None:
            return fast  # type: ignore[return-value]
        if lazy:
            return (yield from self._general_lazy(text, lazy))
        return (yield from _general(text))

    # -- lazy sections ----------------------------------------------------
    def _head(self, lazy: frozenset[str]) -> re.Pattern[str]:
        head = self._heads.get(lazy)
        if head is None:
            head = _lazy_head(lazy)
            if len(self._heads) < 8:  # callers use one or two fixed sets
                self._heads[lazy] = head
        return head

    def _cut_lazy(self, text: str, lazy: frozenset[str], check_head: bool) -> tuple[list[str], list[str]]:
        """:meth:`_cut_lazy_py`'s result: without the head check, the accelerator's ``cut_lazy``.

        It is the reference's loop in one call (the same head search, memo, body
        check and cut-off; tests/wire/test_cut_lazy_accel.py checks the pieces, the
        bodies and the memo afterwards are the same); NotImplemented (wider
        characters) leaves the text to the reference.  A body that is not in the
        memo is checked against the memo's latest body of its depth: only the top
        lines that differ from it are checked (a vg_update that changes one LV
        checks that LV; see "per-line verification" in _ccodec.c), with the
        result of checking it whole.
        """
        if not check_head and _accel is not None:
            cut: tuple[list[str], list[str]] = _accel.cut_lazy(
                text,
                _sorted_names(lazy),
                self.verified,
                self.VERIFIED_MIN_CHARS,
                self.VERIFIED_CHARS // 2,
                self.VERIFIED_MAX,
                self.VERIFIED_CHARS,
                LAZY_MAX_DEPTH,
                LAZY_MAX_CHARS,
            )
            if cut is not NotImplemented:
                return cut
        return self._cut_lazy_py(text, lazy, check_head)

    def _cut_lazy_py(self, text: str, lazy: frozenset[str], check_head: bool) -> tuple[list[str], list[str]]:
        """Split ``text`` around the canonical bodies of ``lazy`` sections (the reference).

        Returns the pieces between the bodies (``len(raws) + 1`` of them; piece
        i ends with the ``{`` of the section whose body is ``raws[i]``, piece
        i+1 starts with its ``}``) and the bodies.  A head found inside a string
        is not a section; ``check_head`` tokenises the text before each head to
        rule that out (the fast parser instead validates every piece, which
        proves the same thing).
        """
        pieces: list[str] = []
        raws: list[str] = []
        for name in lazy:  # a loop, not any() of a generator: ~3 k instructions less a message
            if name in text:
                break
        else:
            return [text], raws
        head = self._head(lazy)
        pos = search_at = 0
        misses = 0  # heads whose body is not canonical; each costs a scan of the text
        while (m := _search_head(head, lazy, text, search_at)) is not None:
            start = search_at = m.end()
            indent = m.group(1)
            if m.group(2) != " " or indent.strip("\t"):
                continue  # not the writer's layout: parsed with the text around it
            if check_head and _ends_inside_string(text, pos, m.start()):
                break  # the head is inside a multi-line string: parse the rest eagerly
            depth = len(indent)
            raw = self._recently_verified(text, start, depth)
            if raw is None:
                end = _lazy_body_end(text, start, depth)
                if end < 0:  # not canonical (or too long): parsed with the text around it
                    misses += 1
                    if misses > 8:  # not LVM's writer: stop, or many heads cost O(n^2)
                        break
                    continue
                raw = text[start:end]
                self._remember_verified(raw, depth)
            pieces.append(text[pos:start])
            raws.append(raw)
            pos = search_at = start + len(raw)
        pieces.append(text[pos:])
        return pieces, raws

    # The same LV sections arrive again and again: ``pvscan --cache`` sends a
    # VG's metadata once per PV, and every vg_update that does not touch an LV
    # repeats them.  Matching a lazy body costs a few ms per 300 KiB, comparing
    # strings a few µs, so bodies that matched recently are remembered with the
    # depth they matched at.  The match at a position depends only on the text
    # from there up to the closing brace (statements are consumed left to right
    # without backtracking, and the match stops at the section's own closing
    # line).  So if a remembered body of the same depth followed by "}" starts
    # at that position, the match would be exactly that body: the memo returns
    # what the regex would.
    def _recently_verified(self, text: str, start: int, depth: int) -> str | None:
        for seen_depth, raw in self.verified:
            if seen_depth == depth and text.startswith(raw, start) and text.startswith("}", start + len(raw)):
                return raw
        return None

    def _remember_verified(self, raw: str, depth: int) -> None:
        if not self.VERIFIED_MIN_CHARS <= len(raw) <= self.VERIFIED_CHARS // 2:
            return
        verified = self.verified
        verified.insert(0, (depth, raw))
        total = 0
        for n, (_, kept) in enumerate(verified):
            total += len(kept)
            if n >= self.VERIFIED_MAX or total > self.VERIFIED_CHARS:
                del verified[n:]
                break

    def _general_lazy(self, text: str, lazy: frozenset[str]) -> Steps:
        """The general path: keep canonical bodies of the ``lazy`` sections as text.

        The lazy bodies are cut out first (so the general parser sees placeholder
        sections), then spliced back in as raw :class:`Section` objects.
        """
        pieces, raws = self._cut_lazy(text, lazy, check_head=True)
        if not raws:
            return (yield from _general(text))
        joined: list[str] = []
        for n in range(len(raws)):
            joined.append(pieces[n])
            joined.append(f"\n{_LAZY_MARK}{n}=0\n")
        joined.append(pieces[-1])
        del pieces
        tree = yield from _general("".join(joined))
        _restore_lazy(tree, raws)
        return tree

    # -- the fast path ----------------------------------------------------
    @staticmethod
    def _long_string(piece: str, start: int) -> Generator[None, None, tuple[str, int] | None]:
        """The string whose body starts at ``start``, read a chunk a step: its value and end, or None.

        The end is the position after the closing quote; None means there is
        none (an unterminated string, not the subset).  Each
        chunk ends before the quote, at a chunk's end or before a lone
        backslash there (its escape is read with the next chunk), so the
        chunks are unescaped one by one as :func:`_unescape` does the whole.
        """
        size = len(piece)
        parts: list[str] = []
        pos = start
        while True:
            end = min(size, pos + _STRING_CHUNK)
            quote_at = piece.find('"', pos, end)
            stop = end if quote_at < 0 else quote_at
            if piece.find("\\", pos, stop) < 0:  # no escape: str.find's speed
                parts.append(piece[pos:stop])
                body_end = stop
            else:
                body_end = _F_STRING_BODY.match(piece, pos, end).end()  # type: ignore[union-attr]
                part = piece[pos:body_end]
                parts.append(part.replace("\\\\", "\0").replace('\\"', '"').replace("\0", "\\"))
            if body_end < size and piece[body_end] == '"':
                break
            if body_end >= size or (body_end == pos and end == size):
                return None  # no closing quote (or only a lone backslash before the end)
            pos = body_end
            yield
        if len(parts) == 1:
            return parts[0], body_end + 1
        if _accel is not None and len(parts) * _STRING_CHUNK > _JOIN_CHARS and piece.isascii():
            # "".join of 20 MB is one copy into fresh memory, ~15 ms: filled a step at a time
            joiner = _accel.AsciiJoiner(parts)
            while joiner.step(_JOIN_CHARS):
                yield
            return joiner.result(), body_end + 1
        return "".join(parts), body_end + 1

    def _fast(self, text: str, lazy: frozenset[str]) -> Generator[None, None, Section | None]:
        """The tree of ``text`` if it is in the common subset (see above), else None."""
        pieces, raws = self._cut_lazy(text, lazy, check_head=False) if lazy else ([text], [])
        pairs, keys = self.pairs, self.keys
        share, key_of = pairs.setdefault, keys.setdefault
        short = self.SHARED_STR_MAX
        window, units = _FAST_WINDOW.match, _FAST_UNIT.findall
        word_end, string_head = _F_WORD.match, _F_STRING_HEAD.match
        items: list[tuple[str, Node]] = []
        root = _built(items)
        stack = [root]
        #: the list being read (None: reading a section), its key, and whether an atom ends it
        atoms: list[Atom] | None = None
        list_key = ""
        after_atom = False
        step = 0
        for n, piece in enumerate(pieces):
            pos, size = 0, len(piece)
            while pos < size:
                if len(pairs) > self.SHARED_PAIRS_MAX:  # checked per window: bounded within a message too
                    pairs.clear()
                if len(keys) > self.SHARED_KEYS_MAX:
                    keys.clear()
                limit = pos + _WINDOW_CHARS
                found = None  # the window's units, when cut at a limit
                if limit < size:
                    limit = word_end(piece, limit, limit + _WORD_MAX).end()  # type: ignore[union-attr]
                    m = window(piece, pos, limit)
                    if m is not None:
                        end = m.end()
                        found = units(piece, pos, end)
                        last_run = found[-1][8]
                        if last_run:
                            # a bare number last may be a numeric key whose "=" lies past the
                            # limit: left to the next window, which starts at its first digit
                            del found[-1]
                            end -= len(last_run)
                            if not found:  # the only unit: this window goes to the text's end
                                m, found = window(piece, pos), None
                    else:
                        # no whole unit before the limit: a long string, read in steps; or a
                        # long key, comment or run of blanks, one unit; or not the subset
                        head = string_head(piece, pos, limit)
                        if head is None:
                            m = window(piece, pos)
                        else:
                            key = head.group(1)
                            if (key is None) == (atoms is None):
                                return None  # a string where the grammar has none
                            read = yield from self._long_string(piece, head.end())
                            if read is None:
                                return None  # unterminated
                            value, string_end = read
                            if atoms is not None:
                                atoms.append(value)
                                after_atom = True
                            else:
                                read_pair: tuple[str, Node] = (key_of(key, key), value)
                                items.append(share(read_pair, read_pair) if len(value) <= short else read_pair)
                            step += string_end - pos
                            pos = string_end
                            continue
                else:
                    m = window(piece, pos)
                if m is None:
                    if _FAST_BLANK.match(piece, pos).end() != size:  # type: ignore[union-attr]
                        return None  # not in the subset
                    break
                if found is None:
                    end = m.end()
                    found = units(piece, pos, end)
                for key, opened, string, integer, _lopen, closed, lclosed, astr, aint, comma in found:
                    if atoms is not None:  # inside a list: atoms, commas, "]"
                        if astr:
                            atoms.append(_unescape(astr))
                            after_atom = True
                        elif aint:  # a run of integers and commas: int() allows the blanks
                            if after_atom:
                                return None  # "1 2": the general parser refuses it
                            if "," in aint:
                                atoms.extend(map(int, aint.split(",")))
                            else:
                                atoms.append(int(aint))
                            after_atom = True
                        elif comma:
                            if not after_atom:
                                return None
                            after_atom = False
                        elif lclosed:
                            if not after_atom and atoms:
                                return None  # "[1,]": left to the general parser
                            items.append((list_key, atoms[0] if len(atoms) == 1 else atoms))
                            atoms = None
                        else:
                            return None
                    elif closed:
                        stack.pop()
                        if not stack:
                            return None
                        items = stack[-1]._items  # type: ignore[assignment]  # built here: never lazy
                    elif not key:
                        return None  # an atom, "," or "]" outside a list
                    else:
                        # keys repeat in every PV and LV record: share one string object each
                        key = key_of(key, key)
                        if opened:
                            items = []
                            child = _built(items)
                            stack[-1]._items.append((key, child))  # type: ignore[union-attr]
                            stack.append(child)
                            if len(stack) > MAX_DEPTH + 1:
                                return None
                        elif string:
                            value = _unescape(string)
                            pair: tuple[str, Node] = (key, value)
                            items.append(share(pair, pair) if len(value) <= short else pair)
                        elif integer:
                            pair = (key, int(integer))
                            items.append(share(pair, pair))
                        else:
                            atoms, list_key, after_atom = [], key, False
                step += end - pos
                pos = end
                if step >= STEP_CHARS:
                    step = 0
                    yield
            if n < len(raws):
                # the piece ended with the lazy section's "{": it is on top of the stack
                if atoms is not None or len(stack) - 1 + LAZY_MAX_DEPTH > MAX_DEPTH or len(stack) < 2:
                    return None
                lazy_section = stack[-1]
                lazy_section._items, lazy_section.raw = None, raws[n]
        if len(stack) != 1 or atoms is not None or not root._items:
            return None
        return root


# The accelerator: the fast path in C (_ccodec.c), built by setup.py when a
# compiler is there.  The pure-Python code above stays the reference; the
# C one must give the same tree or the same None (tests/test_codec_accel.py).
#: set to 1 to run the pure-Python codec even when the accelerator is built
PURE_PYTHON_ENV = "PYLVMETAD_PURE_PYTHON"
#: texts up to this long are parsed by the accelerator in one step (a few ms)
ACCEL_ONE_STEP = 1024 * 1024
#: every name of the accelerator this package uses (here, in framing, the cache, dispatch)
ACCEL_NAMES = frozenset(
    {
        "AsciiDecoder",
        "AsciiJoiner",
        "SpanMemo",
        "build",
        "compare_trees",
        "configure",
        "configure_compare",
        "configure_format",
        "cut_lazy",
        "first_fields",
        "first_value",
        "first_values",
        "format_tree",
        "lazy_body_end",
        "parse_text",
        "same_trees",
        "strip_device_hints",
    }
)


def _source_digest(module: ModuleType) -> str | None:
    """SHA-256 of the ``_ccodec.c`` beside ``module``'s file, or None where there is none (a wheel)."""
    source = os.path.join(os.path.dirname(module.__file__ or ""), "_ccodec.c")
    try:
        with open(source, "rb") as file:
            return hashlib.sha256(file.read()).hexdigest()
    except OSError:
        return None


def accelerator_mismatch(module: ModuleType) -> str | None:
    """Why ``module`` is not the build of this source, or None when it is.

    It lacks a name in :data:`ACCEL_NAMES`, or a ``_ccodec.c`` beside it has
    another digest than the build recorded (``SOURCE_DIGEST``, from setup.py;
    a build without one, or with no source beside it, is checked by its names
    only).
    """
    missing = sorted(name for name in ACCEL_NAMES if not hasattr(module, name))
    if missing:
        return f"it lacks {', '.join(missing)}"
    built = getattr(module, "SOURCE_DIGEST", "")
    digest = _source_digest(module)
    if built and digest is not None and built != digest:
        return "it was built from another _ccodec.c than the one beside it"
    return None


def load_accelerator(environ: Mapping[str, str] = os.environ) -> tuple[ModuleType | None, str]:
    """The accelerator module to use, or None, and a line for the log saying which codec runs and why.

    None when ``PYLVMETAD_PURE_PYTHON`` asks for it, when the module is not
    built, or when it is not the build of this source
    (:func:`accelerator_mismatch`: an in-place build older than a ``git
    pull``).  A mismatched build is never used: its functions could take other
    arguments or give other results than the Python reference they stand for.
    """
    if environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"pure-Python codec ({PURE_PYTHON_ENV} is set)"
    try:
        from . import _ccodec
    except ImportError as exc:
        return None, f"pure-Python codec: the C accelerator is not built ({exc}); reinstall with a C compiler"
    mismatch = accelerator_mismatch(_ccodec)
    if mismatch is not None:
        return None, (
            f"pure-Python codec: the C accelerator {_ccodec.__file__} is stale ({mismatch}); "
            "rebuild it (pip install again, or python3 setup.py build_ext --inplace)"
        )
    return _ccodec, f"C accelerator ({_ccodec.__file__})"


_accel, ACCEL_STATUS = load_accelerator()
#: whether the codec runs pure Python although nobody asked for it (the daemons log a warning)
ACCEL_MISSING = _accel is None and os.environ.get(PURE_PYTHON_ENV, "") in ("", "0")
if _accel is not None:
    _accel.configure(Section, Section.__dict__["_items"], Section.__dict__["raw"])
    # the look-up every getter makes: a C loop over the pairs (~2 k instructions less per field
    # of a pv_found; the NotImplemented check costs one comparison)
    _first_value_accel = _accel.first_value
    _first_value = _first_value_c
    _first_values_accel = _accel.first_values
    first_values = _first_values_c
    _first_fields_accel = _accel.first_fields
    first_fields = _first_fields_c
#: whether the C fast path is in use
ACCELERATED = _accel is not None


def _no_quick_parse(text: str) -> object:
    """:meth:`Parser.quick` without the accelerator: always "call parse()"."""
    return None


def accelerated_function(name: str) -> Callable[..., object] | None:
    """The accelerator's function ``name`` when the C fast path is in use, else None.

    For the layers above with a walk of parsed trees done in C (each keeps
    its Python reference and a test of both).
    """
    return getattr(_accel, name) if _accel is not None else None


#: the parser :func:`parse` uses (and lazy sections, when they build their children)
DEFAULT_PARSER = Parser()


def parse(text: str, lazy: frozenset[str] = frozenset()) -> Section:
    """Parse a config text into a :class:`Section` (the document's top level).

    ``lazy`` names sections whose bodies are kept as text when they are in
    LVM's canonical form (see the module docstring).  Raises
    :class:`ParseError` for anything LVM's parser rejects, including an
    empty document.
    """
    return DEFAULT_PARSER.parse(text, lazy)


# ---------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------
def quote(s: str) -> str:
    """A double-quoted string with ``"`` and ``\\`` escaped (nothing else)."""
    if '"' in s or "\\" in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def format_atom(atom: Atom) -> str:
    if isinstance(atom, str):
        return quote(atom)
    if isinstance(atom, float):
        return "%f" % atom
    return str(atom)


def format_value(value: Value) -> str:
    """Write a value as LVM does: one-atom lists as scalars, except marked lists."""
    if isinstance(value, list):
        if len(value) == 1 and not isinstance(value, MarkedList):
            return format_atom(value[0])
        return "[" + ",".join(format_atom(a) for a in value) + "]"
    return format_atom(value)


# LVM quotes keys holding # " or !; we also quote any key our reader would
# split (whitespace and punctuation), so a client-chosen key -- a PV uuid in
# pv_list, say -- can never make a reply unparsable for every other client.
_KEY_NEEDS_QUOTES = re.compile(r'[#"!\s=,{}\[\]\']')


#: key -> its written form; keys repeat (a few dozen names in LVM's trees), a
#: regex search per key written was a third of a vg_lookup's writing time
_KEY_TEXTS: dict[str, str] = {}
#: more distinct keys than this (PV uuids in pv_list, client-chosen names) and the memo starts over
KEY_TEXTS_MAX = 1024
KEY_TEXT_MAX_CHARS = 64


def format_key(key: str) -> str:
    """A key as LVM's writer prints it: bare, or quoted when it would not read back."""
    text = _KEY_TEXTS.get(key)
    if text is None:
        text = quote(key) if _KEY_NEEDS_QUOTES.search(key) else key
        if len(key) <= KEY_TEXT_MAX_CHARS:
            if len(_KEY_TEXTS) >= KEY_TEXTS_MAX:
                _KEY_TEXTS.clear()
            _KEY_TEXTS[key] = text
    return text


def _write(items: list[tuple[str, Node]], depth: int, out: list[str]) -> None:
    """The tree writer, the reference (``_ccodec.format_tree`` must write the same text)."""
    indent = "\t" * min(depth, 32)
    keys = _KEY_TEXTS
    for key, value in items:
        k = keys.get(key)
        if k is None:
            k = format_key(key)
        kind = type(value)  # the common kinds first, each written as format_value would
        if kind is str:
            out.append(f"{indent}{k}={quote(value)}\n")  # type: ignore[arg-type]
        elif kind is int:
            out.append(f"{indent}{k}={value}\n")
        elif isinstance(value, Section):
            if value.raw is not None and value.raw.endswith("\n" + indent):
                # kept as the writer's own text for this depth (see _cut_lazy)
                out.append(f"{indent}{k} {{{value.raw}}}\n")
                continue
            out.append(f"{indent}{k} {{\n")
            _write(value.items, depth + 1, out)
            out.append(f"{indent}}}\n")
        elif kind is list and len(value) != 1:  # type: ignore[arg-type]
            atoms = [quote(a) if type(a) is str else format_atom(a) for a in value]  # type: ignore[union-attr]
            out.append(f"{indent}{k}=[{','.join(atoms)}]\n")
        else:
            out.append(f"{indent}{k}={format_value(value)}\n")


def _format_tree_py(tree: Section | list[tuple[str, Node]], depth: int = 0) -> str:
    """:func:`format_tree` in Python, the reference of the accelerator's."""
    out: list[str] = []
    _write(tree.items if isinstance(tree, Section) else tree, depth, out)
    return "".join(out)


#: ``_ccodec.format_tree`` when the accelerator is in use: the reference's text, or None for a
#: shape it leaves to the reference (anything but exact str, int, list, MarkedList, Section)
_format_tree_accel: Callable[[Section | list[tuple[str, Node]], int], str | None] | None = None
if _accel is not None:
    _accel.configure_format(MarkedList)
    _format_tree_accel = _accel.format_tree


def format_tree(tree: Section | list[tuple[str, Node]], depth: int = 0) -> str:
    """LVM's tree writer: TAB indentation, ``key=value``, one node per line.

    ``tree`` is a Section or its children (a list of pairs, written as a
    Section's would be).  The accelerator writes it when it can
    (tests/wire/test_format_accel.py), else :func:`_format_tree_py`.
    """
    if _format_tree_accel is not None:
        text = _format_tree_accel(tree, depth)
        if text is not None:
            return text
    return _format_tree_py(tree, depth)


def format_simple(response: str, fields: Iterable[tuple[str, Atom]] = ()) -> str:
    """LVM's "simple" reply layout: ``response = "X"`` then ``key = value`` lines."""
    lines = [f"response = {quote(response)}"]
    for key, value in fields:
        lines.append(f"{key} = {format_atom(value)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------
_TYPE_ORDER = {int: 0, float: 1, str: 2}


def _atoms(value: Value) -> list[Atom]:
    return value if isinstance(value, list) else [value]


def _compare_values(x: Value, y: Value) -> int:
    xs, ys = _atoms(x), _atoms(y)
    i = 0
    while True:
        # an empty list is its own type, ordered after strings
        tx = 3 if not xs else _TYPE_ORDER.get(type(xs[i]), 2)
        ty = 3 if not ys else _TYPE_ORDER.get(type(ys[i]), 2)
        if tx != ty:
            return -1 if tx < ty else 1
        if tx == 3:
            return 0
        a, b = xs[i], ys[i]
        if tx == 1:
            assert isinstance(a, float) and isinstance(b, float)
            r = 0 if abs(a - b) < 2.220446049250313e-16 else (-1 if a < b else 1)
        else:
            r = 0 if a == b else (-1 if a < b else 1)  # type: ignore[operator]
        if r == 0 and i + 1 < len(xs) and i + 1 < len(ys):
            i += 1
            continue
        return r


@overload
def _compare_trees_py(a: Section, b: Section) -> int: ...
@overload
def _compare_trees_py(a: list[tuple[str, Node]], b: list[tuple[str, Node]]) -> int: ...
def _compare_trees_py(a: Section | list[tuple[str, Node]], b: Section | list[tuple[str, Node]]) -> int:
    """LVM's ``compare_config``: 0 means "the same" by its (loose) rules.

    Keys are not compared, a longer list equals its own prefix, and a node's
    children override its value comparison (docs/protocol.md §2, comparison).
    This is the reference; :func:`compare_trees` is ``_ccodec.compare_trees``
    when the accelerator is in use (tests/wire/test_compare_accel.py).
    """
    if isinstance(a, Section) and isinstance(b, Section):
        if a.raw is not None and a.raw == b.raw:
            return 0
        a, b = a.items, b.items
    assert isinstance(a, list) and isinstance(b, list)
    la, lb = len(a), len(b)
    i = 0
    while i < la and i < lb:
        va, vb = a[i][1], b[i][1]
        tv = type(va)
        if (tv is int or tv is str) and type(vb) is tv:
            # the common case, as _compare_values decides it for two scalars of one type
            if va == vb:
                i += 1
                continue
            return -1 if va < vb else 1  # type: ignore[operator]
        r = 0
        a_sec, b_sec = isinstance(va, Section), isinstance(vb, Section)
        if not a_sec and not b_sec:
            r = _compare_values(va, vb)  # type: ignore[arg-type]
        elif not a_sec and b_sec:
            r = 1
        elif a_sec and not b_sec:
            r = -1
        if a_sec and b_sec:
            raw = va.raw  # type: ignore[union-attr]
            # two lazy sections of equal text are equal: compared without parsing either
            if raw is None or raw != vb.raw:  # type: ignore[union-attr]
                ca, cb = va.items, vb.items  # type: ignore[union-attr]
                if ca and cb:
                    r = _compare_trees_py(ca, cb)
        if r != 0:
            return r
        i += 1
    if la > lb:
        return 1
    if la < lb:
        return -1
    return 0


def _same_trees_py(a: object, b: object) -> bool:
    """Whether ``a`` and ``b`` are the same :class:`Section` tree exactly (the reference of the C one).

    Stricter than ``==`` and than :func:`compare_trees`: the same keys in the
    same order, each value of the very same type as the other's (a
    :class:`MarkedList` is not a list, a float is not an int) and equal
    (floats by their ``repr``); lazy sections of the same text are the same
    without being parsed.  What any reply shows of one, it shows of the
    other, so a store of one over the other changes nothing.  Conservative:
    an object of a type it does not know (a subclass, a pair that is not a
    2-tuple with a str key) makes it answer False.
    """
    if a is b:
        return True
    if type(a) is not Section or type(b) is not Section:
        return False
    if a.raw is not None and b.raw is not None and a.raw == b.raw:
        return True
    ia, ib = a.items, b.items
    if len(ia) != len(ib):
        return False
    for pa, pb in zip(ia, ib, strict=True):
        if type(pa) is not tuple or type(pb) is not tuple or len(pa) != 2 or len(pb) != 2:
            return False
        ka, va = pa
        kb, vb = pb
        if type(ka) is not str or type(kb) is not str or ka != kb or not _same_atoms(va, vb):
            return False
    return True


def _same_atoms(va: object, vb: object) -> bool:
    if va is vb:
        return True
    t = type(va)
    if type(vb) is not t:
        return False
    if t is str or t is int:
        return va == vb
    if t is float:
        return repr(va) == repr(vb)
    if t is Section:
        return _same_trees_py(va, vb)
    if isinstance(va, list):
        assert isinstance(vb, list)
        return len(va) == len(vb) and all(_same_atoms(x, y) for x, y in zip(va, vb, strict=True))
    return False


#: whether two trees are the same exactly (:func:`_same_trees_py`, or the same walk in C)
same_trees: Callable[[object, object], bool] = _same_trees_py

#: LVM's ``compare_config`` (see :func:`_compare_trees_py`, the reference): the same walk in C
#: when the accelerator is in use, with every value pair other than two ints or two strs
#: handed back to :func:`_compare_values`
compare_trees = _compare_trees_py
if _accel is not None:
    _accel.configure_compare(_compare_values)
    compare_trees = _accel.compare_trees
    same_trees = _accel.same_trees
