"""Which codec runs: the C accelerator only if it is the build of the source beside it.

An in-place build older than its source (a checkout pulled but not rebuilt)
used to make ``import pylvmetad.wire.codec`` raise AttributeError, so the
daemon died before it logged anything.  Now such a build is refused, the
pure-Python codec runs, and the daemon says so in a warning.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from types import ModuleType

from pylvmetad.wire import codec
from support.daemon import RawConnection, start_daemon
from support.skips import unavailable


def fake_module(where: Path, names: frozenset[str], digest: str = "") -> ModuleType:
    module = ModuleType("_ccodec")
    module.__file__ = str(where / "_ccodec.so")
    for name in names:
        setattr(module, name, object())
    if digest:
        module.SOURCE_DIGEST = digest  # type: ignore[attr-defined]
    return module


def test_a_build_lacking_a_name_is_refused_and_the_reason_names_it(tmp_path: Path) -> None:
    module = fake_module(tmp_path, codec.ACCEL_NAMES - {"first_fields", "parse_text"})
    assert codec.accelerator_mismatch(module) == "it lacks first_fields, parse_text"


def test_a_build_of_another_source_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "_ccodec.c"
    source.write_bytes(b"/* the source now */\n")
    old = hashlib.sha256(b"/* the source then */\n").hexdigest()
    now = hashlib.sha256(source.read_bytes()).hexdigest()
    assert codec.accelerator_mismatch(fake_module(tmp_path, codec.ACCEL_NAMES, old)) is not None
    assert codec.accelerator_mismatch(fake_module(tmp_path, codec.ACCEL_NAMES, now)) is None


def test_without_a_source_beside_it_or_a_recorded_digest_the_names_decide(tmp_path: Path) -> None:
    # an installed wheel has no _ccodec.c; a build without setup.py records no digest
    assert codec.accelerator_mismatch(fake_module(tmp_path, codec.ACCEL_NAMES, "0" * 64)) is None
    (tmp_path / "_ccodec.c").write_bytes(b"x")
    assert codec.accelerator_mismatch(fake_module(tmp_path, codec.ACCEL_NAMES)) is None


def test_the_environment_forces_pure_python() -> None:
    module, status = codec.load_accelerator({codec.PURE_PYTHON_ENV: "1"})
    assert module is None
    assert codec.PURE_PYTHON_ENV in status


def test_the_running_build_matches_and_names_every_function_the_package_binds() -> None:
    if codec._accel is None:
        unavailable("the C accelerator is not built in place (pip install -e . builds it)")
    assert codec.accelerator_mismatch(codec._accel) is None
    assert codec.ACCEL_STATUS.startswith("C accelerator")
    assert not codec.ACCEL_MISSING
    # the digest really is the source's: setup.py recorded it at build time
    source = Path(codec.__file__).with_name("_ccodec.c")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == codec._accel.SOURCE_DIGEST


def test_a_daemon_on_a_stale_build_serves_on_pure_python_and_warns(tmp_path: Path) -> None:
    if codec._accel is None:
        unavailable("the C accelerator is not built in place (pip install -e . builds it)")
    # a copy of the package whose C source moved on after the build (as after a git pull)
    package = Path(codec.__file__).parent.parent
    copy = tmp_path / "site" / "pylvmetad"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "wire" / "_ccodec.c", "a") as source:
        source.write("/* changed after the build */\n")
    run = tmp_path / "run"
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    env.pop(codec.PURE_PYTHON_ENV, None)
    daemon = start_daemon(run, env=env)
    try:
        with RawConnection(daemon.socket_path) as conn:
            reply = conn.request('request = "hello"\n')
        assert 'response = "OK"' in reply
    finally:
        assert daemon.stop() == 0
    log = daemon.log()
    assert "codec: pure-Python codec" in log and "stale" in log, log
    warning = next(line for line in log.splitlines() if "codec:" in line)
    assert warning.startswith("W: "), warning  # the log's level prefix (I:, W:, E:)
