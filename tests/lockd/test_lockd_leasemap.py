"""Finding the lvmlock LV on its PV from VG metadata (no device-mapper), on the recorded metadata."""

from __future__ import annotations

from pylvmetad.lockd.leasemap import lease_area_in
from pylvmetad.lockd.sanlock import LeaseArea, dm_path
from pylvmetad.wire.codec import parse

# lvmetad's vg_lookup reply for vgs1 in ../shared/multihost/h2-lvm-lvmetad.jsonl (cut to what matters)
METADATA = """
metadata {
\tid="ph3Vk4-WyyO-Nfse-XLLP-g5o3-vNTY-6iWsQI"
\tseqno=3
\tlock_type="sanlock"
\tlock_args="1.0.0:lvmlock"
\textent_size=8192
\tphysical_volumes {
\t\tpv0 {
\t\t\tdevice=1796
\t\t\tid="OfmrfV-vfxA-HWfF-FUpe-R0rD-pbXZ-qh1kuP"
\t\t\tpe_start=2048
\t\t\tpe_count=255
\t\t}
\t}
\tlogical_volumes {
\t\tlvmlock {
\t\t\tsegment_count=1
\t\t\tsegment1 {
\t\t\t\tstart_extent=0
\t\t\t\textent_count=64
\t\t\t\ttype="striped"
\t\t\t\tstripe_count=1
\t\t\t\tstripes=["pv0",0]
\t\t\t}
\t\t}
\t}
}
"""


def test_the_recorded_lvmlock_lies_at_1mib_on_loop4_for_256mib() -> None:
    metadata = parse(METADATA).section("metadata")
    assert metadata is not None
    area = lease_area_in(
        metadata, "lvmlock", resolve=lambda pv: "/dev/loop4" if pv.get_int64("device") == 1796 else None
    )
    # the place scenario.sh emulates with `losetup -o 1048576 --sizelimit 268435456 /dev/loop4`
    assert area == LeaseArea("/dev/loop4", 1048576, 268435456)


def test_anything_but_one_linear_run_is_refused() -> None:
    text = METADATA.replace("segment_count=1", "segment_count=2")
    metadata = parse(text).section("metadata")
    assert metadata is not None
    assert lease_area_in(metadata, "lvmlock", resolve=lambda pv: "/dev/x") is None
    metadata = parse(METADATA).section("metadata")
    assert metadata is not None
    assert lease_area_in(metadata, "other", resolve=lambda pv: "/dev/x") is None
    assert lease_area_in(metadata, "lvmlock", resolve=lambda pv: None) is None


def test_dm_path_doubles_dashes_as_libdm_does() -> None:
    assert dm_path("my-vg", "lvmlock").endswith("/mapper/my--vg-lvmlock")
