"""``import pylvmetad.client`` keeps working: the lvmetad client lives in :mod:`pylvmetad.metad.client`.

Nothing is defined here; every name is the one of :mod:`pylvmetad.metad.client`.
(A package, not a ``client.py``, so git still sees ``client.py`` as moved.)
"""

from __future__ import annotations

from ..metad.client import (
    DEFAULT_MAX_REPLY,
    DEFAULT_SOCKET,
    SKIP_TOKEN,
    UPDATE_IN_PROGRESS,
    AsyncClient,
    Client,
    ConnectionLost,
    DaemonNotRunning,
    FieldValue,
    LvmetadError,
    LvmetadRequests,
    LvmetadTimeout,
    MultipleVGs,
    NotFound,
    ProtocolError,
    RequestFailed,
    TokenMismatch,
    TokenUpdating,
    build_request,
    check_hello,
    check_ok,
    default_socket_path,
    parse_reply,
)

__all__ = [
    "DEFAULT_MAX_REPLY",
    "DEFAULT_SOCKET",
    "SKIP_TOKEN",
    "UPDATE_IN_PROGRESS",
    "AsyncClient",
    "Client",
    "ConnectionLost",
    "DaemonNotRunning",
    "FieldValue",
    "LvmetadError",
    "LvmetadRequests",
    "LvmetadTimeout",
    "MultipleVGs",
    "NotFound",
    "ProtocolError",
    "RequestFailed",
    "TokenMismatch",
    "TokenUpdating",
    "build_request",
    "check_hello",
    "check_ok",
    "default_socket_path",
    "parse_reply",
]
