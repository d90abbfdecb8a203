"""Real LVM 2.02.188 for the tests: the build, loop devices, lvm.conf, commands, daemons, masks.

What it holds, bottom up:

* :func:`locate` / :func:`ensure` — the LVM 2.02 prefix (``$PYLVMETAD_LVM202_PREFIX``,
  default ``/opt/lvm2-2.02``), built once per machine by ``scripts/build-lvm202`` from
  the tarball (``$PYLVMETAD_LVM202_TARBALL``, else ``../shared/lvm2-2.02/``).  With no
  build and no tarball the caller skips (fails in CI) with one line saying how to get
  LVM 2.02.188: see :mod:`support.skips`.
* :class:`LoopDevices` — a context manager: sparse image files under a directory,
  attached as loop devices, detached and deleted on exit (also when the body raises).
  Devices can be wiped, cloned (``dd`` of the label and metadata area), hidden (size 0,
  as a disk that went away, keeping its name) and restored.  After attaching and after
  a wipe they are *settled*: each can be opened ``O_EXCL`` (as LVM 2.02 opens a device
  it writes a label to), else the test fails naming who holds it (:func:`holders`).
* :func:`write_lvm_conf` — an ``lvm.conf`` that sees only the given devices, never
  activates (no device-mapper needed), keeps no backups/archives, has its own
  ``locking_dir``, uses lvmetad, and does its disk I/O synchronously (``use_aio = 0``:
  see there why).
* :class:`Lvm` — runs ``lvm``/``lvmetactl`` of the prefix with the right environment
  (``LD_LIBRARY_PATH``, ``LVM_SYSTEM_DIR``, ``LVM_LVMETAD_SOCKET``/``PIDFILE``) and
  returns :class:`Result` (rc, stdout, stderr); it never raises on a non-zero rc.
* :class:`Daemon` — pylvmetad or the C lvmetad in the foreground on a temp socket:
  start (waits until the socket accepts), stop, restart.  Both are the same object, so a
  scenario runs unchanged against either.
* :class:`Masker` — replaces what differs between two runs of one scenario (UUIDs,
  pids, times) by stable placeholders: the n-th distinct UUID seen becomes ``<uuid:n>``,
  so identity relations are still compared.

Nothing here asserts: the tests compare.  Nothing here touches a file outside the
directories it is given, except the loop devices it attaches.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support.daemon import wait_for_socket as wait_for_socket  # also used from here by multihost, sanlockd
from support.skips import require, require_root, unavailable

REPO = Path(__file__).resolve().parents[2]
PREFIX_ENV = "PYLVMETAD_LVM202_PREFIX"
TARBALL_ENV = "PYLVMETAD_LVM202_TARBALL"
DEFAULT_PREFIX = Path("/opt/lvm2-2.02")
SHARED_TARBALL = REPO.parent / "shared" / "lvm2-2.02" / "LVM2.2.02.188.tar.gz"
BUILD_SCRIPT = REPO / "scripts" / "build-lvm202"
HOW_TO_GET = (
    "LVM 2.02.188 is not built and its source is missing: set "
    f"{TARBALL_ENV}=/path/to/LVM2.2.02.188.tgz "
    "(https://sourceware.org/pub/lvm2/releases/LVM2.2.02.188.tgz) and run scripts/build-lvm202"
)
#: how the tests start pylvmetad (the module of its command line)
PYLVMETAD_MODULE = "pylvmetad.metad.cli"
MiB = 1 << 20


# -- the LVM 2.02 build ------------------------------------------------------------------


@dataclass(frozen=True)
class Lvm202:
    """An LVM 2.02 installation prefix with its tools."""

    prefix: Path

    @property
    def sbin(self) -> Path:
        return self.prefix / "sbin"

    @property
    def lib(self) -> Path:
        return self.prefix / "lib"

    @property
    def lvm(self) -> Path:
        return self.sbin / "lvm"

    @property
    def lvmetad(self) -> Path:
        return self.sbin / "lvmetad"

    @property
    def lvmetactl(self) -> Path:
        return self.sbin / "lvmetactl"

    @property
    def lvmlockd(self) -> Path:
        return self.sbin / "lvmlockd"

    @property
    def lvmlockctl(self) -> Path:
        return self.sbin / "lvmlockctl"

    def is_built(self) -> bool:
        return all(os.access(p, os.X_OK) for p in (self.lvm, self.lvmetad, self.lvmetactl))

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment in which the prefix's binaries find their libraries."""
        env = dict(os.environ if base is None else base)
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (str(self.lib), env.get("LD_LIBRARY_PATH", "")) if p)
        return env


