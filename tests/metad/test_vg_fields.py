"""vg_update and pv_found read the VG name, uuid and seqno Request.from_tree read, as the getters would.

``Request.fields`` carries ``vgname``, ``metadata/id`` and ``metadata/seqno``
(REQUEST_KEYS: a plain value, "" or -1 for a missing one, None to ask the
getter).  Whatever the request holds, the reply must be the one the getters'
reading gives (docs/protocol.md §5 vg_update and pv_found): the same whether
the fields were read at once, from a long message's view, or not at all.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.handlers import Request, RequestHandler
from pylvmetad.wire.codec import Node, Section

ATOMS: st.SearchStrategy[Node] = st.one_of(
    st.sampled_from(["", "VG-1", "vg0", 0, 1, 5, -1, 1 << 40, -(1 << 40), 1.5, [], ["VG-2"], [3, 1], ["", "x"]]),
    st.text(alphabet="ab", max_size=2),
)
MD_KEYS = st.sampled_from(["id", "seqno", "format", "other"])


@st.composite
def metadatas(draw: st.DrawFn) -> Node | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return draw(ATOMS)
    if kind == 2:  # kept as text (not built): read by the getters
        return Section(raw='\n\tid="VG-L"\n\tseqno=4\n')
    pairs = draw(st.lists(st.tuples(MD_KEYS, ATOMS), max_size=4))
    if draw(st.booleans()):
        pairs.insert(0, ("id", "VG-1"))
    if draw(st.booleans()):
        pairs.insert(1, ("seqno", draw(st.sampled_from([1, 2, 1 << 32 | 3]))))
    return Section(pairs)


def reason(req: Request) -> tuple[str, str | None]:
    reply = RequestHandler().handle(req)
    line = next((x for x in reply.body.splitlines() if x.startswith("reason")), None)
    return reply.response, None if line is None else line.split("=", 1)[1].strip().strip('"')


def expected_vg_update(tree: Section) -> str | None:
    """The refusal the getters' reading gives before the cache is asked, or None."""
    metadata = tree.find("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, Section) or metadata.get_str("id") is None:
        return "vg_update: need VG UUID"
    if tree.get_str("vgname") is None:
        return "vg_update: need VG name"
    if metadata.get_int("seqno", -1) < 0:
        return "vg_update: need VG seqno"
    return None


def expected_pv_found(tree: Section) -> str | None:
    metadata = tree.find("metadata")
    if metadata is None:
        return None
    if tree.get_str("vgname") is None:
        return "Ignore VG metadata from PV without VG name"
    if not isinstance(metadata, Section) or metadata.get_str("id") is None:
        return "Ignore VG metadata from PV without VG vgid"
    if metadata.get_int("seqno", -1) < 0:
        return "Ignore VG metadata from PV without VG seqno"
    return None


REFUSALS = {
    "vg_update": ("vg_update: need", expected_vg_update),
    "pv_found": ("Ignore VG metadata", expected_pv_found),
}


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["vg_update", "pv_found"]),
    metadatas(),
    st.one_of(st.none(), ATOMS),
    st.booleans(),
)
def test_fields_read_as_the_getters_read(name: str, metadata: Node | None, vgname: Node | None, second: bool) -> None:
    pairs: list[tuple[str, Node]] = [("request", name), ("token", "skip")]
    if name == "pv_found":
        pairs.append(("pvmeta", Section([("id", "PV-1"), ("device", 2048)])))
    if vgname is not None:
        pairs.append(("vgname", vgname))
    if metadata is not None:
        pairs.append(("metadata", metadata))
    if second:  # later ones are never read: the first wins
        pairs += [("vgname", "vg9"), ("metadata", Section([("id", "VG-9"), ("seqno", 9)]))]
    tree = Section(pairs)
    prefix, expected = REFUSALS[name]
    req = Request.from_tree(tree)
    assert req.fields is not None
    got = reason(req)
    want = expected(tree)
    if want is not None:
        assert got == ("failed", want)
    else:
        assert got[1] is None or not got[1].startswith(prefix)
    assert reason(dataclasses.replace(Request.from_tree(tree), fields=None)) == got
    view = Section([p for p in pairs if p[0] in ("request", "token", "pvmeta", "vgname", "metadata")])
    assert reason(Request.from_tree(tree, None, view)) == got


def test_a_valid_vg_update_is_stored_with_the_fields_read() -> None:
    handler = RequestHandler()
    md = Section([("id", "VG-1"), ("seqno", 1), ("physical_volumes", Section())])
    tree = Section([("request", "vg_update"), ("token", "skip"), ("vgname", "vg0"), ("metadata", md)])
    req = Request.from_tree(tree)
    assert req.fields is not None and req.fields[9:] == ("vg0", "VG-1", 1)
    assert handler.handle(req).response == "OK"
    assert handler.state.vgid_to_vgname["VG-1"] == "vg0"
