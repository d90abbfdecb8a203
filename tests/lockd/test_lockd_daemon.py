"""The pylvmlockd process: the shell's deferred replies, the lvmetad link, pylvmlockctl.

Runs ``pylvmlockd -f -T`` (test mode: leases in memory, no sanlock) beside
a real pylvmetad, speaks lvm's wire format to it over its socket, and
checks that a request waiting on a lock stalls neither other connections
nor the daemon, that a granted lock's invalidation reached lvmetad before
the reply, and lvmlockctl's info/quit/stop-lockspaces.  About 3 s.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.lvm202 import Daemon, pylvmetad_argv

LOCKD = [sys.executable, "-m", "pylvmetad.lockd.cli"]
CTL = [sys.executable, "-m", "pylvmetad.lockd.ctl"]


class Conn:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.sock.settimeout(20)

    def send(self, body: str) -> None:
        self.sock.sendall(body.encode() + b"\n##\n")

    def recv(self) -> str:
        buf = b""
        while not buf.endswith(b"\n##\n"):
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed"
            buf += chunk
        return buf.decode()[: -len("\n##\n")]

    def call(self, body: str) -> str:
        self.send(body)
        return self.recv()

    def close(self) -> None:
        self.sock.close()


def req(name: str, **fields: str | int) -> str:
    lines = [f'request="{name}"'] + [f'{k} ="{v}"' if isinstance(v, str) else f"{k} ={v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def result(reply: str) -> int:
    line = next(x for x in reply.splitlines() if x.startswith(("op_result = ", "result = ")))
    return int(line.split(" = ")[1])


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[tuple[Path, Path, Daemon]]:
    metad_sock, lockd_sock = tmp_path / "metad.sock", tmp_path / "lockd.sock"
    metad = Daemon(
        "pylvmetad",
        pylvmetad_argv(metad_sock, tmp_path / "metad.pid"),
        metad_sock,
        tmp_path / "metad.pid",
        tmp_path / "metad.log",
    )
    argv = [
        *LOCKD,
        "-f",
        "-T",
        "-g",
        "sanlock",
        "-s",
        str(lockd_sock),
        "-p",
        str(tmp_path / "lockd.pid"),
        "--lvmetad-socket",
        str(metad_sock),
        "--adopt-file",
        str(tmp_path / "lockd.adopt"),
    ]
    lockd = Daemon("pylvmlockd", argv, lockd_sock, tmp_path / "lockd.pid", tmp_path / "lockd.log")
    with metad, lockd:
        yield metad_sock, lockd_sock, lockd


def ctl(lockd_sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LVM_LVMLOCKD_SOCKET=str(lockd_sock))
    return subprocess.run([*CTL, *args], capture_output=True, text=True, env=env, timeout=30)


def test_waiting_request_stalls_no_one_and_invalidation_precedes_the_grant(daemons: tuple[Path, Path, Daemon]) -> None:
    metad_sock, lockd_sock, lockd = daemons
    a = Conn(lockd_sock)
    assert a.call('request = "hello"\n') == 'response = "OK"\nresult = 0\nprotocol = "lvmlockd"\nversion = 1\n'
    assert result(a.call(req("running_lm", pid=1))) == 3
    gl: dict[str, str | int] = dict(cmd="vgcreate", pid=1, opts="none")
    assert result(a.call(req("lock_gl", mode="ex", vg_lock_type="sanlock", **gl))) == -210
    assert '"1.0.0:lvmlock"' in a.call(
        req("init_vg", pid=1, vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="lvmlock")
    )
    start: dict[str, str | int] = dict(
        vg_name="vgs1", vg_lock_type="sanlock", vg_lock_args="1.0.0:lvmlock", vg_uuid="U-1", version=1, host_id=1
    )
    assert result(a.call(req("start_vg", pid=1, opts="start_init", **start))) == 0
    assert result(a.call(req("start_wait", pid=1))) == 0
    vg: dict[str, str | int] = dict(
        cmd="t", pid=1, opts="none", vg_name="vgs1", vg_lock_type="none", vg_lock_args="none"
    )
    assert result(a.call(req("lock_vg", mode="ex", **vg))) == 0

    b = Conn(lockd_sock)
    b.send(req("lock_vg", mode="sh", **vg))  # waits behind a's ex: no reply yet
    c = Conn(lockd_sock)
    assert result(c.call('request = "hello"\n')) == 0  # others are served meanwhile
    assert result(c.call(req("lock_gl", mode="sh", cmd="pvs", pid=1, opts="none", vg_lock_type="none"))) == 0
    # the GL's first sight (all-zero LVB) invalidated lvmetad before c got its reply
    m = Conn(metad_sock)
    m.call('request = "hello"\n')
    assert "global_invalid = 1" in m.call('request = "get_global_info"\ntoken = "skip"\n')
    b.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        b.recv()
    b.sock.settimeout(20)
    a.close()  # a's transient ex goes with its connection
    assert result(b.recv()) == 0

    info = ctl(lockd_sock, "--info", "--json")
    assert info.returncode == 0, info.stderr
    objects = json.loads(info.stdout)["info"]
    assert any(o.get("info") == "ls" and o.get("vg_name") == "vgs1" for o in objects)
    assert any(o.get("info") == "lk" and o.get("mode") == "sh" for o in objects)
    stats = next(o for o in objects if o.get("info") == "stats")
    assert int(stats["local_waits"]) == 1  # b's sh behind a's ex
    assert int(stats["invalidations_global"]) == 1 and int(stats["invalidations_vg"]) == 1
    assert ctl(lockd_sock, "--quit").returncode == 1  # refused: a lockspace exists
    b.close()
    c.close()
    m.close()
    assert ctl(lockd_sock, "--stop-lockspaces", "--wait", "1").returncode == 0
    assert ctl(lockd_sock, "--quit").returncode == 0
    assert lockd.proc is not None and lockd.proc.wait(20) == 0
    assert not lockd_sock.exists()


def test_help_and_version() -> None:
    out = subprocess.run([*LOCKD, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "--lease-device" in out.stdout and "--sanlock-timeout" in out.stdout
    out = subprocess.run([*LOCKD, "-V"], capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("lvmlockd version: 2.02.188")
    out = subprocess.run([*LOCKD, "-g", "bogus"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "invalid gl-type option" in out.stderr
