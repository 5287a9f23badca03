"""Connecting to Redis, and the one error callers see when it is out of reach.

Every operation of this package raises :class:`Unavailable` when Redis
cannot be reached (down, restarting, loading its data, the network gone).
It is the contracts' :class:`storage.errors.StoreUnavailable`, a
:class:`ConnectionError`, hence an :class:`OSError`, so code that
already treats a failing disk as "storage unavailable, try again" treats a
failing Redis the same way; the web layer maps it to ``503``.

Reconnecting needs no code: the client's pool drops a broken connection
and opens a new one on the next call. A pooled connection that died while
idle (the server restarted) fails on first use, so a call that failed to
connect or lost its connection is retried once, at once, on a fresh one.
That retry may run a command twice if the connection broke after the
command reached the server; every command here is either idempotent or
safe to repeat under at-least-once delivery (a second copy of a message, a
lease that runs out unused), and timeouts are not retried at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from storage.errors import StoreUnavailable

DEFAULT_TIMEOUT_SECONDS = 5.0


class Unavailable(StoreUnavailable):
    """Redis cannot be reached now; the same call may succeed later."""


def connect(url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``), bytes in and out."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # The client's default retries three times with backoff of up to
        # ten seconds: a web request would hang instead of answering 503.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        retry_on_error=[],
        decode_responses=False,
    )


def describe(client: redis.Redis) -> str:
    """``host:port/db`` of a client, for messages (never its password)."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


@contextlib.contextmanager
def reporting_unavailable(client: redis.Redis) -> Iterator[None]:
    """Turn the client's connection and timeout errors into :class:`Unavailable`."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise Unavailable(f"Redis at {describe(client)} is unavailable: {exc}") from exc
