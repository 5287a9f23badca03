"""The photo source in use: now :mod:`jobs.photos` (``jobs.photos.configured``).

Kept so that ``from jobs import photo_source`` goes on working; new code
imports ``from jobs import photos`` and calls ``photos.take_photo()``,
``photos.prefetch()``, ``photos.source_name()`` and ``photos.pool()``.
"""

from jobs.photos.configured import PREFETCH_HORIZON, pool, prefetch, source, source_name, take_photo

__all__ = ["PREFETCH_HORIZON", "pool", "prefetch", "source", "source_name", "take_photo"]
