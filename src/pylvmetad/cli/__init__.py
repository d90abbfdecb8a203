"""Transitional: console scripts installed before the package layout change import ``pylvmetad.cli:main``.

The command lives in :mod:`pylvmetad.metad.cli`; pyproject's entry points name it
there.  Delete this package once every installation has been reinstalled.
(A package, not a ``cli.py``, so git still sees ``cli.py`` as moved.)
"""

from ..metad.cli import main

__all__ = ["main"]
