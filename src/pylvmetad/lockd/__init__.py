"""pylvmlockd: LVM 2.02's lock daemon (lvmlockd), wire- and disk-compatible, on sanlock.

Layout, bottom up (imports point down only):

* :mod:`.protocol` -- numbers, request fields, the four reply layouts (no I/O);
* :mod:`.lvb` -- the lock value block and the invalidation decision (no I/O);
* :mod:`.rules` -- the tables: lockspace life cycle and lock-request verdicts (no I/O);
* :mod:`.manager` -- the lock-manager interface the core drives;
* :mod:`.memory` -- an in-memory lock manager simulating several hosts (tests);
* :mod:`.core` -- lockspaces, resources, the per-resource passes, the daemon state;
* :mod:`.sanlock` -- the sanlock lock manager (ctypes on libsanlock.so.1);
* :mod:`.metadlink`, :mod:`.daemon`, :mod:`.cli`, :mod:`.ctl` -- the process around it.

The contract is the shared PROTOCOL-LOCKD.md; sections are cited as §N.
"""
