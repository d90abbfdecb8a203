"""A long request's fields are read in bounded steps, with the getters' results (issue 17).

``Request.parsing`` (the server's stepped path) reads a top level of more
than FIELD_STEP pairs in one walk of steps instead of one walk per field;
these tests check it reads exactly what ``Request.from_text`` reads, for
fields first, last, repeated, missing or of the wrong type, at every chunk
boundary.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from pylvmetad.metad.handlers import dispatch
from pylvmetad.metad.handlers.dispatch import Request


def run(steps: Generator[None, None, Request]) -> tuple[Request, int]:
    """The request and how many times the generator yielded."""
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value, yields
        yields += 1


def fields(req: Request) -> tuple[object, ...]:
    return (req.name, req.token, req.pid, req.cmd, req.update_timeout, req.parse_error)


JUNK = "".join(f"k{i}=1\n" for i in range(50))
TEXTS = [
    'request="vg_lookup"\ntoken="t"\npid=7\ncmd="vgs"\nupdate_timeout=3\n' + JUNK,
    JUNK + 'request="vg_lookup"\ntoken="t"\npid=7\ncmd="vgs"\nupdate_timeout=3\n',
    JUNK + 'request="a"\n' + JUNK + 'request="b"\npid="x"\npid=4\n' + JUNK + 'token=5\ntoken="z"\n',
    'request=""\ncmd=["a","b"]\n' + JUNK + 'update_timeout=4294967297\nrequest="late"\n',
    JUNK,
    'cmd { x=1 }\nrequest="hello"\n' + JUNK + 'cmd="late"\n',
]


@pytest.mark.parametrize("step", [1, 2, 7, 49, 50, 51, 1000])
@pytest.mark.parametrize("text", TEXTS)
def test_stepped_fields_are_the_getters(monkeypatch: pytest.MonkeyPatch, text: str, step: int) -> None:
    monkeypatch.setattr(dispatch, "FIELD_STEP", step)
    stepped, _ = run(Request.parsing(text))
    assert fields(stepped) == fields(Request.from_text(text))
    assert stepped.tree == Request.from_text(text).tree


def test_a_huge_top_level_is_walked_in_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    text = JUNK * 4 + 'request="hello"\n'
    monkeypatch.setattr(dispatch, "FIELD_STEP", 10)
    walked, yields = run(Request.parsing(text))
    monkeypatch.setattr(dispatch, "FIELD_STEP", 10**6)
    whole, whole_yields = run(Request.parsing(text))
    assert fields(walked) == fields(whole) and walked.name == "hello"
    # 201 pairs, 10 a step, the fields missing but one: every pair is looked at, a step per 10
    assert yields - whole_yields == 21
