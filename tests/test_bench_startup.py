"""The start-up benchmark (``python -m bench.startup``) runs each of our daemons once.

No timing is asserted: the test checks that each row starts the daemon over a
stale socket file, finds it listening and stops it again (waiting for the
process; its temporary directory is removed).
"""

from __future__ import annotations

import pytest
from bench import startup


@pytest.mark.parametrize("row", ["pylvmetad", "pylvmlockd", "python: bind+listen only"])
def test_a_row_measures_one_start_over_a_stale_socket(row: str) -> None:
    argv, _ = startup.commands()[row]
    assert startup.one_run(argv, stale=True) > 0
