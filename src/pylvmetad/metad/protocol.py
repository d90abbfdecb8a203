"""The names the lvmetad protocol fixes (docs/protocol.md), defined once.

Daemon, client and tools all import them from here, so a client written
"from the wire protocol" and the daemon cannot drift apart.  Values only:
no code of either side.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing before the socket listens (mypy reads it as True)

if TYPE_CHECKING:
    from typing import Final

#: what ``hello`` answers, and what a client checks before using a connection
PROTOCOL: Final = "lvmetad"
PROTOCOL_VERSION: Final = 1
#: where LVM's tools look when $LVM_LVMETAD_SOCKET is not set
DEFAULT_SOCKET: Final = "/run/lvm/lvmetad.socket"
SOCKET_ENV: Final = "LVM_LVMETAD_SOCKET"
#: the token that marks a cache population in progress (docs/protocol.md §4)
UPDATE_IN_PROGRESS: Final = "update in progress"
#: the token that passes the daemon's token gate for any request
SKIP_TOKEN: Final = "skip"
#: sections of VG metadata kept as text until something needs their content (see codec)
LAZY_SECTIONS: Final = frozenset({"logical_volumes", "historical_logical_volumes"})


def default_socket_path() -> str:
    """$LVM_LVMETAD_SOCKET if set and non-empty, else the built-in default (as LVM's tools)."""
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
