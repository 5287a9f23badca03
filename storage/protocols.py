"""The storage contracts: what the job layer asks of each moving part, whatever keeps it.

Each part has two implementations, files on one machine (:mod:`filestore`)
and Redis for several (:mod:`redisstore`); ``jobs.backends`` picks one, and
the job layer is written against these Protocols only. The contract tests
(``tests/contract/``) run the same tests against both.

- :class:`MessageQueue`: ``filestore.queue.FileQueue``, ``redisstore.queue.RedisQueue``;
- :class:`SchedulingBroker`: ``filestore.broker.FileBroker``,
  ``redisstore.broker.RedisBroker`` (both :class:`storage.broker.QueueBroker`);
  with the queues, they share :class:`KeyedQueue`, what is asked of messages by key;
- :class:`EventLog`: ``filestore.eventlog.FileEventLog``,
  ``redisstore.eventlog.RedisEventLog``;
- :class:`PhotoPoolStore`, with the :class:`RateLimitGateStore` it includes:
  ``filestore.photo_pool.FilePhotoPoolStore``,
  ``redisstore.photo_pool.RedisPhotoPoolStore``;
- :class:`HeartbeatStore`: ``filestore.heartbeats.FileHeartbeats``,
  ``redisstore.heartbeats.RedisHeartbeats``.

The values they exchange live beside this module: :mod:`storage.messages`
(a queue's messages and counts), :mod:`storage.events` (``EventsLost``),
:mod:`storage.heartbeats` (what a heartbeat is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from storage.dead_letters import DeadLetterHandler
from storage.messages import MessageInfo, NewMessage, QueueCounts

# --- the queue and its broker ----------------------------------------------------------


class KeyedQueue(Protocol):
    """A queue's messages as the job layer and operators see them: by due time and by key.

    A *key* is the id of the job a message belongs to. :meth:`due_within`,
    :meth:`scheduled_around` and :meth:`oldest_due_lateness` are cheap
    (admission asks them per create, health per second); the others may
    scan every message: they are for operators, recovery and health checks,
    not for every request.
    """

    def due_within(self, seconds: float) -> int:
        """How many messages fall due within ``seconds`` from now (or are due)."""
        ...

    def scheduled_around(self, moment: float) -> int:
        """How many messages fall due in the second holding ``moment``."""
        ...

    def oldest_due_lateness(self) -> float:
        """How long the oldest due message has waited, in seconds (0 when none is due)."""
        ...

    def counts(self) -> QueueCounts: ...

    def keys(self) -> set[str]:
        """Keys of every ready or leased message: the jobs that still have a message."""
        ...

    def dead_keys(self) -> set[str]:
        """Keys of every dead-lettered message."""
        ...

    def find(self, key: str) -> list[MessageInfo]:
        """Every message of ``key``, in any state."""
        ...

    def delete_key(self, key: str) -> int:
        """Remove every message of ``key`` (any state); return how many."""
        ...

    def release_leases_of(self, owners: Iterable[str]) -> int:
        """Hand out again, due now, the leased messages of ``owners``; return how many.

        An owner is a worker cluster (:mod:`storage.owners`), recorded in
        each lease it takes. For owners known dead, whose leases would
        otherwise only run out. Delivery counts are kept, so a message is
        still dead-lettered after too many deliveries.
        """
        ...

    def ping(self) -> bool:
        """Whether messages can be put on the queue now."""
        ...


class MessageQueue(KeyedQueue, Protocol):
    """One named queue with delayed delivery, leases and dead letters.

    A message becomes visible at its due time; :meth:`dequeue` leases it
    to one consumer for ``lease_seconds``; a lease that runs out hands it
    out again, and after ``max_deliveries`` deliveries it is dead-lettered
    and ``on_dead(key, payload)`` is called once. Times are epoch seconds
    from ``clock``, kept to whole milliseconds.
    """

    lease_seconds: float
    max_deliveries: int
    clock: Callable[[], float]
    on_dead: DeadLetterHandler | None
    # Set by dequeue when it found nothing more due: when the next message
    # falls due (None: nothing waiting), so a consumer can sleep until then.
    next_due_at: float | None

    def enqueue(
        self,
        payload: bytes | str,
        *,
        due_at: float | None = None,
        key: str | None = None,
        durable: bool = True,
    ) -> str:
        """Add a message that becomes visible at ``due_at`` (default: now); return its id.

        ``durable=False`` may lose it in a power cut, for callers that can
        enqueue it again from state of their own.
        """
        ...

    def enqueue_many(self, messages: Sequence[NewMessage], *, durable: bool = True) -> list[str]:
        """Add several messages, in order, as :meth:`enqueue` would; return their ids.

        Every key is checked before any message is added (``ValueError``).
        A failure part way raises, and the messages added before it stay,
        as after as many :meth:`enqueue` calls. The point is the cost: one
        call (one round trip, one flush per directory) for the batch.
        """
        ...

    def dequeue(self, limit: int, *, owner: str | None = None) -> list[tuple[str, bytes]]:
        """Lease up to ``limit`` due messages, oldest due first, as ``(ack_id, payload)``.

        ``owner`` (a :mod:`storage.owners` identity) is recorded in each
        lease, so :meth:`release_leases_of` can take them back once it died.
        """
        ...

    def acknowledge(self, ack_id: str) -> None:
        """Remove a leased message for good; an unknown or already removed ack id is fine."""
        ...

    def fail(self, ack_id: str) -> None:
        """Dead-letter a leased message at once and report it through ``on_dead``."""
        ...

    def delete(self, message_id: str) -> bool:
        """Remove the message ``message_id`` (any state); return whether it existed."""
        ...

    def purge(self) -> int:
        """Remove every ready and leased message; return how many. Dead letters are kept."""
        ...


@runtime_checkable
class SchedulingBroker(KeyedQueue, Protocol):
    """A django-q2 broker that runs tasks at a given time and reports on them by key.

    django-q2's ``Broker`` class covers what the cluster needs (enqueue a
    signed package, dequeue, acknowledge, fail). The job layer needs more:
    putting a job's run on the queue for a given time, and asking which jobs
    have messages in which state (:class:`KeyedQueue`).
    """

    def schedule(
        self, func: str, *, key: str, due_at: float, durable: bool = True, batch: bool = False
    ) -> str:
        """Have the cluster call ``func(key)`` once ``due_at`` (epoch seconds) has come.

        With ``batch``, ``func`` takes a list of keys instead, and messages of
        ``func`` due together are delivered in one call: ``func([key, ...])``.

        Never earlier than ``due_at``; at least once (a delivery whose worker
        dies is made again, until the broker gives up and dead-letters it).
        Returns the message id. ``durable=False`` may lose the message in a
        power cut, for callers that can schedule it again from state of
        their own.
        """
        ...

    def schedule_many(
        self,
        func: str,
        runs: Sequence[tuple[str, float]],
        *,
        durable: bool = True,
        batch: bool = False,
    ) -> list[str]:
        """:meth:`schedule` for each ``(key, due_at)`` of ``runs``, in one call to the queue.

        Returns the message ids, in order; fails as
        :meth:`MessageQueue.enqueue_many` does (the runs scheduled before a
        failure stay scheduled).
        """
        ...


# --- the event log ---------------------------------------------------------------------


class EventLog(Protocol):
    """An append-only log of change events shared by every process, read by position.

    Positions are integers that grow with every event: an event's id is the
    position to read on from to get the events after it (what a client
    sends back as ``Last-Event-ID``). Events are notifications, not state:
    a log may drop old ones, and then says so.
    """

    def append(self, event: dict[str, Any]) -> object:
        """Add ``event`` (a JSON object) at the end of the log."""
        ...

    def append_many(self, events: list[dict[str, Any]]) -> None:
        """Add ``events`` at the end of the log, in order, with one write where it can."""
        ...

    def latest_id(self) -> int:
        """The position just past the newest event: reading after it yields only new events."""
        ...

    def read_after(self, position: int, *, limit: int = 1000) -> tuple[list[tuple[int, dict]], int]:
        """Up to ``limit`` events after ``position`` as ``(id, event)``, and where to go on from.

        ``position`` is a value returned earlier by this method, by
        :meth:`latest_id`, an event id, or 0 for every event kept. Raises
        :class:`storage.events.EventsLost` when events after ``position``
        are no longer kept, or the log never reached it (it started over).
        """
        ...


# --- the photo pool and the rate-limit gate --------------------------------------------


class RateLimitGateStore(Protocol):
    """Where the photo source's rate-limit gate keeps its state, shared by every worker."""

    def fetch_lock(self) -> AbstractContextManager[None]:
        """Held by the one caller, of all processes, that may fetch and write the gate."""
        ...

    def read_gate(self) -> dict[str, Any]:
        """The gate's state as last written (``{}`` if never written or unreadable)."""
        ...

    def write_gate(self, state: dict[str, Any]) -> None:
        """Replace the gate's state at once (call with :meth:`fetch_lock` held)."""
        ...


