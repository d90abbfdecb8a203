"""scanner.directio: aligned O_DIRECT reads return exactly the bytes asked for, one system call each."""

from __future__ import annotations

import os
from pathlib import Path

from pylvmetad.scanner.directio import ALIGNMENT, DirectReader, aligned_span
from support.lvm202 import LoopDevices


def test_aligned_span_covers_the_request() -> None:
    assert aligned_span(0, 8192) == (0, 8192)
    assert aligned_span(4096, 512) == (4096, 4096)
    assert aligned_span(5000, 100) == (4096, 4096)
    assert aligned_span(4000, 200) == (0, 8192)
    assert aligned_span(0, 0) == (0, ALIGNMENT)


def pattern(n: int) -> bytes:
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def test_reads_of_a_file_at_unaligned_places(tmp_path: Path) -> None:
    data = pattern(3 * ALIGNMENT + 100)
    path = tmp_path / "img"
    path.write_bytes(data)
    with DirectReader(str(path)) as reader:
        assert reader.read(0, 8192) == data[:8192]
        assert reader.read(4000, 300) == data[4000:4300]
        assert reader.read(3 * ALIGNMENT, 500) == data[3 * ALIGNMENT :]  # short at the end
        assert reader.read(10 * ALIGNMENT, 10) == b""
        assert reader.read(1, 5 * ALIGNMENT) == data[1:]  # the buffer grows
        assert reader.reads == 5


def test_loop_device_is_read_with_o_direct_and_sees_a_write_through_another_descriptor(tmp_path: Path) -> None:
    with LoopDevices(tmp_path, 1, size=1 << 20) as loops:
        dev = loops.devices[0]
        with DirectReader(dev) as reader:
            assert reader.direct
            assert reader.read(4096, 512) == bytes(512)
            fd = os.open(dev, os.O_WRONLY)
            try:
                os.pwrite(fd, b"x" * 512, 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
            assert reader.read(4096, 512) == b"x" * 512
