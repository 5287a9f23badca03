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
import math
import random
import secrets
from typing import Any

from django.conf import settings

from filestore import repository as repo
from jobs import clock, events, photo_source, store
from jobs.documents import record_event
from jobs.photos import PermanentPhotoError, PhotoSourceError, RateLimited
from jobs.queueing import enqueue_job

logger = logging.getLogger(__name__)

Job = dict[str, Any]

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


def _due_at(job: Job) -> float:
    return clock.from_iso(job.get("next_attempt_at") or job["run_at"])


def _iso_not_before(moment: float) -> str:
    # Timestamps keep milliseconds; rounding down would name an instant
    # before ``moment`` (a job woken then would find the rate-limit gate
    # still closed for a fraction of a millisecond).
    return clock.to_iso(math.ceil(moment * 1000) / 1000)


def run_job(job_id: str) -> str:
    """Run one delivery of a job's message; returns what it did (for logs and tests)."""
    token = secrets.token_hex(8)
    now = clock.now()
    outcome = {"value": "skipped"}
    come_back_at: list[float] = []

    def claim(job: Job) -> Job | None:
        status = job["status"]
        if status in ("completed", "failed", "cancelled"):
            outcome["value"] = f"already {status}"
            return None
        if status == "running":
            lease = job.get("lease") or {}
            if float(lease.get("until", 0)) > now:
                outcome["value"] = "running elsewhere"
                come_back_at.append(float(lease["until"]))
                return None
            record_event(job, "lease-expired", "the previous run stopped without finishing", now)
        elif _due_at(job) > now:
            outcome["value"] = "not due"
            come_back_at.append(_due_at(job))
            return None
        job["status"] = "running"
        job["attempts"] = int(job.get("attempts", 0)) + 1
        job["started_at"] = job.get("started_at") or clock.to_iso(now)
        job["lease"] = {"token": token, "until": now + run_lease_seconds()}
        job["pending_reason"] = None
        job["next_attempt_at"] = None
        record_event(job, "started", f"attempt {job['attempts']}", now)
        outcome["value"] = "claimed"
        return job

    try:
        # Not fsynced: a claim lost in a power cut only means the job runs again.
        job = store.repository().update(job_id, claim, durable=False)
    except repo.JobNotFound:
        return "deleted"
    if come_back_at:
        enqueue_job(job_id, due_at=come_back_at[0], broker=store.broker())
    if outcome["value"] != "claimed":
        return outcome["value"]
    events.publish(job)

    try:
        photo = photo_source.take_photo()
    except PhotoSourceError as error:
        return _finish_with_error(job_id, token, error)
    return _finish(job_id, token, "completed", lambda job, now: job.update(result=photo))


def _finish(job_id: str, token: str, status: str, apply) -> str:
    now = clock.now()
    outcome = {"value": "lost lease"}

    def finish(job: Job) -> Job | None:
        if job["status"] != "running" or (job.get("lease") or {}).get("token") != token:
            return None  # another delivery took over; it decides the outcome
        job["status"] = status
        job["lease"] = None
        apply(job, now)
        if status in ("completed", "failed"):
            job["finished_at"] = clock.to_iso(now)
            job["transient_failures"] = 0
        record_event(
            job, status, (job.get("error") or {}).get("message") or job.get("pending_reason"), now
        )
        outcome["value"] = status
        return job

    try:
        job = store.repository().update(job_id, finish)
    except repo.JobNotFound:
        return "deleted"
    if outcome["value"] == "lost lease":
        return outcome["value"]
    if job["status"] == "pending":
        enqueue_job(job_id, due_at=_due_at(job), broker=store.broker())
    events.publish(job)
    return outcome["value"]


def _finish_with_error(job_id: str, token: str, error: PhotoSourceError) -> str:
    if isinstance(error, PermanentPhotoError):
        return _finish(job_id, token, "failed", _set_error(error))

    def wait_again(job: Job, now: float) -> None:
        if isinstance(error, RateLimited):
            delay = error.retry_after or BACKOFF_BASE
        else:
            job["transient_failures"] = int(job.get("transient_failures") or 0) + 1
            delay = max(error.retry_after or 0, backoff_delay(job["transient_failures"]))
        job["pending_reason"] = error.message
        job["next_attempt_at"] = _iso_not_before(now + delay)

    if (
        not isinstance(error, RateLimited)
        and _transient_failures(job_id) + 1 >= MAX_TRANSIENT_FAILURES
    ):
        give_up = PermanentPhotoError(
            error.code,
            f"{error.message} (gave up after {MAX_TRANSIENT_FAILURES} attempts in a row)",
        )
        return _finish(job_id, token, "failed", _set_error(give_up))
    logger.warning("Job %s will try again: %s", job_id, error.message)
    return _finish(job_id, token, "pending", wait_again)


def _transient_failures(job_id: str) -> int:
    try:
        return int(store.repository().get(job_id).get("transient_failures") or 0)
    except repo.JobNotFound:
        return 0


def _set_error(error: PhotoSourceError):
    def apply(job: Job, now: float) -> None:
        job["error"] = {"code": error.code, "message": error.message}
        job["pending_reason"] = None
        job["next_attempt_at"] = None

    return apply


def dead_letter(key: str | None, payload: bytes) -> None:
    """The queue gave up on a message (delivered too often): fail its job clearly."""
    if key is None:
        return
    now = clock.now()
    deliveries = settings.JOBS_MAX_DELIVERIES

    def fail(job: Job) -> Job | None:
        if job["status"] in ("completed", "failed", "cancelled"):
            return None
        job["status"] = "failed"
        job["lease"] = None
        job["finished_at"] = clock.to_iso(now)
        job["pending_reason"] = None
        job["next_attempt_at"] = None
        job["transient_failures"] = 0
        job["error"] = {
            "code": "delivery_failed",
            "message": (
                f"The worker could not finish this job after {deliveries} deliveries "
                "(it crashed or hit an unexpected error each time); see the worker log."
            ),
        }
        record_event(job, "failed", job["error"]["message"], now)
        return job

    try:
        job = store.repository().update(key, fail)
    except repo.JobNotFound:
        return
    events.publish(job)
