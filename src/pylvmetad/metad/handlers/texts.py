"""Reply texts of the structured lookups, reused while what they show is unchanged.

Rules of this module:

* :class:`ReplyTexts` builds the bodies of ``pv_list``, ``vg_list`` and
  ``vg_lookup`` from a :class:`~pylvmetad.metad.cache.CacheState` and keeps
  them for reuse; it only reads the cache, never changes it, and does no I/O.
* Every kept text is keyed by something that changes whenever the text
  would: the identity of a stored tree (the cache replaces trees on change,
  it never edits one) or the cache's ``generation`` counter plus the
  invalidation marks, which the caller computes fresh for every request.
  So a stale text cannot be served.
* What it keeps is bounded: at most 4096 whole replies, and texts of VGs
  no longer cached are dropped once they outnumber the cached ones.

Theory of operation
-------------------
Stored PV records and VG metadata do not change between writes, so their
text is kept: per PV, where the body of its ``pv_list`` entry sits in the
last pv_list reply (a rebuild copies unchanged records instead of
formatting them again; a copy per record would cost 2 MB per 5000 PVs);
per VG, the text of its metadata around the ``physical_volumes`` section
(the only part vg_lookup edits); per PV, the text of the record vg_lookup
merges in front of its PV section (a vg_update replaces the VG's tree but
not its PVs' records, so the lookup after an lvcreate writes only the PV
sections' own few fields).  Whole replies are also kept, keyed by
generation and marks; a hit returns the very same :class:`Reply` object, so
a large reply (pv_list of 5000 PVs is ~1.7 MB) is not copied per request
beyond the server's encoding.
"""

from __future__ import annotations

from collections.abc import Callable

from ...wire.codec import MarkedList, Node, Section, atoms, first_values, format_key, format_tree, quote
from ...wire.replies import Reply
from ..cache import CacheState

#: more whole replies than this and the store starts over
MAX_KEPT_REPLIES = 4096


# ---------------------------------------------------------------------------
# vg_lookup's edits of a PV section (docs/protocol.md §5 vg_lookup)
# ---------------------------------------------------------------------------
def pvmeta_for_vg(pvmeta: Section) -> list[tuple[str, Node]]:
    """The pvmeta children vg_lookup puts in front of a PV: less ``id`` and ``dev_size``.

    The original's cursor walk never drops the first child nor a node that
    directly follows a dropped one; with LVM's field order this drops both.
    """
    kids = list(pvmeta.items)
    i = 0
    while i + 1 < len(kids):
        if kids[i + 1][0] in ("id", "dev_size"):
            del kids[i + 1]
        i += 1
    return kids


def present_pv_items(pv: Section) -> list[tuple[str, Node]]:
    """A present PV's own children as vg_lookup returns them: any ``MISSING`` status word dropped."""
    items = pv.items
    (status,) = first_values(items, ("status",))
    if type(status) is str and status != "MISSING":  # the common case: nothing to drop
        return items
    status_at = next((i for i, (k, _) in enumerate(items) if k == "status"), None)
    if status_at is not None:
        status = atoms(items[status_at][1])
        if status and "MISSING" in status:
            status.remove("MISSING")
            items = list(items)
            items[status_at] = ("status", status if len(status) != 1 else status[0])
    return items


def edit_pv_section(pv: Section, pvmeta: Section | None) -> Section:
    """A PV section as vg_lookup returns it: pvmeta merged in, or ``MISSING`` flagged."""
    if pvmeta is not None:
        return Section(pvmeta_for_vg(pvmeta) + present_pv_items(pv))
    items = list(pv.items)
    status_at = next((i for i, (k, _) in enumerate(items) if k == "status"), None)
    if status_at is None:
        items.insert(0, ("status", MarkedList(["MISSING"])))
    else:
        status = atoms(items[status_at][1])
        if status and "MISSING" not in status:
            items[status_at] = ("status", MarkedList(["MISSING", *status]))
    return Section(items)


