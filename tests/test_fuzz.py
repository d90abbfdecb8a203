"""Property-based fuzzing of everything a client's bytes reach in-process.

* The codec on arbitrary text and bytes and on mutated real messages from the
  conformance corpus: ``parse`` raises nothing but :class:`ParseError`, what it
  accepts the writer writes back as text that parses to the same tree, and
  the lazy parse agrees with the eager one.
* The framer on random chunkings: same messages as a plain split, never more
  buffered than the limit.
* Request streams against :class:`RequestHandler`: every request name (and
  unknown ones) with random, missing and wrongly typed fields over a small
  pool of PV ids, VG ids, names and devices.  No exception escapes, every
  reply parses and has a ``response`` (dump excepted), and
  ``check_invariants()`` is empty after every step.

The budget is kept small for CI; ``PYLVMETAD_FUZZ_SCALE=N`` multiplies it.
Run with ``-s`` to see how many messages and sequences were tried.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.protocol import LAZY_SECTIONS
from pylvmetad.wire.codec import Atom, Node, ParseError, Section, format_tree, parse
from pylvmetad.wire.framing import TERMINATOR, Framer, MessageTooLarge, decode
from support.paths import conformance_dir

SCALE = int(os.environ.get("PYLVMETAD_FUZZ_SCALE", "1"))
pytestmark = pytest.mark.timeout(300 * SCALE)  # a hang (catastrophic regex) must fail, not stall CI
COUNTS: Counter[str] = Counter()


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    print(
        "\nfuzz totals: "
        + ", ".join(f"{k}={v}" for k, v in sorted(COUNTS.items()))
        + f" (messages through the codec or handler: {COUNTS['codec_inputs'] + COUNTS['handler_messages']})"
    )


# ---------------------------------------------------------------------------
# The codec
# ---------------------------------------------------------------------------
@cache
def corpus() -> list[str]:
    """Every request and reply body recorded in the conformance corpus (deduplicated)."""
    seen: dict[str, None] = {}
    for path in sorted(conformance_dir().glob("*.jsonl")):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            for key in ("request", "response"):
                text = entry.get(key)
                if isinstance(text, str):
                    seen[text.removesuffix("\n##\n")] = None
    return list(seen)


def _finite(node: Node) -> bool:
    """False if a float in the tree is inf/nan (written "inf": a bare word on re-reading, as in LVM)."""
    if isinstance(node, Section):
        return all(_finite(v) for _, v in node.items)
    atoms = node if isinstance(node, list) else [node]
    return all(not isinstance(a, float) or math.isfinite(a) for a in atoms)


def _floats_as_written(node: Node) -> object:
    """A comparable form in which floats are what the writer prints (``%f`` is lossy, as in LVM)."""
    if isinstance(node, Section):
        return [(k, _floats_as_written(v)) for k, v in node.items]
    atoms = node if isinstance(node, list) else [node]
    out = [("%f" % a) if isinstance(a, float) else a for a in atoms]
    return ("L", out) if isinstance(node, list) else out[0]


def check_codec(text: str) -> None:
    """parse raises only ParseError; accepted text round-trips; lazy and eager parses agree."""
    COUNTS["codec_inputs"] += 1
    try:
        tree = parse(text)
    except ParseError:
        COUNTS["codec_rejected"] += 1
        with pytest.raises(ParseError):
            parse(text, LAZY_SECTIONS)
        return
    COUNTS["codec_accepted"] += 1
    lazy = parse(text, LAZY_SECTIONS)
    assert lazy == tree
    if not _finite(tree):
        return
    written = format_tree(tree)
    again = parse(written) if written else Section()
    assert _floats_as_written(again) == _floats_as_written(tree)
    assert format_tree(again) == written  # the writer's output is a fixed point
    echoed = format_tree(lazy)  # lazy bodies are echoed with their own layout: same tree
    assert _floats_as_written(parse(echoed) if echoed else Section()) == _floats_as_written(tree)


@fuzz_settings(400)
@given(st.text())
def test_parse_arbitrary_text(text: str) -> None:
    check_codec(text)


@fuzz_settings(300)
@given(st.binary())
def test_parse_arbitrary_bytes_as_the_server_decodes_them(data: bytes) -> None:
    check_codec(decode(data))


SYNTAX = st.sampled_from(
    [
        "{", "}", "[", "]", ",", "=", '"', "'", "#", "\n", "\\", "\0", "/", " ", "0", "-1", "010", "0x10",
        "1.5", ".", "+", "9" * 20, "9" * 5000, "a", "logical_volumes {", "a {" * 200, "}" * 50,
        '"\\""', "x/y/z", "\udcff", "é", "\n##\n",
    ]
)  # fmt: skip


@st.composite
def mutated_corpus_message(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(corpus()))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate"]))
        if op == "insert":
            piece = draw(st.one_of(SYNTAX, st.text(max_size=8)))
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 16)) :]
        elif op == "replace":
            text = text[:pos] + draw(SYNTAX) + text[pos + 1 :]
        elif op == "duplicate":
            end = min(len(text), pos + draw(st.integers(1, 200)))
            text = text[:end] + text[pos:end] + text[end:]
        else:
            text = text[:pos]
    return text


@fuzz_settings(600)
@given(mutated_corpus_message())
def test_parse_mutated_corpus_messages(text: str) -> None:
    check_codec(text)


def test_every_corpus_message_round_trips() -> None:
    for text in corpus():
        check_codec(text)


# ---------------------------------------------------------------------------
# The framer
# ---------------------------------------------------------------------------
@fuzz_settings(200)
@given(
    st.lists(st.binary(max_size=300).filter(lambda b: TERMINATOR not in b and not b.endswith(b"\n##")), max_size=8),
    st.lists(st.integers(1, 64), min_size=1),
)
def test_framer_any_chunking_yields_the_messages(bodies: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b + TERMINATOR for b in bodies)
    framer = Framer(max_message=4096)
    got: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        got += framer.feed(stream[pos : pos + step])
        pos, i = pos + step, i + 1
    assert got == bodies
    assert framer.pending == 0


@fuzz_settings(100)
@given(st.integers(1024, 8192), st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_framer_never_holds_more_than_the_limit(limit: int, chunks: list[int]) -> None:
    framer = Framer(max_message=limit)
    for size in chunks:
        try:
            framer.feed(b"x" * size)
        except MessageTooLarge:
            assert framer.pending == 0
            return
        assert framer.pending <= limit


# ---------------------------------------------------------------------------
# Request streams against the handler
# ---------------------------------------------------------------------------
PVIDS = ["PV0-aaaa", "PV1-bbbb", "PV2-cccc", "PV3-dddd"]
VGIDS = ["VG0-aaaa", "VG1-bbbb", "VG2-cccc"]
NAMES = ["vg0", "vg1", "vg2"]
DEVICES = [1798, 1799, 2048, 2049, 0, -1, 1 << 40]
REQUESTS = [
    "pv_found", "pv_gone", "pv_clear_all", "pv_lookup", "pv_list", "vg_update", "vg_remove", "vg_lookup",
    "vg_list", "vg_clear_outdated_pvs", "set_global_info", "get_global_info", "set_vg_info", "token_update",
    "dump", "hello", "stats", "pv_gone_by_pvid", "bogus", "",
]  # fmt: skip

atoms: st.SearchStrategy[Atom] = st.one_of(
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.sampled_from([0, 1, -1, 2, 3, 10, 1 << 32]),
    st.sampled_from(PVIDS + VGIDS + NAMES + ["", "skip", "MISSING", "ALLOCATABLE", "update in progress"]),
    st.text(max_size=6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
wrong: st.SearchStrategy[Node] = st.one_of(
    atoms,
    st.lists(atoms, max_size=3),
    st.builds(lambda k, v: Section([(k, v)]), st.sampled_from(["id", "x"]), atoms),
)


@st.composite
def maybe(draw: st.DrawFn, value: st.SearchStrategy[Node], right: int = 7) -> Node | None:
    """Mostly (``right`` in 10) the right value; else missing or of the wrong type."""
    roll = draw(st.integers(0, 9))
    if roll < right:
        return draw(value)
    return None if roll % 2 else draw(wrong)


def pv_section(pvid: str, device: int, status: Atom | list[Atom]) -> Section:
    return Section([("id", pvid), ("device", device), ("status", status), ("pe_start", 2048), ("pe_count", 15)])


@st.composite
def vg_metadata(draw: st.DrawFn) -> Section:
    pvs = draw(st.lists(st.sampled_from(PVIDS), max_size=3, unique=True))
    choices: list[Atom | list[Atom]] = ["ALLOCATABLE", ["MISSING", "ALLOCATABLE"], ["MISSING"], [], "MISSING"]
    status = st.sampled_from(choices)
    items: list[tuple[str, Node]] = []
    fields: list[tuple[str, st.SearchStrategy[Node | None]]] = [
        ("id", maybe(st.sampled_from(VGIDS))),
        ("seqno", maybe(st.sampled_from([0, 1, 2, 3, 5, 8, -1, 1 << 33]))),
        ("format", st.just("lvm2")),
        ("status", st.just(["RESIZEABLE", "READ", "WRITE"])),
        ("extent_size", st.just(8192)),
    ]
    for key, value in fields:
        node = draw(value)
        if node is not None:
            items.append((key, node))
    pv_items = [
        (f"pv{i}", pv_section(pvid, draw(st.sampled_from(DEVICES)), draw(status))) for i, pvid in enumerate(pvs)
    ]
    items.append(("physical_volumes", Section(pv_items)))
    if draw(st.booleans()):
        lv = Section([("id", "LV0"), ("status", ["READ", "WRITE", "VISIBLE"]), ("segment_count", 1)])
        items.append(("logical_volumes", Section([(draw(st.sampled_from(["lv0", "lv1"])), lv)])))
    return Section(items)


@st.composite
def pvmeta(draw: st.DrawFn) -> Section:
    items: list[tuple[str, Node]] = []
    for key, value in [
        ("device", maybe(st.sampled_from(DEVICES))),
        ("dev_size", st.just(67108864)),
        ("format", st.just("lvm2")),
        ("label_sector", st.just(1)),
        ("id", maybe(st.sampled_from(PVIDS))),
    ]:
        node = draw(value)
        if node is not None:
            items.append((key, node))
    for n in range(draw(st.integers(0, 2))):
        mda = Section([("ignore", draw(st.sampled_from([0, 1]))), ("start", 4096), ("size", 1044480)])
        items.append((f"mda{n}", mda))
    return Section(items)


@st.composite
def request_text(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(REQUESTS))
    fields: list[tuple[str, st.SearchStrategy[Node | None]]] = []
    vgid, vgname, pvid = st.sampled_from(VGIDS), st.sampled_from(NAMES), st.sampled_from(PVIDS)
    if name == "pv_found":
        fields = [("pvmeta", maybe(pvmeta()))]
        if draw(st.booleans()):
            fields += [("vgname", maybe(vgname)), ("metadata", maybe(vg_metadata()))]
    elif name in ("pv_gone", "pv_lookup", "pv_gone_by_pvid"):
        fields = [
            ("uuid", st.one_of(st.none(), maybe(pvid))),
            ("device", st.one_of(st.none(), maybe(st.sampled_from(DEVICES)))),
        ]
    elif name == "vg_update":
        fields = [("vgname", maybe(vgname)), ("metadata", maybe(vg_metadata()))]
    elif name == "vg_remove":
        fields = [("uuid", maybe(vgid))]
    elif name == "vg_lookup":
        fields = [("uuid", st.one_of(st.none(), maybe(vgid))), ("name", st.one_of(st.none(), maybe(vgname)))]
    elif name == "vg_clear_outdated_pvs":
        fields = [("vgid", maybe(vgid))]
    elif name == "set_global_info":
        flag = st.sampled_from([0, 1, 2, -1])
        fields = [
            ("global_invalid", st.one_of(st.none(), maybe(flag))),
            ("global_disable", st.one_of(st.none(), maybe(flag))),
            ("disable_reason", st.one_of(st.none(), maybe(st.sampled_from(["DIRECT", "REPAIR,DUPLICATES", "x"])))),
        ]
    elif name == "set_vg_info":
        fields = [
            ("version", maybe(st.sampled_from([0, 1, 2, 4, 9, -1, 1 << 40]))),
            ("uuid", st.one_of(st.none(), maybe(vgid))),
            ("name", st.one_of(st.none(), maybe(vgname))),
        ]
    # mostly "skip", so most requests get past the token gate to their handler
    token = st.sampled_from(["skip"] * 12 + ["NONE", "update in progress", "filter:1", "filter:2", ""])
    fields += [
        ("token", maybe(token, right=9)),
        ("pid", st.one_of(st.none(), st.sampled_from([0, 100, 200]), wrong)),
        ("update_timeout", st.one_of(st.none(), st.sampled_from([0, 1, 10, -5]))),
    ]
    items: list[tuple[str, Node]] = [("request", name)] if draw(st.integers(0, 20)) else []
    for key, strategy in fields:
        node = draw(strategy)
        if node is not None:
            items.append((key, node))
    return format_tree(Section(items)) if items else draw(st.sampled_from(["", "# nothing", "request {"]))


def check_reply_stream(texts: list[str]) -> None:
    COUNTS["handler_sequences"] += 1
    handler = RequestHandler(daemon_pid=4242)
    for text in texts:
        COUNTS["handler_messages"] += 1
        reply = handler.handle_text(text)
        COUNTS[f"reply_{reply.response}"] += 1
        if reply.request != "dump":
            tree = parse(reply.body)
            assert tree.get_str("response") == reply.response, reply.body
        problems = handler.state.check_invariants()
        assert not problems, (text, reply.body, problems)


@fuzz_settings(250)
@given(st.lists(request_text(), min_size=1, max_size=40))
def test_request_streams_keep_the_cache_consistent(texts: list[str]) -> None:
    check_reply_stream(texts)


@fuzz_settings(150)
@given(st.lists(st.one_of(request_text(), mutated_corpus_message()), min_size=1, max_size=25))
def test_request_streams_with_corpus_mutants(texts: list[str]) -> None:
    check_reply_stream(texts)


def test_stored_deep_nesting_cannot_poison_later_replies() -> None:
    """A pvmeta nested near the recursion limit used to make every later pv_list fail."""
    handler = RequestHandler()
    for depth in (100, 126, 127, 990, 5000):
        nested = "x {\n" * depth + "}\n" * depth
        handler.handle_text(f'request="pv_found"\ntoken="skip"\npvmeta {{\ndevice={depth}\nid="P{depth}"\n{nested}}}')
        handler.handle_text(f'request="pv_found"\ntoken="skip"\npvmeta {{\ndevice=7\nid="Q"\n{"x/" * depth}y=1\n}}')
    for request in ("pv_list", "dump"):
        reply = handler.handle_text(f'request="{request}"\ntoken="skip"')
        assert "internal error" not in reply.body
    assert handler.handle_text('request="pv_list"\ntoken="skip"').response == "OK"


def test_huge_integer_is_a_parse_error_not_an_exception() -> None:
    with pytest.raises(ParseError):
        parse("a=" + "9" * 5000)
    reply = RequestHandler().handle_text('request="hello"\nx=' + "9" * 5000)
    assert reply.response == "token_mismatch"


def test_client_chosen_keys_cannot_make_replies_unparsable() -> None:
    handler = RequestHandler()
    for n, pvid in enumerate(["a b", "x,y", "q{", "p]", "s'", 'd"q', "h#", "n\nl"]):
        reply = handler.handle_text(
            f'request="pv_found"\ntoken="skip"\npvmeta {{\ndevice={n + 1}\nid={format_tree(Section([("v", pvid)]))[2:]}\n}}'
        )
        assert reply.response == "OK", reply.body
    listing = parse(handler.handle_text('request="pv_list"\ntoken="skip"').body)
    pvs = listing.section("physical_volumes")
    assert pvs is not None and len(pvs) == 8


#: inputs whose size is n repetitions of a piece (n = SCALE, then 4 * SCALE)
PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    # each of these once cost O(n^2) or worse in the parser: seconds to minutes of a blocked daemon
    "unclosed lazy section then blanks": lambda n: "logical_volumes {\n" + " " * n,
    "unterminated string of escaped quotes": lambda n: 'a="' + '\\"' * n,
    "many lazy heads, none closed": lambda n: "logical_volumes {\n" * (n // 2),
    "many lazy heads, none canonical": lambda n: "logical_volumes {\nx=010\n" * (n // 2),
    "blanks after a statement": lambda n: "a=1" + " " * n,
    "unterminated single quote": lambda n: "a=1\n" + "'" + "x" * n,
    "alternating quotes": lambda n: "\"'" * n,
    "deep braces": lambda n: "a {" * n,
    "long list, unclosed": lambda n: "a=[" + "1," * n,
    "long path key": lambda n: "a/" * n + "b=1",
}
SCALE = 40000


def parse_cost(text: str, lazy: frozenset[str]) -> float:
    """CPU seconds of one parse of ``text``, the least of three runs (a cost, not a bound)."""
    costs = []
    for _ in range(3):
        began = time.process_time()
        try:
            parse(text, lazy)
        except ParseError:
            pass
        costs.append(time.process_time() - began)
    return min(costs)


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_parses_in_linear_time(name: str) -> None:
    """Four times the input costs about four times the CPU (linear), far from sixteen (quadratic).

    A ratio of two costs measured in the same run, so the machine's speed and
    load cancel out; no wall-clock bound.  A floor of 1 ms on the smaller cost
    keeps timer noise of inputs refused in microseconds from deciding.
    """
    make = PATHOLOGICAL[name]
    for lazy in (frozenset(), LAZY_SECTIONS):
        small = parse_cost(make(SCALE), lazy)
        large = parse_cost(make(4 * SCALE), lazy)
        assert large <= 10 * max(small, 0.001), f"{name}: {small * 1e3:.2f} ms at n, {large * 1e3:.2f} ms at 4n"
