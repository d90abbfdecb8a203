"""metad.journal: a table undoes one operation's changes exactly, key order included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.journal import MutableValueTable, Table

KEYS = st.sampled_from("abcdef")
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("del"), KEYS, st.just(0)),
        st.tuples(st.just("pop"), KEYS, st.just(0)),
        st.tuples(st.just("setdefault"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("append"), KEYS, st.integers(0, 9)),  # in place, after a read by key
        st.tuples(st.just("clear"), KEYS, st.just(0)),
        st.tuples(st.just("update"), KEYS, st.integers(0, 9)),
        st.tuples(st.just("popitem"), KEYS, st.just(0)),
    ),
    max_size=12,
)


def apply(table: MutableValueTable[str, list[int]], op: str, key: str, value: int) -> None:
    if op == "set":
        table[key] = [value]
    elif op == "del" and key in table:
        del table[key]
    elif op == "pop":
        table.pop(key, None)
    elif op == "setdefault":
        table.setdefault(key, []).append(value)
    elif op == "append":
        found = table.get(key)
        if found is not None:
            found.append(value)
    elif op == "clear":
        table.clear()
    elif op == "update":
        table.update({key: [value]})
    elif op == "popitem" and table:
        table.popitem()


@settings(max_examples=300, deadline=None)
@given(start=st.lists(st.tuples(KEYS, st.integers(0, 9)), max_size=6), ops=OPS)
def test_rollback_restores_values_and_order(start: list[tuple[str, int]], ops: list[tuple[str, str, int]]) -> None:
    table: MutableValueTable[str, list[int]] = MutableValueTable(list, ((k, [v]) for k, v in start))
    before = [(k, list(v)) for k, v in table.items()]
    table.begin()
    for op in ops:
        apply(table, *op)
    table.rollback()
    assert list(table.items()) == before
    assert not table.in_operation


def test_commit_keeps_the_changes_and_ends_the_journal() -> None:
    table: Table[str, int] = Table({"a": 1, "b": 2})
    table.begin()
    del table["a"]
    table["c"] = 3
    table.commit()
    table.rollback()  # nothing open: no effect
    assert list(table.items()) == [("b", 2), ("c", 3)]


def test_outside_an_operation_it_is_a_dict() -> None:
    table: Table[str, int] = Table()
    table["a"] = 1
    table |= {"b": 2}
    assert table == {"a": 1, "b": 2} and table.pop("a") == 1 and table.setdefault("c", 3) == 3
    with pytest.raises(KeyError):
        table.pop("zz")
