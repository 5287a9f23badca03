"""The job model: what each change does to a job, and which status may go where."""

from __future__ import annotations

import dataclasses

import pytest

from filestore.ids import new_id
from jobs import clock
from jobs.errors import InvalidTransition
from jobs.model import (
    STAFF_ACTIONS,
    TRANSITIONS,
    Failure,
    InvalidDocument,
    Job,
    Lease,
    Status,
    may,
    statuses_for,
)
from jobs.store import JobCodec

T0 = 1_790_000_000.0
FAILURE = Failure("unsplash_unauthorized", "Unsplash refused the access key.")


def pending(delay: int = 30) -> Job:
    return Job.new(new_id(T0), delay=delay, now=T0)


def running(token: str = "t1") -> Job:
    return pending().claim(token=token, lease_seconds=90, now=T0 + 30)


def in_status(status: Status) -> Job:
    """A job that reached ``status`` the way real jobs do."""
    return {
        Status.PENDING: pending,
        Status.RUNNING: running,
        Status.COMPLETED: lambda: running().complete({"photo_id": "p"}, now=T0 + 31),
        Status.FAILED: lambda: running().fail(FAILURE, now=T0 + 31),
        Status.CANCELLED: lambda: pending().cancel(now=T0 + 1),
    }[status]()


def test_a_new_job_is_pending_until_its_delay_has_passed():
    job = pending(delay=30)

    assert job.status is Status.PENDING
    assert job.created_at == job.updated_at == clock.to_iso(T0)
    assert job.due_at == T0 + 30
    assert [(event.event, event.detail) for event in job.history] == [("created", "due in 30 s")]
    assert job.claim_refusal(T0 + 29.999).reason == "not due"
    assert job.claim_refusal(T0 + 29.999).come_back_at == T0 + 30
    assert job.claim_refusal(T0 + 30) is None


def test_a_claim_starts_a_run_under_a_lease():
    job = running(token="abc")

    assert job.status is Status.RUNNING
    assert job.attempts == 1
    assert job.started_at == clock.to_iso(T0 + 30)
    assert job.lease == Lease("abc", T0 + 120)
    assert job.holds("abc") and not job.holds("other")
    assert job.claim_refusal(T0 + 119).reason == "running elsewhere"
    assert job.claim_refusal(T0 + 119).come_back_at == T0 + 120


def test_a_run_whose_lease_ran_out_can_be_claimed_again_and_says_so():
    again = running(token="first").claim(token="second", lease_seconds=90, now=T0 + 121)

    assert again.holds("second") and not again.holds("first")
    assert again.attempts == 2
    assert again.started_at == clock.to_iso(T0 + 30)  # the first start stays
    assert [event.event for event in again.history] == [
        "created",
        "started",
        "lease-expired",
        "started",
    ]


OWNER = "0123456789ab-100"


def owned(owner: str | None = OWNER) -> Job:
    return pending().claim(token="first", lease_seconds=90, now=T0 + 30, owner=owner)


def test_a_claim_records_the_worker_that_owns_the_run():
    assert owned().lease == Lease("first", T0 + 120, OWNER)


def test_a_run_whose_owner_died_can_be_claimed_at_once_and_says_so():
    asked = []

    def is_dead(owner: str) -> bool:
        asked.append(owner)
        return True

    job = owned()
    assert job.claim_refusal(T0 + 31, is_dead=is_dead) is None
    again = job.claim(token="second", lease_seconds=90, now=T0 + 31, is_dead=is_dead)

    assert asked == [OWNER, OWNER]
    assert again.holds("second") and again.attempts == 2
    [taken_over] = [event for event in again.history if event.event == "lease-expired"]
    assert "owner died" in taken_over.detail and OWNER in taken_over.detail


def test_a_run_whose_owner_lives_keeps_its_lease_to_the_end():
    job = owned()

    for is_dead in (None, lambda owner: False):
        refusal = job.claim_refusal(T0 + 119, is_dead=is_dead)
        assert refusal.reason == "running elsewhere" and refusal.come_back_at == T0 + 120
        with pytest.raises(InvalidTransition):
            job.claim(token="second", lease_seconds=90, now=T0 + 119, is_dead=is_dead)
        with pytest.raises(InvalidTransition):
            job.requeue(now=T0 + 119, is_dead=is_dead)
    # The time rule still holds for a live owner.
    assert job.claim_refusal(T0 + 120, is_dead=lambda owner: False) is None


