"""Three hosts, one shared VG (and a second one, and a local one): real lvmlockd + sanlock.

Each test reads the transcripts of the session's three runs of ``scenario.py`` (fixture
``runs``): the C lvmetad + lvmlockd on every host (the reference), pylvmetad + lvmlockd,
and pylvmetad + pylvmlockd.  ``test_same_results_as_with_c_lvmetad_and_lvmlockd`` is the
differential check of each of the two against the reference; the others check, for each kind, what the scenario is about, so that two equally broken
runs cannot pass: changes of one host seen on the others' first read, the on-disk
truth never contradicted, lvmlockd's invalidations arriving at each host's lvmetad
and the cache fresh after the reread, the lock semantics (refusals, a deterministic
contended lvcreate, the takeover of a crashed host's lease, its rejoin).
"""

from __future__ import annotations

import os
import re

import pytest

from multihost.conftest import IO_TIMEOUT_ENV, KINDS, PYLVMETAD_KINDS
from multihost.scenario import Run, Step
from support.lvm202 import Masker, difflib_lines

IO_TIMEOUT = int(os.environ.get(IO_TIMEOUT_ENV, "2"))
#: the first test also waits for the session's scenario runs (~2.5 min; ~5 min at io_timeout 10)
pytestmark = pytest.mark.timeout(1200)


def rows_in_masked_order(stdout: str) -> str:
    """A report's header, then its rows sorted: LVM orders rows by device name, and the two
    beds' loop devices differ (``/dev/loop12`` sorts before ``/dev/loop8``), so the order of
    the masked rows is not comparable between beds; their set is."""
    lines = [" ".join(line.split()) for line in stdout.splitlines()]
    return "\n".join(lines[:1] + sorted(lines[1:]))


def masked(run: Run) -> list[tuple[str, int, int, str]]:
    mask = Masker(replace=run.mask())
    out = []
    for s in run.steps:
        r = s.timed.result
        text = rows_in_masked_order(mask(r.stdout)) + "\n--stderr--\n" + mask(r.stderr)
        text = "\n".join(" ".join(line.split()) for line in text.splitlines())
        out.append((s.label, s.host, r.rc, text))
    return out


#: per kind: step label -> why its result differs from the reference run (none known)
KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {"pylvmetad": {}, "pylvmlockd": {}}


@pytest.mark.parametrize("kind", PYLVMETAD_KINDS)
def test_same_results_as_with_c_lvmetad_and_lvmlockd(runs: dict[str, Run], kind: str) -> None:
    c, py = masked(runs["lvmetad"]), masked(runs[kind])
    known = KNOWN_DIFFERENCES[kind]
    assert [s[:2] for s in c] == [s[:2] for s in py]
    problems = []
    for (label, host, rc_c, text_c), (_, _, rc_py, text_py) in zip(c, py, strict=True):
        if (rc_c != rc_py or text_c != text_py) and label not in known:
            diff = "\n".join(difflib_lines(text_c.splitlines(), text_py.splitlines()))
            problems.append(f"host{host} step {label!r}: rc {rc_c} (C) vs {rc_py} (py)\n{diff}")
    assert not problems, "\n\n".join(problems)
    assert set(known) <= {s[0] for s in c}
    assert len(c) > 50  # the whole scenario ran


def rows(step: Step) -> list[list[str]]:
    """A report's data rows (the header line dropped), split on blanks."""
    lines = step.timed.out.splitlines()[1:]
    return [line.split() for line in lines if line.strip()]


def lvs_of(step: Step, vg: str) -> dict[str, int]:
    return {r[1]: int(r[2]) for r in rows(step) if r[0] == vg}


MiB = 1 << 20


