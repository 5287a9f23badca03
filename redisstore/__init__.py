"""Storage on Redis, for several machines: the queue and the change-event log.

Plain Python and the ``redis`` client, like :mod:`filestore`, whose
interfaces it implements; it never imports ``jobs``. Every operation raises
:class:`Unavailable` when Redis cannot be reached.
"""

from redisstore.connection import Unavailable, connect

__all__ = ["Unavailable", "connect"]
