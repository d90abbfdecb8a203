"""pylvmetad against another lvmetad (the C original), side by side: ``python -m bench.daemon --compare CMD``.

Rules of this module:

* Both daemons are measured by the same harness (:class:`bench.daemon.Bench`), with
  the same settings and the same request texts, each on a fresh daemon spawned on a
  temporary socket: the figures differ only by the daemon.
* Rounds alternate which daemon goes first (C then pylvmetad, then the other way
  round, ...), so a drift of the machine's load during the run biases neither side.
* A row's figure per daemon is the median of its rounds; the ratio is pylvmetad / C
  (above 1: pylvmetad is faster).  Peak RSS is each daemon's largest VmHWM over the
  rounds, read from /proc at the end of a round.
* Any reply other than OK fails the run, as in the single-daemon harness: a fast
  wrong answer must not look like a good figure.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .daemon import Bench, Memory, Row, Settings, daemon_memory, spawned_daemon

#: how pylvmetad is started when nothing else is said (as ``--spawn`` does)
PYLVMETAD = None


@dataclass
class Side:
    """One daemon's results over the rounds."""

    name: str
    command: str | None
    rows: dict[str, list[Row]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    peak_kb: int | None = None

    def add(self, rows: Sequence[Row], memory: Memory) -> None:
        for row in rows:
            self.rows.setdefault(row.key, []).append(row)
            self.titles[row.key] = row.title
        if memory.hwm_kb is not None:
            self.peak_kb = max(self.peak_kb or 0, memory.hwm_kb)

    def rate(self, key: str) -> float:
        return statistics.median(row.rate for row in self.rows[key])

    def cpu_us(self, key: str) -> float | None:
        """Median over the rounds of the daemon's CPU µs per operation (None if unreadable)."""
        figures = [us for us in (row.daemon_cpu_us for row in self.rows[key]) if us is not None]
        return statistics.median(figures) if figures else None

    def client_us(self, key: str) -> float:
        return statistics.median(row.client_cpu_us for row in self.rows[key])


def measure(command: str | None, settings: Settings, log: Callable[[str], None]) -> tuple[list[Row], Memory]:
    """One round of every workload on a freshly spawned daemon; its memory at the end."""
    with spawned_daemon(command) as path:
        bench = Bench(path, settings, log=log)
        rows = bench.run()
        return rows, daemon_memory(bench.daemon_pid)


def compare(
    c_command: str,
    settings: Settings,
    rounds: int = 3,
    py_command: str | None = PYLVMETAD,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> tuple[Side, Side]:
    """Run ``rounds`` rounds of both daemons, alternating which one starts."""
    c_side, py_side = Side("C lvmetad", c_command), Side("pylvmetad", py_command)
    for n in range(rounds):
        order = (c_side, py_side) if n % 2 == 0 else (py_side, c_side)
        for side in order:
            log(f"round {n + 1}/{rounds}: {side.name}")
            side.add(*measure(side.command, settings, log))
    return c_side, py_side


def format_comparison(c_side: Side, py_side: Side, rounds: int) -> str:
    """The Markdown table: per row, the median ops/s of both daemons, their ratio, and the CPU per op.

    The CPU columns are each daemon's own CPU time per operation (user + system,
    every thread), the harness's beside them: where a ratio is below 1, they
    say whether the daemon's work or the round trip is the difference.
    """
    lines = [
        "| # | workload | C lvmetad ops/s | pylvmetad ops/s | pylvmetad / C "
        "| C CPU µs/op | pylvmetad CPU µs/op | client CPU µs/op (C / py) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]

    def us(value: float | None) -> str:
        return f"{value:,.1f}" if value is not None else "n/a"

    for n, key in enumerate(py_side.rows, 1):
        c_rate, py_rate = c_side.rate(key), py_side.rate(key)
        ratio = f"{py_rate / c_rate:.2f}" if c_rate > 0 else "-"
        lines.append(
            f"| {n} | {py_side.titles[key]} | {c_rate:,.0f} | {py_rate:,.0f} | {ratio} "
            f"| {us(c_side.cpu_us(key))} | {us(py_side.cpu_us(key))} "
            f"| {us(c_side.client_us(key))} / {us(py_side.client_us(key))} |"
        )

    def mb(kb: int | None) -> str:
        return f"{kb / 1024:.1f} MB" if kb is not None else "n/a"

    ratio = f"{py_side.peak_kb / c_side.peak_kb:.2f}" if c_side.peak_kb and py_side.peak_kb else "-"
    lines.append(
        f"| | peak RSS (VmHWM), largest of the rounds | {mb(c_side.peak_kb)} | {mb(py_side.peak_kb)} | {ratio} | | | |"
    )
    lines.append("")
    lines.append(
        f"(median of {rounds} rounds per row, rounds alternating which daemon runs first; "
        "CPU from /proc/PID/stat, 10 ms ticks)"
    )
    return "\n".join(lines)
