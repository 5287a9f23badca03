"""The photo pool and the rate-limit gate's state in Redis: :class:`RedisPhotoPoolStore`.

The same contract as the pool's files (:class:`storage.protocols.PhotoPoolStore`),
so the workers of every host share one pool and one Unsplash budget. Keys (``<p>`` is
``<namespace>:photos``; the braces keep them in one Redis Cluster slot,
which the scripts need)::

    <p>:{pool}:order    sorted set  entry id, scored by its fetch time (ms)
    <p>:{pool}:entries  hash        entry id -> the photo (JSON)
    <p>:gate            string      the gate's state (JSON)
    <p>:fetch-lock      string      the fetch lock's owner token, with a lease

An entry id is ``<fetched ms>-<batch>-<index>`` (13-digit ms, 8 hex
digits, 3-digit index), so entries of one fetch time sort in batch order.

Why each photo goes to exactly one caller: a claim is one Lua script that
drops the expired entries, pops the oldest ones and deletes their photos; Redis
runs a script alone, start to end, so no two callers can pop the same
entry. A batch is added in one transaction: other callers see all of it
or none.

The fetch lock is a lease (``SET NX PX``) renewed by a thread of its holder
while it is held, so a holder that dies frees it within one lease, and a
long fetch (a slow source, a refill of several batches) keeps it. Release
deletes the key only if it still holds the holder's token.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from redisstore.connection import Unavailable, reporting_unavailable

logger = logging.getLogger(__name__)

LOCK_LEASE_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.05

# KEYS: order, entries. ARGV: now ms, ttl ms, count. Returns up to count photos (JSON).
_TAKE = """
local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
    redis.call('HDEL', KEYS[2], unpack(expired))
end
local taken = {}
local wanted = tonumber(ARGV[3])
while #taken < wanted do
    local first = redis.call('ZPOPMIN', KEYS[1])
    if #first == 0 then
        break
    end
    local photo = redis.call('HGET', KEYS[2], first[1])
    redis.call('HDEL', KEYS[2], first[1])
    if photo then
        taken[#taken + 1] = photo
    end
end
return taken
"""

# KEYS: order, entries. Returns how many photos were removed.
_CLEAR = """
local removed = redis.call('ZCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return removed
"""

# KEYS: lock. ARGV: token, lease ms. Returns 1 if the token still held it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisPhotoPoolStore:
    """:class:`~storage.protocols.PhotoPoolStore` in Redis (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl_seconds: float,
        namespace: str = "jobs",
        lock_lease_seconds: float = LOCK_LEASE_SECONDS,
    ) -> None:
        if lock_lease_seconds <= 0:
            raise ValueError(f"lock_lease_seconds must be positive, not {lock_lease_seconds!r}")
        self.client = client
        self.ttl_ms = int(ttl_seconds * 1000)
        prefix = f"{namespace}:photos"
        self.order_key = f"{prefix}:{{pool}}:order"
        self.entries_key = f"{prefix}:{{pool}}:entries"
        self.gate_key = f"{prefix}:gate"
        self.lock_key = f"{prefix}:fetch-lock"
        self.lock_lease_ms = int(lock_lease_seconds * 1000)
        self._take = client.register_script(_TAKE)
        self._clear = client.register_script(_CLEAR)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # --- Photos ---

    def take_many(self, count: int, now: float, *, flush: bool = True) -> list[dict[str, Any]]:
        # A claim is one script run: as durable as Redis keeps anything, at once.
        if count < 1:
            return []
        with reporting_unavailable(self.client):
            popped = self._take(
                keys=[self.order_key, self.entries_key], args=[_ms(now), self.ttl_ms, count]
            )
        taken = []
        for photo in popped:
            try:
                taken.append(json.loads(photo))
            except ValueError:
                # Popped already: an unreadable entry cannot come back.
                logger.error("Discarded an unreadable photo pool entry")
        return taken

    def claim_paths(self) -> list[str]:
        return []

    def add(self, photos: list[dict[str, Any]], now: float) -> None:
        if not photos:
            return
        stamp = f"{_ms(now):013d}-{secrets.token_hex(4)}"
        ids = [f"{stamp}-{index:03d}" for index in range(len(photos))]
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(
                self.entries_key,
                mapping={
                    entry: json.dumps(photo, separators=(",", ":"))
                    for entry, photo in zip(ids, photos, strict=True)
                },
            )
            pipe.zadd(self.order_key, dict.fromkeys(ids, _ms(now)))
            pipe.execute()

    def size(self, now: float) -> int:
        with reporting_unavailable(self.client):
            return int(self.client.zcount(self.order_key, f"({_ms(now) - self.ttl_ms}", "+inf"))

    def clear(self) -> int:
        with reporting_unavailable(self.client):
            return int(self._clear(keys=[self.order_key, self.entries_key]))

    # --- The gate ---

    @contextlib.contextmanager
    def fetch_lock(self) -> Iterator[None]:
        token = secrets.token_hex(16)
        self._acquire(token)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._keep, args=(token, stop), name="photo-fetch-lock", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                with reporting_unavailable(self.client):
                    self._release(keys=[self.lock_key], args=[token])
            except Unavailable:
                logger.warning("Could not release the photo fetch lock; its lease will run out")

    def _acquire(self, token: str) -> None:
        # Like flock(LOCK_EX): wait as long as it takes. A holder that died
        # frees the lock within one lease.
        while True:
            with reporting_unavailable(self.client):
                if self.client.set(self.lock_key, token, nx=True, px=self.lock_lease_ms):
                    return
            time.sleep(LOCK_POLL_SECONDS)

    def _keep(self, token: str, stop: threading.Event) -> None:
        """Renew the lease at a third of its length until ``stop`` is set."""
        while not stop.wait(self.lock_lease_ms / 3000):
            try:
                with reporting_unavailable(self.client):
                    if not self._renew(keys=[self.lock_key], args=[token, self.lock_lease_ms]):
                        logger.warning("The photo fetch lock was lost while held")
                        return
            except Unavailable:
                continue  # try again at the next renewal; the lease may still hold

    def read_gate(self) -> dict[str, Any]:
        with reporting_unavailable(self.client):
            stored = self.client.get(self.gate_key)
        if stored is None:
            return {}
        try:
            state = json.loads(stored)
        except ValueError:
            logger.warning("Ignoring an unreadable photo rate-limit state in %s", self.gate_key)
            return {}
        return state if isinstance(state, dict) else {}

    def write_gate(self, state: dict[str, Any]) -> None:
        with reporting_unavailable(self.client):
            self.client.set(self.gate_key, json.dumps(state, separators=(",", ":")))


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
