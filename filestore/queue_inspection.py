"""What operators and recovery ask of a queue on files: counts, keys, a key's messages.

Each walks every message name (no file is opened): fine for a page or a
recovery pass, not for every request.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from filestore.queue_names import MessageName
from storage.messages import MessageInfo, QueueCounts, State

Listing = Iterable[tuple[State, Path, MessageName]]


def counts(messages: Listing, *, now_ms: int) -> QueueCounts:
    per_state = {"ready": 0, "leased": 0, "dead": 0}
    due = 0
    oldest_due_ms: int | None = None
    for state, _, message in messages:
        per_state[state] += 1
        if state == "ready" and message.at_ms <= now_ms:
            due += 1
            if oldest_due_ms is None or message.at_ms < oldest_due_ms:
                oldest_due_ms = message.at_ms
    lateness_ms = 0 if oldest_due_ms is None else now_ms - oldest_due_ms
    return QueueCounts(
        ready=per_state["ready"],
        due=due,
        leased=per_state["leased"],
        dead=per_state["dead"],
        oldest_due_lateness_seconds=lateness_ms / 1000,
    )


def keys(messages: Listing) -> set[str]:
    return {message.key for _, _, message in messages if message.key is not None}


def find(messages: Listing, key: str) -> list[MessageInfo]:
    found = []
    for state, _, message in messages:
        if message.key != key:
            continue
        at = message.at_ms / 1000
        found.append(
            MessageInfo(
                message_id=message.message_id,
                key=message.key,
                state=state,
                deliveries=message.deliveries,
                due_at=at if state == "ready" else None,
                lease_until=at if state == "leased" else None,
                dead_at=at if state == "dead" else None,
                owner=message.owner,
            )
        )
    return found
