"""A job, and every way it may change.

This module is the one place that says what happens to a job: what a
claim, a transient failure or a cancel does to it, and which status may go
where (:data:`TRANSITIONS`). Everything above the file layer (services, the
worker task, recovery, the admin, the commands) holds :class:`Job` values
and changes them only through the methods below; each method returns a new
job (a ``Job`` is frozen) or raises :class:`~jobs.errors.InvalidTransition`.

On disk a job is a JSON document (:meth:`Job.to_document`,
:meth:`Job.from_document`); its ``format`` says which version of the
document wrote it. Documents of format 1 (no ``format`` key) still load.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobs import clock
from jobs.document_fields import (
    DOCUMENT_FORMAT,
    InvalidDocument,
    check_format,
    integer,
    text,
    timestamp,
)
from jobs.errors import InvalidTransition
from storage.times import round_up_to_ms


class Status(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


STATUSES = tuple(Status)
FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})

# Every change a job may go through: the statuses it may start from, and the
# status it leads to (None: the job is gone). A claim of a running job is
# allowed only once that run is presumed gone (its lease ran out, or the
# worker cluster holding it is known dead), which :meth:`Job.claim_refusal`
# checks.
TRANSITIONS: dict[str, tuple[frozenset[Status], Status | None]] = {
    "claim": (frozenset({Status.PENDING, Status.RUNNING}), Status.RUNNING),
    "complete": (frozenset({Status.RUNNING}), Status.COMPLETED),
    "fail": (frozenset({Status.RUNNING}), Status.FAILED),
    "wait": (frozenset({Status.RUNNING}), Status.PENDING),
    "requeue": (frozenset({Status.RUNNING}), Status.PENDING),
    "give_up": (frozenset({Status.PENDING, Status.RUNNING}), Status.FAILED),
    "cancel": (frozenset({Status.PENDING}), Status.CANCELLED),
    "retry": (frozenset({Status.FAILED, Status.CANCELLED}), Status.PENDING),
    "delete": (frozenset(Status), None),
}

# What staff may do to a job, from the admin page or ``manage.py jobs``.
STAFF_ACTIONS = ("retry", "cancel", "delete")


def may(action: str, status: Status | str) -> bool:
    """Whether ``action`` applies to a job in ``status``."""
    return Status(status) in TRANSITIONS[action][0]


def statuses_for(action: str) -> tuple[Status, ...]:
    """The statuses ``action`` applies to, in the order of :class:`Status`."""
    return tuple(status for status in Status if status in TRANSITIONS[action][0])


@dataclass(frozen=True)
class Failure:
    """Why a job failed: a stable ``code`` and a ``message`` for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Lease:
    """The run that holds a running job, and until when it is presumed alive.

    ``owner`` is the worker cluster the run belongs to (see
    :mod:`storage.owners`), or None when unknown (documents written before
    owners were recorded): then only ``until`` ends the lease.
    """

    token: str
    until: float
    owner: str | None = None


# Whether a lease owner (a worker cluster) is known dead. The model does not
# look: the caller decides from heartbeats and pids (jobs.liveness).
OwnerIsDead = Callable[[str], bool]


@dataclass(frozen=True)
class Event:
    """One line of a job's history, as the admin timeline shows it."""

    at: str
    event: str
    detail: str | None = None


@dataclass(frozen=True)
class ClaimRefusal:
    """Why a delivery may not run a job now, and when to look again (None: never)."""

    reason: str
    come_back_at: float | None = None


class ClaimRefused(InvalidTransition):
    """:meth:`Job.claim` refused: ``refusal`` says why and when to look again."""

    def __init__(self, refusal: ClaimRefusal) -> None:
        super().__init__(f"This job cannot be started now: {refusal.reason}.")
        self.refusal = refusal


