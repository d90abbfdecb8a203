"""metad.journal: a table undoes one operation's changes exactly, key order included."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad import journal
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


def apply(table: dict[str, list[int]], op: str, key: str, value: int) -> None:
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


class CountedTable(Table[int, int]):
    """A table that counts walks over its keys (a copy of its order is one)."""

    __slots__ = ("walks",)

    def __init__(self, items: dict[int, int]) -> None:
        self.walks = 0
        super().__init__(items)

    def __iter__(self) -> Iterator[int]:
        self.walks += 1
        return super().__iter__()


def test_a_removal_journals_its_key_not_the_tables_order() -> None:
    """The rare path (a removal in an operation) costs per change: nothing walks the table until rollback."""
    n = 10_000
    table = CountedTable({k: k for k in range(n)})
    before = list(table.items())
    for finish in ("commit", "rollback"):
        table.walks = 0
        table.begin()
        del table[5]
        table.pop(n // 2)
        table[5] = 55  # back, at the end
        table[n] = n  # new
        table[7] = 77  # changed in place
        assert table._saved is not None and len(table._saved) == 4  # the keys touched, nothing else
        if finish == "commit":
            table.commit()
            assert table.walks == 0  # no copy of the key order, on any path of a committed operation
            expected = [(k, v) for k, v in before if k not in (5, n // 2)] + [(5, 55), (n, n)]
            expected = [(k, 77 if k == 7 else v) for k, v in expected]
            assert list(table.items()) == expected
            table.clear()
            table.update(before)
        else:
            table.rollback()
            assert list(table.items()) == before


GROUPS = st.lists(st.tuples(st.sampled_from(["commit", "rollback", "outside"]), OPS), max_size=10)


@settings(max_examples=300, deadline=None)
@given(start=st.lists(st.tuples(KEYS, st.integers(0, 9)), max_size=6), groups=GROUPS, slack=st.sampled_from([0, 32]))
def test_operations_in_a_row_keep_the_order_of_a_plain_dict(
    start: list[tuple[str, int]], groups: list[tuple[str, list[tuple[str, str, int]]]], slack: int
) -> None:
    """Committed, rolled back and unjournaled changes in turn: the table is always the dict it models.

    The key list's stale entries (and their clean-up, at once with ``slack`` 0)
    must never change what a later rollback restores.
    """
    saved_slack = journal._SLACK
    journal._SLACK = slack
    try:
        table: MutableValueTable[str, list[int]] = MutableValueTable(list, ((k, [v]) for k, v in start))
        model: dict[str, list[int]] = {k: [v] for k, v in start}  # a plain dict: what the table must equal
        for finish, ops in groups:
            if finish != "outside":
                table.begin()
            for op in ops:
                apply(table, *op)
            if finish == "rollback":
                table.rollback()
            else:
                table.commit()
                for op in ops:
                    apply(model, *op)
            assert [(k, list(v)) for k, v in table.items()] == list(model.items())
    finally:
        journal._SLACK = saved_slack


TWO_TABLE_OPS = st.lists(st.tuples(st.sampled_from([0, 1]), OPS), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    start=st.lists(st.tuples(KEYS, st.integers(0, 9)), max_size=6),
    groups=st.lists(st.tuples(st.sampled_from(["commit", "rollback", "outside"]), TWO_TABLE_OPS), max_size=6),
)
def test_a_shared_journal_undoes_or_keeps_every_attached_table(
    start: list[tuple[str, int]], groups: list[tuple[str, list[tuple[int, list[tuple[str, str, int]]]]]]
) -> None:
    """Tables attached to one Journal: each joins on its first change, and only the changed ones join."""
    shared = journal.Journal()
    tables: list[MutableValueTable[str, list[int]]] = []
    for _ in range(3):  # the third is never changed
        table: MutableValueTable[str, list[int]] = MutableValueTable(list, ((k, [v]) for k, v in start))
        table.attach(shared)
        tables.append(table)
    models: list[dict[str, list[int]]] = [{k: [v] for k, v in start} for _ in tables]
    for finish, steps in groups:
        if finish != "outside":
            shared.begin()
            assert all(t.in_operation for t in tables)
        for which, ops in steps:
            for op in ops:
                apply(tables[which], *op)
        joined = [id(t) for t in shared.joined]
        assert id(tables[2]) not in joined and len(joined) == len(set(joined))
        if finish == "rollback":
            shared.rollback()
        else:
            if finish == "commit":
                shared.commit()
            for which, ops in steps:
                for op in ops:
                    apply(models[which], *op)
        assert not shared.open and shared.joined == []
        assert all(t._saved is None and not t.in_operation for t in tables)
        for table, model in zip(tables, models, strict=True):
            assert [(k, list(v)) for k, v in table.items()] == list(model.items())