class PhotoPoolStore(RateLimitGateStore, Protocol):
    """What the photo pool needs of its storage, shared by every worker process.

    Photos are opaque JSON objects here. ``now`` is passed in, so the pool's
    one clock decides what has expired. The pool's fetch lock is the gate's.
    """

    def take_many(self, count: int, now: float, *, flush: bool = True) -> list[dict[str, Any]]:
        """Claim up to ``count`` photos no other caller gets, oldest first, in one pass.

        Fewer (none) when fewer are fresh; photos older than the store's time
        to live are discarded on the way. The claims are durable on return;
        with ``flush=False`` they are durable once :meth:`claim_paths` are
        flushed, which the caller does before it shows any of the photos
        (with a flush of its own that it makes anyway).
        """
        ...

    def claim_paths(self) -> list[str]:
        """What to flush to make the claims of ``take_many(flush=False)`` durable
        (nothing for a store whose claims are durable at once)."""
        ...

    def add(self, photos: list[dict[str, Any]], now: float) -> None:
        """Keep a batch of photos fetched at ``now``, durably as a whole."""
        ...

    def size(self, now: float) -> int:
        """How many fresh photos wait."""
        ...

    def clear(self) -> int:
        """Discard every photo; return how many were removed."""
        ...


# --- worker heartbeats -----------------------------------------------------------------


class HeartbeatStore(Protocol):
    """The heartbeats of the worker processes, shared by every process that reads them.

    A heartbeat is a JSON object with ``at`` (epoch seconds of the beat)
    and whatever the worker adds; ``worker`` names one worker process
    (see :mod:`storage.heartbeats`).
    """

    def beat(self, worker: str, heartbeat: dict[str, Any]) -> None:
        """Replace ``worker``'s heartbeat."""
        ...

    def remove(self, worker: str) -> None:
        """Forget ``worker`` (it stopped cleanly); unknown workers are fine."""
        ...

    def latest(self) -> dict[str, Any] | None:
        """The heartbeat with the newest ``at`` of any worker, or None."""
        ...

    def beats(self) -> list[dict[str, Any]]:
        """The last heartbeat of every worker not forgotten yet, in no order."""
        ...

    def prune(self, *, before: float) -> int:
        """Forget workers whose last beat came before ``before``; return how many."""
        ...
