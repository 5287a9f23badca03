"""Services (writes) and selectors (reads) of jobs.

Views, commands, the admin page and the worker task all go through these
functions; none of them touches files directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from filestore import repository as repo
from filestore.ids import id_timestamp, is_valid_id, new_id
from jobs import admission, clock, events, metrics, store
from jobs.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidInput,
    JobNotFound,
)
from jobs.model import FINAL_STATUSES, STATUSES, Job
from jobs.queueing import enqueue_jobs
from storage.errors import StoreUnavailable

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_PATTERN = re.compile(r"[A-Za-z0-9._:~+/=-]{1,255}")
MAX_PAGE = 500
DEFAULT_PAGE = 50

# --- create ----------------------------------------------------------------


def delay_choices() -> range:
    return range(settings.JOBS_MIN_DELAY, settings.JOBS_MAX_DELAY + 1, settings.JOBS_DELAY_STEP)


def validate_delay(delay_seconds: object) -> int | None:
    """The delay asked for, checked against the configured bounds and step."""
    if delay_seconds is None:
        return None
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int):
        raise InvalidInput(
            "delay_seconds must be a whole number of seconds.",
            {"delay_seconds": ["Must be an integer."]},
        )
    low, high, step = settings.JOBS_MIN_DELAY, settings.JOBS_MAX_DELAY, settings.JOBS_DELAY_STEP
    if not low <= delay_seconds <= high or delay_seconds % step:
        message = f"delay_seconds must be between {low} and {high} and a multiple of {step}."
        raise InvalidInput(message, {"delay_seconds": [message]})
    return delay_seconds


def validate_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 characters of letters, digits and . _ : ~ + / = -"
        )
    return key


@dataclass(frozen=True)
class Created:
    """A create's answer: ``response`` is what the client is told (the same on a replay)."""

    job_id: str
    replayed: bool
    response: dict[str, Any]

    @property
    def job(self) -> dict[str, Any]:
        """The job as the client was shown it (its public view)."""
        return self.response["job"]


def _seconds_until(moment: str, now: float) -> int:
    return max(0, math.ceil(clock.from_iso(moment) - now))


def _creation_response(job: Job, *, now: float) -> dict[str, Any]:
    return {"job": job.to_public(), "retry_after": _seconds_until(job.run_at, now)}


def job_create(
    *,
    delay_seconds: int | None = None,
    idempotency_key: str | None = None,
    rng: random.Random | None = None,
) -> Created:
    """Create a job (pending until its delay has passed) and queue its run.

    With an ``idempotency_key``, a retry of the same request returns the
    first answer instead of creating a second job.
    """
    if idempotency_key is None:
        (outcome,) = job_create_many([delay_seconds], rng=rng)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    delay = validate_delay(delay_seconds)
    key = validate_idempotency_key(idempotency_key)
    if delay is None:
        delay = (rng or random).choice(delay_choices())
    now = clock.now()

    fingerprint = hashlib.sha256(
        json.dumps({"delay_seconds": delay_seconds}, sort_keys=True).encode()
    ).hexdigest()
    keys = store.idempotency()
    claim = keys.begin(key, fingerprint=fingerprint, job_id=new_id(now))
    if claim.outcome == "mismatch":
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request body; "
            "use a new key for a new job."
        )
    if claim.outcome == "replay":
        # The same job and answer as the first time, with the wait that is
        # left now rather than the one at the first answer.
        response = claim.record["response"]
        shown = response["job"]
        response = {**response, "retry_after": _seconds_until(shown["run_at"], now)}
        return Created(shown["id"], True, response)
    if claim.outcome == "in_progress":
        raise IdempotencyKeyInProgress(
            "A request with this Idempotency-Key is still being processed; retry shortly."
        )
    job_id = claim.record["job_id"]
    if claim.outcome == "stale":
        # The first request died mid-way: finish its work with its job id.
        try:
            job = store.repository().get(job_id)
        except repo.JobNotFound:
            job = _store_new_job(job_id, delay=delay, now=now, may_exist=True)
        else:
            _enqueue([job])
    else:
        try:
            admission.admit(due_at=now + delay)
            job = _store_new_job(job_id, delay=delay, now=now)
        except BaseException:
            # Once the job file exists, the key stays bound to it (a retry
            # after the claim goes stale finishes this request's work); when
            # nothing was stored, the key is free for the client's retry.
            if not _stored(job_id):
                keys.release(key)
            raise
    response = _creation_response(job, now=now)
    keys.complete(key, claim.record, response)
    return Created(job.id, False, response)