def test_a_run_of_unknown_owner_only_ends_with_its_lease():
    job = owned(owner=None)

    assert job.claim_refusal(T0 + 119, is_dead=lambda owner: True).reason == "running elsewhere"
    assert job.claim_refusal(T0 + 120, is_dead=lambda owner: True) is None


def test_a_run_whose_owner_died_can_be_requeued_and_says_so():
    job = owned().requeue(now=T0 + 31, is_dead=lambda owner: owner == OWNER)

    assert job.status is Status.PENDING and job.lease is None
    assert job.history[-1].event == "requeued" and job.history[-1].detail == "owner died"


def test_a_lease_document_without_an_owner_loads_as_unknown_owner():
    document = owned().to_document()
    assert document["lease"]["owner"] == OWNER
    del document["lease"]["owner"]

    assert Job.from_document(document).lease == Lease("first", T0 + 120, None)


def test_complete_keeps_the_photo_and_ends_the_lease():
    job = running().complete({"photo_id": "p1"}, now=T0 + 31)

    assert job.status is Status.COMPLETED and job.is_final
    assert job.result == {"photo_id": "p1"}
    assert job.lease is None
    assert job.finished_at == job.updated_at == clock.to_iso(T0 + 31)
    assert job.history[-1].event == "completed"


def test_a_transient_failure_waits_counts_and_says_why():
    job = running().wait("Unsplash answered 500", until=T0 + 40.0004, now=T0 + 31)

    assert job.status is Status.PENDING
    assert job.pending_reason == "Unsplash answered 500"
    # Never rounded to an instant before the time asked for.
    assert job.next_attempt_at == "2026-09-21T14:14:00.001Z"
    assert job.due_at >= T0 + 40.0004
    assert job.transient_failures == 1
    assert job.lease is None
    assert (job.history[-1].event, job.history[-1].detail) == ("pending", "Unsplash answered 500")


def test_a_rate_limit_waits_without_counting_as_a_failure():
    job = running().wait("Rate limited", until=T0 + 60, now=T0 + 31, transient=False)

    assert job.transient_failures == 0
    assert job.pending_reason == "Rate limited"


def test_fail_records_the_error_and_clears_what_was_waiting():
    waited = running().wait("500", until=T0 + 40, now=T0 + 31)
    job = waited.claim(token="t2", lease_seconds=90, now=T0 + 40).fail(FAILURE, now=T0 + 41)

    assert job.status is Status.FAILED
    assert job.error == FAILURE
    assert job.pending_reason is None and job.next_attempt_at is None
    assert job.transient_failures == 0
    assert (job.history[-1].event, job.history[-1].detail) == ("failed", FAILURE.message)


@pytest.mark.parametrize("status", [Status.PENDING, Status.RUNNING])
def test_give_up_fails_a_job_whose_message_died(status):
    job = in_status(status).give_up(FAILURE, now=T0 + 500)

    assert job.status is Status.FAILED
    assert job.lease is None and job.error == FAILURE


def test_requeue_sends_a_dead_run_back_to_pending_due_now():
    job = running().requeue(now=T0 + 200)

    assert job.status is Status.PENDING
    assert job.due_at == T0 + 200
    assert "worker stopped" in job.pending_reason
    assert job.history[-1].event == "requeued"


def test_requeue_refuses_a_run_that_is_still_alive():
    with pytest.raises(InvalidTransition):
        running().requeue(now=T0 + 60)


def test_cancel_ends_a_pending_job():
    job = pending().cancel(now=T0 + 1)

    assert job.status is Status.CANCELLED
    assert job.finished_at == clock.to_iso(T0 + 1)
    assert job.claim_refusal(T0 + 100).reason == "already cancelled"


def test_retry_gives_a_failed_job_a_clean_slate_due_now():
    failed = running().wait("500", until=T0 + 40, now=T0 + 31)
    failed = failed.claim(token="t", lease_seconds=90, now=T0 + 40).fail(FAILURE, now=T0 + 41)

    job = failed.retry(now=T0 + 100)

    assert job.status is Status.PENDING
    assert job.due_at == T0 + 100
    assert job.error is None and job.result is None and job.finished_at is None
    assert job.transient_failures == 0 and job.lease is None
    assert job.attempts == failed.attempts  # the history of attempts stays
    assert job.history[-1].event == "retried"


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_staff_actions_follow_the_transition_table(status, action):
    job = in_status(status)
    change = getattr(job, action)

    if may(action, status):
        assert change(now=T0 + 1000).status is TRANSITIONS[action][1]
        assert action in job.actions()
    else:
        with pytest.raises(InvalidTransition, match=f"this one is {status}"):
            change(now=T0 + 1000)
        assert action not in job.actions()


