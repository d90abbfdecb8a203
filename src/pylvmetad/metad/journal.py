"""All or nothing: the cache's tables can undo the changes of one operation.

Rules of this module:

* A :class:`Table` is a ``dict`` that, while an operation is open
  (:meth:`Table.begin` .. :meth:`Table.commit`), keeps the value every key
  had before the operation's first change of it; :meth:`Table.rollback`
  puts those values back, in the table's original key order.  Outside an
  operation it is a plain dict with one ``None`` check per write, and for
  a new key of an ordered table an append to its key list.
* Every way of changing a dict goes through the journal (item assignment,
  ``del``, ``pop``, ``popitem``, ``setdefault``, ``update``, ``|=``,
  ``clear``).  A table whose values are changed in place (lists, records)
  is a :class:`MutableValueTable`: it also keeps a *copy* of a value when the
  value is read by key (``[]``, ``get``, ``setdefault``), because the
  caller may change it after the read.  Such a value must be reached by key
  before it is changed, never through ``values()`` or ``items()``.
* Tables that change together share one :class:`Journal`: opening it opens
  an operation on all of them at once (O(1), however many tables), a table
  *joins* it on the operation's first change of that table, and commit and
  rollback visit only the tables that joined.  :meth:`Table.begin` opens an
  operation on one table alone.
* No I/O, no knowledge of what the tables hold; the cache decides which of
  its operations are all-or-nothing (:func:`pylvmetad.metad.cache.all_or_nothing`).

Theory of operation
-------------------
An operation changes a handful of keys, so the journal costs per change,
not per table: the first change of a key saves its old value (or "absent").
Rolling back reassigns the saved values and removes the keys the operation
added; a dict keeps the position of a reassigned key, so the order is
exact.  Only a removal loses a key's position.  So an ordered table keeps,
besides the dict, a list of its keys in insertion order (``_keys``: a key
is appended when it is inserted and not present; a removal leaves its
entry, stale): a present key's position is that of its last entry.  An
operation's first removal only notes the list's length (``_mark``), and
rollback rebuilds the table from the entries before it -- the last entry
of each key present before the operation, in order.  Commit and every
change cost O(1); only a rollback after a removal costs O(table), as
rebuilding the order must.  Stale entries are dropped (the list rebuilt
from the dict) once they outnumber the keys, which no removal in an open
operation still needs: amortised O(1) per insertion.  An unordered table
(``ORDERED = False``: the cache's derived indexes) keeps no list and
restores only values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Final, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

#: the saved "value" of a key the table did not hold
_ABSENT: Final[Any] = object()
#: stale entries an ordered table's key list may hold beyond one per key before it is rebuilt
_SLACK = 32


class Journal:
    """One operation over many tables: each joins on its first change (module rules)."""

    __slots__ = ("joined", "open")

    def __init__(self) -> None:
        #: whether an operation is open
        self.open = False
        #: the tables changed (or read by key, for a mutable value) since it was opened
        self.joined: list[Table[Any, Any]] = []

    def begin(self) -> None:
        self.open = True

    def commit(self) -> None:
        """Keep every change: the joined tables forget what they saved."""
        for table in self.joined:
            table._saved, table._mark = None, None
        self.joined = []
        self.open = False

    def rollback(self) -> None:
        """Undo every change of the open operation (:meth:`Table.rollback` of each joined table)."""
        joined, self.joined = self.joined, []
        self.open = False
        for table in joined:
            table.rollback()


#: the journal of a table attached to none: never open
_NO_JOURNAL: Final = Journal()


class Table(dict[K, V]):
    """A dict whose changes during one operation can be undone."""

    __slots__ = ("_journal", "_keys", "_mark", "_saved")
    #: whether rollback restores the key order (else only the values)
    ORDERED: ClassVar[bool] = True

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        super().__init__(items)
        #: key -> its value before the operation's first change (or _ABSENT); None: not joined
        self._saved: dict[K, V] | None = None
        #: the shared journal whose open operation this table joins on a change
        self._journal: Journal = _NO_JOURNAL
        #: the keys in insertion order, with stale entries (module theory); None: not ORDERED
        self._keys: list[K] | None = list(self) if self.ORDERED else None
        #: len(_keys) at the open operation's first removal; None: no removal yet
        self._mark: int | None = None

    # -- the operation --------------------------------------------------------
    def attach(self, journal: Journal) -> None:
        """Share ``journal``'s operations (outside an operation only)."""
        self._journal = journal

    @property
    def in_operation(self) -> bool:
        return self._saved is not None or self._journal.open

    def begin(self) -> None:
        self._saved, self._mark = {}, None

    def commit(self) -> None:
        self._saved, self._mark = None, None

    def rollback(self) -> None:
        """Put back every key's value from before :meth:`begin`, in the order of then."""
        saved, mark, keys = self._saved, self._mark, self._keys
        self.commit()
        if saved is None:
            return
        if mark is None or keys is None:
            for key, value in saved.items():
                if value is _ABSENT:
                    dict.pop(self, key, None)
                else:
                    dict.__setitem__(self, key, value)
            return
        order: list[tuple[K, V]] = []
        seen: set[K] = set()
        for key in reversed(keys[:mark]):  # a key's last entry before the operation is its place
            if key not in seen:
                seen.add(key)
                value = saved[key] if key in saved else dict.get(self, key, _ABSENT)
                if value is not _ABSENT:
                    order.append((key, value))
        order.reverse()
        dict.clear(self)
        dict.update(self, order)
        self._keys = [key for key, _ in order]

    def _join(self) -> dict[K, V]:
        """Start saving for the shared journal's open operation."""
        saved: dict[K, V] = {}
        self._saved, self._mark = saved, None
        self._journal.joined.append(self)
        return saved

    def _keep(self, key: K) -> None:
        saved = self._saved
        if saved is None:
            if not self._journal.open:
                return
            saved = self._join()
        if key not in saved:
            saved[key] = dict.get(self, key, _ABSENT)

    def _keep_for_removal(self, key: K) -> None:
        if self._saved is None and self._journal.open:
            self._join()
        if self._saved is not None:
            if self._mark is None and self._keys is not None and key in self:
                self._mark = len(self._keys)
            self._keep(key)

    def _compact(self) -> list[K]:
        """The key list without stale entries (only when no open removal needs them)."""
        keys = self._keys = list(self)
        return keys

    # -- every way of changing a dict ------------------------------------------
    def __setitem__(self, key: K, value: V) -> None:
        saved = self._saved
        if saved is None:
            if self._journal.open:  # the table's first change in the operation
                self._join()[key] = dict.get(self, key, _ABSENT)
        elif key not in saved:  # the first change of the key: keep its value
            saved[key] = dict.get(self, key, _ABSENT)
        keys = self._keys
        if keys is not None and key not in self:  # a new key: its entry in the key list
            if len(keys) > 2 * len(self) + _SLACK and self._mark is None:
                keys = self._compact()
            keys.append(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: K) -> None:
        self._keep_for_removal(key)
        dict.__delitem__(self, key)

    @overload
    def pop(self, key: K, /) -> V: ...
    @overload
    def pop(self, key: K, default: V, /) -> V: ...
    @overload
    def pop(self, key: K, default: T, /) -> V | T: ...
    def pop(self, key: K, default: Any = _ABSENT, /) -> Any:
        self._keep_for_removal(key)
        if default is _ABSENT:
            return dict.pop(self, key)
        return dict.pop(self, key, default)

    def popitem(self) -> tuple[K, V]:
        if not self:
            raise KeyError("popitem(): table is empty")
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: K, default: V = None) -> V:  # type: ignore[assignment]
        saved = self._saved
        if saved is None:
            if self._journal.open:
                self._keep(key)
        elif key not in saved:
            self._keep(key)
        keys = self._keys
        if keys is not None and key not in self:  # a new key: its entry in the key list
            if len(keys) > 2 * len(self) + _SLACK and self._mark is None:
                keys = self._compact()
            keys.append(key)
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Table[K, V]:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        if self._saved is not None or self._journal.open:
            for key in list(self):
                self._keep_for_removal(key)
        elif self._keys is not None:
            self._keys.clear()
        dict.clear(self)