def prefix() -> Path:
    """Where LVM 2.02 is (or gets) built: ``$PYLVMETAD_LVM202_PREFIX``, else /opt/lvm2-2.02."""
    return Path(os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX)


def tarball() -> Path | None:
    """The LVM 2.02.188 source: ``$PYLVMETAD_LVM202_TARBALL``, else the one in ../shared."""
    env = os.environ.get(TARBALL_ENV)
    for candidate in [Path(env)] if env else [SHARED_TARBALL]:
        if candidate.is_file():
            return candidate
    return None


def locate() -> Lvm202 | None:
    """The built prefix, or None (no build attempted)."""
    found = Lvm202(prefix())
    return found if found.is_built() else None


def build(where: Path | None = None) -> Lvm202:
    """Build LVM 2.02 under ``where`` (default :func:`prefix`) unless it is there; returns it.

    Serialised by a lock file beside the prefix, so parallel test runs build once.
    Raises ``RuntimeError`` with the build's output when it fails.
    """
    target = Lvm202(where or prefix())
    target.prefix.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.prefix.parent / f".{target.prefix.name}.build-lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run([str(BUILD_SCRIPT), str(target.prefix)], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 or not target.is_built():
        raise RuntimeError(f"{BUILD_SCRIPT} {target.prefix} failed (rc={r.returncode}):\n{r.stdout}\n{r.stderr}")
    return target


def ensure() -> Lvm202:
    """The LVM 2.02 prefix, built if needed and possible; else skip (fail in CI) saying why."""
    found = locate()
    if found is not None:
        return found
    require(tarball() is not None, HOW_TO_GET)
    require_root(f"building LVM 2.02 into {prefix()}")
    return build()


# -- loop devices ------------------------------------------------------------------------


def rdev(device: str) -> int:
    """The device number LVM and lvmetad key a device by."""
    return os.stat(device).st_rdev


#: how long :meth:`LoopDevices.settle` waits for a device to become claimable
SETTLE_TIMEOUT = 10.0
#: how often it tries again meanwhile
SETTLE_INTERVAL = 0.02


class DeviceBusy(RuntimeError):
    """A device stayed claimed (``O_EXCL`` open fails with EBUSY) past the settle deadline."""


def claimable(device: str) -> bool:
    """Whether ``device`` can be opened ``O_EXCL`` right now (nobody holds an exclusive claim).

    Block devices refuse an ``O_EXCL`` open with EBUSY while anyone else has one open
    ``O_EXCL``, mounts it, or stacks on it (device-mapper, md, swap).  Plain opens do
    not count.  The probe's own claim is gone when ``close`` returns (it does no I/O).
    """
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EBUSY:
            return False
        raise
    os.close(fd)
    return True


def holders(device: str) -> list[str]:
    """Who may hold ``device``: its sysfs holders, mounts and swaps of it, processes with it open.

    One line each.  An empty list after a failed ``O_EXCL`` open means the claim is held
    inside the kernel (a just-closed file not yet released), not by anyone to name.
    Reading ``/proc/PID/fd`` takes a passing reference on each file: this is for
    diagnostics, never for the normal path.
    """
    found: list[str] = []
    st = os.stat(device)
    number = st.st_rdev
    name = Path(os.path.realpath(device)).name
    sys_dir = Path("/sys/class/block") / name
    try:
        stacked = sorted(os.listdir(sys_dir / "holders"))
    except OSError:
        stacked = []
    found += [f"{device}: held by {h} (/sys/class/block/{name}/holders)" for h in stacked]
    majmin = f"{os.major(number)}:{os.minor(number)}"
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    except OSError:
        mountinfo = ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[2] == majmin:
            found.append(f"{device}: mounted on {fields[4]}")
    try:
        swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        swaps = []
    for line in swaps:
        path = line.split()[0] if line.split() else ""
        if path and _same_device(path, number):
            found.append(f"{device}: in use as swap ({path})")
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = os.listdir(pid_dir / "fd")
        except OSError:
            continue  # gone, or not ours to see
        hits = [fd for fd in fds if _same_device(str(pid_dir / "fd" / fd), number)]
        if hits:
            found.append(f"{device}: open by pid {pid_dir.name} ({_describe_pid(pid_dir)}) as fd {', '.join(hits)}")
    return found


