"""The job task (``run_jobs``), called directly as the worker would, with the clock controlled
and the photo source pointed at a fake Unsplash over real HTTP."""

from __future__ import annotations

import os
import random

import pytest

from jobs import clock, photos, services, store
from jobs.photos import TransientPhotoError
from jobs.tasks import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_TRANSIENT_FAILURES,
    backoff_delay,
    dead_letter,
    run_jobs,
    run_lease_seconds,
)
from tests.clocks import FakeClock
from tests.fake_unsplash import FakeUnsplash

DELAY = 5


class WorkerKilled(BaseException):
    """What a killed worker looks like to the code after it: nothing more happens."""


@pytest.fixture
def fake(fake_unsplash: FakeUnsplash) -> FakeUnsplash:
    return fake_unsplash


def create_job() -> str:
    return services.job_create(delay_seconds=DELAY).job["id"]


def due_job(now: FakeClock) -> str:
    job_id = create_job()
    now.advance(DELAY)
    return job_id


def read(job_id: str) -> dict:
    return store.repository().get(job_id)


def ready_due_times(job_id: str) -> list[float]:
    return sorted(m.due_at for m in store.broker().find(job_id) if m.state == "ready")


def assert_queued_for(job_id: str, iso: str) -> None:
    """A ready message of the job becomes visible at ``iso`` (to the millisecond)."""
    due = clock.from_iso(iso)
    assert any(abs(at - due) < 0.002 for at in ready_due_times(job_id)), (
        f"no message due at {iso}: {ready_due_times(job_id)}"
    )


def events(job: dict) -> list[str]:
    return [entry.event for entry in job.history]


# --- the happy path ----------------------------------------------------------------


def test_it_completes_a_due_job_with_a_photo_and_its_credit(now, fake):
    job_id = due_job(now)

    assert run_jobs([job_id])[0] == "completed"

    job = read(job_id)
    assert job.status == "completed"
    assert job.started_at == job.finished_at == clock.to_iso(now())
    assert job.attempts == 1
    assert job.error is None and job.lease is None and job.pending_reason is None
    photo = job.result
    assert photo["source"] == "unsplash"
    assert photo["photo_id"].startswith("fake")
    assert set(photo["urls"]) == {"raw", "full", "regular", "small", "thumb"}
    assert photo["urls"]["raw"].startswith(fake.url)
    assert photo["photographer_name"]
    for link in ("photographer_url", "photo_url", "unsplash_url"):
        assert "utm_source=food_jobs&utm_medium=referral" in photo[link], link
    assert photo["unsplash_url"].startswith("https://unsplash.com/")
    assert events(job) == ["created", "started", "completed"]
    [request] = fake.requests
    assert request.path == "/photos/random"
    assert request.headers["Authorization"] == "Client-ID test"
    assert request.headers["Accept-Version"] == "v1"


def test_it_never_starts_a_job_before_its_run_at(now, fake):
    job_id = create_job()
    before = read(job_id)
    now.advance(DELAY - 0.001)

    assert run_jobs([job_id])[0] == "not due"

    assert read(job_id) == before
    assert fake.calls == 0
    # The early message is replaced by one that becomes visible on time.
    assert_queued_for(job_id, before.run_at)

    now.to(before.run_at)
    assert run_jobs([job_id])[0] == "completed"
    assert read(job_id).started_at == before.run_at


def test_running_it_twice_changes_nothing_the_second_time(now, fake):
    job_id = due_job(now)
    assert run_jobs([job_id])[0] == "completed"
    done = read(job_id)
    now.advance(30)

    assert run_jobs([job_id])[0] == "already completed"

    assert read(job_id) == done
    assert fake.calls == 1


def test_a_cancelled_job_stays_cancelled_when_its_message_arrives(now, fake):
    job_id = create_job()
    services.job_cancel(job_id=job_id)
    cancelled = read(job_id)
    now.advance(DELAY)

    assert run_jobs([job_id])[0] == "already cancelled"

    assert read(job_id) == cancelled
    assert fake.calls == 0


