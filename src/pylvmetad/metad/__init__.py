"""lvmetad: the metadata cache daemon, its client and its tools.

``protocol`` holds the protocol's names (shared by daemon and client),
``cache`` the state, ``handlers`` the requests, ``server``-side wiring lives
in ``cli``; ``client`` is the typed client and ``ctl`` the ``pylvmetactl``
tool.  May import ``pylvmetad.wire``, ``pylvmetad.shell`` and
``pylvmetad.rpc``, never ``pylvmetad.lockd`` or ``pylvmetad.scanner``.
"""
