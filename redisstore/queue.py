"""A message queue on Redis with delayed delivery and leases: :class:`RedisQueue`.

It keeps the promises of :class:`storage.protocols.MessageQueue`, as
:class:`filestore.queue.FileQueue` does, for queues shared by several
machines. Keys of the queue ``name`` (``<p>`` is ``<namespace>:queue:{name}``;
the braces make Redis Cluster keep them in one slot, which scripts need)::

    <p>:ready       sorted set  message id, scored by its due time (ms)
    <p>:leased      sorted set  message id, scored by its lease expiry (ms)
    <p>:dead        sorted set  message id, scored by when it was dead-lettered (ms)
    <p>:body        hash        message id -> payload
    <p>:deliveries  hash        message id -> how often it was handed out
    <p>:key         hash        message id -> key (job id), for keyed messages
    <p>:bykey       sorted set  "<key>/<message id>", all scores 0: by key, by range
    <p>:owner       hash        message id -> the cluster holding its lease, while leased

A message is in exactly one of the three sorted sets. Every change is one
Lua script, which Redis runs alone, start to end: a claim (ready ->
leased), an acknowledgement, a lease running out or its owner found
dead (leased -> ready, or -> dead after ``max_deliveries``), a
dead-lettering. So of several consumers
on any number of machines exactly one claims a message, and a message is
never half moved; nothing is decided in Python between a read and a write.

Times come from the caller's ``clock``, not from the Redis server: the
injected clock of the tests, and the same clock the file queue uses. Hosts
sharing a queue must keep their clocks in step (NTP), as they must for
the job files' times anyway.

The ack id of a lease is ``<message id>-<deliveries>``, and a lease is
acknowledged only if the message is still leased with that delivery count:
a consumer whose lease ran out cannot remove the message's next lease.

Durability is Redis's own: with ``appendonly yes`` and ``appendfsync
everysec`` (the usual production setting) an acknowledged enqueue survives a
crash of the Redis process and at most the last second is lost in a power
cut; ``durable`` makes no difference here. Job messages survive such a loss
anyway: the recovery pass enqueues again a pending job that has no message.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Sequence

import redis

from redisstore.connection import Unavailable, reporting_unavailable
from redisstore.queue_scripts import KEY_NAMES, PRELUDE, SCRIPTS
from storage import dead_letters
from storage.messages import (
    KEY_PATTERN,
    MessageInfo,
    NewMessage,
    QueueCounts,
    State,
    check_lease_settings,
)
from storage.times import to_ms

logger = logging.getLogger(__name__)

# A queue name becomes part of a key; braces would break the hash tag.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

_MESSAGE_ID_PATTERN = re.compile(r"[0-9a-f]{20}")
_ACK_ID_PATTERN = re.compile(r"(?P<message_id>[0-9a-f]{20})-(?P<deliveries>[1-9]\d{0,5})")

# Leases expired per dequeue: bounds the time one script holds Redis when a
# whole cluster died with many leases; the rest go on the next dequeues.
_EXPIRE_BATCH = 200
# Messages removed per script by purge: same reason.
_PURGE_BATCH = 1000


class RedisQueue:
    """One named queue in Redis; see the module docstring for the keys."""

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        lease_seconds: float,
        max_deliveries: int,
        clock: Callable[[], float] = time.time,
        on_dead: Callable[[str | None, bytes], None] | None = None,
        namespace: str = "jobs",
    ) -> None:
        if NAME_PATTERN.fullmatch(name) is None:
            raise ValueError(f"invalid queue name {name!r}")
        check_lease_settings(lease_seconds, max_deliveries)
        self.client = client
        self.name = name
        self.lease_seconds = lease_seconds
        self.max_deliveries = max_deliveries
        self.clock = clock
        self.on_dead = on_dead
        self.prefix = f"{namespace}:queue:{{{name}}}"
        self._keys = [f"{self.prefix}:{part}" for part in KEY_NAMES]
        self._ready, self._leased, self._dead = self._keys[:3]
        # Set by dequeue when it found nothing more due: when the next message
        # falls due (None: nothing waiting), so a consumer can sleep until then.
        self.next_due_at: float | None = None
        # Scripts are sent by their SHA; after a Redis restart empties its
        # script cache, the client sends the source again by itself.
        self._scripts = {
            name: client.register_script(PRELUDE + source) for name, source in SCRIPTS.items()
        }

    def _run(self, script: str, *args: object) -> object:
        with reporting_unavailable(self.client):
            return self._scripts[script](keys=self._keys, args=args)

    # -- producing and consuming ---------------------------------------------

    def enqueue(
        self,
        payload: bytes | str,
        *,
        due_at: float | None = None,
        key: str | None = None,
        durable: bool = True,
    ) -> str:
        """Add a message that becomes visible at ``due_at`` (default: now); return its id.

        ``durable`` is accepted for the file queue's sake; Redis's own
        persistence settings decide (see the module docstring).
        """
        (message_id,) = self.enqueue_many([NewMessage(payload, due_at, key)], durable=durable)
        return message_id

    def enqueue_many(self, messages: Sequence[NewMessage], *, durable: bool = True) -> list[str]:
        """Add messages, in order, each as :meth:`enqueue` would; return their ids.

        One script call for them all: one round trip, in which Redis adds
        them together.
        """
        now = self.clock()
        ids: list[str] = []
        args: list[object] = []
        for message in messages:
            payload, at, key = message.checked(now)
            message_id = secrets.token_hex(10)
            ids.append(message_id)
            args += (message_id, to_ms(at), payload, key or "")
        if args:
            self._run("enqueue", *args)
        return ids

    def dequeue(self, limit: int, *, owner: str | None = None) -> list[tuple[str, bytes]]:
        """Lease up to ``limit`` due messages, oldest due first, as ``(ack_id, payload)``.

        Leases that ran out are handled first, in the same script: each goes
        back to ready (due now) or, after ``max_deliveries``, to dead.
        ``owner`` is recorded with each lease (see :meth:`release_leases_of`).
        """
        self.next_due_at = None
        if limit < 1:
            return []
        now_ms = to_ms(self.clock())
        claimed, buried, requeued, next_due = self._run(
            "dequeue",
            now_ms,
            limit,
            to_ms(self.lease_seconds),
            self.max_deliveries,
            _EXPIRE_BATCH,
            owner or "",
        )
        for message_id, deliveries, key in requeued:
            logger.warning(
                "message %s (key %s) lease ran out after delivery %d; ready again",
                message_id.decode(),
                key.decode() or None,
                deliveries,
            )
        for message_id, deliveries, key, payload in buried:
            self._report_dead(message_id.decode(), key.decode() or None, payload, deliveries)
        if next_due:
            self.next_due_at = int(float(next_due)) / 1000
        return [
            (f"{message_id.decode()}-{deliveries}", payload)
            for message_id, deliveries, payload in claimed
        ]

    def acknowledge(self, ack_id: str) -> None:
        """Remove a leased message for good; an unknown or already removed ack id is fine."""
        message_id, deliveries = _parse_ack_id(ack_id)
        self._run("acknowledge", message_id, deliveries)

    def fail(self, ack_id: str) -> None:
        """Dead-letter a leased message at once and report it through ``on_dead``."""
        message_id, deliveries = _parse_ack_id(ack_id)
        buried = self._run("fail", message_id, deliveries, to_ms(self.clock()))
        if buried is not None:
            key, payload = buried
            self._report_dead(message_id, key.decode() or None, payload, int(deliveries))

    def release_leases_of(self, owners: Iterable[str]) -> int:
        """Hand out again, due now, the leased messages of ``owners``; return how many.

        As :meth:`storage.protocols.MessageQueue.release_leases_of`: delivery
        counts are kept, a message at its last delivery is dead-lettered.
        """
        owners = sorted(set(owners))
        if not owners:
            return 0
        released, buried = self._run(
            "release_leases_of", to_ms(self.clock()), self.max_deliveries, *owners
        )
        for message_id, deliveries, key, payload in buried:
            self._report_dead(message_id.decode(), key.decode() or None, payload, deliveries)
        if released:
            logger.warning("released %d leases of dead workers %s", released, owners)
        return int(released)

    def due_within(self, seconds: float) -> int:
        """How many ready messages fall due within ``seconds`` from now (or are due)."""
        with reporting_unavailable(self.client):
            return int(self.client.zcount(self._ready, "-inf", to_ms(self.clock() + seconds)))

    def scheduled_around(self, moment: float) -> int:
        """How many ready messages fall due in the second holding ``moment`` (one ZCOUNT)."""
        start = to_ms(moment) - to_ms(moment) % 1000
        with reporting_unavailable(self.client):
            return int(self.client.zcount(self._ready, start, f"({start + 1000}"))

    def oldest_due_lateness(self) -> float:
        """How long the oldest due message has waited (0 when none is due)."""
        now_ms = to_ms(self.clock())
        with reporting_unavailable(self.client):
            first = self.client.zrange(self._ready, 0, 0, withscores=True)
        return max(0.0, (now_ms - first[0][1]) / 1000) if first and first[0][1] <= now_ms else 0.0

    # -- introspection and maintenance ------------------------------------------

    def counts(self) -> QueueCounts:
        """Messages per state; ``due`` is the part of ``ready`` that may be handed out now."""
        now_ms = to_ms(self.clock())
        with reporting_unavailable(self.client):
            pipe = self.client.pipeline(transaction=True)
            pipe.zcard(self._ready)
            pipe.zcount(self._ready, "-inf", now_ms)
            pipe.zcard(self._leased)
            pipe.zcard(self._dead)
            pipe.zrange(self._ready, 0, 0, withscores=True)
            ready, due, leased, dead, first = pipe.execute()
        lateness_ms = 0
        if first and first[0][1] <= now_ms:
            lateness_ms = now_ms - int(first[0][1])
        return {
            "ready": ready,
            "due": due,
            "leased": leased,
            "dead": dead,
            "oldest_due_lateness_seconds": lateness_ms / 1000,
        }

    def keys(self) -> set[str]:
        """Keys of all ready and leased messages: the jobs that still have a message."""
        return {key.decode() for key in self._run("live_keys")}

    def dead_keys(self) -> set[str]:
        """Keys of all dead-lettered messages."""
        return {key.decode() for key in self._run("dead_keys")}

    def find(self, key: str) -> list[MessageInfo]:
        """Every message of ``key``, in any state."""
        if KEY_PATTERN.fullmatch(key) is None:
            return []
        found = []
        for message_id, state_name, score, deliveries, owner in self._run("find", key):
            state: State = state_name.decode()
            at = int(float(score)) / 1000
            found.append(
                MessageInfo(
                    message_id=message_id.decode(),
                    key=key,
                    state=state,
                    deliveries=int(deliveries),
                    due_at=at if state == "ready" else None,
                    lease_until=at if state == "leased" else None,
                    dead_at=at if state == "dead" else None,
                    owner=(owner.decode() or None) if state == "leased" else None,
                )
            )
        return found

    def delete_key(self, key: str) -> int:
        """Remove every message of ``key`` (any state); return how many."""
        if KEY_PATTERN.fullmatch(key) is None:
            return 0
        return int(self._run("delete_key", key))

    def delete(self, message_id: str) -> bool:
        """Remove the message ``message_id`` (any state); return whether it existed."""
        if not isinstance(message_id, str) or _MESSAGE_ID_PATTERN.fullmatch(message_id) is None:
            return False
        return self._run("delete", message_id) == 1

    def purge(self) -> int:
        """Remove every ready and leased message; return how many. Dead letters are kept."""
        removed = 0
        while batch := int(self._run("purge", _PURGE_BATCH)):
            removed += batch
        return removed

    def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            with reporting_unavailable(self.client):
                return bool(self.client.ping())
        except Unavailable:
            logger.exception("queue %s is unreachable", self.prefix)
            return False

    # -- internals ------------------------------------------------------------

    def _report_dead(
        self, message_id: str, key: str | None, payload: bytes, deliveries: int
    ) -> None:
        logger.error(
            "message %s (key %s) dead-lettered after %d deliveries", message_id, key, deliveries
        )
        dead_letters.report(self.on_dead, key, payload)


def _parse_ack_id(ack_id: str) -> tuple[str, str]:
    match = _ACK_ID_PATTERN.fullmatch(ack_id) if isinstance(ack_id, str) else None
    if match is None:
        raise ValueError(f"invalid ack id {ack_id!r}")
    return match["message_id"], match["deliveries"]
