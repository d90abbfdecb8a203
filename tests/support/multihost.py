"""A multi-host bed on one machine: N hosts sharing loop devices, each with its own lock stack.

What a host is (see ``../shared/multihost/NOTES.md`` for why each piece looks as it does):

* its own **sanlock** daemon, unprivileged (``SANLOCK_PRIVILEGED=0 sanlock daemon -D -w 0
  -l 0 -U root -G root -L -1 -S -1 -e hostN``, its own ``SANLOCK_RUN_DIR``): no watchdog,
  so a "crash" is a SIGKILL and nothing fences the host;
* its own **lock daemon**: by default the real ``lvmlockd -g sanlock`` of the LVM 2.02
  prefix, started in a private mount namespace in which the host's ``lk/`` directory is
  bind-mounted over lvmlockd's compiled-in run dir (lvmlockd reaches lvmetad only at
  ``PREFIX/run/lvmetad.socket``).  Any other lock daemon is a :class:`LockDaemon` command
  line per host (``Bed(lockd={2: LockDaemon(...)})``), for mixed clusters;
* its own **lvmetad**: pylvmetad or the C lvmetad (``metad="pylvmetad"|"lvmetad"``);
* its own ``lvm.conf`` (``use_lvmlockd = 1``, ``local/host_id = N``, a filter that sees
  only the bed's PVs) and locking dir; :meth:`Host.lvm` runs LVM 2.02 as that host.

Shared by the hosts: the PVs (sparse files on loop devices) and, per shared VG, the
emulated ``lvmlock`` LV (:meth:`Bed.emulate_lvmlock`): this kernel has no device-mapper,
so a loop device over the PV at the LV's place (PE 0..63 of the VG's first PV,
``pe_start`` 1 MiB) stands in for it, linked as ``/dev/mapper/<vg>-lvmlock``.

Optionally (``tap=True``) every host's lvmlockd → lvmetad link runs through a relay
thread that records each request and reply (:class:`Tap`): the invalidations
(``set_vg_info``, ``set_global_info``) lvmlockd sends, whichever lvmetad runs.

Rules:

* Everything the bed makes is recorded in ``root/bed.json`` the moment it exists
  (processes with their start time, loop devices, links, the lvmlockd pid marker), and
  :meth:`Bed.down` — also :func:`down` from that file alone, for an operator — removes all
  of it: processes by pid (after checking the pid is still that process), loop devices,
  links, files.  The mount namespaces die with their lvmlockd, so no mount is left.
* lvm only talks to a lock daemon when lvmlockd's compiled-in pid file exists
  (``PREFIX/run/lvmlockd.pid``; it ignores ``LVM_LVMLOCKD_PIDFILE`` for that test).  A bed
  creates that marker when absent and holds a shared ``flock`` on it while up; the last
  bed to go down removes the marker it created.
* Nothing asserts here: the tests do.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from support import lvm202
from support.lvm202 import Daemon, Lvm202, Result, wait_for_socket
from support.skips import require, require_root, unavailable

if TYPE_CHECKING:
    from pylvmetad.scanner.ondisk import VgMetadata

MiB = lvm202.MiB
#: extent size and data alignment of the shared VGs (vgcreate -s 4m --dataalignment 1m)
EXTENT = 4 * MiB
PE_START = 1 * MiB
#: global/sanlock_lv_extend default: the size of the internal lvmlock LV
LOCK_LV_SIZE = 256 * MiB
MARKER_TEXT = "pylvmetad multihost bed: lvm uses lvmlockd only if this file exists\n"
TERM = b"\n##\n"


# -- lock daemons ------------------------------------------------------------------------


@dataclass(frozen=True)
class LockDaemon:
    """How a host's lock daemon is started.

    ``argv`` may hold the placeholders ``{socket}``, ``{pidfile}`` (where lvm reaches it),
    ``{io_timeout}``, ``{host_id}``, ``{sanlock_dir}``, ``{dir}`` (the host's directory) and
    ``{lvmetad_socket}`` (the host's lvmetad, as the daemon must use it).  It runs with ``SANLOCK_RUN_DIR``,
    ``LVM_LVMETAD_SOCKET``, ``LVM_LVMLOCKD_SOCKET`` and ``LVM_LVMLOCKD_PIDFILE`` set.
    ``namespace``: start it in a private mount namespace where lvmlockd's compiled-in
    run dir is the host's ``lk/`` (needed by the real lvmlockd only).
    """

    argv: tuple[str, ...]
    namespace: bool = False
    name: str = "lockd"


def real_lvmlockd(lvm: Lvm202) -> LockDaemon:
    """LVM 2.02.188's own lvmlockd with sanlock, debug log on stderr."""
    return LockDaemon(
        (str(lvm.lvmlockd), "-D", "-g", "sanlock", "-o", "{io_timeout}", "-s", "{socket}", "-p", "{pidfile}"),
        namespace=True,
        name="lvmlockd",
    )


def lvmlockd_run_dir(lvm: Lvm202) -> Path:
    """The directory lvmlockd opens ``lvmetad.socket`` in (compiled in: PREFIX/run)."""
    return lvm.prefix / "run"


def lvmlockd_pid_marker(lvm: Lvm202) -> Path:
    """The file whose existence makes lvm use lvmlockd (compiled in: PREFIX/run/lvmlockd.pid)."""
    return lvm.prefix / "run" / "lvmlockd.pid"


# -- processes ---------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in ticks): a pid plus this names one process.

    None when there is no such process, or only its zombie (it has exited).  A leader
    thread that has ended while other threads of the process run (sanlock on SIGTERM)
    also shows "Z": that process still runs.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        try:
            if len(os.listdir(f"/proc/{pid}/task")) <= 1:
                return None
        except OSError:
            return None
    return fields[19]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return found


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def kill_process(pid: int, started: str | None, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` and its descendants, if it is still the process that started at ``started``.

    A descendant orphaned by the signal (sanlock's helper, say) is reparented to this
    process (see :func:`become_subreaper`) and reaped here, so it is not left a zombie.
    """
    if started is not None and _start_time(pid) != started:
        return
    descendants = _descendants(pid)
    for p in [pid, *descendants]:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    if sig == signal.SIGKILL:
        for p in descendants:
            _reap_orphan(p)


def _reap_orphan(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return  # reaped by its own parent
        time.sleep(0.01)  # not reparented to us yet


_subreaper_lock = threading.Lock()
_subreaper_beds = 0


def _set_subreaper(on: bool) -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def become_subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER while a bed is up: orphans of its daemons become our children.

    Without it they go to pid 1, which on some machines (a container's init) reaps late
    or never.  Counted per process (two beds may be up at once); :func:`leave_subreaper`
    turns it off when the last bed is down, so later tests' orphans are not ours to reap.
    """
    global _subreaper_beds
    with _subreaper_lock:
        if _subreaper_beds == 0:
            _set_subreaper(True)
        _subreaper_beds += 1


def leave_subreaper() -> None:
    global _subreaper_beds
    with _subreaper_lock:
        _subreaper_beds -= 1
        if _subreaper_beds == 0:
            _set_subreaper(False)


@dataclass
class Proc:
    """A daemon process of the bed: its Popen (None when found in the state file) and identity."""

    name: str
    pid: int
    started: str | None
    popen: subprocess.Popen[bytes] | None = None
    log_thread: threading.Thread | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _start_time(self.pid) == self.started

    def kill(self, sig: int = signal.SIGKILL) -> None:
        kill_process(self.pid, self.started, sig)

    def wait(self, timeout: float) -> bool:
        """True once it has exited (reaped when it is our child)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None:
                try:
                    self.popen.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return False
                return True
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def stop(self, term_timeout: float = 5.0) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            if not self.wait(term_timeout):
                self.kill(signal.SIGKILL)
                self.wait(10.0)
        if self.log_thread is not None:
            self.log_thread.join(5.0)


def _stamp_lines(source: object, log_path: Path) -> threading.Thread:
    """Copy a pipe into ``log_path``, each line prefixed with the wall-clock time in ms."""

    def run() -> None:
        with open(log_path, "ab", buffering=0) as log:
            for line in source:  # type: ignore[attr-defined]
                log.write(b"%.3f " % time.time() + line)

    t = threading.Thread(target=run, daemon=True, name=f"log {log_path.name}")
    t.start()
    return t


# -- the tap on lvmlockd -> lvmetad ------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One request relayed by a :class:`Tap` and its reply, with the wall-clock time sent."""

    time: float
    request: str
    reply: str

    @property
    def name(self) -> str:
        for line in self.request.splitlines():
            if line.startswith("request"):
                return line.split("=", 1)[1].strip().strip('"')
        return ""


class Tap:
    """A relay between a UNIX listening socket and an upstream one, recording every exchange."""

    def __init__(self, listen: Path, upstream: Path) -> None:
        self.listen_path = listen
        self.upstream = upstream
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listen.unlink(missing_ok=True)
        self._server.bind(str(listen))
        self._server.listen(8)
        self._closed = False
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name=f"tap {listen}").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    @staticmethod
    def _read(sock: socket.socket) -> bytes | None:
        buf = b""
        while not buf.endswith(TERM):
            chunk = sock.recv(1 << 16)
            if not chunk:
                return None
            buf += chunk
        return buf

    def _relay(self, client: socket.socket) -> None:
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with self._lock:
            self._conns += [client, up]
        try:
            up.connect(str(self.upstream))
            while True:
                req = self._read(client)
                if req is None:
                    return
                t = time.time()
                up.sendall(req)
                rep = self._read(up)
                if rep is None:
                    return
                client.sendall(rep)
                with self._lock:
                    self.messages.append(
                        Message(t, req[: -len(TERM)].decode(errors="replace"), rep.decode(errors="replace"))
                    )
        except OSError:
            return
        finally:
            client.close()
            up.close()

    def requests(self, *names: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if not names or m.name in names]

    def close(self) -> None:
        self._closed = True
        try:
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.listen_path.unlink(missing_ok=True)


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """A command's :class:`Result` with its start and end (``time.time()``)."""

    host: int
    result: Result
    start: float
    end: float

    @property
    def rc(self) -> int:
        return self.result.rc

    @property
    def out(self) -> str:
        return self.result.stdout

    @property
    def duration(self) -> float:
        return self.end - self.start


# -- hosts -------------------------------------------------------------------------------


@dataclass
class Host:
    """One simulated host of a :class:`Bed`."""

    bed: Bed
    n: int
    dir: Path
    lockd_spec: LockDaemon
    metad: Daemon | None = None
    sanlock: Proc | None = None
    lockd: Proc | None = None
    tap: Tap | None = None

    @property
    def conf_dir(self) -> Path:
        return self.dir / "conf"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def lk_dir(self) -> Path:
        """Bind-mounted over lvmlockd's run dir in its namespace: its ``lvmetad.socket``."""
        return self.dir / "lk"

    @property
    def sanlock_dir(self) -> Path:
        return self.dir / "sanlock"

    @property
    def metad_socket(self) -> Path:
        return self.run_dir / "lvmetad.socket"

    @property
    def metad_pidfile(self) -> Path:
        return self.run_dir / "lvmetad.pid"

    @property
    def lockd_socket(self) -> Path:
        return self.run_dir / "lvmlockd.socket"

    @property
    def lockd_pidfile(self) -> Path:
        return self.run_dir / "lvmlockd.pid"

    @property
    def sanlock_log(self) -> Path:
        return self.dir / "sanlock.log"

    @property
    def lockd_log(self) -> Path:
        return self.dir / "lockd.log"

    def env(self) -> dict[str, str]:
        env = self.bed.lvm202.env()
        env.update(
            LVM_SYSTEM_DIR=str(self.conf_dir),
            LVM_LVMETAD_SOCKET=str(self.metad_socket),
            LVM_LVMETAD_PIDFILE=str(self.metad_pidfile),
            LVM_LVMLOCKD_SOCKET=str(self.lockd_socket),
            LVM_LVMLOCKD_PIDFILE=str(self.lockd_pidfile),
            LVM_SUPPRESS_FD_WARNINGS="1",
            LC_ALL="C",
        )
        return env

    def sanlock_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SANLOCK_PRIVILEGED="0", SANLOCK_RUN_DIR=str(self.sanlock_dir))
        return env

    # -- running things as this host

    def lvm(self, *args: str, timeout: float = 300.0) -> Timed:
        """``lvm ARGS`` as this host; never raises on a non-zero rc."""
        return self.popen_lvm(*args).wait(timeout)

    def popen_lvm(self, *args: str) -> Running:
        argv = [str(self.bed.lvm202.lvm), *args]
        start = time.time()
        p = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=self.env(), text=True
        )
        return Running(self.n, tuple(argv), p, start)

    def sanlock_client(self, *args: str) -> Result:
        argv = ["sanlock", "client", *args]
        r = subprocess.run(argv, capture_output=True, text=True, env=self.sanlock_env(), timeout=60)
        return Result(tuple(argv), r.returncode, r.stdout, r.stderr)

    # -- daemons

    def write_conf(self, devices: Sequence[str]) -> None:
        lock = self.dir / "lock"
        lvm202.write_lvm_conf(
            self.conf_dir,
            devices,
            locking_dir=lock,
            extra=(
                "global {\n  use_lvmlockd = 1\n  locking_type = 1\n"
                f'  etc = "{self.conf_dir}"\n}}\n'
                f"local {{\n  host_id = {self.n}\n}}\n"
                "log {\n  verbose = 0\n}\n"
            ),
        )

    def start_metad(self) -> None:
        kind = self.bed.metad
        self.metad = lvm202.daemon(kind, self.bed.lvm202, self.run_dir, *self.bed.metad_args)
        self.metad.start()
        self.bed._record(f"metad{self.n}", self.metad.pid)

    def start_lock_daemons(self) -> None:
        """sanlock, then the lock daemon (again after :meth:`crash`)."""
        self.sanlock_dir.mkdir(parents=True, exist_ok=True)
        argv = ["sanlock", "daemon", "-D", "-w", "0", "-l", "0", "-U", "root", "-G", "root", "-L", "-1", "-S", "-1"]
        argv += ["-e", f"host{self.n}"]
        self.sanlock = self.bed._spawn(f"sanlock{self.n}", argv, self.sanlock_env(), self.sanlock_log)
        wait_for_socket(self.sanlock_dir / "sanlock.sock", self.sanlock.popen, timeout=30)
        self.start_lockd()

    def start_lockd(self, *extra: str) -> None:
        """The lock daemon alone, with ``extra`` arguments (a restart after its own death)."""
        spec = self.lockd_spec
        values = {
            "socket": str(self.lockd_socket),
            "pidfile": str(self.lockd_pidfile),
            "io_timeout": str(self.bed.io_timeout),
            "host_id": str(self.n),
            "sanlock_dir": str(self.sanlock_dir),
            "lvmetad_socket": str(self.lk_dir / "lvmetad.socket"),
            "dir": str(self.dir),
        }
        cmd = [a.format(**values) for a in spec.argv] + list(extra)
        if spec.namespace:
            script = 'mount --bind "$0" "$1" && shift && exec "$@"'
            run = lvmlockd_run_dir(self.bed.lvm202)
            cmd = [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                str(self.lk_dir),
                str(run),
                *cmd,
            ]
        env = self.bed.lvm202.env(self.sanlock_env())
        env.update(
            LVM_LVMETAD_SOCKET=values["lvmetad_socket"],
            LVM_LVMLOCKD_SOCKET=str(self.lockd_socket),
            LVM_LVMLOCKD_PIDFILE=str(self.lockd_pidfile),
        )
        self.lockd = self.bed._spawn(f"lockd{self.n}", cmd, env, self.lockd_log)
        wait_for_socket(self.lockd_socket, self.lockd.popen, timeout=30)

    def crash(self) -> float:
        """SIGKILL this host's sanlock and lock daemon at once (its lvmetad stays); returns when."""
        assert self.sanlock is not None and self.lockd is not None
        self.lockd.kill()
        self.sanlock.kill()
        t = time.time()
        self.lockd.wait(10)
        self.sanlock.wait(10)
        return t

    def metad_request(self, text: str) -> str:
        from support.differential import raw_request

        return raw_request(self.metad_socket, text)

    def lockd_log_text(self) -> str:
        return self.lockd_log.read_text(errors="replace") if self.lockd_log.exists() else ""


@dataclass
class Running:
    """An lvm command started with :meth:`Host.popen_lvm`."""

    host: int
    argv: tuple[str, ...]
    popen: subprocess.Popen[str]
    start: float

    def wait(self, timeout: float = 300.0) -> Timed:
        out, err = self.popen.communicate(timeout=timeout)
        end = time.time()
        return Timed(self.host, Result(self.argv, self.popen.returncode, out, err), self.start, end)


def preflight(lvm: Lvm202) -> None:
    """Skip (fail in CI) unless a bed can run here; call it in the test's own thread."""
    require_root("a multi-host bed (loop devices, mount namespaces)")
    require(lvm202._which("sanlock"), "needs sanlock (apt-get install sanlock)")
    require(lvm202._which("unshare"), "needs unshare (apt-get install util-linux)")
    require(lvm202._which("losetup"), "needs losetup (apt-get install util-linux)")
    require(os.access(lvm.lvmlockd, os.X_OK), f"needs lvmlockd in {lvm.sbin} (scripts/build-lvm202)")
    require(Path("/dev").is_dir() and os.access("/dev", os.W_OK), "needs a writable /dev (the lvmlock LV's link)")


# -- the bed -----------------------------------------------------------------------------


@dataclass
class Bed:
    """N hosts sharing ``pv_count`` loop devices; :meth:`up` / :meth:`down`, or ``with``."""

    root: Path
    lvm202: Lvm202
    hosts_count: int = 3
    metad: str = "pylvmetad"
    io_timeout: int = 2
    pv_count: int = 3
    pv_size: int = 1024 * MiB
    lockd: Mapping[int, LockDaemon] = field(default_factory=dict)
    tap: bool = False
    #: extra options of every host's lvmetad (e.g. ``("-l", "all")``)
    metad_args: tuple[str, ...] = ()
    hosts: list[Host] = field(default_factory=list)
    pvs: list[str] = field(default_factory=list)
    lock_lvs: dict[str, str] = field(default_factory=dict)
    _state: dict[str, object] = field(default_factory=dict)
    _marker_fd: int | None = None
    _procs: list[Proc] = field(default_factory=list)
    _subreaper: bool = False

    # -- state file

    @property
    def state_path(self) -> Path:
        return self.root / "bed.json"

    def _save(self) -> None:
        self.state_path.write_text(json.dumps(self._state, indent=1))

    def _list(self, key: str) -> list[object]:
        value = self._state.setdefault(key, [])
        assert isinstance(value, list)
        return value

    def _record(self, name: str, pid: int) -> None:
        self._list("procs").append([name, pid, _start_time(pid)])
        self._save()

    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Proc:
        if self.stamp_logs:
            p = subprocess.Popen(
                list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env)
            )
            thread = _stamp_lines(p.stdout, log)
        else:
            with open(log, "ab") as f:
                p = subprocess.Popen(
                    list(argv),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=dict(env),
                    start_new_session=True,
                )
            thread = None
        self._record(name, p.pid)
        proc = Proc(name, p.pid, _start_time(p.pid), p, thread)
        self._procs.append(proc)
        return proc

    #: lock-daemon logs through a thread that stamps each line in ms (off for a detached bed)
    stamp_logs: bool = True

    # -- up

    def host(self, n: int) -> Host:
        return self.hosts[n - 1]

    def up(self) -> Bed:
        preflight(self.lvm202)
        become_subreaper()
        self._subreaper = True
        self.root.mkdir(parents=True, exist_ok=True)
        self._state = {"root": str(self.root), "procs": [], "loops": [], "links": [], "images": []}
        self._save()
        try:
            self._hold_marker()
            for i in range(self.pv_count):
                image = self.root / f"pv{i + 1}.img"
                with open(image, "wb") as f:
                    f.truncate(self.pv_size)
                self._list("images").append(str(image))
                dev = self._losetup(str(image))
                self.pvs.append(dev)
            lvm202.settle(self.pvs)  # nothing may hold them: the hosts' pvcreate opens them O_EXCL
            for n in range(1, self.hosts_count + 1):
                spec = self.lockd.get(n) or real_lvmlockd(self.lvm202)
                host = Host(self, n, self.root / f"h{n}", spec)
                self.hosts.append(host)
                for d in (host.run_dir, host.lk_dir, host.sanlock_dir):
                    d.mkdir(parents=True, exist_ok=True)
                host.write_conf(self.pvs)
                host.start_metad()
                if self.tap:
                    host.tap = Tap(host.lk_dir / "lvmetad.socket", host.metad_socket)
                else:
                    (host.lk_dir / "lvmetad.socket").symlink_to(host.metad_socket)
                host.start_lock_daemons()
                hosts = self._state.setdefault("hosts", {})
                assert isinstance(hosts, dict)
                hosts[str(n)] = {"env": host.env(), "sanlock_env": host.sanlock_env(), "dir": str(host.dir)}
            self._state["pvs"] = list(self.pvs)
            self._save()
        except BaseException:
            self.down()
            raise
        return self

    def _losetup(self, *args: str) -> str:
        r = subprocess.run(["losetup", "--find", "--show", *args], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 or not r.stdout.strip():
            unavailable(f"cannot attach a loop device (losetup: {r.stderr.strip()})")
        dev = r.stdout.strip()
        self._list("loops").append(dev)
        self._save()
        return dev

    def _hold_marker(self) -> None:
        marker = lvmlockd_pid_marker(self.lvm202)
        marker.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                same = os.fstat(fd).st_ino == os.stat(marker).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # removed by a bed going down meanwhile: open the new one
        if os.fstat(fd).st_size == 0:
            os.write(fd, MARKER_TEXT.encode())
        self._marker_fd = fd
        self._state["marker"] = str(marker)
        self._save()

    # -- shared VGs

    def emulate_lvmlock(self, vg: str, pv: str) -> str:
        """Stand in for ``<vg>``'s internal lvmlock LV (to run BEFORE ``vgcreate --shared vg pv``).

        The LV will be the VG's first: PE 0..63 of ``pv`` from pe_start 1 MiB; a loop device
        over exactly those bytes of ``pv`` is what dm-linear would map, linked where
        lvmlockd looks for it.  Returns the loop device.
        """
        dev = self._losetup("-o", str(PE_START), "--sizelimit", str(LOCK_LV_SIZE), pv)
        mapper = Path("/dev/mapper")
        if not mapper.is_dir():
            # a fresh machine without device-mapper has none; down() removes it again
            mapper.mkdir(mode=0o755)
            self._list("dirs").append(str(mapper))
        link = mapper / f"{vg}-lvmlock"
        link.unlink(missing_ok=True)
        link.symlink_to(dev)
        self._list("links").append(str(link))
        self._save()
        self.lock_lvs[vg] = dev
        return dev

    def lvmlock_matches(self, vg: str, pv: str, host: int = 1) -> bool:
        """Whether the metadata puts ``vg``'s lvmlock where :meth:`emulate_lvmlock` mapped it."""
        last = LOCK_LV_SIZE // EXTENT - 1
        r = self.host(host).lvm(
            "lvs", "-a", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,seg_pe_ranges", vg
        )
        p = self.host(host).lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pv_name,pe_start", pv)
        return (
            f"[lvmlock] {LOCK_LV_SIZE} {pv}:0-{last}" in " ".join(r.out.split())
            and " ".join(p.out.split()) == f"{pv} {PE_START}"
        )

    # -- down

    def down(self) -> list[str]:
        """Remove everything the bed made; returns what could not be removed (normally [])."""
        for host in self.hosts:
            if host.tap is not None:
                host.tap.close()
        problems = down(self.root, self._state)
        for proc in self._procs:
            if proc.popen is not None:
                try:
                    proc.popen.wait(10.0)  # reaps it
                except subprocess.TimeoutExpired:
                    problems.append(f"process {proc.name} pid {proc.pid} still running")
            if proc.log_thread is not None:
                proc.log_thread.join(5.0)
        self._procs.clear()
        for host in self.hosts:
            if host.metad is not None:
                host.metad.stop()
        if self._marker_fd is not None:
            problems += _release_marker(self._marker_fd, Path(str(self._state.get("marker"))))
            self._marker_fd = None
        self.hosts.clear()
        if self._subreaper:
            self._subreaper = False
            leave_subreaper()
        return problems

    def __enter__(self) -> Bed:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()


def _release_marker(fd: int, marker: Path) -> list[str]:
    os.close(fd)
    try:
        fd = os.open(marker, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)  # another bed still holds it
        return []
    try:
        if os.read(fd, 4096).decode(errors="replace") == MARKER_TEXT:
            marker.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return []


def _entries(state: Mapping[str, object], key: str) -> list[Any]:
    value = state.get(key, [])
    return list(value) if isinstance(value, list) else []


def down(root: Path, state: Mapping[str, object] | None = None) -> list[str]:
    """Tear down the bed recorded in ``root/bed.json`` (or ``state``): processes, loops, links, files."""
    if state is None:
        path = root / "bed.json"
        if not path.exists():
            return []
        state = json.loads(path.read_text())
    problems: list[str] = []
    procs = [Proc(str(n), int(p), s) for n, p, s in _entries(state, "procs")]
    # lock daemons first (they hold sanlock leases), then sanlock, then the lvmetads
    order = {"lockd": 0, "sanlock": 1, "metad": 2}
    procs.sort(key=lambda p: order.get(p.name.rstrip("0123456789"), 3))
    # their children (sanlock's helper) are orphaned by the kill and come to us (subreaper)
    orphans = [c for p in procs if p.alive() for c in _descendants(p.pid)]
    for p in procs:
        if p.alive():
            p.kill(signal.SIGTERM)
    deadline = time.monotonic() + 5.0
    for p in procs:
        p.wait(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.alive():
            p.kill(signal.SIGKILL)
    for p in procs:
        if not p.wait(10.0):
            problems.append(f"process {p.name} pid {p.pid} survived SIGKILL")
    for pid in orphans:
        _reap_orphan(pid, timeout=1.0)
    for link in _entries(state, "links"):
        Path(link).unlink(missing_ok=True)
    for made in reversed(_entries(state, "dirs")):
        try:
            Path(made).rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:  # another bed's links are still in it: that bed removes it
            if e.errno != errno.ENOTEMPTY:
                problems.append(f"rmdir {made}: {e}")
    for dev in reversed(_entries(state, "loops")):
        r = subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, timeout=60)
        if r.returncode != 0 and "No such device" not in r.stderr:
            problems.append(f"losetup -d {dev}: {r.stderr.strip()}")
    for image in _entries(state, "images"):
        Path(image).unlink(missing_ok=True)
    (root / "bed.json").unlink(missing_ok=True)
    return problems


# -- on-disk truth -----------------------------------------------------------------------


def _newest_metadata(devices: Sequence[str]) -> dict[str, VgMetadata]:
    from pylvmetad.scanner.ondisk import OnDiskError, read_pv

    best: dict[str, VgMetadata] = {}
    for dev in devices:
        try:
            with open(dev, "rb") as f:
                vg = read_pv(f).vg
        except (OnDiskError, ValueError, OSError):
            continue
        if vg is not None and (vg.name not in best or vg.seqno > best[vg.name].seqno):
            best[vg.name] = vg
    return best


def on_disk_seqnos(devices: Sequence[str]) -> dict[str, int]:
    """What the PVs hold: VG name → the seqno of its newest metadata."""
    return {name: vg.seqno for name, vg in _newest_metadata(devices).items()}


def on_disk_lvs(devices: Sequence[str]) -> dict[str, dict[str, int]]:
    """What the PVs hold: VG name → {visible LV name: size in extents}, from the newest metadata."""
    from pylvmetad.wire.codec import atoms

    truth: dict[str, dict[str, int]] = {}
    for name, vg in _newest_metadata(devices).items():
        lvs: dict[str, int] = {}
        section = vg.section.section("logical_volumes")
        if section is not None:
            for lv_name, lv in section.sections():
                if "VISIBLE" not in atoms(lv.child("status") or []):
                    continue
                extents = 0
                for _, seg in lv.sections():
                    extents += seg.get_int64("extent_count") or 0
                lvs[lv_name] = extents
        truth[name] = lvs
    return truth


def on_disk_pvs(devices: Sequence[str]) -> dict[str, str]:
    """What the PVs hold: device → its VG's name ("" for an orphan PV); devices without a label are left out."""
    from pylvmetad.scanner.ondisk import OnDiskError, read_pv

    found: dict[str, str] = {}
    for dev in devices:
        try:
            with open(dev, "rb") as f:
                vg = read_pv(f).vg
        except (OnDiskError, ValueError, OSError):
            continue
        found[dev] = vg.name if vg is not None else ""
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``predicate`` (a file's content, a process state) until true; raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)
