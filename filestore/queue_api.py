"""What the job layer asks of a queue broker beyond django-q2's own interface.

django-q2's ``Broker`` class covers what the cluster needs (enqueue a signed
package, dequeue, acknowledge, fail). The job layer needs more: putting a
job's run on the queue for a given time, and asking which jobs have
messages in which state. :class:`SchedulingBroker` is that interface, so the
job layer can be written against it whatever the broker: the file broker
(:class:`filestore.broker.FileBroker`) implements it, and so must any other
(a broker on Redis for several machines).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict, runtime_checkable

State = Literal["ready", "leased", "dead"]


@dataclass(frozen=True)
class MessageInfo:
    """What the queue knows about one message, for operators and recovery."""

    message_id: str
    key: str | None
    state: State
    deliveries: int
    due_at: float | None = None  # ready: when it is (or was) due
    lease_until: float | None = None  # leased: when the lease runs out
    dead_at: float | None = None  # dead: when it was dead-lettered
    owner: str | None = None  # leased: the worker cluster holding it, when known


class QueueCounts(TypedDict):
    """Messages per state; ``due`` is the part of ``ready`` that may be handed out now."""

    ready: int
    due: int
    leased: int
    dead: int
    # How long the oldest due message has been waiting (0 when none is due).
    oldest_due_lateness_seconds: float


def check_lease_settings(lease_seconds: float, max_deliveries: int) -> None:
    """Refuse a lease or a delivery limit no queue can honour (every backend checks these)."""
    if lease_seconds <= 0:
        raise ValueError(f"lease_seconds must be positive, not {lease_seconds!r}")
    if max_deliveries < 1:
        raise ValueError(f"max_deliveries must be at least 1, not {max_deliveries!r}")


@runtime_checkable
class SchedulingBroker(Protocol):
    """A django-q2 broker that runs tasks at a given time and reports on them by key.

    A *key* is the id of the job a message belongs to. Every method but
    :meth:`schedule` and :meth:`due_within` may scan every message: they
    are for operators, recovery and health checks, not for every request.
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

    def due_within(self, seconds: float) -> int:
        """How many messages fall due within ``seconds`` from now (or are due)."""
        ...

    def scheduled_around(self, moment: float) -> int:
        """How many messages fall due in the second holding ``moment`` (cheap: per create)."""
        ...

    def oldest_due_lateness(self) -> float:
        """How long the oldest due message has waited, in seconds (cheap: per second)."""
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

        An owner is a worker cluster (:mod:`filestore.owners`), recorded in
        each lease it takes. For owners known dead, whose leases would
        otherwise only run out. Delivery counts are kept, so a message is
        still dead-lettered after too many deliveries.
        """
        ...

    def ping(self) -> bool:
        """Whether the broker can take messages now."""
        ...
