"""One photo at a time, the way the tests take them (the worker takes one per job of a batch)."""

from __future__ import annotations

from typing import Any

from jobs.photos import PhotoPool, PhotoSourceError
from jobs.photos.results import Fetch
from storage.protocols import PhotoPoolStore


def take(pool: PhotoPool, fetch: Fetch, **options: Any) -> dict[str, Any]:
    """One photo from ``pool``; raises the error that would stand in for it."""
    [photo] = pool.take_many(fetch, 1, **options)
    if isinstance(photo, PhotoSourceError):
        raise photo
    return photo


def take_one(store: PhotoPoolStore, now: float) -> dict[str, Any] | None:
    """One photo claimed from ``store`` at ``now``, or ``None`` when none is fresh."""
    taken = store.take_many(1, now)
    return taken[0] if taken else None