def test_delete_applies_to_every_status_and_the_table_names_every_staff_action():
    assert statuses_for("delete") == tuple(Status)
    assert statuses_for("cancel") == (Status.PENDING,)
    assert statuses_for("retry") == (Status.FAILED, Status.CANCELLED)
    assert set(STAFF_ACTIONS) <= set(TRANSITIONS)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_a_finished_job_cannot_be_claimed_or_finished_again(status):
    job = in_status(status)

    assert job.claim_refusal(T0 + 10_000).reason == f"already {status}"
    for change in (
        lambda: job.claim(token="x", lease_seconds=90, now=T0 + 10_000),
        lambda: job.complete({}, now=T0 + 10_000),
        lambda: job.fail(FAILURE, now=T0 + 10_000),
        lambda: job.wait("x", until=T0, now=T0 + 10_000),
    ):
        with pytest.raises(InvalidTransition):
            change()


@pytest.mark.parametrize("status", list(Status))
def test_a_job_survives_its_document(status):
    job = dataclasses.replace(in_status(status), revision=7)

    assert Job.from_document(job.to_document()) == job


@pytest.mark.parametrize("status", list(Status))
def test_the_codec_revises_a_job_as_loading_its_written_document_would(status):
    # The repository answers a write with codec.revised rather than loading
    # back the document it wrote: the two must agree.
    codec = JobCodec()
    job = in_status(status)

    revised = codec.revised(job, 8)

    assert revised == codec.load({**codec.dump(job), "revision": 8})
    assert revised.revision == 8


def test_the_public_view_has_every_field_and_no_internals():
    job = running()
    public = job.to_public()

    assert public["url"] == f"/api/jobs/{job.id}"
    assert public["status"] == "running"
    assert "lease" not in public and "history" not in public and "revision" not in public


def test_documents_written_before_the_format_field_still_load():
    old = {
        "id": new_id(T0),
        "status": "failed",
        "created_at": "2026-09-21T14:13:20.000Z",
        "run_at": "2026-09-21T14:13:50.000Z",
        "delay_seconds": 30,
        "started_at": "2026-09-21T14:13:50.010Z",
        "finished_at": "2026-09-21T14:13:50.200Z",
        "attempts": 1,
        "result": None,
        "error": {"code": "delivery_failed", "message": "gave up"},
        "lease": None,
        "history": [{"at": "2026-09-21T14:13:20.000Z", "event": "created", "detail": None}],
        "revision": 3,
    }

    job = Job.from_document(old)

    assert job.status is Status.FAILED
    assert job.error == Failure("delivery_failed", "gave up")
    # No updated_at in the oldest documents: the creation time stands in.
    assert job.updated_at == old["created_at"]
    assert job.to_document()["format"] == 2


@pytest.mark.parametrize(
    "damage",
    [
        {"updated_at": "yesterday"},
        {"created_at": None},
        {"run_at": 5},
        {"status": "exploded"},
        {"attempts": "three"},
        {"revision": True},
        {"lease": {"token": "t"}},
        {"lease": {"token": "t", "until": 1.0, "owner": 5}},
        {"error": "broken"},
        {"result": ["not", "an", "object"]},
        {"history": [{"event": "created"}]},
        {"format": 99},
    ],
    ids=lambda damage: next(iter(damage)),
)
def test_a_document_that_is_not_a_job_is_refused_clearly(damage):
    document = {**pending().to_document(), **damage}

    with pytest.raises(InvalidDocument):
        Job.from_document(document)


def test_the_store_s_revised_copy_is_the_job_with_the_new_revision():
    job = Job.new("01JABCDEFGHJKMNPQRSTVWXYZ0", delay=5, now=1_700_000_000.0)
    revised = JobCodec().revised(job, 3)
    assert revised == dataclasses.replace(job, revision=3)
    assert (revised.revision, job.revision) == (3, 0)
    assert JobCodec().revised(revised, 3) is revised
    with pytest.raises(dataclasses.FrozenInstanceError):
        revised.revision = 4  # type: ignore[misc]
    # Every field a job has is carried over, not only those a new job sets.
    assert set(vars(revised)) == {field.name for field in dataclasses.fields(Job)}
