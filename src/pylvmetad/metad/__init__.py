"""lvmetad: the metadata cache daemon, its client and its tools.

``protocol`` holds the protocol's names (shared by daemon and client),
``tokens`` the token protocol as one table, ``cache`` the state (its
multi-step operations all or nothing over ``journal``), ``handlers/`` the
requests (``dispatch``, ``texts``, ``dump``), ``metrics`` the daemon's
figures, ``cli`` the ``pylvmetad`` command; ``client`` is the typed client
and ``ctl`` the ``pylvmetactl`` tool (docs/architecture.md).
May import ``pylvmetad.wire``, ``pylvmetad.shell`` and
``pylvmetad.rpc``, never ``pylvmetad.lockd`` or ``pylvmetad.scanner``.
"""
