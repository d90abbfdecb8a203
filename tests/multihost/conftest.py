"""Fixtures of the multi-host tests: the LVM 2.02 build and one scenario run per lvmetad kind.

The scenario (``scenario.py``) takes about two minutes on one bed, most of it sanlock's
clock (lockspace joins, the takeover of a crashed host's lease after 8 x io_timeout + 60 s);
the two beds — pylvmetad on every host, the C lvmetad on every host — run at the same
time, once per session, and every test reads their transcripts.

``PYLVMETAD_MULTIHOST_IO_TIMEOUT`` sets sanlock's io_timeout (default 2; 10 is sanlock's
own default: the long run, 5 minutes).  ``PYLVMETAD_MULTIHOST_KEEP=DIR`` keeps the
beds' logs (lvmlockd -D, sanlock -D, lvmetad) under DIR.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from multihost.scenario import Run, run_both
from support import lvm202
from support.lvm202 import Lvm202
from support.multihost import Bed, preflight

IO_TIMEOUT_ENV = "PYLVMETAD_MULTIHOST_IO_TIMEOUT"
KEEP_ENV = "PYLVMETAD_MULTIHOST_KEEP"
#: one VG-name prefix per bed, also unique per process: the two beds run at once, other test
#: runs may too, and /dev/mapper/<vg>-lvmlock is global (equal lengths: outputs align alike)
_RUN = f"{os.getpid() % 100000:05d}"
TAGS = {"lvmetad": f"lc{_RUN}", "pylvmetad": f"py{_RUN}"}
KINDS = tuple(TAGS)


@pytest.fixture(scope="session")
def lvm2_02() -> Lvm202:
    return lvm202.ensure()


@pytest.fixture(scope="session")
def runs(lvm2_02: Lvm202, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The scenario run with the C lvmetad and with pylvmetad on every host, in parallel."""
    preflight(lvm2_02)
    io_timeout = int(os.environ.get(IO_TIMEOUT_ENV, "2"))
    root = tmp_path_factory.mktemp("multihost")

    def make_bed(kind: str) -> Bed:
        # pylvmetad logs every request ("wire"): the tests find lvmlockd's invalidations in it
        wire = ("-l", "fatal,error,warn,info,wire") if kind == "pylvmetad" else ()
        return Bed(root / kind, lvm2_02, metad=kind, io_timeout=io_timeout, pv_count=5, tap=True, metad_args=wire)

    try:
        return run_both(make_bed, TAGS)
    finally:
        keep = os.environ.get(KEEP_ENV)
        if keep:
            shutil.copytree(
                root,
                Path(keep) / root.name,
                ignore=shutil.ignore_patterns("*.img", "*.socket", "*.sock"),
                symlinks=True,
                dirs_exist_ok=True,
            )
        shutil.rmtree(root, ignore_errors=True)
