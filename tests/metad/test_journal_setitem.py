"""metad.journal: assignment saves what a key held as the other changes do (its save is inlined in Table)."""

from __future__ import annotations

from pylvmetad.metad.journal import Journal, MutableValueTable, Table


def test_a_replaced_mutable_value_is_restored_as_it_was_when_replaced() -> None:
    journal = Journal()
    table: MutableValueTable[str, list[int]] = MutableValueTable(list, {"a": [1]})
    table.attach(journal)
    held = dict.get(table, "a")  # a reference from before the operation
    assert held is not None
    journal.begin()
    table["a"] = [2]
    held.append(9)  # the replaced list, changed after the assignment
    journal.rollback()
    assert table == {"a": [1]}


def test_assignment_rolls_back_values_and_new_keys_in_order() -> None:
    journal = Journal()
    table: Table[str, int] = Table({"a": 1, "b": 2})
    table.attach(journal)
    journal.begin()
    table["b"] = 20
    table["c"] = 3
    table["b"] = 21
    table["a"] = 10
    journal.rollback()
    assert list(table.items()) == [("a", 1), ("b", 2)]
    journal.begin()
    table["a"] = 5
    journal.commit()
    assert list(table.items()) == [("a", 5), ("b", 2)]
