"""Live differential testing: one scenario of real LVM 2.02 commands, run against both daemons.

Theory of operation:

* A *scenario* is a function of a :class:`Bed`.  It runs real ``lvm`` 2.02 commands,
  ``lvmetactl``, daemon restarts and disk edits through the bed, which records every
  command as a transcript entry: the command line, its exit status, its stdout and
  stderr, masked (UUIDs numbered by first appearance, pids, times, the bed's own
  directory).
* :func:`run_differential` runs the scenario twice on the same loop devices (wiped in
  between), first against the C lvmetad of LVM 2.02.188, then against pylvmetad, and
  compares the two transcripts entry by entry, then the two daemons' final caches
  (``dump``, ``pv_list``, ``vg_list``, ``get_global_info``) as order-free trees.  The
  C daemon's transcript is the expected output: there is no recorded expectation to
  go stale.
* The loop devices are shared per test module (a fixture), so a module pays for
  ``losetup`` once; every bed has its own ``lvm.conf``, locking dir and daemon socket.
"""

from __future__ import annotations

import difflib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from pylvmetad.wire.codec import Section, parse
from support import lvm202
from support.lvm202 import Daemon, LoopDevices, Lvm, Lvm202, Masker, Result

#: the pylvmetad-scan command line (module form, so PYTHONPATH picks the worktree)
SCAN_MODULE = "pylvmetad.scanner.scan"
DEVICES = 4
#: a directory to keep every scenario's two transcripts in (for reading them, not for the test)
TRANSCRIPTS_ENV = "PYLVMETAD_LIVE_TRANSCRIPTS"
DEVICE_SIZE = 32 * lvm202.MiB


def raw_request(socket_path: Path, text: str, timeout: float = 30.0) -> str:
    """One request (token "skip", as lvmetactl sends) and its reply text, on a new connection."""
    data = (text.rstrip("\n") + '\ntoken="skip"\npid=1\ncmd="live-test"\n\n##\n').encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(socket_path))
        s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n##\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise ConnectionError("daemon closed the connection")
            buf += chunk
    return buf[: -len(b"##\n")].decode()


#: a tree as sorted (key, kind, value) triples; value: an atom, a tuple of atoms or a nested Canon
Canon = tuple[tuple[str, str, object], ...]
#: fields that depend on the process or the clock, not on the cache's content
VOLATILE = frozenset({"daemon_pid", "update_begin", "creation_time"})


def canonical(tree: Section, mask: Callable[[str], str]) -> Canon:
    """An order-free, masked form of a config tree (siblings as a sorted multiset)."""

    def atom(value: object) -> object:
        return mask(value) if isinstance(value, str) else value

    out: list[tuple[str, str, object]] = []
    for key, node in tree.items:
        if key in VOLATILE:
            out.append((key, "=", "<volatile>"))
        elif isinstance(node, Section):
            out.append((mask(key), "{}", canonical(node, mask)))
        elif isinstance(node, list):
            out.append((mask(key), "[]", tuple(atom(v) for v in node)))
        else:
            out.append((mask(key), "=", atom(node)))
    return tuple(sorted(out, key=repr))


def pretty(canon: Canon, depth: int = 0) -> list[str]:
    """Lines of a canonical tree, for a readable diff."""
    lines = []
    for key, kind, value in canon:
        if kind == "{}":
            assert isinstance(value, tuple)
            lines.append("  " * depth + f"{key} {{")
            lines += pretty(value, depth + 1)
            lines.append("  " * depth + "}")
        else:
            lines.append("  " * depth + f"{key} = {value!r}")
    return lines


