"""The django-q2 broker on Redis: :class:`storage.broker.QueueBroker` over a :class:`RedisQueue`.

Configured with ``Q_CLUSTER["broker_class"] = "redisstore.broker.RedisBroker"``.
Like :class:`filestore.broker.FileBroker`, it does with messages what the
base class does, with the same settings and the same lease
(``Q_CLUSTER["retry"]`` seconds), plus

- ``JOBS_REDIS_URL`` (required): ``redis://host:port/db``.

With Redis out of reach, putting a message on the queue raises
:class:`redisstore.Unavailable` (nothing is acknowledged to the client
that asked for it), while the worker's side waits and tries again: the
pusher does not die, and an acknowledgement that cannot be sent leaves the
lease to run out, after which the (idempotent) task runs again.
"""

from __future__ import annotations

import functools
import logging
import time

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_q.conf import Conf

from redisstore.connection import Unavailable, connect, describe
from redisstore.queue import NAME_PATTERN, RedisQueue
from storage import dead_letters
from storage.broker import QueueBroker, max_deliveries

logger = logging.getLogger(__name__)

# How long the pusher waits before asking an unreachable Redis again.
RECONNECT_PAUSE_SECONDS = 1.0


class RedisBroker(QueueBroker):
    """Task messages in Redis; see :mod:`redisstore.queue` for the keys."""

    connection: RedisQueue

    @staticmethod
    def get_connection(list_key: str | None = None) -> RedisQueue:
        return open_queue(list_key or Conf.CLUSTER_NAME)

    def dequeue(self) -> list[tuple[str, str]] | None:
        try:
            messages = super().dequeue()
        except Unavailable as exc:
            # django-q2's pusher stops for good on an exception from here;
            # waiting and asking again is what makes the worker reconnect.
            logger.warning(
                "queue unavailable, asking again in %.0f s: %s", RECONNECT_PAUSE_SECONDS, exc
            )
            time.sleep(RECONNECT_PAUSE_SECONDS)
            return None
        return messages

    # The base broker's, which also take the ack ids of a batch.
    def acknowledge(self, task_id: str) -> None:
        try:
            super().acknowledge(task_id)
        except Unavailable:
            logger.warning("could not acknowledge %s; its lease will run out", task_id)

    def fail(self, task_id: str) -> None:
        try:
            super().fail(task_id)
        except Unavailable:
            logger.warning("could not dead-letter %s; its lease will run out", task_id)

    def info(self) -> str:
        if not self._info:
            self._info = f"Redis queue {describe(self.connection.client)} {self.connection.prefix}"
        return self._info


def open_queue(name: str) -> RedisQueue:
    """The queue ``name`` as the settings describe it."""
    if NAME_PATTERN.fullmatch(name) is None:
        raise ImproperlyConfigured(f"queue name {name!r} cannot be used in a Redis key")
    url = getattr(settings, "JOBS_REDIS_URL", None)
    if not url:
        raise ImproperlyConfigured("JOBS_REDIS_URL must be set to use the Redis broker")
    return RedisQueue(
        client(url),
        name,
        lease_seconds=Conf.RETRY,
        max_deliveries=max_deliveries(),
        on_dead=dead_letters.registered(),
    )


@functools.cache
def client(url: str) -> redis.Redis:
    """One client (one connection pool) per URL and process, shared by its users."""
    try:
        return connect(url)
    except ValueError as exc:
        # Not the URL itself: it may carry a password.
        raise ImproperlyConfigured(f"JOBS_REDIS_URL is not a Redis URL: {exc}") from exc
