"""Worker heartbeats in Redis: :class:`RedisHeartbeats`.

The same contract as the heartbeat files
(:class:`storage.protocols.HeartbeatStore`), for workers on several
machines. Keys (``<p>`` is ``<namespace>:heartbeat``)::

    <p>:<worker>   string      the heartbeat (JSON), expiring after ``ttl_seconds``
    <p>s           sorted set  worker, scored by the ``at`` of its last beat

A killed worker never removes its heartbeat; its key expires by itself, so
Redis holds no more than the workers of the last ``ttl_seconds``. The
sorted set finds the newest beat in one step however many workers there
were; members whose key expired are dropped when the newest is looked up
and by :meth:`RedisHeartbeats.prune`. The TTL must be longer than the age
at which the health report calls a worker dead, or a stopped worker would
read as "never seen" rather than "silent for N seconds".
"""

from __future__ import annotations

import json
from typing import Any

import redis

from redisstore.connection import reporting_unavailable
from storage.heartbeats import MAX_BYTES, check_worker, valid_heartbeat

DEFAULT_TTL_SECONDS = 24 * 3600
# How many of the newest workers one lookup reads; only expired ones are skipped.
_LOOKUP = 16


class RedisHeartbeats:
    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = "jobs",
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds!r}")
        self.client = client
        self.prefix = f"{namespace}:heartbeat"
        self.index = f"{self.prefix}s"
        self.ttl_ms = int(ttl_seconds * 1000)

    def _key(self, worker: str | bytes) -> str:
        if isinstance(worker, bytes):
            worker = worker.decode()
        return f"{self.prefix}:{worker}"

    def beat(self, worker: str, heartbeat: dict[str, Any]) -> None:
        beat = valid_heartbeat(heartbeat)
        if beat is None:
            raise ValueError("a heartbeat is a JSON object with a finite 'at'")
        payload = json.dumps(heartbeat, separators=(",", ":"))
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=True)
            pipe.set(self._key(check_worker(worker)), payload, px=self.ttl_ms)
            pipe.zadd(self.index, {worker: beat["at"]})
            pipe.execute()

    def remove(self, worker: str) -> None:
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key(check_worker(worker)))
            pipe.zrem(self.index, worker)
            pipe.execute()

    def latest(self) -> dict[str, Any] | None:
        with reporting_unavailable(self.client):
            while True:
                workers = self.client.zrevrange(self.index, 0, _LOOKUP - 1)
                if not workers:
                    return None
                values = self.client.mget([self._key(worker) for worker in workers])
                expired = []
                newest = None
                for worker, value in zip(workers, values, strict=True):
                    if value is None:
                        expired.append(worker)
                        continue
                    beat = _parse(value)
                    if beat is not None and (newest is None or beat["at"] > newest["at"]):
                        newest = beat
                if expired:
                    self.client.zrem(self.index, *expired)
                if newest is not None or not expired:
                    return newest

    def beats(self) -> list[dict[str, Any]]:
        with reporting_unavailable(self.client):
            workers = self.client.zrange(self.index, 0, -1)
            if not workers:
                return []
            values = self.client.mget([self._key(worker) for worker in workers])
        beats = (_parse(value) for value in values if value is not None)
        return [beat for beat in beats if beat is not None]

    def prune(self, *, before: float) -> int:
        with reporting_unavailable(self.client):
            gone = self.client.zrangebyscore(self.index, "-inf", f"({before}")
            if not gone:
                return 0
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(*(self._key(worker) for worker in gone))
            pipe.zrem(self.index, *gone)
            pipe.execute()
        return len(gone)


def _parse(value: bytes) -> dict[str, Any] | None:
    if len(value) > MAX_BYTES:
        return None
    try:
        return valid_heartbeat(json.loads(value))
    except (ValueError, RecursionError):
        return None