def job_create_many(
    delays: Sequence[object], *, rng: random.Random | None = None
) -> list[Created | Exception]:
    """Create a job for each requested delay (``None``: a random one), without idempotency keys.

    The creates the web server answers together: each is checked and
    admitted on its own, and the jobs are stored with one batch of durable
    writes (:meth:`filestore.repository.JobRepository.create_many`), so
    they share its flushes. Returns, in order, each create's answer or the
    error that refused it; a failure of the batch's writes is every
    stored create's error.
    """
    now = clock.now()
    outcomes: dict[int, Created | Exception] = {}
    admitted: list[tuple[int, Job]] = []
    for index, requested in enumerate(delays):
        try:
            delay = validate_delay(requested)
            if delay is None:
                delay = (rng or random).choice(delay_choices())
            admission.admit(due_at=now + delay)
        except Exception as refused:
            outcomes[index] = refused
            continue
        admitted.append((index, Job.new(new_id(now), delay=delay, now=now)))
    if admitted:
        try:
            stored = store.repository().create_many([job for _, job in admitted])
        except Exception as failed:
            stored = [failed] * len(admitted)
        created: list[tuple[int, Job]] = []
        for (index, job), result in zip(admitted, stored, strict=True):
            if isinstance(result, Exception):
                outcomes[index] = result
            elif result is None:
                outcomes[index] = repo.JobExists(job.id)
            else:
                created.append((index, result))
        try:
            _announce([job for _, job in created], created=True)
        except Exception as failed:
            outcomes.update((index, failed) for index, _ in created)
        else:
            outcomes.update(
                (index, Created(job.id, False, _creation_response(job, now=now)))
                for index, job in created
            )
    return [outcomes[index] for index in range(len(delays))]


def _store_new_job(job_id: str, *, delay: int, now: float, may_exist: bool = False) -> Job:
    try:
        job = store.repository().create(Job.new(job_id, delay=delay, now=now), may_exist=may_exist)
    except repo.JobExists:
        job = store.repository().get(job_id)
        _announce([job], created=False)
    else:
        _announce([job], created=True)
    return job


def _announce(jobs: list[Job], *, created: bool) -> None:
    """What follows the durable writes of jobs: count them, queue their runs, tell the streams."""
    if created:
        metrics.job_created(len(jobs))
    _enqueue(jobs)
    events.publish_many(jobs)


def _stored(job_id: str) -> bool:
    try:
        store.repository().get(job_id)
    except repo.JobNotFound:
        return False
    except OSError:
        return True  # cannot tell: keep the key bound, the safe side
    return True


def _enqueue(jobs: list[Job]) -> None:
    """Queue the jobs' runs for their due times, with one call to the queue.

    The job file is the record of an accepted job: once it exists, a queue
    that cannot take the message (full, read-only, or out of reach: Redis
    down) does not undo the create, and the client is told the job was
    accepted. Answering 503 instead would invite a retry that creates a
    second job. The recovery pass queues any pending job that has no
    message, once the queue takes messages again (so also the jobs of a
    batch after the one the queue failed on).
    """
    if not jobs:
        return
    try:
        enqueue_jobs([(job.id, job.due_at) for job in jobs], broker=store.broker())
    except StoreUnavailable as unavailable:
        logger.error(
            "Could not queue %s (%s); the recovery pass will queue them",
            _job_ids_text(jobs),
            unavailable,
        )
    except Exception:
        logger.exception(
            "Could not queue %s; the recovery pass will queue them", _job_ids_text(jobs)
        )


def _job_ids_text(jobs: list[Job]) -> str:
    if len(jobs) == 1:
        return f"job {jobs[0].id}"
    return f"{len(jobs)} jobs ({jobs[0].id} ... {jobs[-1].id})"


# --- read ------------------------------------------------------------------


