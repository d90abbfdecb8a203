"""The dispatcher's shortcuts give what the long way gives.

* RequestHandler.handle serves a request whose token is the cache's (and
  not "update in progress"), other than token_update, without calling the
  token table: that is the table's own first case (tokens.decide), checked
  here for any state, name, token and pid.
* pv_found answers a result object met again with the reply it gave it:
  the same reply as a fresh handler's, and a failed result is never kept.
* handle_bytes parses a message as Request.from_text does, quick parse or not.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pylvmetad.metad.cache import NEW_ORPHAN, UNCHANGED_ORPHAN, CacheState, PVFoundResult, TokenState
from pylvmetad.metad.handlers import Request, RequestHandler
from pylvmetad.metad.protocol import UPDATE_IN_PROGRESS
from pylvmetad.metad.tokens import Action, decide
from pylvmetad.wire.codec import Section
from pylvmetad.wire.framing import encode_request

TOKENS = st.sampled_from(["", "t1", "t2", "skip", UPDATE_IN_PROGRESS])
NAMES = st.sampled_from(["pv_found", "token_update", "get_global_info", "dump", "vg_lookup", "hello", "x"])


@settings(max_examples=500, deadline=None)
@given(TOKENS, NAMES, TOKENS, st.integers(-2, 5), st.integers(0, 3), st.integers(0, 100))
def test_the_inline_case_is_the_token_tables_first(
    held: str, name: str, token: str, pid: int, update_pid: int, now: int
) -> None:
    tokens = TokenState()
    tokens.token, tokens.update_pid, tokens.update_timeout = held, update_pid, 10
    if token == held and held != UPDATE_IN_PROGRESS and name != "token_update":
        assert decide(tokens, name, token, pid, lambda: now) is Action.SERVE


def pv_found(pvid: str, device: int) -> Section:
    return Section(
        [
            ("request", "pv_found"),
            ("token", "skip"),
            ("pvmeta", Section([("device", device), ("id", pvid)])),
        ]
    )


def test_a_result_met_again_gets_the_reply_it_got() -> None:
    handler = RequestHandler()
    first = handler.handle(Request.from_tree(pv_found("PV-1", 2049)))
    again = handler.handle(Request.from_tree(pv_found("PV-1", 2049)))
    new = handler.handle(Request.from_tree(pv_found("PV-2", 2050)))
    fresh = RequestHandler()
    assert first.body == fresh.handle(Request.from_tree(pv_found("PV-1", 2049))).body
    assert again.body == fresh.handle(Request.from_tree(pv_found("PV-1", 2049))).body
    assert new.body == fresh.handle(Request.from_tree(pv_found("PV-2", 2050))).body
    assert "changed = 1" in first.body and "changed = 0" in again.body


class Scripted(CacheState):
    """A cache whose pv_found answers the results it is given, in turn."""

    def __init__(self, results: list[PVFoundResult]) -> None:
        super().__init__()
        self.results = results

    def pv_found(self, *args: object) -> PVFoundResult:  # type: ignore[override]
        return self.results.pop(0)


def test_a_failed_result_is_never_kept_and_each_result_gets_its_reply() -> None:
    failing = PVFoundResult(failed="no")
    other = PVFoundResult(status="complete", vgid="v", vgname="vg", seqno_after=3)
    order = [NEW_ORPHAN, NEW_ORPHAN, failing, failing, UNCHANGED_ORPHAN, other, other, NEW_ORPHAN]
    handler = RequestHandler(Scripted(list(order)))
    for result in order:
        reply = handler.handle(Request.from_tree(pv_found("PV-1", 2049)))
        want = RequestHandler(Scripted([result])).handle(Request.from_tree(pv_found("PV-1", 2049)))
        assert (reply.response, reply.body) == (want.response, want.body)


def test_handle_bytes_parses_as_from_text() -> None:
    texts = [
        'request="pv_list"\ntoken="skip"\n',
        'request="pv_list"\ntoken="skip"\nx=1.5\n',  # not the fast subset: the general parser
        'request="pv_list"\ntoken="skip"\nx={\n',  # does not parse: a failed reply
        "request='pv_list'\ntoken=\"skip\"\n",
    ]
    for text in texts:
        got, _ = RequestHandler().handle_bytes(encode_request(text)[:-4], None)  # type: ignore[arg-type]
        want = RequestHandler().handle(Request.from_text(text))
        assert (got.response, got.body) == (want.response, want.body)
