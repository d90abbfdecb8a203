"""Observability: Metrics figures, the ``stats`` request, the Prometheus endpoint, --log-json."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pylvmetad import LVM_VERSION
from pylvmetad.metad.handlers import RequestHandler
from pylvmetad.metad.metrics import (
    KNOWN_REQUESTS,
    MAX_FAILURE_KEYS,
    OTHER_REQUEST,
    Metrics,
    prometheus_families,
)
from pylvmetad.shell.logjson import JsonFormatter
from pylvmetad.shell.metrics import BUCKET_BOUNDS, histogram_quantile, parse_listen, reason_key
from pylvmetad.wire.codec import Section, format_tree, parse
from pylvmetad.wire.replies import Reply
from support.daemon import DaemonProcess, RawConnection, start_daemon

# shapes copied from conformance/basic.jsonl (pvcreate, vgcreate of two loop devices)
PV0 = "Rmi91v-g3it-f5xv-XBmP-etBe-EuHO-V4i3px"
PV1 = "44uC1l-OmEd-jffX-zFv4-0tIb-Wq44-Em1FFn"
VGID = "7SvnQq-1eWR-Nl6S-J81C-Ni5B-0CTo-ORrlQi"
TOKEN = 'token="skip"\npid=4242\ncmd="vgcreate"\n'
CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.+-]+$")  # a key LVM's writer prints bare and reads back


def pv_found(pvid: str, device: int, vg: str = "") -> str:
    return f"""request="pv_found"
