"""The task the worker runs for a job, and what happens when its message dies.

Delivery is at least once, so :func:`run_jobs` must be safe to run twice for
one job, even at the same time:

1. *Claim*: under the job's lock, a due ``pending`` job (or a ``running``
   one whose run lease ran out, or whose worker cluster is known dead, see
   :mod:`jobs.liveness`) becomes ``running`` with a fresh run token, its
   lease naming this worker cluster. Anything else (finished, cancelled,
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

When the photo pool already holds a photo for a job (the worker fetches
ahead of the jobs falling due, so under load it nearly always does), no
fetch stands between 1 and 3: the claim and the finish are one change,
made under the job's lock in one durable write, ``pending`` to
``completed`` with both steps in its history. The photos are taken from
the pool before the lock (each is handed to one caller only); those left
over because a job was claimed elsewhere go back to the pool. A crash
before the write leaves the job ``pending`` and its message leased, to be
delivered again, as a crash before step 1 would; one after it leaves the
job final, and the next delivery finds nothing to do. The write saved is
the ``running`` document and its read-back: about a third of a job's
file operations. The photos' claims are flushed with the jobs' new
documents (``apply_many``'s ``flush_first``), before any job shows one.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings

from filestore import repository as repo
from jobs import capacity, clock, events, metrics, photos, store
from jobs.backoff import doubling
from jobs.liveness import DeadOwners
from jobs.model import ClaimRefusal, ClaimRefused, Failure, Job
from jobs.queueing import enqueue_job
from jobsite.logs import job_log_context
from storage.owners import current_owner

logger = logging.getLogger(__name__)

# Transient failures (network, 5xx, malformed answers) in a row before a job fails.
MAX_TRANSIENT_FAILURES = 8
BACKOFF_BASE = 5.0
BACKOFF_CAP = 300.0


def backoff_delay(failures: int, *, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with full jitter, never below one second."""
    return max(1.0, (rng or random).uniform(0, doubling(BACKOFF_BASE, BACKOFF_CAP, failures)))


def run_lease_seconds() -> float:
    # The queue hands the message out again after ``retry`` seconds; a run
    # older than that is presumed dead.
    return float(settings.Q_CLUSTER["retry"])


def run_jobs(job_ids: Sequence[str]) -> list[str]:
    """Run one delivery of a batch of jobs due together; return what it did to each.

    The three steps of the module's docstring, each made once for the whole
    batch: one pass claims every job (their locks held together), one claim
    on the photo pool serves them all, and one write makes every outcome
    durable (two flushes for the batch, see ``JobRepository.apply_many``).
    Each job is still claimed and finished on its own terms, so a job
    claimed elsewhere, finished or deleted meanwhile is left alone.
    """
    ids = list(dict.fromkeys(job_ids))
    batch_id = secrets.token_hex(4)
    with job_log_context(batch_id=batch_id):
        metrics.batch_delivered(len(ids))
        outcomes = _run_batch(ids, token=secrets.token_hex(8))
    # What admission counts on: the jobs the cluster runs a second.
    capacity.record(len(ids))
    return [outcomes[job_id] for job_id in job_ids]


def _run_batch(ids: list[str], *, token: str) -> dict[str, str]:
    now = clock.now()
    lease = run_lease_seconds()
    owner = current_owner()
    # Asked only about jobs running under a lease that has not run out.
    is_dead = DeadOwners(now=now)

    refusals: dict[str, ClaimRefusal] = {}
    # Photos already in the pool: jobs claimed with one are finished in the same write,
    # whose first flush makes the photos' claims durable too.
    at_hand, claim_paths = photos.photos_at_hand(len(ids))
    used = 0

    def claim(job: Job) -> Job | None:
        nonlocal used
        try:
            claimed = job.claim(
                token=token, lease_seconds=lease, now=now, owner=owner, is_dead=is_dead
            )
        except ClaimRefused as refused:
            refusals[job.id] = refused.refusal
            return None
        if used < len(at_hand):
            used += 1
            return claimed.complete(at_hand[used - 1], now=now)
        return claimed

    try:
        # A claim alone is not flushed: lost in a power cut, it only means the
        # job runs again. A job finished with its claim is flushed like any outcome.
        claims = store.repository().apply_many(
            [(job_id, claim) for job_id in ids],
            durable=bool(at_hand),
            flush_first=claim_paths,
        )
    finally:
        photos.put_back(at_hand[used:])
    outcomes: dict[str, str] = {}
    running: list[Job] = []
    started: list[Job] = []
    finished: list[Job] = []
    for job_id, claimed in zip(ids, claims, strict=True):
        if claimed is None:
            outcomes[job_id] = "deleted"
        elif not claimed.changed:
            outcomes[job_id] = _refused(job_id, refusals[job_id])
        else:
            started.append(claimed.item)
            if claimed.item.is_final:
                finished.append(claimed.item)
                outcomes[job_id] = claimed.item.status.value
            else:
                running.append(claimed.item)
    for job in started:
        if job.attempts == 1:
            # Lateness of a job's first start; later attempts wait on purpose.
            metrics.job_started(now - clock.from_iso(job.run_at))
    for job in finished:
        metrics.job_finished(job.status)
    events.publish_many(started)
    if not running:
        return outcomes

    taken = photos.take_photos(len(running))
    changes = [
        (job.id, _holding(token, _outcome(job, photo_or_error)))
        for job, photo_or_error in zip(running, taken, strict=True)
    ]
    results = store.repository().apply_many(changes)
    changed: list[Job] = []
    for job, result in zip(running, results, strict=True):
        if result is None:
            outcomes[job.id] = "deleted"
        elif not result.changed:
            outcomes[job.id] = "lost lease"  # another delivery took over; it decides
        else:
            done = result.item
            outcomes[job.id] = done.status.value
            changed.append(done)
            if done.is_final:
                metrics.job_finished(done.status)
            else:
                enqueue_job(done.id, due_at=done.due_at, broker=store.broker())
    events.publish_many(changed)
    return outcomes


def _refused(job_id: str, refusal: ClaimRefusal) -> str:
    """Why a delivery left a job alone; a job must never be left without a message."""
    if refusal.come_back_at is not None:
        # This message may be the job's only one: queue one for when the
        # job falls due or the other run's lease runs out.
        enqueue_job(job_id, due_at=refusal.come_back_at, broker=store.broker())
    return refusal.reason


Change = Callable[[Job, float], Job]


def _holding(token: str, change: Change) -> Callable[[Job], Job | None]:
    """``change`` applied at the time of writing, only if this run still holds the job."""

    def apply(job: Job) -> Job | None:
        return change(job, clock.now()) if job.holds(token) else None

    return apply


def _outcome(job: Job, photo: dict[str, Any] | photos.PhotoSourceError) -> Change:
    """What the run's result does to the job: complete, fail, or wait and try again."""
    if not isinstance(photo, photos.PhotoSourceError):
        return lambda job, now: job.complete(photo, now=now)
    error = photo
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