class Bed:
    """One run of a scenario: a daemon of ``kind``, LVM 2.02 confined to the loop devices."""

    def __init__(self, kind: str, lvm2_02: Lvm202, loops: LoopDevices, root: Path) -> None:
        self.kind = kind
        self.lvm2_02 = lvm2_02
        self.loops = loops
        self.root = root
        self.devices = list(loops.devices)
        self.conf_dir = root / "etc"
        lvm202.write_lvm_conf(self.conf_dir, self.devices, locking_dir=root / "lock")
        self.daemon: Daemon = lvm202.daemon(kind, lvm2_02, root / "run")
        self.run = Lvm(lvm2_02, self.conf_dir, self.daemon.socket_path, self.daemon.pidfile)
        self.mask = Masker(replace={str(root): "<bed>"})
        self.transcript: list[str] = []

    # -- recording ---------------------------------------------------------------------
    def record(self, label: str, result: Result, *, unordered: bool = False) -> Result:
        out, err = self.mask(result.stdout), self.mask(result.stderr)
        if unordered:
            out, err = lvm202.sorted_lines(out), lvm202.sorted_lines(err)
        self.transcript.append(f"$ {self.mask(label)}\nrc={result.rc}\n{out.rstrip()}\n--- stderr\n{err.rstrip()}\n")
        return result

    def note(self, text: str) -> None:
        """A step that is not a command (a restart, a disk edit), kept for the diff's context."""
        self.transcript.append(f"# {text}\n")

    # -- commands ----------------------------------------------------------------------
    def lvm(self, *args: str, unordered: bool = False) -> Result:
        """``lvm ARGS`` recorded; device paths in ARGS are the bed's, same in both runs."""
        return self.record("lvm " + " ".join(args), self.run(*args), unordered=unordered)

    def ok(self, *args: str, unordered: bool = False) -> Result:
        """:meth:`lvm` that must succeed on both daemons (catches a scenario gone wrong early)."""
        return self.lvm(*args, unordered=unordered).check()

    def ctl(self, *args: str) -> Result:
        """LVM's lvmetactl, recorded (its replies are config text: compared order-free)."""
        result = self.run.ctl(*args)
        return self.record("lvmetactl " + " ".join(args), result, unordered=True)

    def scan(self, *devices: str) -> Result:
        """``pylvmetad-scan --cache`` over the bed's filter (not recorded: see :meth:`populate`)."""
        argv = [sys.executable, "-m", SCAN_MODULE, "--cache", "--socket", str(self.daemon.socket_path)]
        for entry in lvm202.filter_list(self.devices):
            argv += ["--filter", entry]
        r = subprocess.run([*argv, *devices], capture_output=True, text=True, timeout=120)
        return Result(tuple(argv), r.returncode, r.stdout, r.stderr)

    def outside(self, *args: str) -> Result:
        """``lvm ARGS`` with lvmetad off: a change made behind the cache's back, recorded."""
        conf = self.root / "etc-outside"
        if not (conf / "lvm.conf").exists():
            lvm202.write_lvm_conf(conf, self.devices, locking_dir=self.root / "lock", use_lvmetad=False)
        runner = Lvm(self.lvm2_02, conf, self.daemon.socket_path, self.daemon.pidfile)
        return self.record("outside: lvm " + " ".join(args), runner(*args)).check()

    def populate(self, result: Result) -> Result:
        """Record a cache population whose tool differs between the runs by its exit status only."""
        self.transcript.append(f"$ <populate the cache>\nrc={result.rc}\n")
        return result

    def wipe(self, device: str) -> None:
        self.note(f"{device} wiped behind LVM's back")
        self.loops.wipe(device)

    def clone(self, source: str, target: str) -> None:
        self.note(f"{source} cloned onto {target} (dd)")
        self.loops.clone(source, target)

    def hide(self, device: str) -> None:
        self.note(f"{device} went away (size 0)")
        self.loops.hide(device)

    def restore(self, device: str) -> None:
        self.note(f"{device} came back")
        self.loops.restore(device)

    def report(self) -> None:
        """What an admin looks at after every change: pvs, vgs, lvs, as text and as JSON."""
        self.ok("pvs", "-o", "+pv_uuid,vg_name,vg_uuid")
        self.ok("vgs", "-o", "+vg_uuid,vg_seqno")
        self.ok("lvs", "-a", "-o", "+lv_uuid,devices")
        for command in ("pvs", "vgs", "lvs"):
            self.ok(command, "--reportformat", "json", "--units", "b")

    def report_lenient(self) -> None:
        """:meth:`report` where commands may fail (a partial VG, duplicates): rc is compared."""
        self.lvm("pvs", "-o", "+pv_uuid,vg_name,vg_uuid")
        self.lvm("vgs", "-o", "+vg_uuid,vg_seqno")
        self.lvm("lvs", "-a", "-o", "+lv_uuid,devices")

    def vgid(self, vgname: str) -> str:
        """The VG's uuid as LVM reports it (unmasked: for lvmetactl arguments)."""
        return self.run("vgs", "--noheadings", "-o", "vg_uuid", vgname).check().stdout.strip()

    def pvid(self, device: str) -> str:
        return self.run("pvs", "--noheadings", "-o", "pv_uuid", device).check().stdout.strip()

    # -- the daemon --------------------------------------------------------------------
    def start(self) -> None:
        self.note("daemon started (empty cache)")
        self.daemon.start()

    def stop(self) -> None:
        self.note("daemon stopped")
        self.daemon.stop()

    def restart(self) -> None:
        self.note("daemon restarted (empty cache)")
        self.daemon.restart()

    def request(self, text: str) -> Section:
        return parse(raw_request(self.daemon.socket_path, text))

    def final_state(self) -> dict[str, Canon]:
        """The daemon's cache as order-free masked trees (UUIDs already seen keep their numbers)."""
        state = {}
        for name in ("pv_list", "vg_list", "get_global_info"):
            state[name] = canonical(self.request(f'request="{name}"'), self.mask)
        state["dump"] = canonical(parse(raw_request(self.daemon.socket_path, 'request="dump"')), self.mask)
        return state


