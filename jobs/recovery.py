"""The recovery pass: no job a client was told about stays pending forever.

Run at worker start and periodically. It cleans up what crashed writers
left in the store, then finds jobs whose queue message is gone:

- a ``pending`` job with no message (its process died between writing the
  job file and enqueuing) is enqueued again for its due time;
- a ``running`` job whose run lease ran out and that has no message left
  (its worker died and the message was lost) goes back to ``pending``, due
  now;
- a job whose only message is dead-lettered is failed (the dead-letter
  handler did not get to run). A dead message older than the job's last
  change does not count: the job moved on after it died (the handler ran,
  or an operator retried the job), so the job is treated as having no
  message.

Jobs changed in the last ``GRACE_SECONDS`` are left alone: another process
may be between its write and its enqueue right now.

Each job is handled on its own: a job that cannot be read or changed is
logged (its file quarantined by the repository when it is damaged), and the
pass goes on with the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from filestore import repository as repo
from jobs import clock, events, store
from jobs.model import Job, Status
from jobs.queueing import enqueue_job
from jobs.tasks import dead_letter
from storage.protocols import SchedulingBroker

logger = logging.getLogger(__name__)

GRACE_SECONDS = 30.0


@dataclass
class RecoveryReport:
    requeued: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    store: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"requeued {len(self.requeued)} pending, restarted {len(self.restarted)} stale "
            f"running, failed {len(self.dead_lettered)} dead-lettered, "
            f"{len(self.errors)} could not be handled; store: {self.store}"
        )


def recover_jobs(*, grace: float = GRACE_SECONDS) -> RecoveryReport:
    report = RecoveryReport()
    repository = store.repository()
    broker = store.broker()
    report.store = repository.recover()
    now = clock.now()
    candidates = list(repository.entries(statuses=(Status.PENDING, Status.RUNNING)))
    if not candidates:
        return report
    # Messages are listed after the jobs: a job created after the listing of
    # jobs is not a candidate, and one listed before has had its message
    # enqueued or is inside the grace period.
    live = broker.keys()
    dead = broker.dead_keys()
    for entry in candidates:
        if entry.id in live:
            continue
        try:
            _recover_one(entry.id, entry.id in dead, now=now, grace=grace, report=report)
        except Exception:
            logger.exception("Recovery of job %s failed; going on with the others", entry.id)
            report.errors.append(entry.id)
    if report.requeued or report.restarted or report.dead_lettered or report.errors:
        logger.warning("Recovery: %s", report)
    return report


def _recover_one(
    job_id: str, has_dead_message: bool, *, now: float, grace: float, report: RecoveryReport
) -> None:
    try:
        job = store.repository().get(job_id)
    except repo.JobNotFound:
        return  # deleted, or unreadable and quarantined by the read
    if now - clock.from_iso(job.updated_at) < grace:
        return
    if has_dead_message and _died_since_last_change(store.broker(), job):
        dead_letter(job_id, b"")
        report.dead_lettered.append(job_id)
    elif job.status is Status.PENDING:
        enqueue_job(job_id, due_at=job.due_at, broker=store.broker())
        report.requeued.append(job_id)
    elif job.lease_expired(now) and _restart(job_id, now):
        report.restarted.append(job_id)


def _died_since_last_change(broker: SchedulingBroker, job: Job) -> bool:
    # Only for jobs that have a dead message, which are few: find() scans the queue.
    dead_at = [m.dead_at for m in broker.find(job.id) if m.state == "dead"]
    return bool(dead_at) and max(dead_at) >= clock.from_iso(job.updated_at)


def _restart(job_id: str, now: float) -> bool:
    """Send a running job whose lease ran out back to pending (:meth:`Job.requeue`)."""

    def requeue(job: Job) -> Job | None:
        if job.status is not Status.RUNNING or not job.lease_expired(now):
            return None
        return job.requeue(now=now)

    try:
        restarted = store.repository().apply(job_id, requeue)
    except repo.JobNotFound:
        return False
    if not restarted.changed:
        return False
    job = restarted.item
    enqueue_job(job_id, due_at=job.due_at, broker=store.broker())
    events.publish(job)
    return True
