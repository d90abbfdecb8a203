"""Resource limits against a real daemon: message size, stalled and idle clients.

docs/protocol.md §9: a request over ``--max-message`` gets ``failed`` "request too
large" and the connection is closed, and the daemon never buffers past the
limit; a stalled client blocks nobody; thousands of idle connections are fine.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pylvmetad.wire.codec import parse
from pylvmetad.wire.framing import Framer, encode_request
from support.daemon import DaemonProcess, RawConnection, start_daemon, wait_for_socket

MiB = 1 << 20


def proc_status(pid: int, field: str) -> int:
    """A ``kB`` figure of /proc/PID/status (VmRSS, VmHWM, ...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def read_until_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return bytes(data)


@pytest.fixture
def small_limit_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    d = start_daemon(tmp_path, "--max-message", str(MiB))
    try:
        yield d
    finally:
        d.stop()


def hello_works(path: str) -> bool:
    with RawConnection(path) as c:
        return parse(c.request('request="hello"')).get_str("response") == "OK"


def test_oversized_message_in_one_write_is_refused(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, "--max-message", "4096")
    try:
        with RawConnection(d.socket_path) as c:
            body = 'request="hello"\nx="' + "a" * 100_000 + '"'
            reply = parse(c.request(body))
            assert reply.get_str("response") == "failed"
            assert reply.get_str("reason") == "request too large"
            assert read_until_eof(c.sock) == b""  # and the daemon hung up
        assert hello_works(d.socket_path)
    finally:
        d.stop()


def test_streaming_64_mib_without_terminator_is_cut_off_with_bounded_memory(
    small_limit_daemon: DaemonProcess,
) -> None:
    d = small_limit_daemon
    pid = d.proc.pid
    assert hello_works(d.socket_path)
    baseline = proc_status(pid, "VmRSS")
    sent = 0
    chunk = b"x" * (64 * 1024)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(d.socket_path)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < 64 * MiB:
                s.sendall(chunk)
                sent += len(chunk)
        reply = read_until_eof(s)
    peak = proc_status(pid, "VmHWM")
    print(
        f"\nstreamed {sent / MiB:.1f} MiB before the daemon hung up; RSS {baseline / MiB:.1f} -> peak {peak / MiB:.1f} MiB"
    )
    assert sent < 64 * MiB, "the daemon kept reading past the limit"
    assert b'reason = "request too large"' in reply
    assert peak - baseline < 16 * MiB, f"daemon grew by {(peak - baseline) / MiB:.1f} MiB for a 1 MiB limit"
    assert hello_works(d.socket_path)


def test_message_just_under_the_limit_is_served(small_limit_daemon: DaemonProcess) -> None:
    with RawConnection(small_limit_daemon.socket_path) as c:
        body = 'request="hello"\nx="' + "a" * (MiB - 100) + '"'
        assert parse(c.request(body)).get_str("response") == "OK"


def test_stalled_half_message_blocks_nobody(small_limit_daemon: DaemonProcess) -> None:
    path = small_limit_daemon.socket_path
    with RawConnection(path) as stalled:
        stalled.send_raw(b'request="hel')  # and nothing more, for now
        with RawConnection(path) as other:
            for _ in range(3):
                assert parse(other.request('request="hello"')).get_str("response") == "OK"
            assert parse(other.request('request="vg_list"\ntoken="skip"')).get_str("response") == "OK"
        stalled.send_raw(b'lo"\n\n##\n')  # the stalled client finishes and is answered
        assert parse(stalled.read_reply()).get_str("response") == "OK"


def test_disconnect_mid_message_changes_nothing(small_limit_daemon: DaemonProcess) -> None:
    path = small_limit_daemon.socket_path
    with RawConnection(path) as c:
        before = c.request('request="dump"')
    with RawConnection(path) as c:
        c.send_raw(b'request="vg_update"\ntoken="skip"\nvgname="vg0"\nmetadata {\nid="V"\nseqno=1\n}\n\n#')
    with RawConnection(path) as c:
        assert c.request('request="dump"') == before


def _soft_nofile(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))


def test_two_thousand_idle_connections(tmp_path: Path) -> None:
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n + 200:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is below {n + 200}")
    if soft != resource.RLIM_INFINITY and soft < n + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n + 200, hard))
    sock_path = str(tmp_path / "lvmetad.socket")
    log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 -- closed below
    # start the daemon with the usual 1024 soft limit: it must lift it itself
    proc = subprocess.Popen(
        [sys.executable, "-m", "pylvmetad.metad.cli", "-f", "-s", sock_path, "-p", str(tmp_path / "pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: _soft_nofile(1024),
    )
    d = DaemonProcess(proc, sock_path, str(tmp_path / "pid"), tmp_path / "daemon.log")
    conns: list[socket.socket] = []
    try:
        wait_for_socket(sock_path, proc)
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3] == line.split()[4], f"soft limit not lifted: {line}"
        baseline = proc_status(proc.pid, "VmRSS")
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)  # blocking: waits while the listen backlog is full
            s.settimeout(30)
            conns.append(s)
        # every idle connection is live: the first, the last and a new one are answered
        for s in (conns[0], conns[-1]):
            s.sendall(encode_request('request="hello"'))
            assert b'response = "OK"' in s.recv(4096)
        assert hello_works(sock_path)
        grown = proc_status(proc.pid, "VmRSS") - baseline
        open_fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
        print(
            f"\n{n} idle connections: daemon holds {open_fds} fds, RSS +{grown / MiB:.1f} MiB ({grown / n / 1024:.1f} KiB each)"
        )
        assert open_fds >= n
        assert proc.poll() is None
    finally:
        for s in conns:
            s.close()
        assert d.stop() == 0
        log.close()


def test_client_that_never_reads_its_replies_is_throttled_not_buffered(tmp_path: Path) -> None:
    """Replies a client leaves unread stop the daemon reading from it, not grow its memory.

    Each ``dump`` request is 18 bytes and its reply ~400: 100000 of them unread
    would be 40 MB of replies.  The daemon stops reading that connection once
    the transport's high-water mark is reached, serves others meanwhile, and
    answers every request, in order, once the client reads again.
    """
    import threading

    d = start_daemon(tmp_path)
    try:
        count = 100_000
        rss_before = proc_status(d.proc.pid, "VmRSS")
        greedy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        greedy.connect(d.socket_path)
        payload = b'request="dump"\n##\n' * count
        sender = threading.Thread(target=greedy.sendall, args=(payload,))
        sender.start()
        # whatever the greedy client has pushed, another client is served at once
        assert hello_works(d.socket_path)
        assert proc_status(d.proc.pid, "VmRSS") - rss_before < 16 * MiB
        # now read everything: every request gets its reply, in order
        # (each chunk is split into replies once: linear in what arrives)
        replies = Framer(max_message=1 << 20)
        answered = dumps = 0
        greedy.settimeout(30)
        while answered < count:
            chunk = greedy.recv(1 << 20)
            assert chunk, "daemon closed the connection"
            bodies = replies.feed(chunk)
            answered += len(bodies)
            dumps += sum(body.startswith(b"# VG METADATA") for body in bodies)
        sender.join(30)
        assert not sender.is_alive()
        assert answered == dumps == count and replies.pending == 0
        greedy.close()
        assert proc_status(d.proc.pid, "VmHWM") - rss_before < 16 * MiB
    finally:
        d.stop()
