"""pylvmetad-scan's token is the one real LVM 2.02 commands send, so neither repopulates the other's cache.

* For several lvm.conf layouts, the real ``pvscan --cache`` (``use_lvmetad=1``) sets its
  token in the C lvmetad; ``scanner.lvmconf`` must derive the same one from the same
  ``LVM_SYSTEM_DIR``.
* A cache that LVM's own commands populated is left alone by ``pylvmetad-scan --watch``
  and ``--cache DEV`` when nothing changed: no ``token_update``, no ``pv_clear_all``
  (counted by pylvmetad's ``stats``), the same token (and, after ``--watch``, the same
  dump), and the next LVM
  command does not repopulate either (no token war).

About 10 s (the loop devices are the module's).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.metad.client import Client
from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS
from pylvmetad.scanner.lvmconf import read_lvm_config
from pylvmetad.wire.codec import Section, parse
from support import lvm202
from support.differential import SCAN_MODULE, Bed, raw_request
from support.lvm202 import Daemon, LoopDevices, Lvm, Lvm202

GLOBAL = 'global {\n  use_lvmetad = 1\n  activation = 0\n  locking_dir = "%s"\n}\n'
DEVS = ["/dev/loop100", "/dev/loop101", "/dev/loop102"]
LAYOUTS: dict[str, tuple[str, str | None]] = {
    "no devices section": ("", None),
    "filter only (not in the token)": ('devices {\n  filter = [ "a|^/dev/loop100$|", "r|.*|" ]\n}\n', None),
    "global_filter list": ('devices {\n  global_filter = [ "a|^/dev/loop100$|", "a|/dev/sd.*|", "r|.*|" ]\n}\n', None),
    "global_filter one string": ('devices {\n  global_filter = "r|^/dev/cdrom|"\n}\n', None),
    "filter and global_filter differ": (
        'devices {\n  filter = [ "r|x|" ]\n  global_filter = [ "a|y|", "r|.*|" ]\n}\n',
        None,
    ),
    "repeated devices section": (
        'devices { global_filter = [ "r|a|" ] }\ndevices { global_filter = [ "r|b|" ] }\n',
        None,
    ),
    "lvmlocal.conf overrides": (
        'devices { global_filter = [ "r|a|" ] }\n',
        'devices {\n  global_filter = [ "a|.*|" ]\n}\n',
    ),
    "the tests' lvm.conf": ("bed", None),
}


@pytest.fixture(scope="module")
def c_daemon(lvm2_02: Lvm202, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with lvm202.c_lvmetad(lvm2_02, tmp_path_factory.mktemp("c-run")) as daemon:
        yield daemon


def token_of(socket_path: Path) -> str | None:
    return parse(raw_request(socket_path, 'request="get_global_info"')).get_str("token")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_token_equals_the_one_lvm_2_02_sends(lvm2_02: Lvm202, c_daemon: Daemon, tmp_path: Path, layout: str) -> None:
    text, local = LAYOUTS[layout]
    conf_dir = tmp_path / "etc"
    if text == "bed":
        lvm202.write_lvm_conf(conf_dir, DEVS, locking_dir=tmp_path / "lock")
    else:
        conf_dir.mkdir()
        (tmp_path / "lock").mkdir()
        (conf_dir / "lvm.conf").write_text(text + GLOBAL % (tmp_path / "lock"))
        if local is not None:
            (conf_dir / "lvmlocal.conf").write_text(local)
    # the daemon must not hold the expected token already, or the test could not fail
    with Client(str(c_daemon.socket_path)) as client:
        client.token_update(UPDATE_IN_PROGRESS)
        client.token_update("filter:1")
    assert token_of(c_daemon.socket_path) == "filter:1"
    Lvm(lvm2_02, conf_dir, c_daemon.socket_path, c_daemon.pidfile)("pvscan", "--cache").check()
    sent = token_of(c_daemon.socket_path)
    ours = read_lvm_config(conf_dir).token
    assert sent == ours, f"{layout}: LVM sent {sent}, lvmconf derives {ours}"


def counts(socket_path: Path) -> dict[str, int]:
    stats = parse(raw_request(socket_path, 'request="stats"'))
    requests = stats.section("requests") or Section()
    return {name: entry.get_int64("count") or 0 for name, entry in requests.sections()}


def scan(bed: Bed, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LVM_SYSTEM_DIR=str(bed.conf_dir))
    argv = [sys.executable, "-m", SCAN_MODULE, "--socket", str(bed.daemon.socket_path), *args]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r
    return r


def test_a_cache_lvm_populated_is_left_alone(lvm2_02: Lvm202, loops: LoopDevices, tmp_path: Path) -> None:
    loops.wipe()
    bed = Bed("pylvmetad", lvm2_02, loops, tmp_path)
    d0, d1 = bed.devices[:2]
    with bed.daemon:
        bed.ok("pvcreate", d0, d1)
        bed.ok("vgcreate", "vg1", d0, d1)
        bed.ok("lvcreate", "-n", "lv1", "-L", "8M", "vg1")
        token = token_of(bed.daemon.socket_path)
        assert token == read_lvm_config(bed.conf_dir).token
        dump = raw_request(bed.daemon.socket_path, 'request="dump"')
        before = counts(bed.daemon.socket_path)

        watched = scan(bed, "--watch", "--iterations", "3", "--interval", "0")
        assert "repopulated" not in watched.stdout, watched.stdout
        assert raw_request(bed.daemon.socket_path, 'request="dump"') == dump
        single = scan(bed, "--cache", d0)
        assert "repopulated" not in single.stdout and "1 PV(s) sent" in single.stdout, single.stdout
        bed.ok("vgs")
        bed.ok("lvs", "vg1")

        after = counts(bed.daemon.socket_path)
        for request in ("token_update", "pv_clear_all"):
            assert after.get(request, 0) == before.get(request, 0), (request, before, after)
        assert after["pv_found"] == before["pv_found"] + 1  # the one --cache DEV sent
        assert token_of(bed.daemon.socket_path) == token
