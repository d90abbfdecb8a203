"""The daemon's socket path appears only when the socket already accepts connections.

Tools that start a daemon commonly wait for its socket file to exist and then
connect (the conformance replay does).  A path that exists before ``listen``
makes them fail with ECONNREFUSED under load; this was seen in a replay run.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from pylvmetad.shell.process import StartupError
from pylvmetad.shell.sockets import bind_unix_socket


def test_whoever_sees_the_path_can_connect(tmp_path: Path) -> None:
    refused = 0
    for i in range(200):
        path = str(tmp_path / f"s{i}")
        bound: list[socket.socket] = []
        binder = threading.Thread(target=lambda p, out: out.append(bind_unix_socket(p)), args=(path, bound))
        binder.start()
        while not os.path.exists(path):  # the waiting side of such a tool
            pass
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            try:
                client.connect(path)
            except ConnectionRefusedError:
                refused += 1
        binder.join()
        bound[0].close()
    assert refused == 0
    assert sorted(os.listdir(tmp_path)) == sorted(f"s{i}" for i in range(200))  # no private names left


def test_the_socket_keeps_mode_0600_and_a_taken_path_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "lvmetad.socket")
    sock = bind_unix_socket(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        with pytest.raises(StartupError, match="already in use"):
            bind_unix_socket(path)
    finally:
        sock.close()
