"""strip_device_hints: the C walk (_ccodec.strip_device_hints) against its Python reference.

Every vg_update and every pv_found with metadata drops the ``device`` hints of
the VG's PV sections and reads their uuids (cache.strip_device_hints).  The C
walk must leave the very same sections (children and lazy text) and return
the same uuids, or answer NotImplemented before changing anything so the
reference decides; on the recorded traffic and under hypothesis.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad import cache
from pylvmetad.metad.protocol import LAZY_SECTIONS
from pylvmetad.wire import codec
from pylvmetad.wire.codec import ParseError, Section
from support.ccodec import required_accelerator
from wire.test_codec_fast import corpus_texts


def state_of(pvs: list[Any]) -> object:
    """Everything the walk may change: each PV's children and whether its raw text is kept."""
    return [(k, (v.raw, list(v.items)) if isinstance(v, Section) else v) for k, v in pvs]


def both(pvs: list[Any]) -> list[str]:
    """Both walks on copies: the same uuids and the same sections after (NotImplemented: untouched)."""
    py_pvs, c_pvs = copy.deepcopy(pvs), copy.deepcopy(pvs)
    expected = cache._strip_device_hints_py(py_pvs)
    before = state_of(copy.deepcopy(c_pvs))
    got = required_accelerator().strip_device_hints(c_pvs)
    if got is NotImplemented:
        assert state_of(c_pvs) == before
        got = cache._strip_device_hints_py(c_pvs)
    assert got == expected
    assert state_of(c_pvs) == state_of(py_pvs)
    return expected


def pv(*pairs: tuple[str, Any], raw: bool = False) -> Section:
    section = Section(pairs)
    if raw:
        section.raw = codec.format_tree(section, 3)  # as a lazy parse would keep it
    return section


def test_examples() -> None:
    lvm = [("pv0", pv(("id", "A"), ("device", "/dev/sda"), ("status", ["ALLOCATABLE"]), raw=True))]
    assert both(lvm) == ["A"]
    c_pvs = copy.deepcopy(lvm)
    assert required_accelerator().strip_device_hints(c_pvs) == ["A"]
    stripped = c_pvs[0][1]
    assert isinstance(stripped, Section) and stripped.raw is None and stripped.keys() == ["id", "status"]
    # the cursor: never the first pair, nor a device right after a dropped one
    odd: list[Any] = [("pv0", pv(("id", "B"), ("device", 1), ("device", 2), ("device", 3), ("x", 0), ("device", 4)))]
    assert both(odd) == ["B"]
    assert cache._strip_device_hints_py(odd) == ["B"] and odd[0][1].keys() == ["id", "device", "x"]
    kept = [("pv0", pv(("id", "C"), ("status", "x"), raw=True))]
    assert both(kept) == ["C"]
    untouched = copy.deepcopy(kept)
    required_accelerator().strip_device_hints(untouched)
    assert untouched[0][1].raw is not None  # type: ignore[union-attr]  # nothing dropped: its text still holds
    assert both([("pv0", pv(("id", ""), ("device", 1)))]) == []  # an empty uuid is not listed
    assert both([("pv0", 5), ("pv1", pv(("id", "D")))]) == ["D"]
    assert both([]) == []


def test_shapes_it_leaves_to_the_reference() -> None:
    class Sub(Section):
        __slots__ = ()

    c = required_accelerator()
    odd: list[list[Any]] = [
        [("pv0", pv(("device", 1), ("id", "A")))],  # id not first
        [("pv0", pv(("id", ["A"]), ("device", 1)))],  # id not a str
        [("pv0", pv())],  # no pairs
        [("pv0", Sub([("id", "A"), ("device", 1)]))],
        [("pv0", pv(("id", "A"), ("device", 1))), ["pv1", pv(("id", "B"))]],  # a pair not a tuple
        [("pv0", pv(("id", "A"), ("device", 1))), ("pv1", Section([("id", "B"), (1, 2)]))],  # type: ignore[list-item]
    ]
    for pvs in odd:
        before = state_of(copy.deepcopy(pvs))
        assert c.strip_device_hints(pvs) is NotImplemented
        assert state_of(pvs) == before  # nothing changed, not even the first PV
        both(pvs)


def test_the_traffics_physical_volumes() -> None:
    required_accelerator()
    seen = 0
    for text in corpus_texts():
        try:
            tree = codec.parse(text, LAZY_SECTIONS)
        except ParseError:
            continue
        for path in ("metadata/physical_volumes", "physical_volumes"):
            pvs = tree.find(path)
            if isinstance(pvs, Section):
                both(pvs.items)
                seen += 1
    assert seen > 100


keys = st.sampled_from(["id", "device", "status", "dev_size"])
atoms = st.one_of(st.integers(-3, 3), st.text("ab", max_size=2), st.lists(st.integers(0, 2), max_size=2))
pv_sections = st.builds(
    lambda pairs, raw: pv(*pairs, raw=raw),
    st.lists(st.tuples(keys, atoms), max_size=6),
    st.booleans(),
)
lvm_pvs = st.builds(
    lambda uuid, rest, raw: pv(("id", uuid), *rest, raw=raw),
    st.text("AB", max_size=2),
    st.lists(st.tuples(keys, atoms), max_size=6),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["pv0", "pv1"]), st.one_of(lvm_pvs, pv_sections, atoms)), max_size=5))
def test_agree_under_hypothesis(pvs: list[Any]) -> None:
    both(pvs)
