"""The task the worker runs for a job, and what happens when its message dies.

Delivery is at least once, so :func:`run_job` must be safe to run twice for
one job, even at the same time:

1. *Claim*: under the job's lock, a due ``pending`` job (or a ``running``
   one whose run lease ran out, its worker having died) becomes
   ``running`` with a fresh run token. Anything else (finished, cancelled,
   deleted, not due yet, or running under a live lease) means this delivery
   has nothing to do. A message that came too early, or while another run
   holds the lease, is replaced by one due when the job is due or the lease
   runs out: its message may be the job's only one, and a job must never be
   left without a message that will run it (if the other run died).
2. *Fetch* the photo, outside any lock.
3. *Finish*: under the lock again, only if the job still carries our token,
   write ``completed``/``failed``, or ``pending`` with a reason and the time
   of the next attempt (transient failure or rate limit). A run that lost
   its lease to another delivery changes nothing, so each job reaches
   exactly one final state.
"""

from __future__ import annotations

import logging
import random
import secrets

from django.conf import settings

from filestore import repository as repo
from jobs import clock, events, metrics, photos, store
from jobs.model import Failure, Job
from jobs.queueing import enqueue_job
from jobsite.logs import job_log_context

logger = logging.getLogger(__name__)

# Transient failures (network, 5xx, malformed answers) in a row before a job fails.
MAX_TRANSIENT_FAILURES = 8
BACKOFF_BASE = 5.0
BACKOFF_CAP = 300.0


def backoff_delay(failures: int, *, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with full jitter, never below one second."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, failures - 1))
    return max(1.0, (rng or random).uniform(0, ceiling))


def run_lease_seconds() -> float:
    # The queue hands the message out again after ``retry`` seconds; a run
    # older than that is presumed dead.
    return float(settings.Q_CLUSTER["retry"])


def run_job(job_id: str) -> str:
    """Run one delivery of a job's message; returns what it did (for logs and tests)."""
    with job_log_context(job_id=job_id):
        return _run(job_id)


def _run(job_id: str) -> str:
    token = secrets.token_hex(8)
    now = clock.now()

    def claim(job: Job) -> Job | None:
        if job.claim_refusal(now) is not None:
            return None
        return job.claim(token=token, lease_seconds=run_lease_seconds(), now=now)

    try:
        # Not fsynced: a claim lost in a power cut only means the job runs again.
        claimed = store.repository().apply(job_id, claim, durable=False)
    except repo.JobNotFound:
        return "deleted"
    job = claimed.item
    if not claimed.changed:
        refusal = job.claim_refusal(now)
        assert refusal is not None
        if refusal.come_back_at is not None:
            # This message may be the job's only one: a job must never be
            # left without a message that will run it.
            enqueue_job(job_id, due_at=refusal.come_back_at, broker=store.broker())
        return refusal.reason
    if job.attempts == 1:
        # Lateness of a job's first start; later attempts wait on purpose.
        metrics.job_started(now - clock.from_iso(job.run_at))
    events.publish(job)

    try:
        photo = photos.take_photo()
    except photos.PhotoSourceError as error:
        return _finish(job, token, _after_error(job, error))
    return _finish(job, token, lambda job, now: job.complete(photo, now=now))


def _after_error(job: Job, error: photos.PhotoSourceError):
    """What a photo error does to the job: fail it, or make it wait and try again."""
    if isinstance(error, photos.PermanentPhotoError):
        failure = Failure(error.code, error.message)
        return lambda job, now: job.fail(failure, now=now)
    if isinstance(error, photos.RateLimited):
        delay = error.retry_after or BACKOFF_BASE
        return lambda job, now: job.wait(error.message, until=now + delay, now=now, transient=False)
    failures = job.transient_failures + 1
    if failures >= MAX_TRANSIENT_FAILURES:
        failure = Failure(
            error.code,
            f"{error.message} (gave up after {MAX_TRANSIENT_FAILURES} attempts in a row)",
        )
        return lambda job, now: job.fail(failure, now=now)
    logger.warning("Job %s will try again: %s", job.id, error.message)
    delay = max(error.retry_after or 0, backoff_delay(failures))
    return lambda job, now: job.wait(error.message, until=now + delay, now=now)


def _finish(claimed: Job, token: str, change) -> str:
    """Apply ``change`` if this run still holds the job: each job gets one final state."""
    now = clock.now()
    try:
        finished = store.repository().apply(
            claimed.id, lambda job: change(job, now) if job.holds(token) else None
        )
    except repo.JobNotFound:
        return "deleted"
    if not finished.changed:
        return "lost lease"  # another delivery took over; it decides the outcome
    job = finished.item
    if job.status == "pending":
        enqueue_job(job.id, due_at=job.due_at, broker=store.broker())
    else:
        metrics.job_finished(job.status)
    events.publish(job)
    return job.status.value


def dead_letter(key: str | None, payload: bytes) -> None:
    """The queue gave up on a message (delivered too often): fail its job clearly."""
    if key is None:
        return
    now = clock.now()
    failure = Failure(
        "delivery_failed",
        f"The worker could not finish this job after {settings.JOBS_MAX_DELIVERIES} "
        "deliveries (it crashed or hit an unexpected error each time); see the worker log.",
    )
    try:
        failed = store.repository().apply(
            key, lambda job: None if job.is_final else job.give_up(failure, now=now)
        )
    except repo.JobNotFound:
        return
    if failed.changed:
        metrics.job_finished(failed.item.status)
        events.publish(failed.item)
