"""The photo source in use, built from the settings, behind the shared pool."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from django.conf import settings

from filestore.photo_pool import PhotoPool
from jobs import clock, store
from jobs.photos import DemoSource, UnsplashSource


def source_name() -> str:
    return "unsplash" if settings.UNSPLASH_ACCESS_KEY else "demo"


@functools.cache
def _source(access_key: str, api_url: str, app_name: str, static_url: str) -> Any:
    if access_key:
        return UnsplashSource(api_url=api_url, access_key=access_key, app_name=app_name)
    return DemoSource(static_url=static_url, app_name=app_name)


def source() -> Any:
    return _source(
        settings.UNSPLASH_ACCESS_KEY,
        settings.UNSPLASH_API_URL,
        settings.UNSPLASH_APP_NAME,
        settings.STATIC_URL,
    )


@functools.cache
def _pool(root: Path) -> PhotoPool:
    # The pool's gate and the jobs' next attempts must read the same clock:
    # a job told to come back when the gate opens must find it open.
    return PhotoPool(root / "photos", root / "tmp", clock=lambda: clock.now())


def pool() -> PhotoPool:
    return _pool(store.data_dir())


def take_photo() -> dict[str, Any]:
    """One photo for one job: from the pool, or from a fresh batch of the source."""
    return pool().take(source().fetch_batch, batch_size=30)


# Jobs falling due within this many seconds get their photos fetched ahead.
PREFETCH_HORIZON = 5.0


def prefetch() -> int:
    """Fetch photos ahead for the jobs about to fall due; return the calls made.

    Without it, a burst of due jobs waits behind one fetch after another
    (each serves 30 jobs). Only jobs already queued to run within seconds
    count, so no photo is fetched for nobody, and calls per job stay the
    same.
    """
    due = store.broker().due_within(PREFETCH_HORIZON)
    if due == 0 or pool().size() >= due:
        return 0
    return pool().refill(source().fetch_batch, want=due, batch_size=30)
