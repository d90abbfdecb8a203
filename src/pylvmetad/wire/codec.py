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
Two parsers give the same tree.  The general one tokenises a message with
one compiled regular expression and a small recursive-descent pass turns
the tokens into :class:`Section` objects, which are ordered lists of
``(key, value)`` pairs: order is significant (first match wins on lookup,
duplicates are kept, replies echo stored order).  The fast path (see "Fast
path" below) handles the subset of the syntax LVM's tools actually send --
bare keys, braces, double-quoted strings, decimal integers, lists -- with a
``fullmatch`` that proves the text is in that subset and a ``findall`` that
yields one tuple per statement; anything else (comments, floats, quoted or
path keys, errors) falls through to the general parser unchanged.

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

import re
from collections.abc import Iterable, Iterator
from sys import intern as _intern
from typing import Union, overload

__all__ = [
    "Atom",
    "MarkedList",
    "ParseError",
    "Section",
    "Value",
    "compare_trees",
    "format_atom",
    "format_key",
    "format_simple",
    "format_tree",
    "format_value",
    "parse",
    "quote",
]

Atom = str | int | float
Value = Atom | list[Atom]
Node = Union[Value, "Section"]

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
        self._items: list[tuple[str, Node]] | None = list(items) if items is not None else (None if raw is not None else [])
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
        for k, v in items:
            if k == key:
                return v
        return None

    def find(self, path: str) -> Node | None:
        """First node at ``a/b/c``; a value met before the end stops the walk."""
        if path and "/" not in path:  # the common case: one step, no splitting
            return self.child(path)
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
        first = _first_atom(self.find(path))
        if isinstance(first, str) and first:
            return first
        return default

    def get_str_allow_empty(self, path: str, default: str | None = None) -> str | None:
        first = _first_atom(self.find(path))
        return first if isinstance(first, str) else default

    def get_int64(self, path: str, default: int | None = None) -> int | None:
        """The first atom if it is an integer."""
        first = _first_atom(self.find(path))
        if isinstance(first, int):
            return first
        return default

    def get_int(self, path: str, default: int) -> int:
        """LVM's ``int`` getter: an integer truncated to a signed 32-bit value."""
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
# One pass of one regex.  Each alternative is a named group so the parser can
# dispatch on ``lastindex``; whitespace and comments are dropped by findall.
_TOKEN = re.compile(
    r"""
    [ \t\n\r\v\f]+ | \#[^\n]*             # skipped
    | ("(?:[^"\\]|\\.)*")                 # 1 double-quoted string
    | ('[^']*')                           # 2 single-quoted string
    | ([{}\[\],=])                        # 3 punctuation
    | ([^ \t\n\r\v\f\#={}\[\],"']+)       # 4 word: key, number or bare word
    | ("(?:[^"\\]|\\.)*\\?|'[^']*)           # 5 unterminated quote: to the end, once
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER = re.compile(r"[-+.0-9][0-9]*(?:\.[0-9]*)?")
_DQ_UNESCAPE = re.compile(r'\\(["\\])')


def _unescape(tok: str) -> str:
    body = tok[1:-1]
    if "\\" in body:
        return _DQ_UNESCAPE.sub(r"\1", body)
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
        octal = re.match(r"[0-7]*", digits[1:])
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


class _Tokens:
    """The token list of one text, with offsets kept for error messages."""

    __slots__ = ("depth", "i", "kinds", "starts", "text", "values")

    def __init__(self, text: str) -> None:
        self.text = text
        kinds: list[int] = []
        values: list[str] = []
        starts: list[int] = []
        for m in _TOKEN.finditer(text):
            kind = m.lastindex
            if kind is None:
                continue
            kinds.append(kind)
            values.append(m.group(kind))
            starts.append(m.start())
        self.kinds, self.values, self.starts, self.i = kinds, values, starts, 0
        self.depth = 0

    def error(self, message: str, index: int | None = None) -> ParseError:
        i = self.i if index is None else index
        offset = self.starts[i] if i < len(self.starts) else len(self.text)
        line, column = _position(self.text, offset)
        return ParseError(message, line, column)


def parse(text: str, lazy: frozenset[str] = frozenset()) -> Section:
    """Parse a config text into a :class:`Section` (the document's top level).

    ``lazy`` names sections whose bodies are kept as text when they are in
    LVM's canonical form (see the module docstring).  Raises
    :class:`ParseError` for anything LVM's parser rejects, including an
    empty document.
    """
    nul = text.find("\0")
    if nul >= 0:  # the C parser sees a C string: a NUL ends the text
        text = text[:nul]
    fast = _parse_fast(text, lazy)
    if fast is not None:
        return fast
    if lazy:
        return _parse_lazy(text, lazy)
    return _parse_eager(text)


def _parse_eager(text: str) -> Section:
    """The general parser: every token through :func:`_statements`."""
    toks = _Tokens(text)
    if not toks.kinds:
        raise ParseError("empty document", *_position(text, len(text)))
    items = _statements(toks, top=True)
    return Section(items)


def _statements(toks: _Tokens, top: bool) -> list[tuple[str, Node]]:
    kinds, values = toks.kinds, toks.values
    n = len(kinds)
    items: list[tuple[str, Node]] = []
    while toks.i < n:
        i = toks.i
        kind, tok = kinds[i], values[i]
        if kind == 3:
            if tok == "}" and not top:
                return items
            raise toks.error(f"unexpected {tok!r}")
        if kind == 4:
            key = tok
        elif kind in (1, 2):
            key = _unescape(tok) if kind == 1 else tok[1:-1]
            if not key:
                raise toks.error("empty section identifier")
        else:
            raise toks.error("unterminated string")
        i += 1
        if i >= n:
            raise toks.error("expected '=' or '{' after key", i)
        op = values[i] if kinds[i] == 3 else ""
        node: Node
        if op == "{":
            depth = toks.depth
            toks.depth = depth + 1 + (key.count("/") if "/" in key else 0)
            if toks.depth > MAX_DEPTH:
                raise toks.error("sections nested too deeply", i)
            toks.i = i + 1
            node = Section(_statements(toks, top=False))
            toks.depth = depth
            if toks.i >= n:
                raise toks.error("missing '}'")
            toks.i += 1
        elif op == "=":
            toks.i = i + 1
            node = _value(toks, key)
        else:
            raise toks.error("expected '=' or '{' after key", i)
        if "/" in key:
            if toks.depth + key.count("/") > MAX_DEPTH:  # a/b/c nests as well
                raise toks.error("sections nested too deeply", i - 1)
            _add_path(items, key, node)
        else:
            items.append((key, node))
    if not top:
        raise toks.error("missing '}'")
    return items


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


def _atom(toks: _Tokens, key: str) -> Atom:
    i = toks.i
    if i >= len(toks.kinds):
        raise toks.error("expected a value")
    kind, tok = toks.kinds[i], toks.values[i]
    toks.i = i + 1
    if kind == 1:
        return _unescape(tok)
    if kind == 2:
        return tok[1:-1]
    if kind == 4:
        if tok[0] in "0123456789+-.":
            value = _number(tok)
            if value is None:
                raise toks.error(f"bad number {tok!r}", i)
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                if key == "creation_time":
                    return CREATION_TIME_FALLBACK
                raise toks.error(f"integer out of range {tok!r}", i)
            return value
        return tok
    if kind == 5:
        raise toks.error("unterminated string", i)
    raise toks.error(f"unexpected {tok!r}", i)


def _value(toks: _Tokens, key: str) -> Value:
    i = toks.i
    if i < len(toks.kinds) and toks.kinds[i] == 3 and toks.values[i] == "[":
        toks.i = i + 1
        atoms: list[Atom] = []
        kinds, values = toks.kinds, toks.values
        while True:
            j = toks.i
            if j >= len(kinds):
                raise toks.error("unterminated list")
            if kinds[j] == 3 and values[j] == "]":
                toks.i = j + 1
                break
            atoms.append(_atom(toks, key))
            j = toks.i
            if j < len(kinds) and kinds[j] == 3 and values[j] == ",":
                toks.i = j + 1
            elif j < len(kinds) and kinds[j] == 4:
                # only strings may follow each other without a comma
                raise toks.error("expected ',' or ']'", j)
        if len(atoms) == 1:
            return atoms[0]
        return atoms
    return _atom(toks, key)


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
_C_STR = r'"[^"\\]*(?:\\["\\][^"\\]*)*"'
_C_NUM = r'(?:0|-?[1-9][0-9]{0,17}|-?(?:0|[1-9][0-9]{0,8})\.[0-9]{6})(?![^ \t\n\r\v\f\#={}\[\],"\'])'
_C_ATOM = f"(?:{_C_STR}|{_C_NUM})"
_C_VALUE = rf"(?:{_C_ATOM}|\[\]|\[{_C_ATOM}(?:,{_C_ATOM})+\])"
_C_KEY = r"[A-Za-z0-9_.+\-]+"
#: nesting accepted inside a lazy body (LVM's LV sections nest two levels)
LAZY_MAX_DEPTH = 6


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
        _LAZY_BODIES[depth] = pattern
    return pattern


_LAZY_HEAD_CACHE: dict[frozenset[str], re.Pattern[str]] = {}


def _lazy_head(lazy: frozenset[str]) -> re.Pattern[str]:
    """``name {`` at the start of a line, for any of the ``lazy`` names.

    Group 1 is the line's indentation, group 2 what stands between the
    name and the brace: a body is kept as text only after a head in the
    writer's own form (TABs, one space).
    """
    head = _LAZY_HEAD_CACHE.get(lazy)
    if head is None:
        names = "|".join(re.escape(n) for n in sorted(lazy))
        head = re.compile(r"(?m)^([ \t]*)(?:" + names + r")([ \t]*)\{")
        _LAZY_HEAD_CACHE[lazy] = head
    return head


def _cut_lazy(text: str, lazy: frozenset[str], check_head: bool) -> tuple[list[str], list[str]]:
    """Split ``text`` around the canonical bodies of ``lazy`` sections.

    Returns the pieces between the bodies (``len(raws) + 1`` of them; piece
    i ends with the ``{`` of the section whose body is ``raws[i]``, piece
    i+1 starts with its ``}``) and the bodies.  A head found inside a string
    is not a section; ``check_head`` tokenises the text before each head to
    rule that out (the fast parser instead validates every piece, which
    proves the same thing).
    """
    pieces: list[str] = []
    raws: list[str] = []
    if not any(name in text for name in lazy):
        return [text], raws
    head = _lazy_head(lazy)
    pos = search_at = 0
    misses = 0  # heads whose body is not canonical; each costs a scan of the text
    while (m := head.search(text, search_at)) is not None:
        if check_head and _ends_inside_string(text, pos, m.start()):
            break  # the head is inside a multi-line string: parse the rest eagerly
        start = search_at = m.end()
        indent = m.group(1)
        if m.group(2) != " " or indent.strip("\t"):
            continue  # not the writer's layout: parsed with the text around it
        depth = len(indent)
        raw = _recently_verified(text, start, depth)
        if raw is None:
            body = _lazy_body(depth).match(text, start)
            if body is None:  # not canonical: parsed with the text around it
                misses += 1
                if misses > 8:  # not LVM's writer: stop, or many heads cost O(n^2)
                    break
                continue
            raw = body.group()
            _remember_verified(raw, depth)
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
_VERIFIED: list[tuple[int, str]] = []
_VERIFIED_MAX = 4
_VERIFIED_MIN_CHARS = 512  # below this the regex is as cheap as the comparisons


def _recently_verified(text: str, start: int, depth: int) -> str | None:
    for seen_depth, raw in _VERIFIED:
        if seen_depth == depth and text.startswith(raw, start) and text.startswith("}", start + len(raw)):
            return raw
    return None


def _remember_verified(raw: str, depth: int) -> None:
    if len(raw) >= _VERIFIED_MIN_CHARS:
        _VERIFIED.insert(0, (depth, raw))
        del _VERIFIED[_VERIFIED_MAX:]


def _ends_inside_string(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` leaves a quoted string open."""
    return any(m.lastindex == 5 for m in _TOKEN.finditer(text, start, end))


#: placeholder key of a cut-out body; a NUL cannot come from a client (parse
#: cuts the text at the first one), so no client key can be mistaken for it
_LAZY_MARK = "\0lazy"


def _parse_lazy(text: str, lazy: frozenset[str]) -> Section:
    """The general path: keep canonical bodies of the ``lazy`` sections as text.

    The lazy bodies are cut out first (so the eager parser sees placeholder
    sections), then spliced back in as raw :class:`Section` objects.
    """
    pieces, raws = _cut_lazy(text, lazy, check_head=True)
    if not raws:
        return _parse_eager(text)
    joined: list[str] = []
    for n in range(len(raws)):
        joined.append(pieces[n])
        joined.append(f"\n{_LAZY_MARK}{n}=0\n")
    joined.append(pieces[-1])
    tree = _parse_eager("".join(joined))
    _restore_lazy(tree, raws)
    return tree


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
# fit in 64 bits (no octal, no ``+``) and comma-separated lists of those; no
# comments, no floats, no bare words, no single quotes.  For such a text the
# statements come out of one ``findall`` (a tuple per statement, instead of
# three tokens each through Python) and the tree is built in one loop.
#
# Why it is the same tree as the general parser's: the text is first checked
# with ``fullmatch`` against the same statement pattern, so every character
# belongs to a statement and the statements tokenise exactly as the general
# tokeniser would (same string rule, every number followed by a delimiter).
# Strings are unescaped by the same function and integers converted by
# ``int``, which is what ``_number`` does for this digit form.  Anything
# outside the subset, unbalanced braces, an empty document or nesting past
# MAX_DEPTH returns None and the general parser runs (and raises the error).
_F_WS = r"[ \t\n\r\v\f]*"
_F_STR = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_F_INT = r'-?(?:0|[1-9][0-9]{0,17})(?![^ \t\n\r\v\f\#={}\[\],"\'])'
_F_ATOM = f"(?:{_F_STR}|{_F_INT})"
_F_LIST = rf"\[{_F_WS}(?:{_F_ATOM}(?:{_F_WS},{_F_WS}{_F_ATOM})*{_F_WS})?\]"


def _f_statement(group: str) -> str:
    """One statement; ``group`` opens the six fields findall reports.

    The document pattern uses the same text with non-capturing groups:
    Python 3.11's ``re`` mishandles capturing groups inside ``*+``.
    """
    g = group
    return (
        rf"{_F_WS}(?:{g}[A-Za-z0-9_.+\-]+){_F_WS}(?:{g}\{{)|={_F_WS}(?:{g}{_F_STR})|{g}{_F_INT})|{g}{_F_LIST})))"
        rf"|{g}\}}))"
    )


_FAST_STATEMENT = re.compile(_f_statement("("), re.DOTALL)
_FAST_DOCUMENT = re.compile(rf"(?:{_f_statement('(?:')})*+{_F_WS}", re.DOTALL)
_FAST_LIST_ATOM = re.compile(rf"({_F_STR})|({_F_INT})", re.DOTALL)


# Stored PV records repeat the same pairs thousands of times (("format",
# "lvm2"), ("start", 4096), ...).  A pair of a key and an atom is immutable,
# so equal pairs can be one object: about a third of a PV record's memory.
# Only str and int atoms are shared (never lists, never sections), and the
# table is bounded by clearing it when it grows past _SHARED_PAIRS_MAX.
_SHARED_PAIRS: dict[tuple[str, Node], tuple[str, Node]] = {}
_SHARED_PAIRS_MAX = 16384


def _fast_list(text: str) -> Value:
    atoms: list[Atom] = [_unescape(s) if s else int(i) for s, i in _FAST_LIST_ATOM.findall(text)]
    return atoms[0] if len(atoms) == 1 else atoms


def _parse_fast(text: str, lazy: frozenset[str]) -> Section | None:
    """The tree of ``text`` if it is in the common subset (see above), else None."""
    pieces, raws = _cut_lazy(text, lazy, check_head=False) if lazy else ([text], [])
    if len(_SHARED_PAIRS) > _SHARED_PAIRS_MAX:
        _SHARED_PAIRS.clear()
    share = _SHARED_PAIRS.setdefault
    root = Section()
    stack = [root]
    items: list[tuple[str, Node]] = []
    root._items = items
    for n, piece in enumerate(pieces):
        if _FAST_DOCUMENT.fullmatch(piece) is None:
            return None
        end = len(piece)
        while end and piece[end - 1] in " \t\n\r\v\f":  # trailing blanks would cost findall O(n^2)
            end -= 1
        for key, opened, string, integer, lst, closed in _FAST_STATEMENT.findall(piece, 0, end):
            # keys repeat in every PV and LV record: share one string object each
            key = _intern(key)
            if closed:
                stack.pop()
                if not stack:
                    return None
                items = stack[-1]._items  # type: ignore[assignment]  # built here: never lazy
            elif opened:
                child = Section()
                items.append((key, child))
                stack.append(child)
                if len(stack) > MAX_DEPTH + 1:
                    return None
                items = []
                child._items = items
            elif string:
                pair: tuple[str, Node] = (key, _unescape(string))
                items.append(share(pair, pair))
            elif integer:
                pair = (key, int(integer))
                items.append(share(pair, pair))
            else:
                items.append((key, _fast_list(lst)))
        if n < len(raws):
            # the piece ended with the lazy section's "{": it is on top of the stack
            if len(stack) - 1 + LAZY_MAX_DEPTH > MAX_DEPTH:
                return None
            lazy_section = stack[-1]
            lazy_section._items, lazy_section.raw = None, raws[n]
    if len(stack) != 1 or not root._items:
        return None
    return root


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


def format_key(key: str) -> str:
    """A key as LVM's writer prints it: bare, or quoted when it would not read back."""
    return quote(key) if _KEY_NEEDS_QUOTES.search(key) else key


def _write(section: Section, depth: int, out: list[str]) -> None:
    indent = "\t" * min(depth, 32)
    for key, value in section.items:
        k = format_key(key)
        if isinstance(value, Section):
            if value.raw is not None and value.raw.endswith("\n" + indent):
                # kept as the writer's own text for this depth (see _cut_lazy)
                out.append(f"{indent}{k} {{{value.raw}}}\n")
                continue
            out.append(f"{indent}{k} {{\n")
            _write(value, depth + 1, out)
            out.append(f"{indent}}}\n")
        elif type(value) is str:
            out.append(f"{indent}{k}={quote(value)}\n")
        elif type(value) is int:
            out.append(f"{indent}{k}={value}\n")
        else:
            out.append(f"{indent}{k}={format_value(value)}\n")


def format_tree(tree: Section, depth: int = 0) -> str:
    """LVM's tree writer: TAB indentation, ``key=value``, one node per line."""
    out: list[str] = []
    _write(tree, depth, out)
    return "".join(out)


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
def compare_trees(a: Section, b: Section) -> int: ...
@overload
def compare_trees(a: list[tuple[str, Node]], b: list[tuple[str, Node]]) -> int: ...
def compare_trees(a: Section | list[tuple[str, Node]], b: Section | list[tuple[str, Node]]) -> int:
    """LVM's ``compare_config``: 0 means "the same" by its (loose) rules.

    Keys are not compared, a longer list equals its own prefix, and a node's
    children override its value comparison (docs/protocol.md §2, comparison).
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
        r = 0
        a_sec, b_sec = isinstance(va, Section), isinstance(vb, Section)
        if not a_sec and not b_sec:
            r = _compare_values(va, vb)  # type: ignore[arg-type]
        elif not a_sec and b_sec:
            r = 1
        elif a_sec and not b_sec:
            r = -1
        if a_sec and b_sec:
            ca, cb = va.items, vb.items  # type: ignore[union-attr]
            if ca and cb:
                r = compare_trees(va, vb)  # type: ignore[arg-type]
        if r != 0:
            return r
        i += 1
    if la > lb:
        return 1
    if la < lb:
        return -1
    return 0