@pytest.mark.parametrize("kind", KINDS)
def test_sanlock_bootstrap_and_lockspace_join(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    first = run.step("pvcreate before any sanlock VG").timed
    assert first.rc == 5 and "Global lock failed" in first.result.stderr
    made = run.step("vgcreate --shared").timed
    assert made.rc == 0 and "Enabling sanlock global lock" in made.result.stdout + made.result.stderr
    assert run.facts["lvmlock_where_emulated"] == 1.0 and run.facts["lvmlock2_where_emulated"] == 1.0
    for n in (1, 2, 3):
        assert run.step(f"lock-start host{n}").timed.rc == 0


@pytest.mark.parametrize("kind", KINDS)
def test_each_change_is_seen_by_the_other_hosts_on_their_first_read(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    s1, s2 = run.vg["vgs1"], run.vg["vgs2"]
    assert lvs_of(run.step("h2 lvs after lvcreate"), s1) == {"lv1": 8 * MiB}
    assert lvs_of(run.step("h3 lvs after lvcreate"), s1) == {"lv1": 8 * MiB}
    assert lvs_of(run.step("h3 lvs after lvextend"), s1) == {"lv1": 12 * MiB}
    assert lvs_of(run.step("h1 lvs after lvrename"), s1) == {"lvr": 12 * MiB}
    assert lvs_of(run.step("h2 lvs after lvrename"), s1) == {"lvr": 12 * MiB}
    pv2 = run.pvs[1]
    assert [pv2, s1] in rows(run.step("h2 pvs after vgextend"))
    assert rows(run.step("h3 vgs after vgextend"))[0][:3] == [s1, "2", "1"]  # 2 PVs, lvr (lvmlock is hidden)
    assert lvs_of(run.step("h2 lvs second VG"), s2) == {"lvx": 4 * MiB}
    assert lvs_of(run.step("h1 lvs second VG after lvextend"), s2) == {"lvx": 8 * MiB}
    assert lvs_of(run.step("h2 lvs after lvremove"), s1) == {"lv2": 4 * MiB, "lv3": 4 * MiB, "lv4": 4 * MiB}


@pytest.mark.parametrize("kind", KINDS)
def test_no_report_contradicts_the_disk(runs: dict[str, Run], kind: str) -> None:
    """The safety property: every lvs/pvs/vgs of every host shows what the PVs hold at that moment."""
    run = runs[kind]
    checked = 0
    for step in run.steps:
        if step.truth is None:
            continue
        assert step.pv_truth is not None and step.seqnos is not None
        argv = step.timed.result.argv
        if "lvs" in argv:
            for vg, lvs in step.truth.items():
                if vg in argv or not any(a in run.vg.values() for a in argv):
                    assert lvs_of(step, vg) == lvs, (step.label, vg)
                    checked += 1
        elif "pvs" in argv:
            shown = {r[0]: (r[1] if len(r) > 1 else "") for r in rows(step)}
            assert shown == step.pv_truth, step.label
            checked += 1
        elif "vgs" in argv:
            shown_vgs = {r[0] for r in rows(step)}
            on_disk = {vg for vg in step.pv_truth.values() if vg}
            named = [a for a in argv if a in run.vg.values()]
            assert shown_vgs == (set(named) & on_disk if named else on_disk), step.label
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("kind", KINDS)
def test_the_cache_is_fresh_after_each_report(runs: dict[str, Run], kind: str) -> None:
    """After a host's report its lvmetad holds the disk's seqno of each shared VG it reported, not invalid."""
    run = runs[kind]
    shared = {run.vg["vgs1"], run.vg["vgs2"]}
    checked = 0
    for step in run.steps:
        if step.cache is None or step.seqnos is None:
            continue
        argv = step.timed.result.argv
        for vg in shared & set(argv):
            if vg not in step.seqnos:
                continue
            assert step.cache.get(vg) == (step.seqnos[vg], False), (step.label, vg, step.cache, step.seqnos)
            checked += 1
    assert checked >= 10


def invalidations(run: Run, host: int, name: str) -> list[tuple[float, str]]:
    return [(t, text) for t, n, text in run.invalidations[host] if n == name]


@pytest.mark.parametrize("kind", KINDS)
def test_lvmlockd_invalidates_each_hosts_lvmetad(runs: dict[str, Run], kind: str) -> None:
    """The set_vg_info / set_global_info lvmlockd sends reach the host's daemon, within the reading command."""
    run = runs[kind]
    s1 = run.vg["vgs1"]
    made, seen = run.step("h1 lvcreate lv1").timed, run.step("h2 lvs after lvcreate").timed
    during = [text for t, text in invalidations(run, 2, "set_vg_info") if seen.start <= t <= seen.end]
    assert any(f'name = "{s1}"' in text for text in during), during
    assert made.end <= seen.start
    vgx, pvs = run.step("h1 vgextend pv2").timed, run.step("h2 pvs after vgextend").timed
    assert vgx.end <= pvs.start
    assert any(pvs.start <= t <= pvs.end for t, _ in invalidations(run, 2, "set_global_info"))
    for host in (1, 2, 3):
        assert invalidations(run, host, "set_vg_info"), host
        assert all("global_invalid = 1" in text for _, text in invalidations(run, host, "set_global_info"))


def stat_count(stats: str, request: str) -> int:
    m = re.search(request + r"\s*\{[^}]*?\bcount\s*=\s*(\d+)", stats)
    return int(m.group(1)) if m else 0


@pytest.mark.parametrize("kind", PYLVMETAD_KINDS)
def test_pylvmetad_counts_lvmlockds_invalidations(runs: dict[str, Run], kind: str) -> None:
    """pylvmetad's stats count at least every set_vg_info/set_global_info the lock daemon sent (lvm sends some too)."""
    run = runs[kind]
    for host in (1, 2, 3):
        stats = run.stats[host]
        for name in ("set_vg_info", "set_global_info"):
            sent = len(invalidations(run, host, name))
            assert stat_count(stats, name) >= sent > 0, (host, name, stats)


def logged_invalidations(log: str) -> list[tuple[str, str, str]]:
    """The set_vg_info/set_global_info requests in pylvmetad's wire log that carry no cmd (lvmlockd's).

    The wire log shows each request line as received (``<- key = value``, LVM's spacing).
    """
    found: list[tuple[str, str, str]] = []
    for block in re.split(r"^(?=<- request\s*=)", log, flags=re.M)[1:]:
        fields: dict[str, str] = dict(re.findall(r"^<- (\w+)\s*=\s*(.*)$", block.split("\n->", 1)[0], re.M))
        name = fields.get("request", "").strip('"')
        if name in ("set_vg_info", "set_global_info") and "cmd" not in fields:
            found.append((name, fields.get("name", ""), fields.get("version", fields.get("global_invalid", ""))))
    return found


@pytest.mark.parametrize("kind", PYLVMETAD_KINDS)
def test_pylvmetads_log_shows_each_invalidation_lvmlockd_sent(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    for host in (1, 2, 3):
        sent = []
        for _, name, text in run.invalidations[host]:
            if name in ("set_vg_info", "set_global_info"):
                fields: dict[str, str] = dict(re.findall(r"^(\w+)\s*=\s*(.*)$", text, re.M))
                sent.append((name, fields.get("name", ""), fields.get("version", fields.get("global_invalid", ""))))
        logged = logged_invalidations(run.metad_logs[host])
        assert sent and logged == sent, f"host{host}: lvmlockd sent {sent}, pylvmetad logged {logged}"


@pytest.mark.parametrize("kind", KINDS)
def test_an_lv_lock_held_elsewhere_is_refused(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    refused = run.step("h2 lvextend while h1 holds lv1").timed
    assert refused.rc == 5 and "LV locked by other host" in refused.result.stderr
    assert run.step("h2 lvextend").timed.rc == 0
    refused = run.step("h1 lvchange -aey lv3 while h3 holds it").timed
    assert refused.rc == 5 and "LV locked by other host" in refused.result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_lvcreate_is_serialised_by_the_vg_lock(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    assert run.facts["second_retried_while_first_held"] == 1.0
    assert run.step("h2 lvcreate lv2 (holds the VG lock)").timed.rc == 0
    assert run.step("h3 lvcreate lv3 (waits for it)").timed.rc == 0
    assert run.facts["second_ended_after_first"] == 1.0
    s1 = run.vg["vgs1"]
    assert lvs_of(run.step("h1 lvs after concurrent lvcreate"), s1) == {"lv2": 4 * MiB, "lv3": 4 * MiB, "lvr": 12 * MiB}


@pytest.mark.parametrize("kind", KINDS)
def test_a_crashed_host_blocks_only_its_own_lock_until_its_lease_expires(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    for label in ("h1 lvs after crash", "h2 lvcreate after crash", "h1 vgextend after crash", "h1 lvremove lvr"):
        assert run.step(label).timed.rc == 0, label
    assert run.step("h1 takes over lv3").timed.rc == 0
    # sanlock declares a host dead after 8 x io_timeout + 60 s without renewal: never sooner
    assert run.facts["takeover_refusals"] > 0
    assert run.facts["takeover"] >= 8 * IO_TIMEOUT + 60 - 2 * IO_TIMEOUT


@pytest.mark.parametrize("kind", KINDS)
def test_a_restarted_host_rejoins_and_sees_what_changed_meanwhile(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    s1 = run.vg["vgs1"]
    assert run.step("h3 lock-start after restart").timed.rc == 0
    assert lvs_of(run.step("h3 lvs after rejoin"), s1) == {"lv2": 4 * MiB, "lv3": 4 * MiB, "lv4": 4 * MiB}
    assert [run.pvs[2], s1] in rows(run.step("h3 pvs after rejoin"))


@pytest.mark.parametrize("kind", KINDS)
def test_lock_stop_and_vgremove(runs: dict[str, Run], kind: str) -> None:
    run = runs[kind]
    refused = run.step("h1 lock-stop refused while lv3 is active").timed
    assert refused.rc == 5 and "LVs must first be deactivated" in refused.result.stderr
    for label in ("h2 lock-stop", "h3 lock-stop", "h1 vgremove", "h2 vgremove second VG", "h1 vgremove local VG"):
        assert run.step(label).timed.rc == 0, label
    assert rows(run.step("h2 vgs after vgremove")) == []
    assert all(len(r) == 1 for r in rows(run.step("h3 pvs after vgremove")))  # orphans only


def test_the_pylvmlockd_kind_runs_pylvmlockd_with_its_leases_on_the_pvs(runs: dict[str, Run]) -> None:
    """Every host of that bed ran pylvmlockd, which pointed sanlock at the PVs, not at /dev/mapper."""
    run = runs["pylvmlockd"]
    for host in (1, 2, 3):
        assert "pylvmlockd" in run.lockd_logs[host], host
    h1 = run.lockd_logs[1]
    for vg, pv in ((run.vg["vgs1"], run.pvs[0]), (run.vg["vgs2"], run.pvs[3])):
        assert f"{vg}/lvmlock: leases on {pv} at offset" in h1, (vg, pv)
    reference = runs["lvmetad"]
    assert all("pylvmlockd" not in reference.lockd_logs[host] for host in (1, 2, 3))
