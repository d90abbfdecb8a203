"""Request statistics kept by the daemon (minimal; extended by the observability work)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .cache import CacheState
from .codec import Section
from .handlers import Reply

if TYPE_CHECKING:
    from .server import Server


class Metrics:
    def __init__(self, state: CacheState) -> None:
        self.state = state
        self.server: Server | None = None
        self.requests: dict[tuple[str, str], int] = {}

    def attach_server(self, server: Server) -> None:
        self.server = server

    def observe(self, reply: Reply, elapsed: float) -> None:
        key = (reply.request, reply.response)
        self.requests[key] = self.requests.get(key, 0) + 1

    def stats_section(self) -> Section:
        return Section()

    def serve_http(self, listen: str) -> None:
        raise ValueError("metrics endpoint not implemented yet")

    def stop_http(self) -> None:
        pass
