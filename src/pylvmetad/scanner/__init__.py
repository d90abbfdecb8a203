"""The scanner: LVM2's on-disk format (``ondisk``) and ``pylvmetad-scan`` (``scan``).

A client of lvmetad: may import :mod:`pylvmetad.metad`'s client and
protocol names, :mod:`pylvmetad.rpc` and :mod:`pylvmetad.wire`.
"""
