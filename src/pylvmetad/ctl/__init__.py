"""Transitional: console scripts installed before the package layout change import ``pylvmetad.ctl:main``.

The command lives in :mod:`pylvmetad.metad.ctl`; pyproject's entry points name it
there.  Delete this package once every installation has been reinstalled.
(A package, not a ``ctl.py``, so git still sees ``ctl.py`` as moved.)
"""

from ..metad.ctl import main

__all__ = ["main"]
