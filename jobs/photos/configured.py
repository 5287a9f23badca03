"""The photo source and pool in use, built once per process from the settings.

:func:`source_name` is the one place that decides which source runs:
Unsplash when ``UNSPLASH_ACCESS_KEY`` is set, the offline demo otherwise.
The worker task calls :func:`take_photos`, the worker's prefetch thread
:func:`prefetch`; the admin and ``jobs health`` read :func:`source_name`
and ``pool().rate_limit_state()``.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings

from jobs import backends, clock, store
from jobs.photos.demo import DemoSource
from jobs.photos.errors import PhotoSourceError
from jobs.photos.pool import KEEP_UNUSED_SECONDS, PhotoPool
from jobs.photos.unsplash import UnsplashSource
from storage.protocols import PhotoPoolStore

# Jobs falling due within this many seconds get their photos fetched ahead.
PREFETCH_HORIZON = 5.0


def source_name() -> str:
    """``"unsplash"`` or ``"demo"``: the source jobs get their photos from."""
    return UnsplashSource.name if settings.UNSPLASH_ACCESS_KEY else DemoSource.name


def source() -> UnsplashSource | DemoSource:
    if source_name() == UnsplashSource.name:
        return _unsplash(
            settings.UNSPLASH_ACCESS_KEY, settings.UNSPLASH_API_URL, settings.UNSPLASH_APP_NAME
        )
    return _demo(settings.STATIC_URL, settings.UNSPLASH_APP_NAME)


@functools.cache
def _unsplash(access_key: str, api_url: str, app_name: str) -> UnsplashSource:
    # One per process and key: its session keeps connections to the API open.
    return UnsplashSource(api_url=api_url, access_key=access_key, app_name=app_name)


@functools.cache
def _demo(static_url: str, app_name: str) -> DemoSource:
    return DemoSource(static_url=static_url, app_name=app_name)


def pool() -> PhotoPool:
    return _pool(backends.photo_pool_store(ttl_seconds=KEEP_UNUSED_SECONDS))


@functools.cache
def _pool(pool_store: PhotoPoolStore) -> PhotoPool:
    # The pool's gate and the jobs' next attempts must read the same clock:
    # a job told to come back when the gate opens must find it open.
    return PhotoPool(pool_store, clock=lambda: clock.now())


def take_photos(count: int) -> list[dict[str, Any] | PhotoSourceError]:
    """Photos for ``count`` jobs run together: each a photo, or the error that stands in for it."""
    return pool().take_many(source().fetch_batch, count)


def photos_at_hand(count: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Up to ``count`` photos already in the pool, without calling the source, and the
    paths to flush before any of them is shown (their claims are not flushed yet: the
    caller flushes these with the job files it writes; none when nothing was taken)."""
    at_hand = pool()
    taken = at_hand.take_at_hand(count, flush=False)
    return taken, at_hand.claim_paths() if taken else []


def put_back(photos: list[dict[str, Any]]) -> None:
    """Return unused photos from :func:`photos_at_hand` to the pool (none: nothing done)."""
    pool().put_back(photos)


def prefetch() -> int:
    """Fetch photos ahead for the jobs about to fall due; return the calls made.

    Without it, a burst of due jobs waits behind one fetch after another
    (each serves one batch of jobs). Only jobs already queued to run within
    seconds count, so no photo is fetched for nobody, and calls per job stay
    the same.
    """
    due = store.broker().due_within(PREFETCH_HORIZON)
    if due == 0 or pool().size() >= due:
        return 0
    return pool().refill(source().fetch_batch, want=due)
