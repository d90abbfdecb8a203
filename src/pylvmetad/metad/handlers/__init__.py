"""lvmetad's requests: one module per job.

* :mod:`.dispatch` -- :class:`Request` (the fields every request is read
  for) and :class:`RequestHandler` (the token gate's verdict, then one
  handler per request name, each calling one cache operation);
* :mod:`.texts` -- :class:`ReplyTexts`, the bodies of pv_list, vg_list and
  vg_lookup, kept and reused while what they show is unchanged;
* :mod:`.dump` -- the ``dump`` text.

The token protocol itself is the table in :mod:`pylvmetad.metad.tokens`;
the state in :mod:`pylvmetad.metad.cache`.  A new request is a method of
:class:`RequestHandler` and a row of its ``_handlers`` table (plus, if it
changes state, one :class:`~pylvmetad.metad.cache.CacheState` operation).
"""

from .dispatch import Request, RequestHandler
from .dump import format_dump
from .texts import ReplyTexts, edit_pv_section, pvmeta_for_vg

__all__ = ["ReplyTexts", "Request", "RequestHandler", "edit_pv_section", "format_dump", "pvmeta_for_vg"]