pvmeta {{
	device={device}
	dev_size=67108864
	format="lvm2"
	label_sector=1
	id="{pvid}"
	ext_version=2
	ext_flags=0
	mda0 {{
		ignore=0
		start=4096
		size=1044480
		free_sectors=0
	}}
	da0 {{
		offset=1048576
		size=0
	}}
	ba0 {{
		offset=0
		size=0
	}}
}}
{vg}{TOKEN}"""


def vg_metadata(seqno: int) -> str:
    return f"""metadata {{
	id="{VGID}"
	seqno={seqno}
	format="lvm2"
	status=["RESIZEABLE","READ","WRITE"]
	flags=[]
	extent_size=8192
	max_lv=0
	max_pv=0
	metadata_copies=0
	physical_volumes {{
		pv0 {{
			id="{PV0}"
			device="/dev/loop0"
			status="ALLOCATABLE"
			flags=[]
			dev_size=131072
			pe_start=2048
			pe_count=15
		}}
		pv1 {{
			id="{PV1}"
			device="/dev/loop1"
			status="ALLOCATABLE"
			flags=[]
			dev_size=131072
			pe_start=2048
			pe_count=15
		}}
	}}
}}
"""


def vg_update(seqno: int) -> str:
    return f'request="vg_update"\nvgname="vg1"\n{vg_metadata(seqno)}{TOKEN}'


def populate(send: Callable[[str], object]) -> None:
    """Two PVs, one VG at seqno 2, PV0 reporting seqno 1 (outdated), the VG invalidated."""
    send(pv_found(PV0, 1792))
    send(pv_found(PV1, 1808))
    send(vg_update(1))
    send(vg_update(2))
    send(pv_found(PV0, 1792, f'vgname="vg1"\n{vg_metadata(1)}'))
    send(f'request="set_vg_info"\nuuid="{VGID}"\nversion=5\n{TOKEN}')


def section(tree: Section, path: str) -> Section:
    node = tree.find(path)
    assert isinstance(node, Section), f"{path} missing in {format_tree(tree)}"
    return node


def num(tree: Section, path: str) -> int:
    value = tree.get_int64(path)
    assert value is not None, f"{path} missing in {format_tree(tree)}"
    return value


def reply(request: str, response: str = "OK", reason: str | None = None) -> Reply:
    return Reply("", request, response, reason)


# ---------------------------------------------------------------------------
# Metrics on its own
# ---------------------------------------------------------------------------
def test_observe_counts_by_result_and_failures_by_reason() -> None:
    metrics = Metrics(RequestHandler().state)
    for _ in range(3):
        metrics.observe(reply("vg_lookup"), 0.0001)
    metrics.observe(reply("vg_lookup", "unknown", "VG not found"), 0.0001)
    metrics.observe(reply("pv_list", "token_mismatch", "another command has populated the cache"), 0.0001)
    metrics.observe(reply("pv_found", "failed", "Ignore PV without PV UUID"), 0.0001)
    snap = metrics.snapshot()
    assert snap.requests["vg_lookup"].results() == {"ok": 3, "unknown": 1}
    assert snap.requests["vg_lookup"].count == 4
    assert snap.requests["pv_list"].results() == {"token_mismatch": 1}
    assert snap.failures == {
        ("vg_lookup", "VG not found"): 1,
        ("pv_list", "another command has populated the cache"): 1,
        ("pv_found", "Ignore PV without PV UUID"): 1,
    }


def test_bucket_bounds_are_inclusive_upper_bounds() -> None:
    metrics = Metrics(RequestHandler().state)
    metrics.observe(reply("hello"), BUCKET_BOUNDS[3])  # exactly on a bound: that bucket (le)
    metrics.observe(reply("hello"), BUCKET_BOUNDS[3] * 1.01)
    metrics.observe(reply("hello"), 1e9)  # beyond the last bound: +Inf
    buckets = metrics.snapshot().requests["hello"].buckets
    assert buckets[3] == 1 and buckets[4] == 1 and buckets[-1] == 1
    assert len(buckets) == len(BUCKET_BOUNDS) + 1


def test_percentiles_interpolate_within_buckets() -> None:
    metrics = Metrics(RequestHandler().state)
    for _ in range(90):
        metrics.observe(reply("vg_lookup"), 0.00015)  # bucket (0.0001, 0.0002]
    for _ in range(10):
        metrics.observe(reply("vg_lookup"), 0.3)  # bucket (0.2, 0.5]
    figures = metrics.snapshot().requests["vg_lookup"]
    assert 0.0001 < figures.quantile(0.5) <= 0.0002
    assert 0.2 < figures.quantile(0.99) <= 0.5
    assert figures.sum == pytest.approx(90 * 0.00015 + 10 * 0.3)
    assert histogram_quantile(0.5, [0] * (len(BUCKET_BOUNDS) + 1)) == 0.0
    assert histogram_quantile(0.99, [0] * len(BUCKET_BOUNDS) + [5]) == BUCKET_BOUNDS[-1]


def test_client_chosen_names_cannot_grow_the_figures() -> None:
    metrics = Metrics(RequestHandler().state)
    metrics.observe(reply("vg_update", "failed", "internal error: KeyError: 'x1'"), 0.0)
    metrics.observe(reply("vg_update", "failed", "internal error: KeyError: 'x2'"), 0.0)
    assert metrics.snapshot().failures == {("vg_update", "internal error: KeyError"): 2}
    for i in range(1000):
        metrics.observe(reply(f"bogus_{i}", "failed", "request not implemented"), 0.0)
    for i in range(2 * MAX_FAILURE_KEYS):
        metrics.observe(reply("pv_found", "failed", f"reason {i}"), 0.0)
    snap = metrics.snapshot()
    assert set(snap.requests) == {OTHER_REQUEST, "pv_found", "vg_update"}
    assert snap.requests[OTHER_REQUEST].count == 1000
    assert len(snap.failures) == MAX_FAILURE_KEYS + 1  # the cap, plus pv_found's "other"
    assert sum(n for (request, _), n in snap.failures.items() if request == "pv_found") == 2 * MAX_FAILURE_KEYS


def test_known_requests_cover_every_handler() -> None:
    handler = RequestHandler()
    assert set(handler._handlers) <= KNOWN_REQUESTS


def test_cache_flags_and_token_in_stats_section() -> None:
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    handler.stats_provider = metrics.stats_section

    def send(text: str) -> Reply:
        answer = handler.handle_text(text)
        metrics.observe(answer, 0.0001)
        return answer

    populate(send)
    send(f'request="set_global_info"\nglobal_invalid=1\nglobal_disable=1\ndisable_reason="DUPLICATES"\n{TOKEN}')
    assert (
        send('request="token_update"\ntoken="update in progress"\nupdate_timeout=10\npid=4242\ncmd="pvscan"\n').response
        == "OK"
    )
    send(f'request="vg_lookup"\nname="nosuchvg"\n{TOKEN}')

    stats = send('request="stats"\n')
    tree = parse(stats.body)  # the reply is config text that reads back
    cache = section(tree, "cache")
    assert num(cache, "pvs") == 2
    assert num(cache, "devices") == 2
    assert num(cache, "vgs") == 1
    assert num(cache, "vg_names") == 1
    assert num(cache, "outdated_pvs") == 1
    assert num(cache, "invalid_vgs") == 1
    flags = section(tree, "global")
    assert (num(flags, "invalid"), num(flags, "disabled")) == (1, 1)
    assert flags.get_str("disable_reason") == "DUPLICATES,"
    token = section(tree, "token")
    assert token.get_str("token") == "update in progress"
    assert (num(token, "update_in_progress"), num(token, "update_pid")) == (1, 4242)
    assert token.get_str("update_cmd") == "pvscan"
    assert num(section(tree, "daemon"), "pid") == os.getpid()
    pv_found_figures = section(tree, "requests/pv_found")
    assert (num(pv_found_figures, "count"), num(pv_found_figures, "ok")) == (3, 3)
    lookup = section(tree, "requests/vg_lookup")
    assert (num(lookup, "count"), num(lookup, "ok"), num(lookup, "unknown")) == (1, 0, 1)
    assert num(section(tree, "failures/vg_lookup"), "vg_not_found") == 1


def test_stats_section_keys_are_valid_whatever_the_reasons() -> None:
    metrics = Metrics(RequestHandler().state)
    for text in ('quote " and \\ backslash', "a/b/c path", "# not a comment", "", "MiXeD CaSe!"):
        metrics.observe(reply("vg_remove", "failed", text), 0.0)
    text = format_tree(metrics.stats_section())
    tree = parse(text)

    def keys(node: Section) -> Iterator[str]:
        for key, value in node.items:
            yield key
            if isinstance(value, Section):
                yield from keys(value)

    assert all(CONFIG_KEY.match(key) for key in keys(tree)), text
    assert num(section(tree, "failures/vg_remove"), "a_b_c_path") == 1
    assert reason_key("VG not found") == "vg_not_found"


def test_prometheus_families_of_a_snapshot() -> None:
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    populate(lambda text: metrics.observe(handler.handle_text(text), 0.0002))
    families = {f.name: f for f in prometheus_families(metrics.snapshot())}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("pylvmetad_requests_total", (("request", "pv_found"), ("result", "ok")))] == 3
    assert samples[("pylvmetad_request_duration_seconds_count", (("request", "vg_update"),))] == 2
    assert samples[("pylvmetad_cache_pvs", ())] == 2
    assert samples[("pylvmetad_cache_outdated_pvs", ())] == 1
    assert samples[("pylvmetad_cache_invalid_vgs", ())] == 1


def test_snapshot_while_the_cache_changes_on_another_thread() -> None:
    """The scrape thread reads while the loop thread writes: no exception, sane figures."""
    handler = RequestHandler()
    metrics = Metrics(handler.state)
    errors: list[BaseException] = []
    done = threading.Event()

    def scrape() -> None:
        try:
            while not done.is_set():
                list(prometheus_families(metrics.snapshot()))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=scrape)
    reader.start()
    try:
        for i in range(300):
            metrics.observe(handler.handle_text(pv_found(f"pv-{i:06d}", 4096 + i)), 0.0001)
            metrics.observe(reply(f"noise_{i}", "failed", f"reason {i}"), 0.0)
            if i % 50 == 49:
                metrics.observe(handler.handle_text(f'request="pv_clear_all"\n{TOKEN}'), 0.0001)
    finally:
        done.set()
        reader.join(10)
    assert not errors
    assert metrics.snapshot().requests["pv_found"].count == 300


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9560") == ("127.0.0.1", 9560)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("9560", ":9560", "host:", "host:port", "host:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_serve_http_and_stop_http_in_process() -> None:
    metrics = Metrics(RequestHandler().state)
    metrics.observe(reply("hello"), 0.00001)
    metrics.serve_http("127.0.0.1:0")
    port = metrics.http_port
    assert port
    try:
        samples = scrape(port)
        assert samples[("pylvmetad_requests_total", (("request", "hello"), ("result", "ok")))] == 1
        assert ("pylvmetad_info", (("lvm_version", LVM_VERSION), ("version", "0.1.0"))) in samples
    finally:
        thread = metrics._http_thread
        metrics.stop_http()
    assert thread is not None and not thread.is_alive()
    assert refused(port)
    metrics.stop_http()  # a second stop is harmless


# ---------------------------------------------------------------------------
# Against a real daemon
# ---------------------------------------------------------------------------
def poll(condition: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    """Wait for ``condition()`` to return something true, with a deadline (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_stats_request_against_the_daemon(daemon: DaemonProcess) -> None:
    with RawConnection(daemon.socket_path) as conn:
        conn.request('request="hello"\n')
        populate(conn.request)
        conn.request(f'request="vg_lookup"\nuuid="no-such-vg"\n{TOKEN}')
        conn.request('request="vg_list"\ntoken="wrong"\n')
        tree = parse(conn.request('request="stats"\n'))
    assert tree.get_str("response") == "OK"
    connections = section(tree, "connections")
    assert num(connections, "open") >= 1 and num(connections, "total") >= 1  # ours (a startup probe may linger)
    assert num(connections, "bytes_in") > 0 and num(connections, "bytes_out") > 0
    assert num(section(tree, "cache"), "pvs") == 2
    assert num(section(tree, "requests/hello"), "ok") == 1
    assert num(section(tree, "requests/vg_lookup"), "unknown") == 1
    assert num(section(tree, "requests/vg_list"), "token_mismatch") == 1
    assert num(section(tree, "failures/vg_list"), "another_command_has_populated_the_cache") == 1
    p99 = section(tree, "requests/vg_update").get_float("p99_seconds")
    assert isinstance(p99, float) and 0 < p99 < 10
    assert num(section(tree, "daemon"), "pid") == daemon.proc.pid


METRICS_PORT = re.compile(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics")


def test_prometheus_endpoint_of_the_daemon(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--metrics-listen", "127.0.0.1:0")
    try:
        found = poll(lambda: METRICS_PORT.search(daemon.log()), "the metrics port in the log")
        assert isinstance(found, re.Match)
        port = int(found.group(1))
        with RawConnection(daemon.socket_path) as conn:
            conn.request('request="hello"\n')
            populate(conn.request)
            for _ in range(3):
                conn.request(f'request="vg_lookup"\nuuid="{VGID}"\n{TOKEN}')
            conn.request(f'request="pv_found"\n{TOKEN}')  # failed: no pvmeta
            samples = scrape(port)
        assert samples[("pylvmetad_requests_total", (("request", "vg_lookup"), ("result", "ok")))] == 3
        assert samples[("pylvmetad_requests_total", (("request", "pv_found"), ("result", "failed")))] == 1
        key = (
            "pylvmetad_request_failures_total",
            (("reason", "Ignore PV without PV metadata"), ("request", "pv_found")),
        )
        assert samples[key] == 1
        assert samples[("pylvmetad_request_duration_seconds_count", (("request", "vg_lookup"),))] == 3
        assert samples[("pylvmetad_request_duration_seconds_bucket", (("le", "+Inf"), ("request", "vg_lookup")))] == 3
        assert samples[("pylvmetad_connections_open", ())] >= 1
        assert samples[("pylvmetad_connections_total", ())] >= 1
        assert samples[("pylvmetad_bytes_received_total", ())] > 0
        assert samples[("pylvmetad_cache_pvs", ())] == 2
        assert samples[("pylvmetad_cache_vgs", ())] == 1
        assert samples[("pylvmetad_cache_devices", ())] == 2
        assert samples[("pylvmetad_cache_outdated_pvs", ())] == 1
        assert samples[("pylvmetad_cache_invalid_vgs", ())] == 1
        assert samples[("pylvmetad_global_invalid", ())] == 0
        assert samples[("pylvmetad_update_in_progress", ())] == 0
        assert samples[("pylvmetad_uptime_seconds", ())] >= 0
        assert samples[("process_open_fds", ())] > 0
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert refused(port)  # the endpoint went away with the daemon


def test_metrics_listen_on_a_bad_address_fails_startup(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-s", str(tmp_path / "s"), "-p", str(tmp_path / "pid"),
         "--metrics-listen", "no-port-here"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot serve metrics on no-port-here" in result.stderr
    assert not (tmp_path / "s").exists() and not (tmp_path / "pid").exists()


def test_log_json_is_one_object_per_line_with_failure_fields(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path, "--log-json", "-l", "all")
    try:
        with RawConnection(daemon.socket_path) as conn:
            conn.request('request="hello"\n')
            conn.request(f'request="pv_found"\n{TOKEN}')
            conn.request(f'request="vg_remove"\n{TOKEN}')

        def failures() -> list[dict[str, object]]:
            entries = [json.loads(line) for line in daemon.log().splitlines() if line.strip()]
            return [e for e in entries if e.get("level") == "error"]

        poll(lambda: len(failures()) >= 2, "two error lines")
    finally:
        assert daemon.stop() == 0, daemon.log()
    lines = daemon.log().splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(isinstance(e, dict) and {"ts", "level", "msg"} <= e.keys() for e in entries)
    assert any(e["level"] == "wire" and "\n" in str(e["msg"]) for e in entries)  # multi-line text, one line
    errors = [e for e in entries if e["level"] == "error"]
    assert [(e["request"], e["reason"]) for e in errors] == [
        ("pv_found", "Ignore PV without PV metadata"),
        ("vg_remove", "need VG UUID"),
    ]
    for e in errors:
        assert e["response"] == "failed"
        assert (e["peer_pid"], e["peer_uid"]) == (os.getpid(), os.getuid())
    assert any("exiting" in str(e["msg"]) for e in entries)


def test_json_formatter_keeps_its_own_keys() -> None:
    record = logging.LogRecord("pylvmetad", logging.ERROR, __file__, 1, "two\nlines %s", ("x",), None)
    record.fields = {"msg": "spoofed", "level": "info", "request": "vg_update", "path": Path("/x")}
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "two\nlines x" and entry["level"] == "error"
    assert entry["request"] == "vg_update" and entry["path"] == "/x"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(entry["ts"]))


def test_the_servers_observer_counts_as_observe_does() -> None:
    """Metrics.observer (the closure the server calls) and Metrics.observe keep the same figures."""
    replies = [
        (reply("vg_lookup"), 0.0001),
        (reply("vg_lookup", "unknown", "VG not found"), 0.003),
        (reply("no_such_request"), 0.2),
        (reply("pv_found", "failed", "internal error: KeyError: 'x'"), 1e9),
        (reply("hello"), BUCKET_BOUNDS[3]),
    ]
    by_method, by_hook = Metrics(RequestHandler().state), Metrics(RequestHandler().state)
    for r, elapsed in replies:
        by_method.observe(r, elapsed)
        by_hook.observer(r, elapsed)
    method, hook = by_method.snapshot(), by_hook.snapshot()
    assert hook.failures == method.failures and ("pv_found", "internal error: KeyError") in hook.failures
    assert set(hook.requests) == set(method.requests) == {"vg_lookup", "other", "pv_found", "hello"}
    for name, figures in method.requests.items():
        assert hook.requests[name] == figures