@dataclass(frozen=True)
class Job:
    id: str
    status: Status
    created_at: str
    run_at: str
    updated_at: str
    delay_seconds: int
    revision: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    pending_reason: str | None = None
    next_attempt_at: str | None = None
    result: Mapping[str, Any] | None = None
    error: Failure | None = None
    transient_failures: int = 0
    lease: Lease | None = None
    history: tuple[Event, ...] = field(default=(), repr=False)

    # -- creation and reading ------------------------------------------------

    @classmethod
    def new(cls, job_id: str, *, delay: int, now: float) -> Job:
        """A job just created: pending until ``now + delay``."""
        created = clock.to_iso(now)
        return cls(
            id=job_id,
            status=Status.PENDING,
            created_at=created,
            run_at=clock.to_iso(now + delay),
            updated_at=created,
            delay_seconds=delay,
            history=(Event(created, "created", f"due in {delay} s"),),
        )

    @property
    def due_at(self) -> float:
        """When the job should run next (epoch seconds): its next attempt, or its run time."""
        return clock.from_iso(self.next_attempt_at or self.run_at)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def etag(self) -> str:
        return f'"{self.id}.{self.revision}"'

    def holds(self, token: str) -> bool:
        """Whether the run with ``token`` still owns this job."""
        return (
            self.status is Status.RUNNING and self.lease is not None and (self.lease.token == token)
        )

    def lease_expired(self, now: float) -> bool:
        return self.lease is None or self.lease.until <= now

    def owner_died(self, is_dead: OwnerIsDead | None) -> bool:
        """Whether the cluster holding this job's lease is known dead (never for no owner)."""
        owner = None if self.lease is None else self.lease.owner
        return owner is not None and is_dead is not None and is_dead(owner)

    def run_abandoned(self, now: float, is_dead: OwnerIsDead | None = None) -> bool:
        """Whether the run holding this job is presumed gone: its lease ran out, or its
        owner is known dead. A live owner's run keeps its lease to the end."""
        return self.lease_expired(now) or self.owner_died(is_dead)

    def actions(self) -> tuple[str, ...]:
        """The staff actions that apply to this job now."""
        return tuple(action for action in STAFF_ACTIONS if may(action, self.status))

    def claim_refusal(
        self, now: float, *, is_dead: OwnerIsDead | None = None
    ) -> ClaimRefusal | None:
        """Why a delivery at ``now`` may not claim this job; None when it may.

        A running job may be claimed once its run is abandoned
        (:meth:`run_abandoned`, asking ``is_dead`` about the lease's owner).
        """
        if self.is_final:
            return ClaimRefusal(f"already {self.status}")
        if self.status is Status.RUNNING and not self.run_abandoned(now, is_dead):
            assert self.lease is not None
            return ClaimRefusal("running elsewhere", self.lease.until)
        if self.status is Status.PENDING and self.due_at > now:
            return ClaimRefusal("not due", self.due_at)
        return None

    # -- changes --------------------------------------------------------------

    def claim(
        self,
        *,
        token: str,
        lease_seconds: float,
        now: float,
        owner: str | None = None,
        is_dead: OwnerIsDead | None = None,
    ) -> Job:
        """A run starts: ``running`` under a lease of ``lease_seconds`` held by ``token``
        of the worker cluster ``owner``; raises :class:`ClaimRefused` when
        :meth:`claim_refusal` says no (the one place that decides)."""
        refusal = self.claim_refusal(now, is_dead=is_dead)
        if refusal is not None:
            raise ClaimRefused(refusal)
        attempts = self.attempts + 1
        events = [("started", f"attempt {attempts}")]
        if self.status is Status.RUNNING:
            events.insert(0, ("lease-expired", self._abandoned_because(now)))
        return self._to(
            "claim",
            now,
            *events,
            attempts=attempts,
            started_at=self.started_at or clock.to_iso(now),
            lease=Lease(token, now + lease_seconds, owner),
            pending_reason=None,
            next_attempt_at=None,
        )

    def complete(self, result: Mapping[str, Any], *, now: float) -> Job:
        """The run got its photo."""
        return self._to(
            "complete",
            now,
            ("completed", None),
            result=dict(result),
            lease=None,
            finished_at=clock.to_iso(now),
            transient_failures=0,
        )

    def fail(self, failure: Failure, *, now: float) -> Job:
        """The run hit an error that retrying cannot fix."""
        return self._failed("fail", failure, now)

    def give_up(self, failure: Failure, *, now: float) -> Job:
        """The queue gave up on the job's message (delivered too often)."""
        return self._failed("give_up", failure, now)

    def wait(self, reason: str, *, until: float, now: float, transient: bool = True) -> Job:
        """The run hit a passing problem: pending again, with why and until when.

        ``transient`` counts the failure towards giving up; a rate limit does
        not count (the job did nothing wrong, the budget is spent).
        """
        return self._to(
            "wait",
            now,
            ("pending", reason),
            lease=None,
            pending_reason=reason,
            # Timestamps keep milliseconds; rounding down would name an
            # instant before ``until`` (a job woken then would find a
            # rate-limit gate still closed for a fraction of a millisecond).
            next_attempt_at=clock.to_iso(round_up_to_ms(until)),
            transient_failures=self.transient_failures + (1 if transient else 0),
        )

    def requeue(self, *, now: float, is_dead: OwnerIsDead | None = None) -> Job:
        """The run's worker died (its lease ran out, or its owner is known dead):
        pending again, due now."""
        if self.status is Status.RUNNING and not self.run_abandoned(now, is_dead):
            raise InvalidTransition("This job's run is still alive.")
        reason = "run lease expired" if self.lease_expired(now) else "owner died"
        return self._to(
            "requeue",
            now,
            ("requeued", reason),
            lease=None,
            next_attempt_at=clock.to_iso(now),
            pending_reason="The worker stopped during the run; trying again.",
        )

    def _abandoned_because(self, now: float) -> str:
        if self.lease_expired(now):
            return "the previous run stopped without finishing"
        assert self.lease is not None
        return f"owner died: the previous run's worker {self.lease.owner} is gone"

    def cancel(self, *, now: float) -> Job:
        """Staff cancel a pending job; its queued message, when delivered, finds it cancelled."""
        return self._to(
            "cancel",
            now,
            ("cancelled", None),
            finished_at=clock.to_iso(now),
            pending_reason=None,
            next_attempt_at=None,
        )

    def retry(self, *, now: float) -> Job:
        """Staff send a failed or cancelled job back to pending, due now, with a clean slate."""
        return self._to(
            "retry",
            now,
            ("retried", None),
            run_at=clock.to_iso(now),
            finished_at=None,
            error=None,
            result=None,
            pending_reason=None,
            next_attempt_at=None,
            transient_failures=0,
            lease=None,
        )

    def _failed(self, action: str, failure: Failure, now: float) -> Job:
        return self._to(
            action,
            now,
            ("failed", failure.message),
            error=failure,
            lease=None,
            finished_at=clock.to_iso(now),
            pending_reason=None,
            next_attempt_at=None,
            transient_failures=0,
        )

    def _to(self, action: str, now: float, *events: tuple[str, str | None], **changes: Any) -> Job:
        """The job after ``action`` at ``now``: its new status and ``changes``, with ``events``
        (name, detail) added to its history. One copy of the job per transition."""
        sources, target = TRANSITIONS[action]
        if self.status not in sources or target is None:
            raise InvalidTransition(_refusal(action, self.status))
        stamp = clock.to_iso(now)
        history = (*self.history, *(Event(stamp, event, detail) for event, detail in events))
        return dataclasses.replace(
            self, status=target, updated_at=stamp, history=history, **changes
        )

    # -- views ----------------------------------------------------------------

    def to_public(self) -> dict[str, Any]:
        """The job as the API, the event stream and the commands show it."""
        return {
            "id": self.id,
            "url": f"/api/jobs/{self.id}",
            "status": self.status.value,
            "created_at": self.created_at,
            "run_at": self.run_at,
            "updated_at": self.updated_at,
            "delay_seconds": self.delay_seconds,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "pending_reason": self.pending_reason,
            "next_attempt_at": self.next_attempt_at,
            "result": None if self.result is None else dict(self.result),
            "error": None
            if self.error is None
            else {"code": self.error.code, "message": self.error.message},
        }

    def to_document(self) -> dict[str, Any]:
        """The JSON document stored in the job's file."""
        document = self.to_public()
        del document["url"]
        document.update(
            format=DOCUMENT_FORMAT,
            revision=self.revision,
            transient_failures=self.transient_failures,
            lease=None
            if self.lease is None
            else {"token": self.lease.token, "until": self.lease.until, "owner": self.lease.owner},
            # Not dataclasses.asdict: it deep-copies field by field, and a
            # job is written at every change of its status.
            history=[
                {"at": item.at, "event": item.event, "detail": item.detail} for item in self.history
            ],
        )
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Job:
        """The job a stored document describes; :class:`InvalidDocument` when it is not one."""
        try:
            return _load(document)
        except InvalidDocument:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidDocument(f"not a job document: {exc!r}") from None


