"""scanner.diskwatch: every row of its decision table, driven with PV images in memory.

Each test builds PVs (support.pvimage), runs polls the way the watcher does (plan, read,
step until nothing more is wanted, end_poll) and checks the observations and the pending
actions.  No device, no daemon, no clock.
"""

from __future__ import annotations

import pytest

from pylvmetad.scanner.diskwatch import DECISIONS, HEAD_SIZE, DiskWatch, Extent, Observation, PvSetChange, VgChange
from pylvmetad.scanner.ondisk import lvm_crc, read_pv
from support.pvimage import PvImage, vg_text

U = ["A" * 32, "B" * 32, "C" * 32]
VGID = "vgidvg-0000-0000-0000-0000-0000-000001"
VGID2 = "vgidvg-0000-0000-0000-0000-0000-000002"


class Bed:
    """Devices (devno → PvImage or None for a gone one) and the watch over them."""

    def __init__(self, *images: PvImage | None) -> None:
        self.disks: dict[int, PvImage | None] = {i + 1: img for i, img in enumerate(images)}
        self.watch = DiskWatch(settle_polls=3)
        for devno in self.disks:
            self.watch.add_device(devno, f"/dev/d{devno}")
        self.reads = 0

    def poll(self) -> dict[int, Observation]:
        for devno, image in self.disks.items():
            if image is None:
                self.watch.lost(devno, "gone")
                continue
            data: dict[Extent, bytes] = {}
            want = self.watch.plan(devno)
            while want:
                for e in want:
                    self.reads += 1
                    data[e] = bytes(image.data[e.offset : e.end])
                want = self.watch.step(devno, data)
        self.watch.end_poll()
        return {devno: s.last for devno, s in self.watch.devices.items()}

    def settle(self) -> None:
        """Acknowledge everything pending (the daemon took it)."""
        for action in self.watch.pending():
            self.watch.done(action)


def vg_pvs(n: int = 2, seqno: int = 5, vgid: str = VGID, name: str = "vg1") -> list[PvImage]:
    images = [PvImage(U[i]) for i in range(n)]
    for img in images:
        img.write_text(vg_text(name, vgid, seqno, U[:n]))
    return images


def commit(images: list[PvImage], seqno: int, *, vgid: str = VGID, name: str = "vg1", extra: str = "") -> None:
    for img in images:
        img.write_text(vg_text(name, vgid, seqno, [i.uuid for i in images], extra), offset=4096)


def test_images_are_pvs_ondisk_reads() -> None:
    img = vg_pvs(1)[0]
    pv = read_pv(bytes(img.data))
    assert pv.vg is not None and pv.vg.seqno == 5 and pv.vg.id == VGID and not pv.problems


def test_every_observation_has_a_decision() -> None:
    assert set(DECISIONS) == set(Observation)


def test_baseline_decides_nothing_and_steady_state_is_one_read_per_pv() -> None:
    bed = Bed(*vg_pvs(2), PvImage(U[2]), None)
    assert set(bed.poll().values()) == {Observation.BASELINE}
    assert bed.watch.pending() == []
    bed.reads = 0
    for _ in range(3):
        assert set(bed.poll().values()) == {Observation.SAME}
    assert bed.watch.pending() == []
    assert bed.reads == 3 * 3  # three PVs, one read each per poll
    assert bed.watch.plan(1) == [Extent(0, HEAD_SIZE)]


def test_commit_on_every_pv_is_one_vg_change_with_the_new_seqno() -> None:
    images = vg_pvs(2)
    bed = Bed(*images)
    bed.poll()
    commit(images, 6)
    obs = bed.poll()
    assert obs[1] is Observation.COMMIT and obs[2] is Observation.CATCH_UP
    (action,) = bed.watch.pending()
    assert isinstance(action, VgChange) and (action.vgid, action.name, action.version) == (VGID, "vg1", 6)
    assert action.metadata.get_int64("seqno") == 6
    bed.settle()
    assert bed.poll() == {1: Observation.SAME, 2: Observation.SAME}
    assert bed.watch.pending() == []


