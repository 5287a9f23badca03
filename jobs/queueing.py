"""Putting a job's run on the queue, with the delay kept by the broker."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import ImproperlyConfigured
from django_q.brokers import get_broker

from storage.protocols import SchedulingBroker

# Jobs due together run in one task: the broker groups their messages.
RUN_JOBS = "jobs.tasks.run_jobs"


def job_broker(name: str | None = None) -> SchedulingBroker:
    """The configured django-q2 broker, which must also schedule runs (``SchedulingBroker``)."""
    broker = get_broker(name)
    if not isinstance(broker, SchedulingBroker):
        raise ImproperlyConfigured(
            f"Q_CLUSTER['broker_class'] ({type(broker).__name__}) cannot run a job at a given "
            "time: it must implement storage.protocols.SchedulingBroker."
        )
    return broker


def enqueue_job(job_id: str, *, due_at: float, broker: SchedulingBroker | None = None) -> None:
    """Queue the run of ``job_id`` to become visible at ``due_at`` (epoch seconds)."""
    enqueue_jobs([(job_id, due_at)], broker=broker)


def enqueue_jobs(
    runs: Sequence[tuple[str, float]], *, broker: SchedulingBroker | None = None
) -> None:
    """Queue the run of each ``(job id, due_at)`` of ``runs``, with one call to the broker.

    The creates a web server answers together queue their runs this way:
    one round trip to Redis for the batch instead of one per job, and on
    files the layers above each message's ``link()`` are crossed once.
    """
    broker = broker or job_broker()
    # Not fsynced: the job file is the durable record, and the recovery
    # pass enqueues again any pending job whose message a power cut lost.
    broker.schedule_many(RUN_JOBS, runs, durable=False, batch=True)