def job_get(*, job_id: str) -> Job:
    if not is_valid_id(job_id):
        raise JobNotFound(job_id[:64] if isinstance(job_id, str) else "")
    try:
        return store.repository().get(job_id)
    except repo.JobNotFound:
        raise JobNotFound(job_id) from None


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def parse_statuses(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    statuses = [part.strip() for part in parts if part.strip()]
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise InvalidInput(
            f"Unknown status {', '.join(map(repr, unknown))}; "
            f"use one or more of {', '.join(STATUSES)}."
        )
    return statuses or None


def parse_limit(value: str | int | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE}.") from None
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be a whole number from 1 to {MAX_PAGE}.")
    return limit


def job_list(
    *, statuses: Iterable[str] | None = None, cursor: str | None = None, limit: int = DEFAULT_PAGE
) -> JobPage:
    """A page of jobs, newest first; ``cursor`` continues after an earlier page.

    The cursor is the id of the last job of the previous page, so jobs
    created meanwhile (newer ids) never shift the later pages: no job is
    skipped or shown twice.
    """
    if cursor is not None and not is_valid_id(cursor):
        raise InvalidInput("cursor is not valid; use the `next` link of a previous page.")
    jobs, more = store.repository().list(statuses=statuses, before=cursor, limit=limit)
    return JobPage(jobs, jobs[-1].id if more and jobs else None)


def job_counts() -> dict[str, int]:
    return store.repository().counts()


# --- operator actions ----------------------------------------------------------


def job_cancel(*, job_id: str) -> Job:
    """Cancel a pending job (:meth:`Job.cancel`)."""
    now = clock.now()
    job = _update(job_id, lambda job: job.cancel(now=now))
    metrics.job_finished(job.status)
    events.publish(job)
    return job


def job_retry(*, job_id: str) -> Job:
    """Send a failed or cancelled job back to pending, due now (:meth:`Job.retry`)."""
    now = clock.now()
    job = _update(job_id, lambda job: job.retry(now=now))
    # A dead-lettered message of the earlier run has nothing more to say.
    store.broker().delete_key(job_id)
    _enqueue([job])
    events.publish(job)
    return job


def job_delete(*, job_id: str) -> Job:
    """Delete a job's file and its queue messages."""
    if not is_valid_id(job_id):
        raise JobNotFound(job_id[:64])
    try:
        job = store.repository().delete(job_id)
    except repo.JobNotFound:
        raise JobNotFound(job_id) from None
    store.broker().delete_key(job_id)
    events.publish_deleted(job_id)
    return job


def _update(job_id: str, change: Callable[[Job], Job | None]) -> Job:
    if not is_valid_id(job_id):
        raise JobNotFound(job_id[:64])
    try:
        return store.repository().update(job_id, change)
    except repo.JobNotFound:
        raise JobNotFound(job_id) from None


# --- search and maintenance (admin page and operator commands) ------------------

ID_PREFIX_PATTERN = re.compile(r"[0-9A-HJKMNP-TV-Z]{1,26}")


def job_search(
    *,
    id_prefix: str,
    statuses: Iterable[str] | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> JobPage:
    """Jobs whose id starts with ``id_prefix`` (a whole id finds one job), newest first.

    Ids are time-ordered, so the matches are one run of consecutive names:
    the walk starts just above the prefix and stops at the first id below
    it, whatever the number of jobs stored before or after them.
    """
    prefix = id_prefix.strip().upper()
    if not ID_PREFIX_PATTERN.fullmatch(prefix):
        raise InvalidInput(
            "Search by job id: type the id or its first characters "
            "(digits and capital letters except I, L, O and U)."
        )
    if cursor is not None and not (is_valid_id(cursor) and cursor.startswith(prefix)):
        raise InvalidInput("cursor is not valid; use the `next` link of a previous page.")
    wanted = set(statuses) if statuses else None
    # "~" sorts after every id character: every id with the prefix is below it.
    upper = cursor or prefix + "~"
    page: list[repo.Entry] = []
    more = False
    for entry in store.repository().entries(before=upper):
        if not entry.id.startswith(prefix):
            break
        if wanted is not None and entry.status not in wanted:
            continue
        if len(page) == limit:
            more = True
            break
        page.append(entry)
    jobs = []
    for entry in page:
        try:
            jobs.append(store.repository().get(entry.id))
        except repo.JobNotFound:
            continue  # deleted since the names were listed
    return JobPage(jobs, jobs[-1].id if more and jobs else None)


@dataclass(frozen=True)
class PruneReport:
    job_ids: list[str]  # jobs deleted (in a dry run: that would be deleted)
    messages_removed: int
    idempotency_keys_removed: int | None  # None in a dry run: not counted
    dry_run: bool


def job_prune(*, older_than_seconds: float, dry_run: bool = False) -> PruneReport:
    """Delete finished jobs that finished more than ``older_than_seconds`` ago.

    Only completed, failed and cancelled jobs go, with their queue messages
    (a failed job may keep a dead-lettered one); pending and running jobs
    are never touched. Idempotency keys older than JOBS_IDEMPOTENCY_TTL go
    too. A job created after the cutoff cannot have finished before it, so
    only the names of recent jobs are listed, not their files read.

    The age and status are checked under the job's lock as it is deleted,
    so a job retried meanwhile is kept.
    """
    if older_than_seconds < 0:
        raise InvalidInput("The age must not be negative.")
    cutoff = clock.now() - older_than_seconds
    repository = store.repository()
    broker = store.broker()
    with_messages = broker.keys() | broker.dead_keys()
    pruned: list[str] = []
    messages = 0
    for entry in repository.entries(statuses=FINAL_STATUSES):
        if id_timestamp(entry.id) > cutoff:
            continue
        try:
            if dry_run:
                if not _finished_before(repository.get(entry.id), cutoff):
                    continue
            elif (
                repository.delete(entry.id, only_if=lambda job: _finished_before(job, cutoff))
                is None
            ):
                continue
        except repo.JobNotFound:
            continue
        pruned.append(entry.id)
        if entry.id in with_messages:
            messages += len(broker.find(entry.id)) if dry_run else broker.delete_key(entry.id)
        if not dry_run:
            events.publish_deleted(entry.id)
    keys_removed = None
    if not dry_run:
        keys_removed = store.idempotency().prune(older_than=settings.JOBS_IDEMPOTENCY_TTL)
        logger.info(
            "Pruned %d finished jobs, %d queue messages and %d idempotency keys",
            len(pruned),
            messages,
            keys_removed,
        )
    return PruneReport(pruned, messages, keys_removed, dry_run)


def _finished_before(job: Job, cutoff: float) -> bool:
    if not job.is_final:
        return False
    return clock.from_iso(job.finished_at or job.updated_at) < cutoff