Scenario = Callable[[Bed], None]


def run_differential(scenario: Scenario, lvm2_02: Lvm202, loops: LoopDevices, root: Path) -> dict[str, Bed]:
    """Run ``scenario`` against the C lvmetad, then pylvmetad; assert equal transcripts and caches."""
    beds: dict[str, Bed] = {}
    states: dict[str, dict[str, Canon]] = {}
    for kind in lvm202.DAEMON_KINDS:
        loops.wipe()
        bed = Bed(kind, lvm2_02, loops, root / kind)
        bed.daemon.start()
        try:
            scenario(bed)
            if not bed.daemon.running:
                bed.start()
            states[kind] = bed.final_state()
        except BaseException as e:
            log = bed.daemon.log()[-3000:]
            held = "\n".join(loops.holders()) or "(no process, mount or holder has a loop device open)"
            raise AssertionError(
                f"scenario failed against {kind}:\n{''.join(bed.transcript)}\n{log}\nloop devices now: {held}"
            ) from e
        finally:
            status = bed.daemon.stop()
        assert status == 0, f"{kind} exited with {status}:\n{bed.daemon.log()[-3000:]}"
        beds[kind] = bed
    expected, actual = beds["lvmetad"].transcript, beds["pylvmetad"].transcript
    keep = os.environ.get(TRANSCRIPTS_ENV)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for kind, bed in beds.items():
            (Path(keep) / f"{root.name}.{kind}.txt").write_text("".join(bed.transcript))
    if expected != actual:
        diff = difflib.unified_diff(
            "".join(expected).splitlines(), "".join(actual).splitlines(), "C lvmetad", "pylvmetad", lineterm="", n=8
        )
        raise AssertionError("LVM 2.02 saw different behaviour:\n" + "\n".join(diff))
    for name in states["lvmetad"]:
        want, got = pretty(states["lvmetad"][name]), pretty(states["pylvmetad"][name])
        if want != got:
            diff = difflib.unified_diff(want, got, "C lvmetad", "pylvmetad", lineterm="", n=5)
            raise AssertionError(f"final {name} differs:\n" + "\n".join(diff))
    return beds