_REFUSALS = {
    "cancel": "Only pending jobs can be cancelled",
    "retry": "Only failed or cancelled jobs can be retried",
}


def _refusal(action: str, status: Status) -> str:
    rule = _REFUSALS.get(action) or f"A {status} job cannot be changed by {action!r}"
    return f"{rule}; this one is {status}."


def _load(document: Mapping[str, Any]) -> Job:
    check_format(document)
    created_at = timestamp(document, "created_at", required=True)
    lease = document.get("lease")
    error = document.get("error")
    result = document.get("result")
    if result is not None and not isinstance(result, Mapping):
        raise InvalidDocument("result must be an object or null")
    return Job(
        id=text(document, "id", required=True),
        status=Status(document["status"]),
        created_at=created_at,
        run_at=timestamp(document, "run_at", required=True),
        # Older documents may lack the time of their last change: their
        # creation is the best lower bound.
        updated_at=timestamp(document, "updated_at") or created_at,
        delay_seconds=integer(document, "delay_seconds"),
        revision=integer(document, "revision"),
        started_at=timestamp(document, "started_at"),
        finished_at=timestamp(document, "finished_at"),
        attempts=integer(document, "attempts", default=0),
        pending_reason=text(document, "pending_reason"),
        next_attempt_at=timestamp(document, "next_attempt_at"),
        result=result,
        error=None if error is None else Failure(str(error["code"]), str(error["message"])),
        transient_failures=integer(document, "transient_failures", default=0),
        lease=None if not lease else _lease(lease),
        history=tuple(
            Event(str(item["at"]), str(item["event"]), item.get("detail"))
            for item in document.get("history") or ()
        ),
    )


def _lease(lease: Mapping[str, Any]) -> Lease:
    # Documents written before owners were recorded have none: unknown owner.
    owner = lease.get("owner")
    if owner is not None and not isinstance(owner, str):
        raise InvalidDocument(f"lease owner must be a string, not {owner!r}"[:200])
    return Lease(str(lease["token"]), float(lease["until"]), owner)