def settle(devices: Sequence[str], timeout: float | None = None) -> None:
    """Wait until each of ``devices`` can be opened ``O_EXCL``, as ``pvcreate`` will open it.

    A condition polled every :data:`SETTLE_INTERVAL` s, not a delay: it returns as soon
    as nobody holds a device, which is at once unless something is wrong.  Past
    ``timeout`` (default :data:`SETTLE_TIMEOUT`) it raises :class:`DeviceBusy` naming
    the holders (:func:`holders`), so a process or mount left behind by an earlier test
    fails here, with its pid, and not as an LVM "Can't open exclusively" in a later
    command.  (A claim that appears *during* an LVM command is another matter: see
    :func:`write_lvm_conf` on ``use_aio``.)
    """
    timeout = SETTLE_TIMEOUT if timeout is None else timeout
    pending = list(devices)
    deadline = time.monotonic() + timeout
    while True:
        pending = [dev for dev in pending if not claimable(dev)]
        if not pending:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(SETTLE_INTERVAL)
    lines = []
    for dev in pending:
        lines += holders(dev) or [f"{dev}: no process, mount or holder found (a claim held in the kernel)"]
    raise DeviceBusy(f"loop device(s) still claimed after {timeout:g} s: {' '.join(pending)}\n" + "\n".join(lines))


def _same_device(path: str, number: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISBLK(st.st_mode) and st.st_rdev == number


def _describe_pid(pid_dir: Path) -> str:
    try:
        argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in argv if a)
    except OSError:
        text = ""
    if not text:
        try:
            text = "[" + (pid_dir / "comm").read_text().strip() + "]"
        except OSError:
            text = "?"
    return text[:200]


class LoopDevices:
    """``count`` loop devices over sparse files in ``root``; a context manager.

    ``with LoopDevices(tmp, 4) as loops: loops.devices -> ['/dev/loop3', ...]``.
    Entering needs root and ``losetup`` (else skip, or fail in CI).  Leaving detaches
    every device and deletes the images, also after a failure.
    """

    def __init__(self, root: Path, count: int, size: int = 32 * MiB, name: str = "disk") -> None:
        self.root = root
        self.count = count
        self.size = size
        self.name = name
        self.devices: list[str] = []
        self.image_of: dict[str, Path] = {}
        self._saved: dict[str, Path] = {}

    def __enter__(self) -> LoopDevices:
        require_root("loop devices")
        require(_which("losetup"), "needs losetup (apt-get install util-linux)")
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(self.count):
                image = self.root / f"{self.name}{i}.img"
                with open(image, "wb") as f:
                    f.truncate(self.size)
                r = subprocess.run(
                    ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, timeout=60
                )
                if r.returncode != 0 or not r.stdout.strip():
                    unavailable(f"cannot attach a loop device (losetup: {r.stderr.strip()}); needs /dev/loop-control")
                dev = r.stdout.strip()
                self.devices.append(dev)
                self.image_of[dev] = image
            self.settle()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        errors = []
        for dev in reversed(self.devices):
            r = subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                errors.append(f"{dev}: {r.stderr.strip()}")
        self.devices.clear()
        for path in [*self.image_of.values(), *self._saved.values()]:
            path.unlink(missing_ok=True)
        self.image_of.clear()
        self._saved.clear()
        if errors:
            raise RuntimeError("could not detach loop devices: " + "; ".join(errors))

    def _write(self, device: str, offset: int, data: bytes) -> None:
        # Through the block device, so LVM's direct reads see it at once.
        fd = os.open(device, os.O_WRONLY)
        try:
            os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def wipe(self, *devices: str) -> None:
        """Zero the label/metadata area (first MiB) and the last MiB of each device, then settle."""
        for dev in devices or tuple(self.devices):
            self._write(dev, 0, bytes(2 * MiB))
            self._write(dev, self.size - MiB, bytes(MiB))
        self.settle(*devices)

    def settle(self, *devices: str, timeout: float | None = None) -> None:
        """:func:`settle` of ``devices`` (default: all of them)."""
        settle(devices or self.devices, timeout)

    def holders(self) -> list[str]:
        """:func:`holders` of every device (for a failure message)."""
        return [line for dev in self.devices for line in holders(dev)]

    def clone(self, source: str, target: str, length: int = 2 * MiB) -> None:
        """Copy the label and metadata area of ``source`` onto ``target`` (a ``dd`` clone)."""
        fd = os.open(source, os.O_RDONLY)
        try:
            data = os.pread(fd, length, 0)
        finally:
            os.close(fd)
        self._write(target, 0, data)

    def hide(self, device: str) -> None:
        """Make ``device`` look gone (capacity 0) while keeping its name; its data is kept aside."""
        image = self.image_of[device]
        saved = image.with_suffix(".saved")
        subprocess.run(["cp", "--sparse=always", str(image), str(saved)], check=True, timeout=60)
        self._saved[device] = saved
        # The loop device keeps its backing inode: shrink that file in place and let
        # the kernel re-read its size, so the device name stays ours.
        os.truncate(image, 0)
        self._set_capacity(device)

    def restore(self, device: str) -> None:
        """Undo :meth:`hide`: the device comes back with its old content."""
        saved = self._saved.pop(device)
        # cp writes into the existing file (O_TRUNC), i.e. the loop device's inode.
        subprocess.run(["cp", "--sparse=always", str(saved), str(self.image_of[device])], check=True, timeout=60)
        saved.unlink()
        self._set_capacity(device)

    def _set_capacity(self, device: str) -> None:
        subprocess.run(["losetup", "--set-capacity", device], check=True, capture_output=True, timeout=60)