def pv_vg_lines(state: CacheState, pvid: str, indent: str) -> str:
    """The ``vgid`` and ``vgname`` lines pv_lookup and pv_list add to a PV record."""
    vgid, name = state.pv_vg(pvid)
    lines = ""
    if vgid is not None:
        lines += f"{indent}vgid={quote(vgid)}\n"
    if name is not None:
        lines += f"{indent}vgname={quote(name)}\n"
    return lines


class ReplyTexts:
    """The kept texts of one cache's structured replies (see the module's rules)."""

    def __init__(self, state: CacheState) -> None:
        self.state = state
        #: the last pv_list reply body, and where each PV record's text sits in it
        self.pv_list_text = ""
        self.pv_record_spans: dict[str, tuple[Section, int, int]] = {}
        #: per VG uuid: (its metadata tree, text before and after physical_volumes, that section)
        self.vg_texts: dict[str, tuple[Section, str, str, Section | None]] = {}
        #: whole replies: (request, key) -> (generation, marks, reply)
        self.replies: dict[tuple[str, str], tuple[int, str, Reply]] = {}
        #: per PV uuid: (its pvmeta, the text of what vg_lookup merges in front of its PV section)
        self.pvmeta_texts: dict[str, tuple[Section, str]] = {}

    def kept_reply(self, request: str, key: str, tail: str, build: Callable[[], str]) -> Reply:
        """The OK reply ``build() + tail``, reused while the cache and ``tail`` are unchanged.

        ``tail`` (invalidation marks and the closing blank line) is computed
        fresh by every caller, so a reused reply always carries today's marks.
        """
        generation = self.state.generation
        hit = self.replies.get((request, key))
        if hit is not None and hit[0] == generation and hit[1] == tail:
            return hit[2]
        reply = Reply(build() + tail, request, "OK")
        if len(self.replies) > MAX_KEPT_REPLIES:
            self.replies.clear()
        self.replies[(request, key)] = (generation, tail, reply)
        return reply

    # -- pv_list ------------------------------------------------------------
    def pv_list(self, tail: str) -> Reply:
        old_text, old_spans = self.pv_list_text, self.pv_record_spans
        spans: dict[str, tuple[Section, int, int]] = {}
        rebuilt: list[bool] = []
        state = self.state

        def build() -> str:
            rebuilt.append(True)
            parts = ['response="OK"\nphysical_volumes {\n']
            at = len(parts[0])
            for pvid, pvmeta in state.pvid_to_pvmeta.items():
                head = f"\t{format_key(pvid)} {{\n"
                span = old_spans.get(pvid)
                unchanged = span is not None and span[0] is pvmeta  # same record: copy its text
                body = old_text[span[1] : span[2]] if span is not None and unchanged else format_tree(pvmeta, 2)
                record_tail = pv_vg_lines(state, pvid, "\t\t") + "\t}\n"
                start = at + len(head)
                spans[pvid] = (pvmeta, start, start + len(body))
                parts += (head, body, record_tail)
                at = start + len(body) + len(record_tail)
            parts.append("}\n")
            return "".join(parts)

        reply = self.kept_reply("pv_list", "", tail, build)
        if rebuilt:  # the spans are offsets into the text just built, a prefix of reply.body
            self.pv_list_text, self.pv_record_spans = reply.body, spans
        return reply

    # -- vg_list ------------------------------------------------------------
    def vg_list(self, tail: str) -> Reply:
        state = self.state

        def build() -> str:
            parts = ['response="OK"\nvolume_groups {\n']
            for vgid, name in state.vgid_to_vgname.items():
                parts.append(f"\t{format_key(vgid)} {{\n\t\tname={quote(name)}\n\t}}\n")
            parts.append("}\n")
            return "".join(parts)

        return self.kept_reply("vg_list", "", tail, build)

    # -- vg_lookup ----------------------------------------------------------
    def vg_lookup(self, vgid: str, name: str, tail: str) -> Reply:
        metadata = self.state.vgid_to_metadata[vgid]

        def build() -> str:
            return f'response="OK"\nname={quote(name)}\n' + self._vg_metadata_text(vgid, metadata)

        return self.kept_reply("vg_lookup", vgid, tail, build)

    def _vg_around_pvs(self, vgid: str, metadata: Section) -> tuple[str, str, Section | None]:
        """Metadata text before and after its ``physical_volumes`` section (depth 1)."""
        kept = self.vg_texts.get(vgid)
        if kept is not None and kept[0] is metadata:
            return kept[1], kept[2], kept[3]
        items = metadata.items
        pvs: Section | None = None
        at = len(items)
        for i, (key, value) in enumerate(items):
            if key == "physical_volumes" and isinstance(value, Section):
                pvs, at = value, i
                break
        texts = format_tree(items[:at], 1), format_tree(items[at + 1 :], 1)
        self.vg_texts[vgid] = (metadata, texts[0], texts[1], pvs)
        cached_vgs = self.state.vgid_to_metadata
        if len(self.vg_texts) > 2 * len(cached_vgs) + 16:
            # drop the texts of VGs that are gone or changed, so churn cannot grow this
            self.vg_texts = {k: v for k, v in self.vg_texts.items() if cached_vgs.get(k) is v[0]}
        return texts[0], texts[1], pvs

    def _pvmeta_text(self, pvid: str, pvmeta: Section) -> str:
        """The text of :func:`pvmeta_for_vg` at a PV section's depth, kept while the record is unchanged.

        A vg_update replaces the VG's tree, not its PVs' records: without this
        the lookup after every lvcreate wrote each PV's record again.
        """
        kept = self.pvmeta_texts.get(pvid)
        if kept is not None and kept[0] is pvmeta:
            return kept[1]
        text = format_tree(pvmeta_for_vg(pvmeta), 3)
        pvmetas = self.state.pvid_to_pvmeta
        if len(self.pvmeta_texts) > 2 * len(pvmetas) + 16:
            # drop the texts of PVs that are gone or changed, so churn cannot grow this
            self.pvmeta_texts = {k: v for k, v in self.pvmeta_texts.items() if pvmetas.get(k) is v[0]}
        self.pvmeta_texts[pvid] = (pvmeta, text)
        return text

    def _vg_metadata_text(self, vgid: str, metadata: Section) -> str:
        state = self.state
        before, after, pvs = self._vg_around_pvs(vgid, metadata)
        parts = ["metadata {\n"]
        outdated = state.vgid_to_outdated_pvs.get(vgid)
        if outdated is not None:
            parts.append("\toutdated_pvs {\n")
            for outdated_pvid in reversed(outdated):  # oldest mark first
                pvmeta = state.pvid_to_pvmeta.get(outdated_pvid)
                if pvmeta is not None:
                    parts.append(f"\t\t{format_key(outdated_pvid)} {{\n")
                    parts.append(format_tree(pvmeta, 3))
                    parts.append("\t\t}\n")
            parts.append("\t}\n")
        parts.append(before)
        if pvs is not None:
            parts.append("\tphysical_volumes {\n")
            for key, pv in pvs.items:
                pv_id = pv.get_str("id") if isinstance(pv, Section) else None
                if pv_id is not None:
                    assert isinstance(pv, Section)
                    pvmeta = state.pvid_to_pvmeta.get(pv_id)
                    if pvmeta is not None:
                        # the merged section's text is the pvmeta's part then the PV's own
                        parts.append(f"\t\t{format_key(key)} {{\n")
                        parts.append(self._pvmeta_text(pv_id, pvmeta))
                        parts.append(format_tree(present_pv_items(pv), 3))
                        parts.append("\t\t}\n")
                        continue
                    pv = edit_pv_section(pv, None)
                parts.append(format_tree([(key, pv)], 2))
            parts.append("\t}\n")
        parts.append(after)
        parts.append("}\n")
        return "".join(parts)
