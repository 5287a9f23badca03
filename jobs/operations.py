"""What staff can do to jobs and see of them beyond the public API.

The admin pages and ``manage.py jobs`` both come here: :func:`perform` runs
retry, cancel or delete on one job or many and logs who did it,
:func:`job_inspect` gathers a job with its file and its queue messages, and
:func:`queue_status` takes a snapshot of the queue, the worker and the photo
source. Which action applies to which status is not decided here: it is
:data:`jobs.model.TRANSITIONS`, asked through :func:`jobs.model.may`.
This module is the one place above ``jobs.services`` that reaches the
repository and the broker, so the pages and the commands never do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from jobs import admission, capacity, clock, health, photos, services, store
from jobs.errors import JobError
from jobs.model import Job, Status, may, statuses_for
from storage.messages import MessageInfo

logger = logging.getLogger(__name__)


# --- actions ----------------------------------------------------------------------


@dataclass(frozen=True)
class StaffAction:
    name: str  # "retry", one of jobs.model.STAFF_ACTIONS
    past: str  # "retried"
    summary: str  # one line, for a command's help
    explanation: str  # what it does to a job, for a confirmation page
    run: Callable[..., Job]

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def statuses(self) -> tuple[Status, ...]:
        """The statuses of the jobs this action accepts."""
        return statuses_for(self.name)

    def applies(self, job: Job) -> bool:
        return may(self.name, job.status)


ACTIONS: dict[str, StaffAction] = {
    action.name: action
    for action in (
        StaffAction(
            "retry",
            "retried",
            "Send failed or cancelled jobs back to pending.",
            "Retried jobs go back to pending, due now, and are queued for a new run.",
            services.job_retry,
        ),
        StaffAction(
            "cancel",
            "cancelled",
            "Cancel pending jobs.",
            "Cancelled jobs do not run: when their queued message arrives, it finds them "
            "cancelled and does nothing.",
            services.job_cancel,
        ),
        StaffAction(
            "delete",
            "deleted",
            "Delete jobs: their files and queue messages.",
            "The job files and their queue messages are removed for good; the result of a "
            "job still running is discarded.",
            services.job_delete,
        ),
    )
}


@dataclass(frozen=True)
class Refusal:
    """A job an action was not done to, and why (``code`` as in the API's problems)."""

    job_id: str
    code: str
    detail: str


@dataclass(frozen=True)
class ActionReport:
    action: StaffAction
    done: tuple[Job, ...]  # the jobs as the action left them (deleted: as they were)
    refused: tuple[Refusal, ...]


def perform(action: str, job_ids: Iterable[str], *, operator: str) -> ActionReport:
    """Run the staff ``action`` on each job once, in the order given.

    A job the action does not apply to (or that does not exist) is refused
    and the others go ahead. ``operator`` names who asked, for the log, as
    in "Staff user alice" or "Operator bob"; each change is logged once.
    """
    chosen = ACTIONS[action]
    done: list[Job] = []
    refused: list[Refusal] = []
    for job_id in dict.fromkeys(job_ids):
        try:
            job = chosen.run(job_id=job_id)
        except JobError as error:
            refused.append(Refusal(job_id, error.code, error.detail))
            # Ids come from people: cap what an odd one writes into the log.
            logger.warning(
                "%s could not %s job %s: %s", operator, action, job_id[:64], error.detail
            )
        else:
            done.append(job)
            logger.info("%s %s job %s", operator, chosen.past, job.id)
    return ActionReport(chosen, tuple(done), tuple(refused))


# --- inspection -------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    """A job with what lies behind it: its file and its messages in the queue."""

    job: Job
    path: Path
    messages: tuple[MessageInfo, ...]


def job_inspect(job_id: str) -> Inspection:
    """The job and its queue state; :class:`~jobs.errors.JobNotFound` when there is none."""
    job = services.job_get(job_id=job_id)
    return Inspection(
        job=job,
        path=store.repository().path_for(job.id, job.status),
        messages=tuple(store.broker().find(job.id)),
    )


# --- the machinery behind the jobs --------------------------------------------------


@dataclass(frozen=True)
class QueueStatus:
    """One snapshot of the queue, the worker and the photo source.

    Counting the queue lists every message file, so this is for people
    looking at a page, not for anything polled in a loop.
    """

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
    refusing_creates: bool  # backpressure: the worker is too far behind for new jobs
    capacity_per_second: float | None  # what the workers measured they can run (None: not yet)
    max_due_per_second: int  # admission's limit per due second (0: none)
    quarantined_files: int  # unreadable files moved aside (see quarantine/)

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
        photo_source=photos.source_name(),
        rate_limit=photos.pool().rate_limit_state(),
        refusing_creates=bool(settings.JOBS_MAX_LATENESS)
        and float(counts["oldest_due_lateness_seconds"]) > settings.JOBS_MAX_LATENESS,
        capacity_per_second=capacity.measured(),
        max_due_per_second=admission.due_limit(),
        quarantined_files=store.repository().quarantined(),
    )