def test_a_deleted_job_is_fine(now, fake):
    job_id = due_job(now)
    services.job_delete(job_id=job_id)

    assert run_jobs([job_id])[0] == "deleted"

    assert list(store.repository().entries()) == []
    assert fake.calls == 0


def test_a_job_deleted_during_its_run_is_not_written_back(now, fake, monkeypatch):
    job_id = due_job(now)
    real_take_photos = photos.take_photos

    def delete_then_fetch(count):
        services.job_delete(job_id=job_id)
        return real_take_photos(count)

    monkeypatch.setattr(photos, "take_photos", delete_then_fetch)

    assert run_jobs([job_id])[0] == "deleted"
    assert list(store.repository().entries()) == []


# --- at-least-once delivery: takeover and exactly one final state -------------------------


def test_a_stale_running_job_is_taken_over(now, fake, monkeypatch):
    job_id = due_job(now)
    real_take_photos = photos.take_photos

    def killed(count):
        raise WorkerKilled

    monkeypatch.setattr(photos, "take_photos", killed)
    with pytest.raises(WorkerKilled):
        run_jobs([job_id])[0]
    monkeypatch.setattr(photos, "take_photos", real_take_photos)
    running = read(job_id)
    assert running.status == "running"
    lease_until = running.lease.until
    assert lease_until == now() + run_lease_seconds()

    # Another delivery while the lease lives leaves the run alone, but keeps a
    # message for the moment the lease runs out in case that run died.
    now.advance(run_lease_seconds() - 1)
    assert run_jobs([job_id])[0] == "running elsewhere"
    assert read(job_id) == running
    assert_queued_for(job_id, clock.to_iso(lease_until))

    now.to(clock.to_iso(lease_until))
    assert run_jobs([job_id])[0] == "completed"

    job = read(job_id)
    assert job.status == "completed"
    assert job.attempts == 2
    assert events(job) == ["created", "started", "lease-expired", "started", "completed"]
    assert fake.calls == 1


@pytest.mark.parametrize("late_run", ["got a photo", "got an error"])
def test_a_run_that_lost_its_lease_cannot_overwrite_the_final_state(
    now, fake, monkeypatch, late_run
):
    job_id = due_job(now)
    real_take_photos = photos.take_photos
    taken_over = {}

    def stalled_fetch(count):
        # The first run stalls past its lease; meanwhile another delivery takes over.
        monkeypatch.setattr(photos, "take_photos", real_take_photos)
        now.advance(run_lease_seconds() + 1)
        taken_over["outcome"] = run_jobs([job_id])[0]
        taken_over["job"] = read(job_id)
        if late_run == "got an error":
            error = TransientPhotoError("unsplash_unavailable", "Unsplash is having trouble.")
            return [error] * count
        return real_take_photos(count)

    monkeypatch.setattr(photos, "take_photos", stalled_fetch)
    messages_before = len(store.broker().find(job_id))

    assert run_jobs([job_id])[0] == "lost lease"

    assert taken_over["outcome"] == "completed"
    job = read(job_id)
    assert job == taken_over["job"]
    assert events(job).count("completed") == 1
    assert [
        status
        for status in store.repository().statuses
        if store.repository().path_for(job_id, status).exists()
    ] == ["completed"]
    assert len(store.broker().find(job_id)) == messages_before


# --- transient failures ----------------------------------------------------------------


# Each transient failure, and what the waiting job says about it.
TRANSIENT = {
    "server_error_500": "Unsplash is having trouble (HTTP 500",
    "malformed": "Unsplash sent a malformed response",
    "drop": "Could not reach Unsplash",
    "slow": "Unsplash did not answer within 0.2 seconds",
}


