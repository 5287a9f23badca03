"""What a queue says about its messages, whatever keeps them: states, counts, keys.

Every queue (:class:`filestore.queue.FileQueue`, :class:`redisstore.queue.RedisQueue`)
reports in these types and checks its settings and keys with these rules, so the
job layer reads the same answers from either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypedDict

State = Literal["ready", "leased", "dead"]

# A job id (a ULID): the only keys a message may carry.
KEY_PATTERN = re.compile(r"[0-9A-Z]{26}")

# Deliveries before a message is dead-lettered, unless JOBS_MAX_DELIVERIES says otherwise.
DEFAULT_MAX_DELIVERIES = 5


class NewMessage(NamedTuple):
    """A message to add (``MessageQueue.enqueue_many``): what ``enqueue`` takes, as one value."""

    payload: bytes | str
    due_at: float | None = None  # None: due now
    key: str | None = None

    def checked(self, now: float) -> tuple[bytes, float, str | None]:
        """Its payload as bytes, its due time (``now`` when it has none) and its key;
        ``ValueError`` for a key that is not a job id. What every queue checks first."""
        payload, due_at, key = self
        if key is not None and KEY_PATTERN.fullmatch(key) is None:
            raise ValueError(f"invalid message key {key!r}")
        if isinstance(payload, str):
            payload = payload.encode()
        return payload, now if due_at is None else due_at, key


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