def test_commit_that_lands_between_polls_reaches_the_second_pv_as_a_catch_up() -> None:
    images = vg_pvs(2)
    bed = Bed(*images)
    bed.poll()
    text = vg_text("vg1", VGID, 6, U[:2])
    images[0].write_text(text, offset=4096)
    assert bed.poll()[1] is Observation.COMMIT
    bed.settle()
    images[1].write_text(text, offset=4096)
    assert bed.poll()[2] is Observation.CATCH_UP
    assert bed.watch.pending() == []


def test_unacknowledged_change_stays_pending_and_a_newer_one_supersedes_it() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    commit(images, 6)
    bed.poll()
    first = bed.watch.pending()
    bed.poll()
    assert bed.watch.pending() == first  # the daemon refused: retried, not lost
    commit(images, 7)
    bed.poll()
    bed.watch.done(first[0])  # an old acknowledgement does not drop the newer change
    (action,) = bed.watch.pending()
    assert isinstance(action, VgChange) and action.version == 7


def test_rollback_to_a_lower_seqno_invalidates_unconditionally() -> None:
    images = vg_pvs(2, seqno=5)
    bed = Bed(*images)
    bed.poll()
    commit(images, 4, extra="description2 = 1\n")  # vgcfgrestore of an older backup
    obs = bed.poll()
    assert obs[1] is Observation.ROLLBACK and obs[2] is Observation.CATCH_UP
    (action,) = bed.watch.pending()
    assert isinstance(action, VgChange) and action.version == 0 and action.seqno == 4


def test_same_seqno_other_content_is_a_rollback() -> None:
    images = vg_pvs(1, seqno=5)
    bed = Bed(*images)
    bed.poll()
    commit(images, 5, extra="x = 1\n")
    assert bed.poll()[1] is Observation.ROLLBACK


def test_torn_header_is_retried_then_the_commit_is_seen() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    locn = images[0].write_text(vg_text("vg1", VGID, 6, U[:1]), offset=4096, commit=False)
    images[0].write_header(locn, torn=True)
    assert bed.poll()[1] is Observation.UNSETTLED
    assert bed.poll()[1] is Observation.UNSETTLED
    assert bed.watch.pending() == []
    images[0].write_header(locn)
    assert bed.poll()[1] is Observation.COMMIT


def test_header_that_stays_bad_is_reported_once() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    images[0].write_header((4096, 100, 0, 0), torn=True)
    seen = [bed.poll()[1] for _ in range(5)]
    assert seen[:3] == [Observation.UNSETTLED, Observation.UNSETTLED, Observation.UNREADABLE]
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.devnos == {1}
    bed.settle()
    bed.poll()
    assert bed.watch.pending() == []


def test_header_pointing_at_text_not_yet_written_is_retried() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    text = vg_text("vg1", VGID, 6, U[:1])
    raw = text.encode() + b"\0"
    images[0].write_header((8192, len(raw), lvm_crc(raw), 0))  # the text itself is not there yet
    assert bed.poll()[1] is Observation.UNSETTLED
    images[0].write_text(text, offset=8192)
    assert bed.poll()[1] is Observation.COMMIT


def test_wrapped_text_is_read_in_two_extents() -> None:
    img = PvImage(U[0], mda_size=16 * 1024)
    img.write_text(vg_text("vg1", VGID, 5, U[:1]))
    bed = Bed(img)
    bed.poll()
    text = vg_text("vg1", VGID, 6, U[:1], extra="pad = " + '"' + "x" * 600 + '"\n')
    img.write_text(text, offset=16 * 1024 - 300)
    bed.reads = 0
    assert bed.poll()[1] is Observation.COMMIT
    # the head (which also holds the part wrapped to the buffer's start), then the tail
    assert bed.reads == 2


def test_label_appearing_on_a_blank_device_is_a_pv_set_change() -> None:
    blank = PvImage(U[2])
    blank.wipe_label()
    bed = Bed(*vg_pvs(1), blank)
    bed.poll()
    blank.write_label()
    assert bed.poll()[2] is Observation.LABEL
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.devnos == {2} and not action.gone_vgs


