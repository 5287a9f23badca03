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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from filestore import repository as repo
from jobs import clock, events, store
from jobs.documents import record_event
from jobs.queueing import enqueue_job
from jobs.tasks import dead_letter

logger = logging.getLogger(__name__)

GRACE_SECONDS = 30.0


@dataclass
class RecoveryReport:
    requeued: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    store: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"requeued {len(self.requeued)} pending, restarted {len(self.restarted)} stale "
            f"running, failed {len(self.dead_lettered)} dead-lettered; store: {self.store}"
        )


def recover_jobs(*, grace: float = GRACE_SECONDS) -> RecoveryReport:
    report = RecoveryReport()
    repository = store.repository()
    broker = store.broker()
    report.store = repository.recover()
    now = clock.now()
    candidates = list(repository.entries(statuses=("pending", "running")))
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
            job = repository.get(entry.id)
        except repo.JobNotFound:
            continue
        if now - clock.from_iso(job["updated_at"]) < grace:
            continue
        if entry.id in dead and _died_since_last_change(broker, job):
            dead_letter(entry.id, b"")
            report.dead_lettered.append(entry.id)
        elif job["status"] == "pending":
            _requeue(job)
            report.requeued.append(entry.id)
        elif float((job.get("lease") or {}).get("until", 0)) < now and _restart(entry.id, now):
            report.restarted.append(entry.id)
    if report.requeued or report.restarted or report.dead_lettered:
        logger.warning("Recovery: %s", report)
    return report


def _died_since_last_change(broker, job: dict) -> bool:
    # Only for jobs that have a dead message, which are few: find() scans the queue.
    dead_at = [m.dead_at for m in broker.find(job["id"]) if m.state == "dead"]
    return bool(dead_at) and max(dead_at) >= clock.from_iso(job["updated_at"])


def _requeue(job: dict) -> None:
    due = clock.from_iso(job.get("next_attempt_at") or job["run_at"])
    enqueue_job(job["id"], due_at=due, broker=store.broker())


def _restart(job_id: str, now: float) -> bool:
    def back_to_pending(job: dict) -> dict | None:
        if job["status"] != "running" or float((job.get("lease") or {}).get("until", 0)) >= now:
            return None
        job.update(
            status="pending",
            lease=None,
            next_attempt_at=clock.to_iso(now),
            pending_reason="The worker stopped during the run; trying again.",
        )
        record_event(job, "requeued", "run lease expired", now)
        return job

    try:
        job = store.repository().update(job_id, back_to_pending)
    except repo.JobNotFound:
        return False
    if job["status"] != "pending":
        return False
    _requeue(job)
    events.publish(job)
    return True