@contextmanager
def loop_devices(root: Path, count: int, size: int = 32 * MiB) -> Iterator[LoopDevices]:
    """Function form of :class:`LoopDevices`."""
    with LoopDevices(root, count, size) as loops:
        yield loops


def _which(name: str) -> str | None:
    for d in [*os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"), "/usr/sbin", "/sbin"]:
        p = Path(d) / name
        if os.access(p, os.X_OK):
            return str(p)
    return None


# -- lvm.conf ----------------------------------------------------------------------------


def filter_list(devices: Sequence[str]) -> list[str]:
    """An LVM filter accepting exactly ``devices``."""
    return [f"a|^{dev}$|" for dev in devices] + ["r|.*|"]


def write_lvm_conf(
    conf_dir: Path,
    devices: Sequence[str],
    *,
    locking_dir: Path | None = None,
    use_lvmetad: bool = True,
    extra: str = "",
) -> Path:
    """Write ``conf_dir/lvm.conf`` for LVM 2.02 confined to ``devices``; returns its path.

    ``extra`` is appended verbatim (e.g. ``"global { use_lvmlockd = 1 }"``: LVM merges
    repeated sections).  The locking dir defaults to ``conf_dir/lock``.

    ``use_aio = 0``: LVM reads and writes with plain ``preadv``/``pwritev``, not libaio.
    ``pvcreate`` (and ``pvremove``, ``vgcreate``/``vgextend`` of new PVs) opens a device
    ``O_EXCL``, reads it, closes it and opens it ``O_EXCL`` again about a millisecond
    later.  With libaio the kernel posts a read's completion (waking LVM) before the
    completing context drops the request's reference to the file; if LVM's ``close``
    came first, that reference is the last one, and a kernel thread's last reference
    is released by deferred work, a jiffy or more later: the exclusive claim outlives
    the ``close``.  A reopen in that window fails with EBUSY: "Can't open DEV
    exclusively.  Mounted filesystem?" twice, then "Error opening device DEV for
    writing at 4096" — a rare flake of any test that creates PVs.  Synchronous I/O
    holds the file only inside the system call, so ``close`` releases the claim before
    it returns.  The daemons see the same requests either way.
    """
    conf_dir.mkdir(parents=True, exist_ok=True)
    lock = locking_dir or conf_dir / "lock"
    lock.mkdir(parents=True, exist_ok=True)
    flist = ", ".join(f'"{f}"' for f in filter_list(devices))
    path = conf_dir / "lvm.conf"
    path.write_text(
        "devices {\n"
        '  scan = [ "/dev" ]\n'
        f"  filter = [ {flist} ]\n"
        f"  global_filter = [ {flist} ]\n"
        "  obtain_device_list_from_udev = 0\n"
        "  write_cache_state = 0\n"
        "}\n"
        "activation {\n  udev_sync = 0\n  udev_rules = 0\n  monitoring = 0\n}\n"
        "global {\n"
        f"  use_lvmetad = {int(use_lvmetad)}\n"
        "  use_aio = 0\n"
        "  activation = 0\n"
        f'  locking_dir = "{lock}"\n'
        "}\n"
        "backup {\n  backup = 0\n  archive = 0\n}\n" + extra
    )
    return path


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One command: its argv (as run), exit status and output."""

    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    def check(self) -> Result:
        """Raise ``AssertionError`` with the whole output unless rc is 0; returns self."""
        if self.rc != 0:
            raise AssertionError(f"{shlex.join(self.argv)}: rc={self.rc}\n{self.stdout}\n{self.stderr}")
        return self


@dataclass
class Lvm:
    """LVM 2.02 commands confined to one ``lvm.conf`` dir and one lvmetad socket."""

    lvm202: Lvm202
    conf_dir: Path
    socket_path: Path
    pidfile: Path
    timeout: float = 120.0
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = self.lvm202.env()
        env.update(
            LVM_SYSTEM_DIR=str(self.conf_dir),
            LVM_LVMETAD_SOCKET=str(self.socket_path),
            LVM_LVMETAD_PIDFILE=str(self.pidfile),
            LVM_SUPPRESS_FD_WARNINGS="1",
            LC_ALL="C",
        )
        env.update(self.extra_env)
        return env

    def run(self, argv: Sequence[str], *, stdin: str | None = None) -> Result:
        r = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, env=self.env(), timeout=self.timeout
        )
        return Result(tuple(argv), r.returncode, r.stdout, r.stderr)

    def __call__(self, *args: str) -> Result:
        """``lvm ARGS...``: ``lvm("vgs", "-o", "vg_name")``."""
        return self.run([str(self.lvm202.lvm), *args])

    def ctl(self, *args: str) -> Result:
        """LVM's own ``lvmetactl ARGS...`` against this socket.

        lvmetactl only knows its compiled-in socket (``PREFIX/run/lvmetad.socket``) and
        ignores ``LVM_LVMETAD_SOCKET``; it runs in a private mount namespace where the
        socket's directory is bind-mounted over ``PREFIX/run``, so other users of the
        prefix are not disturbed.  The socket must be named ``lvmetad.socket``.
        """
        assert self.socket_path.name == "lvmetad.socket", self.socket_path
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return self.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "lvmetactl",
                str(self.socket_path.parent),
                str(self.lvm202.prefix / "run"),
                str(self.lvm202.lvmetactl),
                *args,
            ]
        )


# -- daemons -----------------------------------------------------------------------------


def pylvmetad_argv(socket_path: Path, pidfile: Path, *extra: str) -> list[str]:
    """pylvmetad in the foreground, from the interpreter running the tests."""
    return [sys.executable, "-m", PYLVMETAD_MODULE, "-f", "-s", str(socket_path), "-p", str(pidfile), *extra]


def c_lvmetad_argv(lvm202: Lvm202, socket_path: Path, pidfile: Path, *extra: str) -> list[str]:
    """The C lvmetad of the prefix in the foreground."""
    return [str(lvm202.lvmetad), "-f", "-s", str(socket_path), "-p", str(pidfile), *extra]


class Daemon:
    """An lvmetad-compatible daemon process on ``socket_path``; a context manager.

    ``kind`` is ``"pylvmetad"`` or ``"lvmetad"`` (the C original); :func:`pylvmetad` and
    :func:`c_lvmetad` build one.  The log (stdout+stderr) goes to ``log_path``.
    """

    def __init__(
        self,
        kind: str,
        argv: Sequence[str],
        socket_path: Path,
        pidfile: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.argv = list(argv)
        self.socket_path = socket_path
        self.pidfile = pidfile
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Daemon:
        assert not self.running, "already running"
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            wait_for_socket(self.socket_path, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The C daemon removes its socket on a clean exit too; a killed one may not.
        if self.socket_path.exists() and not _listening(self.socket_path):
            self.socket_path.unlink(missing_ok=True)
        return self.proc.returncode

    def restart(self) -> Daemon:
        """Stop and start again: an empty cache and an empty token, as after a reboot."""
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(path))
            return True
    except OSError:
        return False


def pylvmetad(run_dir: Path, *extra: str, env: Mapping[str, str] | None = None) -> Daemon:
    """A (not yet started) pylvmetad with socket, pid file and log in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    sock, pid = run_dir / "lvmetad.socket", run_dir / "lvmetad.pid"
    return Daemon("pylvmetad", pylvmetad_argv(sock, pid, *extra), sock, pid, run_dir / "pylvmetad.log", env)


def c_lvmetad(lvm202: Lvm202, run_dir: Path, *extra: str) -> Daemon:
    """A (not yet started) C lvmetad with socket, pid file and log in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    sock, pid = run_dir / "lvmetad.socket", run_dir / "lvmetad.pid"
    return Daemon(
        "lvmetad", c_lvmetad_argv(lvm202, sock, pid, *extra), sock, pid, run_dir / "lvmetad.log", lvm202.env()
    )


DAEMON_KINDS = ("lvmetad", "pylvmetad")


def daemon(kind: str, lvm202: Lvm202, run_dir: Path, *extra: str) -> Daemon:
    """:func:`c_lvmetad` for ``"lvmetad"``, :func:`pylvmetad` for ``"pylvmetad"``."""
    if kind == "lvmetad":
        return c_lvmetad(lvm202, run_dir, *extra)
    if kind == "pylvmetad":
        return pylvmetad(run_dir, *extra)
    raise ValueError(f"unknown daemon kind {kind!r}")


# -- masking -----------------------------------------------------------------------------

#: LVM's UUID format: 32 characters from [A-Za-z0-9] grouped 6-4-4-4-4-4-6
UUID_RE = re.compile(r"\b[A-Za-z0-9]{6}-(?:[A-Za-z0-9]{4}-){5}[A-Za-z0-9]{6}\b")
#: the same UUID as LVM's report field ``--nameprefixes``-free raw form (no dashes)
#: is never printed by the commands the tests run, so only the dashed form is masked.
_PID_RES = [
    re.compile(r"(\b(?:daemon_pid|update_pid|pid)\s*=\s*)\d+"),
    re.compile(r"(\b(?:PID|pid) )\d+"),
    re.compile(r"(\bParent PID )\d+"),
    re.compile(r"(\b[a-z]+\[)\d+(?=\])"),  # LVM's "pvscan[1234] ..." message prefix
]
_TIME_RES = [
    re.compile(r"(\b(?:update_begin|creation_time)\s*=\s*)\d+"),
    re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?: [+-]\d{4})?\b"),
]


@dataclass
class Masker:
    """Masks what two runs of one scenario cannot share; keep one per run.

    The n-th distinct UUID becomes ``<uuid:n>`` (so "the same PV as before" still
    compares); pids become ``<pid>``, times ``<time>``; ``replace`` adds literal
    substitutions (e.g. a temp dir → ``<tmp>``), applied first.
    """

    replace: dict[str, str] = field(default_factory=dict)
    uuids: dict[str, str] = field(default_factory=dict)

    def uuid(self, value: str) -> str:
        if value not in self.uuids:
            self.uuids[value] = f"<uuid:{len(self.uuids) + 1}>"
        return self.uuids[value]

    def __call__(self, text: str) -> str:
        for old, new in self.replace.items():
            text = text.replace(old, new)
        text = UUID_RE.sub(lambda m: self.uuid(m.group(0)), text)
        for pattern in _PID_RES:
            text = pattern.sub(lambda m: m.group(1) + "<pid>", text)
        for pattern in _TIME_RES:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "<time>", text)
        return text


def sorted_lines(text: str) -> str:
    """For output whose line order LVM does not fix: the same lines, sorted."""
    return "\n".join(sorted(text.splitlines()))


def difflib_lines(expected: list[str], actual: list[str]) -> list[str]:
    """A unified diff of two line lists, expected (C lvmetad) first."""
    import difflib

    return list(difflib.unified_diff(expected, actual, "C lvmetad", "pylvmetad", lineterm="", n=4))