class MutableValueTable(Table[K, V]):
    """A :class:`Table` whose values are changed in place: a read by key keeps a copy too."""

    __slots__ = ("_copy_value",)

    def __init__(self, copy_value: Callable[[V], V], items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        super().__init__(items)
        self._copy_value = copy_value

    def _keep(self, key: K) -> None:  # Table._keep, saving a copy of the value
        saved = self._saved
        if saved is None:
            if not self._journal.open:
                return
            saved = self._join()
        if key not in saved:
            value = dict.get(self, key, _ABSENT)
            saved[key] = value if value is _ABSENT else self._copy_value(value)

    def __setitem__(self, key: K, value: V) -> None:
        self._keep(key)  # a copy, which Table.__setitem__ (its save inlined) would not take
        super().__setitem__(key, value)

    def __getitem__(self, key: K) -> V:
        saved = self._saved
        if saved is None:
            if self._journal.open:
                self._keep(key)
        elif key not in saved:
            self._keep(key)
        return dict.__getitem__(self, key)

    @overload
    def get(self, key: K, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: K, default: V, /) -> V: ...
    @overload
    def get(self, key: K, default: T, /) -> V | T: ...
    def get(self, key: K, default: Any = None, /) -> Any:
        saved = self._saved
        if saved is None:
            if self._journal.open:
                self._keep(key)
        elif key not in saved:
            self._keep(key)
        return dict.get(self, key, default)
