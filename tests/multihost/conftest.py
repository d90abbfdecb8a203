"""Fixtures of the multi-host tests: the LVM 2.02 build and one scenario run per lvmetad kind.

The scenario (``scenario.py``) takes about two minutes on one bed, most of it sanlock's
clock (lockspace joins, the takeover of a crashed host's lease after 8 x io_timeout + 60 s);
the three beds run at the same time, once per session, and every test reads their
transcripts.  The kinds (what every host runs):

* ``lvmetad``: the C lvmetad and the real lvmlockd — the reference;
* ``pylvmetad``: pylvmetad and the real lvmlockd;
* ``pylvmlockd``: pylvmetad and pylvmlockd (``--lease-device pv``: sanlock on the PV at
  the lvmlock LV's offset; the bed's ``/dev/mapper/<vg>-lvmlock`` emulation is made as for
  the others and unused).

``PYLVMETAD_MULTIHOST_IO_TIMEOUT`` sets sanlock's io_timeout (default 2; 10 is sanlock's
own default: the long run, 5 minutes).  ``PYLVMETAD_MULTIHOST_KEEP=DIR`` keeps the
beds' logs (lvmlockd -D, sanlock -D, lvmetad) under DIR.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from multihost.scenario import Run, run_both
from support import lvm202
from support.lvm202 import Lvm202
from support.multihost import Bed, LockDaemon, preflight

IO_TIMEOUT_ENV = "PYLVMETAD_MULTIHOST_IO_TIMEOUT"
KEEP_ENV = "PYLVMETAD_MULTIHOST_KEEP"
#: one VG-name prefix per bed, also unique per process: the two beds run at once, other test
#: runs may too, and /dev/mapper/<vg>-lvmlock is global (equal lengths: outputs align alike)
_RUN = f"{os.getpid() % 100000:05d}"
TAGS = {"lvmetad": f"lc{_RUN}", "pylvmetad": f"py{_RUN}", "pylvmlockd": f"pl{_RUN}"}
KINDS = tuple(TAGS)
#: the kinds that run pylvmetad on every host (its wire log and stats are read)
PYLVMETAD_KINDS = ("pylvmetad", "pylvmlockd")
#: the kind's lvmetad and (when not the real lvmlockd) lock daemon
METAD = {"lvmetad": "lvmetad", "pylvmetad": "pylvmetad", "pylvmlockd": "pylvmetad"}
#: -D: debug lines on stderr (the bed's lockd.log), as lvmlockd -D's, which the scenario reads
PYLVMLOCKD = LockDaemon(
    (sys.executable, "-m", "pylvmetad.lockd.cli", "-D", "-g", "sanlock", "-o", "{io_timeout}", "-s", "{socket}",
     "-p", "{pidfile}", "--lvmetad-socket", "{lvmetad_socket}", "--lease-device", "pv",
     "--adopt-file", "{dir}/lvmlockd.adopt"),
    name="pylvmlockd",
)  # fmt: skip


@pytest.fixture(scope="session")
def lvm2_02() -> Lvm202:
    return lvm202.ensure()


@pytest.fixture(scope="session")
def runs(lvm2_02: Lvm202, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The scenario run on a bed per kind, in parallel."""
    preflight(lvm2_02)
    io_timeout = int(os.environ.get(IO_TIMEOUT_ENV, "2"))
    root = tmp_path_factory.mktemp("multihost")

    def make_bed(kind: str) -> Bed:
        # pylvmetad logs every request ("wire"): the tests find lvmlockd's invalidations in it
        wire = ("-l", "fatal,error,warn,info,wire") if kind in PYLVMETAD_KINDS else ()
        lockd = dict.fromkeys((1, 2, 3), PYLVMLOCKD) if kind == "pylvmlockd" else {}
        return Bed(
            root / kind,
            lvm2_02,
            metad=METAD[kind],
            io_timeout=io_timeout,
            pv_count=5,
            tap=True,
            metad_args=wire,
            lockd=lockd,
        )

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
