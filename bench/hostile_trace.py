"""pylvmetad with its long steps timed: ``python -m bench.hostile_trace OUT -- DAEMON-ARGS`` (a debug run).

Used by ``python -m bench.hostile --trace OUT``.  The daemon runs as
``pylvmetad.metad.cli`` would, with three things timed: every step of a
job (``Connection._step``), every ``data_received`` (framing, and a whole
short answer) and every collection of the cyclic garbage collector.  For a
step, where the job's innermost generator stood before and after it (file,
line, function) says what it was doing.  When the daemon stops, the longest
steps are written to OUT, one a line: milliseconds (wall, then the
thread's CPU time: less means the daemon was not running), kind, before -> after.
"""

from __future__ import annotations

import atexit
import gc
import heapq
import sys
import time
import types
from collections.abc import Callable, Generator
from typing import Any

KEEP = 40


def _where(job: Generator[Any, Any, Any] | None) -> str:
    """The innermost suspended generator of a job: through ``yield from`` and a driven local."""
    gen = job if isinstance(job, types.GeneratorType) else None
    seen = 0
    while gen is not None and seen < 32:
        seen += 1
        inner = gen.gi_yieldfrom
        if isinstance(inner, types.GeneratorType):
            gen = inner
            continue
        frame = gen.gi_frame
        if frame is None:
            return "(finished)"
        driven = [
            v
            for v in frame.f_locals.values()
            if isinstance(v, types.GeneratorType) and v.gi_frame is not None and v.gi_frame.f_lasti >= 0
        ]
        if driven:
            gen = driven[0]
            continue
        code = frame.f_code
        return f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {code.co_name}"
    return "(?)"


def main() -> int:
    out_path = sys.argv[1]
    argv = sys.argv[sys.argv.index("--") + 1 :]
    from pylvmetad.metad import cli
    from pylvmetad.shell import server

    longest: list[tuple[float, int, str]] = []
    counter = [0]

    def note(ms: float, what: str) -> None:
        counter[0] += 1
        item = (ms, counter[0], what)
        if len(longest) < KEEP:
            heapq.heappush(longest, item)
        elif ms > longest[0][0]:
            heapq.heapreplace(longest, item)

    step: Callable[[server.Connection], None] = server.Connection._step
    received: Callable[[server.Connection, bytes], None] = server.Connection.data_received

    def timed_step(self: server.Connection) -> None:
        before = _where(self.job)
        t0, c0 = time.perf_counter(), time.thread_time()
        step(self)
        ms, cpu = (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3
        note(ms, f"(cpu {cpu:.2f}) step {before} -> {_where(self.job) if self.job is not None else '(done)'}")

    def timed_received(self: server.Connection, data: bytes) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        received(self, data)
        ms, cpu = (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3
        note(ms, f"(cpu {cpu:.2f}) data_received {len(data)} bytes, framer holds {self.framer.pending}")

    gc_start = [0.0]

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_start[0] = time.perf_counter()
        else:
            note((time.perf_counter() - gc_start[0]) * 1e3, f"gc generation {info['generation']}")

    server.Connection._step = timed_step  # type: ignore[method-assign]
    server.Connection.data_received = timed_received  # type: ignore[method-assign]
    gc.callbacks.append(gc_timer)

    def report() -> None:
        with open(out_path, "w") as f:
            for ms, _, what in sorted(longest, reverse=True):
                f.write(f"{ms:8.2f} ms  {what}\n")

    atexit.register(report)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
