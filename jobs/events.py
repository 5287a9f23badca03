"""Job change events: every service that changes a job publishes one.

The log is shared (files in the data directory, or a Redis Stream with
``JOBS_REDIS_URL``: see :mod:`jobs.backends`) so that changes made by the
worker processes reach the event streams of every web process.
"""

from __future__ import annotations

import logging
from typing import Any

from jobs import backends
from jobs.model import Job
from storage.protocols import EventLog

logger = logging.getLogger(__name__)


def log() -> EventLog:
    return backends.event_log()


def _append(*events: dict[str, Any]) -> None:
    try:
        if len(events) == 1:
            log().append(events[0])
        else:
            log().append_many(list(events))
    except OSError:
        # The job file is already written and is the truth; a lost
        # notification only delays the page until its next refresh.
        logger.exception("Could not append %d job event(s)", len(events))


def publish(job: Job) -> None:
    """Tell every event stream that ``job`` changed (the one place each change passes)."""
    _append({"type": "job", "job": job.to_public()})


def publish_many(jobs: list[Job]) -> None:
    """:func:`publish` for each of ``jobs`` (a batch changed together), in one append."""
    if jobs:
        _append(*({"type": "job", "job": job.to_public()} for job in jobs))


def publish_deleted(job_id: str) -> None:
    _append({"type": "job-deleted", "id": job_id})
