"""The reply memo: the encoded replies of short read-only requests, reused while the cache is unchanged.

Rules of this module:

* A :class:`ReplyMemo` maps the exact bytes of a short message
  (:data:`MEMO_MAX_MESSAGE`) to the :class:`~pylvmetad.wire.replies.Reply`
  the handler gave it and that reply's encoded bytes.  It knows nothing of
  requests: the handler (:mod:`.dispatch`) decides what may be kept and
  when everything kept must go.  No I/O.
* Every entry is valid for one *stamp*, the cache's ``generation`` at the
  time it was kept; a look-up under another stamp drops every entry first.
  The handler also drops every entry before it runs any request that is not
  a memo read (:data:`MEMO_REQUESTS`), so a change made through the
  protocol -- tables, flags, the token, VG info -- cannot leave a stale
  entry behind even where it does not move the generation (the token table
  does not); the generation catches changes made to the cache by anything
  else.
* Bounded: at most :data:`MEMO_MAX_ENTRIES` entries and
  :data:`MEMO_MAX_BYTES` bytes of keys and replies together; a reply longer
  than :data:`MEMO_MAX_REPLY` is never kept.  When full, the oldest entries
  go first.

Theory of operation
-------------------
A real LVM command sends the same few reads again and again with the very
same bytes (its ``hello``, ``get_global_info``, the ``vg_lookup`` of the VG
it works on, the token and pid fields unchanged), and between two writes
their replies cannot change.  Parsing such a request costs more than
answering it (a 200-byte vg_lookup: ~12 µs parse, ~5 µs answer, plus the
encoding), so the memo answers it with one dict look-up on the received
bytes and hands the server the bytes to write.  The reply object itself is
returned too, so the daemon's statistics and logs see every request as if
it had been handled.
"""

from __future__ import annotations

from ...wire.replies import Reply

#: requests whose reply depends only on the message and the cache: never on the clock, the peer or
#: the daemon's figures (``get_global_info`` is kept only while no update is in progress, when its
#: token action cannot depend on the time; ``dump`` is long and rare, ``stats`` changes by itself)
MEMO_REQUESTS = frozenset({"hello", "get_global_info", "vg_list", "vg_lookup", "pv_list", "pv_lookup"})
#: messages longer than this (bytes) are not looked up or kept
MEMO_MAX_MESSAGE = 1024
#: encoded replies longer than this (bytes) are not kept
MEMO_MAX_REPLY = 64 * 1024
#: entries kept at most
MEMO_MAX_ENTRIES = 256
#: bytes of messages and encoded replies kept at most
MEMO_MAX_BYTES = 1024 * 1024


class ReplyMemo:
    """Message bytes -> (reply, encoded reply), for one stamp (see the module's rules)."""

    __slots__ = ("entries", "hits", "max_bytes", "max_entries", "size", "stamp")

    def __init__(self, max_entries: int = MEMO_MAX_ENTRIES, max_bytes: int = MEMO_MAX_BYTES) -> None:
        self.entries: dict[bytes, tuple[Reply, bytes]] = {}
        #: the stamp every entry is valid for
        self.stamp = -1
        #: bytes of keys and encoded replies held
        self.size = 0
        #: look-ups answered from the memo
        self.hits = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get(self, message: bytes, stamp: int) -> tuple[Reply, bytes] | None:
        """The kept answer to ``message`` if it is valid for ``stamp``."""
        if stamp != self.stamp:
            self.clear()
            self.stamp = stamp
            return None
        hit = self.entries.get(message)
        if hit is not None:
            self.hits += 1
        return hit

    def put(self, message: bytes, reply: Reply, data: bytes, stamp: int) -> None:
        """Keep the answer to ``message``, valid for ``stamp``, if it fits the budget."""
        cost = len(message) + len(data)
        if len(message) > MEMO_MAX_MESSAGE or len(data) > MEMO_MAX_REPLY or cost > self.max_bytes:
            return
        if stamp != self.stamp:
            self.clear()
            self.stamp = stamp
        entries = self.entries
        old = entries.pop(message, None)
        if old is not None:
            self.size -= len(message) + len(old[1])
        while entries and (len(entries) >= self.max_entries or self.size + cost > self.max_bytes):
            key = next(iter(entries))  # the oldest
            self.size -= len(key) + len(entries.pop(key)[1])
        entries[message] = (reply, data)
        self.size += cost

    def clear(self) -> None:
        if self.entries:
            self.entries.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self.entries)


__all__ = ["MEMO_MAX_MESSAGE", "MEMO_REQUESTS", "ReplyMemo"]
