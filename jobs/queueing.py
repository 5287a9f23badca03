"""Putting job messages on the queue, with the delay kept by the broker."""

from __future__ import annotations

import math
from typing import Any

from django_q.brokers import get_broker
from django_q.tasks import async_task

RUN_JOB = "jobs.tasks.run_job"


class _DueBroker:
    """Lets django-q2 build and sign the task message as usual, and hands it
    to the broker with the time it becomes visible and the job it belongs to."""

    def __init__(self, broker: Any, *, due_at: float, key: str) -> None:
        self._broker = broker
        self.list_key = broker.list_key
        self._due_at = due_at
        self._key = key

    def enqueue(self, payload: str) -> str:
        # Not fsynced: the job file is the durable record, and the recovery
        # pass enqueues again any pending job whose message a power cut lost.
        return self._broker.enqueue(payload, due_at=self._due_at, key=self._key, durable=False)


def enqueue_job(job_id: str, *, due_at: float, broker: Any | None = None) -> None:
    """Queue the run of ``job_id`` to become visible at ``due_at`` (epoch seconds)."""
    broker = broker or get_broker()
    # The file queue keeps whole milliseconds and drops the rest. Round up to
    # the next millisecond so a message never becomes visible before
    # ``due_at`` (its task would find the job not due and put it back); the
    # half millisecond keeps float error from truncating it one lower.
    due_at = (math.ceil(due_at * 1000) + 0.5) / 1000
    async_task(
        RUN_JOB,
        job_id,
        broker=_DueBroker(broker, due_at=due_at, key=job_id),
        task_name=f"job-{job_id}",
    )