@pytest.mark.parametrize("behaviour", list(TRANSIENT))
def test_a_transient_failure_keeps_the_job_pending_with_a_reason_and_a_next_attempt(
    now, fake, behaviour, client
):
    fake.behaviour = behaviour
    fake.slow_seconds = 5
    photos.source().timeout = (1.0, 0.2)
    job_id = due_job(now)

    assert run_jobs([job_id])[0] == "pending"

    job = read(job_id)
    assert job.status == "pending"
    assert job.lease is None and job.error is None and job.result is None
    assert TRANSIENT[behaviour] in job.pending_reason
    wait = clock.from_iso(job.next_attempt_at) - now()
    assert 1 <= wait <= max(BACKOFF_BASE, photos.pool().error_cooldown_seconds) + 0.001
    assert_queued_for(job_id, job.next_attempt_at)
    assert events(job)[-1] == "pending"
    assert job.history[-1].detail == job.pending_reason
    shown = client.get(f"/api/jobs/{job_id}").json()
    assert shown["status"] == "pending"
    assert shown["pending_reason"] == job.pending_reason
    assert shown["next_attempt_at"] == job.next_attempt_at


def test_it_fails_after_the_bounded_number_of_transient_failures(now, fake):
    fake.behaviour = "server_error_500"
    job_id = due_job(now)
    waits = []

    for attempt in range(1, MAX_TRANSIENT_FAILURES):
        assert run_jobs([job_id])[0] == "pending", attempt
        job = read(job_id)
        waits.append(clock.from_iso(job.next_attempt_at) - now())
        assert_queued_for(job_id, job.next_attempt_at)
        now.to(job.next_attempt_at)

    assert run_jobs([job_id])[0] == "failed"

    job = read(job_id)
    assert job.status == "failed"
    assert job.attempts == MAX_TRANSIENT_FAILURES
    assert job.error.code == "unsplash_unavailable"
    assert f"gave up after {MAX_TRANSIENT_FAILURES} attempts" in job.error.message
    assert job.pending_reason is None and job.next_attempt_at is None
    assert fake.calls == MAX_TRANSIENT_FAILURES
    cooldown = photos.pool().error_cooldown_seconds
    for failures, wait in enumerate(waits, start=1):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        assert 1 <= wait <= max(cooldown, ceiling) + 0.001, (failures, wait)


def test_a_success_resets_the_count_of_transient_failures(now, fake):
    fake.script(["server_error_500"] * (MAX_TRANSIENT_FAILURES - 1))
    first = due_job(now)
    for _ in range(MAX_TRANSIENT_FAILURES - 1):
        assert run_jobs([first])[0] == "pending"
        now.to(read(first).next_attempt_at)
    assert run_jobs([first])[0] == "completed"
    photos.pool().clear()  # the next job must call the source again

    fake.script(["server_error_500"])
    second = due_job(now)
    assert run_jobs([second])[0] == "pending"
    assert read(second).transient_failures == 1


def test_backoff_grows_exponentially_with_full_jitter_up_to_a_cap():
    rng = random.Random(7)
    for failures in range(1, 15):
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))
        delays = [backoff_delay(failures, rng=rng) for _ in range(400)]
        assert all(1 <= delay <= max(1, ceiling) for delay in delays)
        # Full jitter: anywhere from (almost) nothing up to the ceiling.
        assert max(delays) > 0.9 * ceiling
        if ceiling >= 20:
            assert min(delays) < 0.1 * ceiling
    assert max(backoff_delay(50, rng=rng) for _ in range(400)) <= BACKOFF_CAP


# --- rate limits and permanent failures --------------------------------------------------