def test_wiped_only_pv_is_a_pv_set_change_and_its_vg_is_gone() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    images[0].wipe_label()
    assert bed.poll()[1] is Observation.LABEL
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.devnos == {1} and action.gone_vgs == {VGID}


def test_device_gone_is_a_pv_set_change() -> None:
    images = vg_pvs(2)
    bed = Bed(*images)
    bed.poll()
    bed.disks[2] = None
    assert bed.poll()[2] is Observation.GONE
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.devnos == {2} and not action.gone_vgs
    bed.settle()
    assert bed.poll()[2] is Observation.SAME  # said once
    assert bed.watch.pending() == []


def test_emptied_metadata_area_leaves_the_vg() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    bed.poll()
    images[0].write_header(None)  # vgremove: an orphan again
    assert bed.poll()[1] is Observation.LEFT_VG
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.gone_vgs == {VGID}


def test_pv_moved_to_a_new_vg() -> None:
    images = vg_pvs(2)
    bed = Bed(*images)
    bed.poll()
    images[1].write_text(vg_text("vg2", VGID2, 1, U[1:2]), offset=4096)  # vgsplit
    assert bed.poll()[2] is Observation.NEW_VG
    actions = bed.watch.pending()
    assert [type(a) for a in actions] == [PvSetChange]


def test_new_device_with_a_pv_after_the_baseline_appeared() -> None:
    bed = Bed(*vg_pvs(1))
    bed.poll()
    other = PvImage(U[1])
    bed.disks[5] = other
    bed.watch.add_device(5, "/dev/d5")
    assert bed.poll()[5] is Observation.LABEL


@pytest.mark.parametrize(
    ("cached", "complete", "want"),
    [
        ({VGID: 5}, True, []),
        ({VGID: 4}, True, [VgChange]),
        ({}, False, [PvSetChange]),
        ({VGID: 5, VGID2: 3}, True, [PvSetChange]),
        ({VGID: 5, VGID2: 3}, False, []),
    ],
)
def test_reconcile_with_the_cache(cached: dict[str, int | None], complete: bool, want: list[type]) -> None:
    bed = Bed(*vg_pvs(1, seqno=5))
    bed.poll()
    bed.watch.reconcile(cached, complete=complete)
    assert [type(a) for a in bed.watch.pending()] == want


def test_steady_polls_compare_bytes_and_still_see_the_next_commit() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    for _ in range(4):
        bed.poll()
    assert bed.watch.devices[1].snapshot is not None  # the byte comparison is in use
    commit(images, 6)
    assert bed.poll()[1] is Observation.COMMIT
    assert [type(a) for a in bed.watch.pending()] == [VgChange]


def test_a_torn_head_that_reverts_is_nothing() -> None:
    images = vg_pvs(1)
    bed = Bed(*images)
    for _ in range(3):
        bed.poll()
    saved = bytes(images[0].data[:HEAD_SIZE])
    images[0].write_header((4096, 10, 0, 0), torn=True)
    assert bed.poll()[1] is Observation.UNSETTLED
    images[0].data[:HEAD_SIZE] = saved
    assert bed.poll()[1] is Observation.SAME
    assert bed.watch.pending() == []


def test_a_pv_back_from_absence_with_an_older_copy_does_not_roll_the_vg_back() -> None:
    images = vg_pvs(2, seqno=5)
    bed = Bed(*images)
    bed.poll()
    away = images[1]
    bed.disks[2] = None  # the disk goes away; the VG is committed without it
    commit(images[:1], 6)
    bed.poll()
    bed.settle()
    bed.disks[2] = away  # back, with seqno 5
    assert bed.poll()[2] is Observation.LABEL
    (action,) = bed.watch.pending()
    assert isinstance(action, PvSetChange) and action.devnos == {2}
    assert bed.watch.vgs[VGID].seqno == 6
