"""Storage on Redis, for several machines: the queue and its broker, the change-event
log, the photo pool and its gate, the worker heartbeats.

Plain Python and the ``redis`` client, beside :mod:`filestore`: both keep
the contracts of :mod:`storage.protocols`, and neither imports the other
nor ``jobs``. Every operation raises :class:`Unavailable` when Redis
cannot be reached.
"""

from redisstore.connection import Unavailable, connect

__all__ = ["Unavailable", "connect"]
