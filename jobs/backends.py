"""Which backend keeps the moving parts: files on one machine, or Redis for several.

``JOBS_REDIS_URL`` decides. Unset (the default), the event log, the photo
pool with its rate-limit gate, and the worker heartbeats are files in the
data directory, and the queue is :class:`filestore.broker.FileBroker`.
Set, all of them live in that Redis, so web servers and workers on several
hosts share them; job files and idempotency records stay files in the data
directory either way, on a volume every host mounts.

This module is the one place that knows which backend is in use; the rest
of the job domain asks it for a store and uses the store's contract
(:mod:`storage.protocols`). The
queue is the exception only in where the choice is written down: django-q2
reads its broker class from ``Q_CLUSTER["broker_class"]``, which
``jobsite/settings.py`` sets from the same ``JOBS_REDIS_URL``;
:func:`jobs.store.broker` returns it.

Each store is built once per process and configuration (tests change the
data directory and the URL between tests).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from filestore.eventlog import FileEventLog
from filestore.heartbeats import FileHeartbeats
from filestore.photo_pool import FilePhotoPoolStore
from jobs import store
from redisstore.broker import client
from redisstore.eventlog import RedisEventLog
from redisstore.heartbeats import RedisHeartbeats
from redisstore.photo_pool import RedisPhotoPoolStore
from storage.protocols import EventLog, HeartbeatStore, PhotoPoolStore

FILES = "files"
REDIS = "redis"


def redis_url() -> str | None:
    return getattr(settings, "JOBS_REDIS_URL", None) or None


def in_use() -> str:
    """``"redis"`` or ``"files"``: where the queue, events, pool and heartbeats live."""
    return REDIS if redis_url() else FILES


def event_log() -> EventLog:
    """The log of job changes that every event stream follows."""
    return _event_log(store.data_dir(), redis_url())


@functools.cache
def _event_log(root: Path, url: str | None) -> EventLog:
    if url:
        return RedisEventLog(client(url))
    return FileEventLog(root / "events")


def photo_pool_store(*, ttl_seconds: float) -> PhotoPoolStore:
    """Where the photo pool keeps unused photos (for ``ttl_seconds``) and the gate's state."""
    return _photo_pool_store(store.data_dir(), redis_url(), ttl_seconds)


@functools.cache
def _photo_pool_store(root: Path, url: str | None, ttl_seconds: float) -> PhotoPoolStore:
    if url:
        return RedisPhotoPoolStore(client(url), ttl_seconds=ttl_seconds)
    return FilePhotoPoolStore(root / "photos", root / "tmp", ttl_seconds=ttl_seconds)


def heartbeats() -> HeartbeatStore:
    """The worker processes' heartbeats, read by the health report."""
    return _heartbeats(store.data_dir(), redis_url())


@functools.cache
def _heartbeats(root: Path, url: str | None) -> HeartbeatStore:
    if url:
        return RedisHeartbeats(client(url))
    return FileHeartbeats(root / "worker", root / "tmp")
