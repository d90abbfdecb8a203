"""The daemon shell: what every daemon of the package runs on, whatever it serves.

``server`` (asyncio, over the :class:`~pylvmetad.shell.server.MessageHandler`
interface), ``sockets`` (bind, systemd's inherited socket, peer credentials),
``process`` (pid file, daemonising, signals, limits), ``startup``
(the start-up sequence both daemons' clis run, from parsed options to exit status), ``logs`` (LVM's log
classes, stderr, syslog; ``logjson`` for JSON lines) and ``metrics`` (request counts and
latency histograms).  Imports only :mod:`pylvmetad.wire`; never a daemon's
package (enforced by the import-linter contract in pyproject.toml).
"""
