"""scanner.lvmconf: which lvm.conf setting gives the token, read as LVM 2.02 reads it.

The token values asserted here were produced by the real LVM 2.02.188 ``pvscan --cache``
against the C lvmetad with the same configuration (tests/live/test_lvmconf_token.py
checks the derivation against the real commands on every run).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pylvmetad.scanner.lvmconf import (
    DEFAULT_GLOBAL_FILTER,
    LvmConfigError,
    config_dir,
    config_for,
    lvmetad_token,
    read_lvm_config,
)
from pylvmetad.scanner.scan import main


def conf(tmp_path: Path, lvm: str, local: str | None = None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "lvm.conf").write_text(lvm)
    if local is not None:
        (tmp_path / "lvmlocal.conf").write_text(local)
    return tmp_path


@pytest.mark.parametrize(
    ("global_filter", "token"),
    [
        (DEFAULT_GLOBAL_FILTER, "filter:3239235440"),
        (("a|^/dev/loop9$|", "r|.*|"), "filter:3900139757"),
        (("r|.*|",), "filter:2800760414"),
        (("r|b|",), "filter:2460339473"),
    ],
)
def test_token_is_the_one_lvm_2_02_sent(global_filter: tuple[str, ...], token: str) -> None:
    assert lvmetad_token(global_filter) == token


def test_entry_boundaries_are_not_marked_but_order_counts() -> None:
    # the CRC runs over the bytes of the entries in turn: splitting one string differently
    # gives the same register, reordering does not
    assert lvmetad_token(["r|a|r|b|"]) == lvmetad_token(["r|a|", "r|b|"])
    assert lvmetad_token(["r|a|", "r|b|"]) != lvmetad_token(["r|b|", "r|a|"])


def test_only_global_filter_enters_the_token(tmp_path: Path) -> None:
    c = read_lvm_config(conf(tmp_path, 'devices {\n filter = [ "a|^/dev/loop9$|", "r|.*|" ]\n}\n'))
    assert c.global_filter == DEFAULT_GLOBAL_FILTER
    assert c.token == "filter:3239235440"


def test_global_filter_array_and_single_string(tmp_path: Path) -> None:
    text = '# comment\ndevices {\n  # global_filter = [ "r|x|" ]\n  global_filter = [ "a|^/dev/loop9$|", "r|.*|" ]\n}\n'
    assert read_lvm_config(conf(tmp_path, text)).token == "filter:3900139757"
    assert read_lvm_config(conf(tmp_path, 'devices { global_filter = "r|.*|" }\n')).token == "filter:2800760414"


def test_last_value_wins_within_a_file_and_lvmlocal_wins_over_lvm_conf(tmp_path: Path) -> None:
    two_sections = 'devices { global_filter = [ "r|a|" ] }\ndevices { global_filter = [ "r|b|" ] }\n'
    assert read_lvm_config(conf(tmp_path / "a", two_sections)).global_filter == ("r|b|",)
    two_keys = 'devices {\n global_filter = [ "r|a|" ]\n global_filter = [ "r|b|" ]\n}\n'
    assert read_lvm_config(conf(tmp_path / "b", two_keys)).global_filter == ("r|b|",)
    layered = conf(
        tmp_path / "c", 'devices { global_filter = [ "r|a|" ] }\n', 'devices { global_filter = [ "r|b|" ] }\n'
    )
    c = read_lvm_config(layered)
    assert c.global_filter == ("r|b|",)
    assert [p.name for p in c.sources] == ["lvm.conf", "lvmlocal.conf"]


def test_lvmlocal_without_the_setting_keeps_lvm_conf(tmp_path: Path) -> None:
    d = conf(tmp_path, 'devices { global_filter = [ "r|a|" ] }\n', "local { system_id = x }\n")
    assert read_lvm_config(d).global_filter == ("r|a|",)


def test_system_dir_from_the_environment(tmp_path: Path) -> None:
    assert config_dir({}) == Path("/etc/lvm")
    assert config_dir({"LVM_SYSTEM_DIR": str(tmp_path)}) == tmp_path
    assert config_dir({"LVM_SYSTEM_DIR": ""}) is None
    conf(tmp_path, 'devices { global_filter = [ "r|b|" ] }\n')
    assert read_lvm_config(environ={"LVM_SYSTEM_DIR": str(tmp_path)}).global_filter == ("r|b|",)
    # set but empty: LVM reads no file at all
    assert read_lvm_config(environ={"LVM_SYSTEM_DIR": ""}).global_filter == DEFAULT_GLOBAL_FILTER
    # a directory without lvm.conf: defaults
    assert read_lvm_config(tmp_path / "nothing").global_filter == DEFAULT_GLOBAL_FILTER


@pytest.mark.parametrize(
    "text",
    [
        "devices { global_filter = [ ] }\n",
        'devices { global_filter = [ "r|a|", 5 ] }\n',
        "devices { global_filter { x = 1 } }\n",
        "devices { global_filter = [ \n",
    ],
)
def test_unusable_configuration_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(LvmConfigError):
        read_lvm_config(conf(tmp_path, text))


def test_filter_option_replaces_the_configuration(tmp_path: Path) -> None:
    d = conf(tmp_path, 'devices { global_filter = [ "r|b|" ] }\n')
    assert config_for(["r|a|"], d).global_filter == ("r|a|",)
    assert config_for(None, d).global_filter == ("r|b|",)


def test_scan_command_reads_lvm_conf_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(1 << 20))
    conf(tmp_path, 'devices { global_filter = [ "r|disk|" ] }\n')
    monkeypatch.setenv("LVM_SYSTEM_DIR", str(tmp_path))
    # the file is rejected by lvm.conf's global_filter: nothing is read, nothing printed
    assert main(["--full", "-v", str(image)]) == 0
    assert "disk.img" not in capsys.readouterr().out
    (tmp_path / "lvm.conf").write_text("devices { global_filter = [ ] }\n")
    assert main(["--full", str(image)]) == 2
    assert "global_filter is empty" in capsys.readouterr().err
