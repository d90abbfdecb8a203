"""The wire layer: LVM config text, message framing and reply helpers.

Shared by every daemon and client of the package (lvmetad, lvmlockd, the
scanner, the tools).  Rules: pure functions and sans-I/O objects only; no
module here imports anything of pylvmetad outside ``pylvmetad.wire``
(enforced by the import-linter contract in pyproject.toml).
"""
