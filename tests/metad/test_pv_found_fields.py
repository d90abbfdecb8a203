"""pv_found and vg_update read the fields Request.from_tree read for them, as the getters would.

``Request.fields`` carries the sections and the ``pvmeta`` uuid and device
read in from_tree's one walk (REQUEST_KEYS); a value that is not a plain
one is None and the handler asks the getter.  Whatever the request holds,
the reply must be the one the getters' reading gives (the rules of
docs/protocol.md §5 pv_found), whether the fields were read at once, read
from a long message's view, or not read at all (``fields=None``).
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers import Request, RequestHandler
from pylvmetad.wire.codec import Node, Section

ATOMS: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from(["", "PVID-1", "PVID-2", 0, 2049, -1, 1 << 40, 1.5, [], ["PVID-3"], [2050, 1], True]),
    st.text(alphabet="ab", max_size=2),
)
PV_KEYS = st.sampled_from(["id", "device", "dev_size", "other"])


@st.composite
def pvmetas(draw: st.DrawFn) -> Node | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(ATOMS)
    if kind == 2:  # kept as text (not built): read by the getters
        return Section(raw='\n\tid="PVID-L"\n\tdevice=2051\n')
    return Section(draw(st.lists(st.tuples(PV_KEYS, ATOMS), max_size=5)))


def expected(tree: Section) -> tuple[str, str | None]:
    """The reply the getters' reading gives: (response, reason) -- docs/protocol.md §5."""
    pvmeta = tree.find("pvmeta")
    if pvmeta is None:
        return "failed", "Ignore PV without PV metadata"
    if not isinstance(pvmeta, Section) or not pvmeta.get_str("id"):
        return "failed", "Ignore PV without PV UUID"
    if pvmeta.get_int64("device") is None:
        return "failed", "Ignore PV without device"
    return "OK", None


def answer(req: Request) -> tuple[str, str | None]:
    reply = RequestHandler().handle(req)
    reason = None
    if reply.response == "failed":
        line = next(x for x in reply.body.splitlines() if x.startswith("reason"))
        reason = line.split("=", 1)[1].strip().strip('"')
    return reply.response, reason


@settings(max_examples=400, deadline=None)
@given(pvmetas(), st.booleans(), st.booleans())
def test_pv_found_reads_what_the_getters_read(pvmeta: Node | None, second: bool, padded: bool) -> None:
    pairs: list[tuple[str, Node]] = [("request", "pv_found"), ("token", "skip")]
    if padded:
        pairs += [(f"pad{i}", i) for i in range(4)]
    if pvmeta is not None:
        pairs.append(("pvmeta", pvmeta))
    if second:  # a later pvmeta is never read: the first wins
        pairs.append(("pvmeta", Section([("id", "PVID-9"), ("device", 9)])))
    tree = Section(pairs)
    want = expected(tree)
    req = Request.from_tree(tree)
    assert req.fields is not None
    assert answer(req) == want
    assert answer(dataclasses.replace(Request.from_tree(tree), fields=None)) == want
    view = Section([p for p in pairs if p[0] in ("request", "token", "pvmeta")][:3])
    assert answer(Request.from_tree(tree, None, view)) == want


def test_a_vg_update_without_metadata_and_with_odd_metadata() -> None:
    base = [("request", "vg_update"), ("token", "skip"), ("vgname", "vg")]
    assert answer(Request.from_tree(Section(base))) == ("OK", None)
    assert answer(Request.from_tree(Section([*base, ("metadata", "x")]))) == ("failed", "vg_update: need VG UUID")
    req = dataclasses.replace(Request.from_tree(Section([*base, ("metadata", 1)])), fields=None)
    assert answer(req) == ("failed", "vg_update: need VG UUID")
