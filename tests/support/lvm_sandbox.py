"""A confined LVM for tests: the real lvm2 tools on loop devices, isolated by lvm.conf.

Used by ``test_ondisk.py`` and ``test_scan_e2e.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from support.skips import require_root, unavailable

MiB = 1 << 20


# -- a confined LVM ---------------------------------------------------------------------


class LvmSandbox:
    """Loop devices over image files under ``root``, and LVM commands that see only them.

    The lvm.conf (``root/etc``, passed as ``LVM_SYSTEM_DIR``) accepts exactly
    the sandbox's loop devices, disables activation (no device-mapper here),
    backups, archives, hints and async I/O, and keeps LVM's lock files under ``root``, so
    tests of several agents can run side by side.  :meth:`detach_all` must run
    in a finalizer.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.etc = root / "etc"
        self.lock_dir = root / "lock"
        self.etc.mkdir(parents=True, exist_ok=True)
        self.lock_dir.mkdir(exist_ok=True)
        self.loops: list[str] = []
        self.image_of: dict[str, Path] = {}
        self._write_conf()

    @property
    def filters(self) -> list[str]:
        """The LVM filter list accepting exactly our loop devices."""
        return [f"a|^{dev}$|" for dev in self.loops] + ["r|.*|"]

    def _write_conf(self) -> None:
        flist = ", ".join(f'"{f}"' for f in self.filters)
        (self.etc / "lvm.conf").write_text(
            "devices {\n"
            '  scan = [ "/dev" ]\n'
            f"  filter = [ {flist} ]\n"
            f"  global_filter = [ {flist} ]\n"
            "  obtain_device_list_from_udev = 0\n"
            "  use_devicesfile = 0\n"
            '  hints = "none"\n'
            "}\n"
            "activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n"
            # use_aio = 0: see support.lvm202.write_lvm_conf (EBUSY on pvcreate's O_EXCL reopen)
            f'global {{ activation = 0 event_activation = 0 use_aio = 0 locking_dir = "{self.lock_dir}" }}\n'
            "backup { backup = 0 archive = 0 }\n"
        )

    def image(self, name: str, size: int = 64 * MiB) -> Path:
        path = self.root / f"{name}.img"
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def attach(self, image: Path) -> str:
        """``losetup --find --show``; a failure fails the test (these tests need loop devices)."""
        require_root("loop devices")
        try:
            r = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, timeout=60)
        except FileNotFoundError as e:
            unavailable(f"cannot create loop devices: losetup is not installed ({e}; apt-get install util-linux)")
        if r.returncode != 0 or not r.stdout.strip():
            unavailable(
                f"cannot create a loop device for {image} (losetup --find --show: rc={r.returncode}, "
                f"{r.stderr.strip()}); these tests need root and working /dev/loop-control"
            )
        dev = r.stdout.strip()
        self.loops.append(dev)
        self.image_of[dev] = image
        self._write_conf()
        return dev

    def new_device(self, name: str, size: int = 64 * MiB) -> str:
        return self.attach(self.image(name, size))

    def detach(self, dev: str) -> None:
        subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, timeout=60, check=True)
        self.loops.remove(dev)
        self._write_conf()

    def detach_all(self) -> None:
        errors = []
        for dev in list(reversed(self.loops)):
            r = subprocess.run(["losetup", "-d", dev], capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                errors.append(f"{dev}: {r.stderr.strip()}")
            self.loops.remove(dev)
        if errors:
            raise AssertionError("could not detach loop devices: " + "; ".join(errors))

    def lvm(self, *args: str) -> str:
        env = dict(os.environ, LVM_SYSTEM_DIR=str(self.etc), LVM_SUPPRESS_FD_WARNINGS="1")
        env.pop("LVM_LVMETAD_SOCKET", None)
        try:
            r = subprocess.run(["lvm", *args], capture_output=True, text=True, env=env, timeout=120)
        except FileNotFoundError as e:
            unavailable(f"these tests need the lvm2 tools (lvm; apt-get install lvm2): {e}")
        if r.returncode != 0:
            raise AssertionError(f"lvm {' '.join(args)} failed (rc={r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r.stdout

    def report(self, command: str, fields: str, *args: str) -> list[dict[str, str]]:
        """``pvs``/``vgs``/``lvs`` as JSON rows (sizes in bytes, no suffix)."""
        out = self.lvm(command, "--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields, *args)
        data = json.loads(out)
        key = {"pvs": "pv", "vgs": "vg", "lvs": "lv"}[command]
        rows: list[dict[str, str]] = data["report"][0][key]
        return rows


def unique_name(prefix: str) -> str:
    """A VG name no other test (or agent) uses at the same time."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"
