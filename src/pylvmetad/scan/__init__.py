"""Transitional: console scripts installed before the package layout change import ``pylvmetad.scan:main``.

The command lives in :mod:`pylvmetad.scanner.scan`; pyproject's entry points name it
there.  Delete this package once every installation has been reinstalled.
(A package, not a ``scan.py``, so git still sees ``scan.py`` as moved.)
"""

from ..scanner.scan import main

__all__ = ["main"]
