"""Where a job's photo comes from, in one package.

=================  ==========================================================
``configured``     the source and pool in use, from the settings: ``source_name()``,
                   ``take_photos()`` and ``photos_at_hand()`` (the worker task),
                   ``prefetch()`` (the worker)
``pool``           the shared pool of fetched-but-unused photos
``gate``           the rate-limit gate: when no process may call, when one probes
``unsplash``       the Unsplash API client; what each answer means
``demo``           the offline demo source
``results``        what a source returns (``PhotoBatch``, ``RESULT_KEYS``, ``BATCH_SIZE``)
``errors``         ``PhotoSourceError`` and its kinds: transient, rate limited, permanent
=================  ==========================================================

The pool's storage is ``filestore.photo_pool`` or ``redisstore.photo_pool`` (see ``jobs.backends``).
"""

from jobs.photos.configured import (
    PREFETCH_HORIZON,
    photos_at_hand,
    pool,
    prefetch,
    put_back,
    source,
    source_name,
    take_photos,
)
from jobs.photos.demo import DemoSource
from jobs.photos.errors import (
    PermanentPhotoError,
    PhotoSourceError,
    RateLimited,
    TransientPhotoError,
)
from jobs.photos.gate import RateLimitGate
from jobs.photos.pool import KEEP_UNUSED_SECONDS, REFILL_CALLS, PhotoPool
from jobs.photos.results import BATCH_SIZE, RESULT_KEYS, URL_SIZES, PhotoBatch, utm_link
from jobs.photos.unsplash import UnsplashSource

__all__ = [
    "BATCH_SIZE",
    "KEEP_UNUSED_SECONDS",
    "PREFETCH_HORIZON",
    "REFILL_CALLS",
    "RESULT_KEYS",
    "URL_SIZES",
    "DemoSource",
    "PermanentPhotoError",
    "PhotoBatch",
    "PhotoPool",
    "PhotoSourceError",
    "RateLimitGate",
    "RateLimited",
    "TransientPhotoError",
    "UnsplashSource",
    "photos_at_hand",
    "pool",
    "prefetch",
    "put_back",
    "source",
    "source_name",
    "take_photos",
    "utm_link",
]
