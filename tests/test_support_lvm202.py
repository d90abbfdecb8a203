"""The pure parts of support.lvm202 and support.skips (no root, no LVM needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import lvm202, skips


def test_masker_numbers_uuids_by_first_appearance_and_masks_pids_and_times() -> None:
    mask = lvm202.Masker(replace={"/tmp/x": "<tmp>"})
    a, b = "eym3eX-Ngd7-WV42-RPtk-uxQ2-KmoE-CKgfPg", "6F1WGC-6Bg1-tl6e-hBfX-AXcd-ihu7-zYXZOy"
    text = f"pv {a} vg {b} again {a}\ndaemon_pid = 4711\nupdate_begin = 99\n2026-12-02 10:11:12 +0000 /tmp/x/dev"
    assert mask(text) == (
        "pv <uuid:1> vg <uuid:2> again <uuid:1>\ndaemon_pid = <pid>\nupdate_begin = <time>\n<time> <tmp>/dev"
    )
    assert mask(b) == "<uuid:2>"  # the numbering persists across calls of one masker


def test_lvm_conf_accepts_only_the_given_devices(tmp_path: Path) -> None:
    path = lvm202.write_lvm_conf(tmp_path / "etc", ["/dev/loop7"], locking_dir=tmp_path / "lock")
    text = path.read_text()
    assert 'filter = [ "a|^/dev/loop7$|", "r|.*|" ]' in text
    assert "use_lvmetad = 1" in text and "activation = 0" in text
    assert "use_aio = 0" in text  # pvcreate's O_EXCL reopen must not race an AIO completion
    assert f'locking_dir = "{tmp_path / "lock"}"' in text
    assert (tmp_path / "lock").is_dir()


def test_prefix_and_tarball_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lvm202.PREFIX_ENV, str(tmp_path / "p"))
    assert lvm202.prefix() == tmp_path / "p"
    assert lvm202.locate() is None
    monkeypatch.setenv(lvm202.TARBALL_ENV, str(tmp_path / "none.tgz"))
    assert lvm202.tarball() is None
    (tmp_path / "LVM2.2.02.188.tgz").write_bytes(b"")
    monkeypatch.setenv(lvm202.TARBALL_ENV, str(tmp_path / "LVM2.2.02.188.tgz"))
    assert lvm202.tarball() == tmp_path / "LVM2.2.02.188.tgz"


def test_require_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    skips.require(True, "never shown")
    monkeypatch.delenv(skips.CI_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs a thing"):
        skips.require(False, "needs a thing")
    monkeypatch.setenv(skips.CI_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="needs a thing"):
        skips.require(False, "needs a thing")
