"""The codec's C accelerator for tests: the installed one, or one compiled here.

``pip install -e .`` builds ``pylvmetad.wire._ccodec`` in place; a checkout
that was never installed that way (another worktree, a fresh clone run with
PYTHONPATH=src) has only the source.  :func:`accelerator` then compiles
``_ccodec.c`` with the system's C compiler into a temporary directory and
loads it, so the C path is tested wherever a compiler is, installed or not.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

from pylvmetad.wire import codec
from support.skips import unavailable

SOURCE = Path(codec.__file__).with_name("_ccodec.c")
_built: list[ModuleType] = []


def compile_accelerator(out_dir: Path) -> ModuleType:
    """Compile ``_ccodec.c`` into ``out_dir`` and import it (raises on failure)."""
    cc = shutil.which(sysconfig.get_config_var("CC").split()[0] if sysconfig.get_config_var("CC") else "cc") or "cc"
    target = out_dir / ("_ccodec" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = [cc, "-shared", "-fPIC", "-O2", f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(target)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location("_ccodec", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.configure(codec.Section, codec.Section.__dict__["_items"], codec.Section.__dict__["raw"])
    return module


def accelerator() -> ModuleType | None:
    """The C fast path: installed, or compiled once per test run; None without a compiler."""
    if codec._accel is not None:
        return codec._accel
    if not _built:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                _built.append(compile_accelerator(Path(tmp)))
            except (OSError, subprocess.CalledProcessError):
                return None
            # the loaded module stays mapped after its file is removed
    return _built[0]


def required_accelerator() -> ModuleType:
    """:func:`accelerator`, or the test skips (fails under CI) without a compiler."""
    c = accelerator()
    if c is None:
        unavailable("no C compiler to build the accelerator (_ccodec.c)")
    assert c is not None
    return c
