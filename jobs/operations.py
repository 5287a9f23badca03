"""What an operator sees of the machinery behind the jobs: queue, worker, photo source.

One snapshot serves the admin's queue health panel and ``manage.py jobs
health``. Counting the queue lists every message file, so this is for
people looking at a page, not for anything polled in a loop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from jobs import clock, health, photo_source, store


@dataclass(frozen=True)
class QueueStatus:
    ready: int  # waiting, due or not
    due: int  # the part of ``ready`` a worker may take now
    leased: int  # handed to a worker, not yet acknowledged
    dead: int  # delivered too often, given up
    oldest_due_lateness_seconds: float  # how long the oldest due message has waited
    worker_heartbeat_age_seconds: float | None  # None: no worker has ever beaten
    worker_alive: bool
    worker: dict[str, Any] | None  # the newest heartbeat (host, pid, workers)
    photo_source: str  # "unsplash" or "demo"
    rate_limit: dict[str, Any]  # the last known Unsplash budget and gate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_status() -> QueueStatus:
    counts = store.broker().counts()
    beat = health.latest_heartbeat()
    age = None if beat is None else max(0.0, clock.now() - float(beat.get("at", 0)))
    return QueueStatus(
        ready=int(counts["ready"]),
        due=int(counts["due"]),
        leased=int(counts["leased"]),
        dead=int(counts["dead"]),
        oldest_due_lateness_seconds=float(counts["oldest_due_lateness_seconds"]),
        worker_heartbeat_age_seconds=None if age is None else round(age, 1),
        worker_alive=age is not None and age <= settings.JOBS_HEARTBEAT_MAX_AGE,
        worker=beat,
        photo_source=photo_source.source_name(),
        rate_limit=photo_source.pool().rate_limit_state(),
    )