@pytest.mark.parametrize("behaviour", ["rate_limited_403", "rate_limited_429"])
def test_a_rate_limit_makes_jobs_wait_with_growing_probes_until_it_lifts(now, fake, behaviour):
    fake.behaviour = behaviour
    fake.retry_after = 1  # a hint shorter than the first probe interval
    job_ids = [create_job() for _ in range(5)]
    now.advance(DELAY)
    probes = MAX_TRANSIENT_FAILURES + 3  # waiting on a rate limit never fails a job

    for probe in range(probes):
        assert [run_jobs([job_id])[0] for job_id in job_ids] == ["pending"] * len(job_ids)
        assert fake.calls == probe + 1, "one probe per interval, not one call per job"
        jobs = [read(job_id) for job_id in job_ids]
        next_attempts = {job.next_attempt_at for job in jobs}
        assert len(next_attempts) == 1
        [next_attempt] = next_attempts
        interval = min(15 * 2**probe, 300)
        assert interval <= clock.from_iso(next_attempt) - now() <= interval * 1.2 + 0.001
        for job in jobs:
            assert "limit" in job.pending_reason
            assert job.error is None
            assert_queued_for(job.id, next_attempt)
        now.to(next_attempt)

    fake.behaviour = "ok"
    assert [run_jobs([job_id])[0] for job_id in job_ids] == ["completed"] * len(job_ids)
    assert fake.calls == probes + 1
    assert len({read(job_id).result["photo_id"] for job_id in job_ids}) == len(job_ids)


def test_an_invalid_access_key_fails_the_job_at_once(now, fake):
    fake.behaviour = "unauthorized_401"
    job_id = due_job(now)
    messages_before = ready_due_times(job_id)

    assert run_jobs([job_id])[0] == "failed"

    job = read(job_id)
    assert job.status == "failed"
    assert job.attempts == 1
    assert job.error.code == "unsplash_unauthorized"
    assert "UNSPLASH_ACCESS_KEY" in job.error.message
    assert job.finished_at == clock.to_iso(now())
    assert ready_due_times(job_id) == messages_before  # no retry is queued


# --- dead letters --------------------------------------------------------------------


def test_a_message_delivered_too_often_fails_its_job_clearly(now, fake, monkeypatch, settings):
    def killed(count):
        raise WorkerKilled

    monkeypatch.setattr(photos, "take_photos", killed)
    queue = store.broker().connection
    queue.clock = now
    job_id = due_job(now)

    for _ in range(settings.JOBS_MAX_DELIVERIES):
        [(_ack_id, _payload)] = queue.dequeue(1)
        with pytest.raises(WorkerKilled):
            run_jobs([job_id])[0]
        now.advance(max(queue.lease_seconds, run_lease_seconds()) + 1)
    assert queue.dequeue(1) == []  # the expired lease goes to dead/, which fails the job

    job = read(job_id)
    assert job.status == "failed"
    assert job.lease is None
    assert job.error.code == "delivery_failed"
    assert f"after {settings.JOBS_MAX_DELIVERIES} deliveries" in job.error.message
    assert [m.state for m in store.broker().find(job_id)] == ["dead"]


def test_a_dead_message_fails_a_waiting_job_without_leaving_its_wait_behind(now, fake):
    fake.behaviour = "server_error_500"
    job_id = due_job(now)
    assert run_jobs([job_id])[0] == "pending"

    dead_letter(job_id, b"")

    job = read(job_id)
    assert job.status == "failed"
    assert job.error.code == "delivery_failed"
    assert job.pending_reason is None and job.next_attempt_at is None
    assert job.transient_failures == 0  # a retry by an operator starts afresh


def test_a_dead_message_leaves_a_finished_job_alone(now, fake):
    job_id = due_job(now)
    run_jobs([job_id])[0]
    done = read(job_id)

    dead_letter(job_id, b"")

    assert read(job_id) == done


# --- the request budget --------------------------------------------------------------


def test_a_demo_key_budget_of_50_calls_completes_500_jobs(now, fake, monkeypatch):
    # This test counts requests; fsync would only make its thousands of writes slow.
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    fake.remaining = 50
    job_ids = [create_job() for _ in range(500)]
    now.advance(DELAY)

    outcomes = [run_jobs([job_id])[0] for job_id in job_ids]

    assert outcomes == ["completed"] * 500
    photos = {read(job_id).result["photo_id"] for job_id in job_ids}
    assert len(photos) == 500, "each photo goes to exactly one job"
    assert fake.calls == 17  # ceil(500 / 30): one call per batch of 30
    assert fake.remaining == 50 - 17
