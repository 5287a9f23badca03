"""Jobs due together run as one batch: one claim pass, one pool claim, one durable write.

Called directly as the worker would, with the clock controlled and the
photo source pointed at a fake Unsplash over real HTTP.
"""

from __future__ import annotations

import pytest

from filestore import atomic, photo_pool, repository
from jobs import photos, services, store
from jobs.model import Job, Status
from jobs.photos import BATCH_SIZE, TransientPhotoError
from jobs.tasks import run_jobs, run_lease_seconds
from tests.test_tasks import WorkerKilled

DELAY = 5


@pytest.fixture(autouse=True)
def reset_hooks():
    yield
    atomic.hooks.reset()


def due_jobs(now, count: int) -> list[str]:
    ids = [services.job_create(delay_seconds=DELAY).job_id for _ in range(count)]
    now.advance(DELAY)
    return ids


def read(job_id: str) -> Job:
    return store.repository().get(job_id)


def completions(job_id: str) -> int:
    return [event.event for event in read(job_id).history].count("completed")


def test_a_batch_completes_every_job_with_its_own_photo(now, fake_unsplash):
    ids = due_jobs(now, BATCH_SIZE + 5)

    assert run_jobs(ids) == ["completed"] * len(ids)

    jobs = [read(job_id) for job_id in ids]
    assert all(job.status is Status.COMPLETED and job.attempts == 1 for job in jobs)
    assert len({job.result["photo_id"] for job in jobs}) == len(ids)
    # Two calls serve 35 jobs: the batch asks the pool once and the source
    # as rarely as the batch size allows.
    assert len(fake_unsplash.requests) == 2


def test_a_batch_makes_its_outcomes_durable_with_two_flushes(now, fake_unsplash):
    ids = due_jobs(now, 20)
    steps: list[str] = []
    atomic.hooks.before = lambda step, path: steps.append(step)

    run_jobs(ids)

    # The final states: one rename per job, their data and directories
    # flushed together (the fsync steps are per path; the flush is one).
    job_renames = [s for s in steps if s == "rename"]
    assert len(job_renames) >= 2 * len(ids)  # the claims and the outcomes
    assert all(read(job_id).status is Status.COMPLETED for job_id in ids)


def test_each_job_of_a_batch_is_handled_on_its_own_terms(now, fake_unsplash):
    due, cancelled, deleted = due_jobs(now, 3)
    later = services.job_create(delay_seconds=60).job_id
    services.job_cancel(job_id=cancelled)
    services.job_delete(job_id=deleted)

    outcomes = run_jobs([due, cancelled, deleted, later])

    assert outcomes == ["completed", "already cancelled", "deleted", "not due"]
    # The early message of the job not yet due is replaced by one for its due time.
    ready = [m.due_at for m in store.broker().find(later) if m.state == "ready"]
    assert any(abs(at - read(later).due_at) < 0.002 for at in ready)


def test_jobs_left_without_a_photo_wait_and_the_others_complete(now, fake_unsplash):
    # Two photos wait in the pool; the source then fails for the rest.
    photos.pool().store.add([dict(p) for p in _demo_photos(2)], now())
    fake_unsplash.script(["server_error_500"])
    ids = due_jobs(now, 5)

    outcomes = run_jobs(ids)

    assert outcomes.count("completed") == 2
    assert outcomes.count("pending") == 3
    for job_id, outcome in zip(ids, outcomes, strict=True):
        job = read(job_id)
        if outcome == "pending":
            assert job.pending_reason and job.next_attempt_at and job.lease is None


def test_a_worker_killed_mid_batch_loses_nothing_and_runs_nothing_twice(
    now, fake_unsplash, monkeypatch
):
    ids = due_jobs(now, 6)
    real_take_photos = photos.take_photos

    def killed(count):
        raise WorkerKilled

    monkeypatch.setattr(photos, "take_photos", killed)
    with pytest.raises(WorkerKilled):
        run_jobs(ids)
    monkeypatch.setattr(photos, "take_photos", real_take_photos)
    assert {read(job_id).status for job_id in ids} == {Status.RUNNING}

    # The batch is delivered again once the lease ran out: every job runs once.
    now.advance(run_lease_seconds() + 1)
    assert run_jobs(ids) == ["completed"] * len(ids)
    assert [completions(job_id) for job_id in ids] == [1] * len(ids)


def test_a_crash_while_writing_the_outcomes_is_finished_by_the_next_delivery(now, fake_unsplash):
    ids = due_jobs(now, 6)
    renames = {"count": 0}

    def crash_at_the_ninth_rename(step: str, path: str) -> None:
        # Six claims, then the third outcome: the crash comes mid-write.
        if step == "rename":
            renames["count"] += 1
            if renames["count"] == 9:
                raise WorkerKilled

    atomic.hooks.before = crash_at_the_ninth_rename
    with pytest.raises(WorkerKilled):
        run_jobs(ids)
    atomic.hooks.reset()
    statuses = [read(job_id).status for job_id in ids]
    assert set(statuses) <= {Status.RUNNING, Status.COMPLETED}

    now.advance(run_lease_seconds() + 1)
    outcomes = run_jobs(ids)

    for status, outcome in zip(statuses, outcomes, strict=True):
        expected = "already completed" if status is Status.COMPLETED else "completed"
        assert outcome == expected
    assert [completions(job_id) for job_id in ids] == [1] * len(ids)


def test_a_batch_delivered_twice_at_once_gives_each_job_one_outcome(
    now, fake_unsplash, monkeypatch
):
    ids = due_jobs(now, 4)
    real_take_photos = photos.take_photos
    second = {}

    def overlapping(count):
        # While the first delivery fetches, its lease runs out and a second
        # delivery of the same batch takes the jobs over and finishes them.
        monkeypatch.setattr(photos, "take_photos", real_take_photos)
        now.advance(run_lease_seconds() + 1)
        second["outcomes"] = run_jobs(ids)
        return [TransientPhotoError("unsplash_unavailable", "late")] * count

    monkeypatch.setattr(photos, "take_photos", overlapping)

    assert run_jobs(ids) == ["lost lease"] * 4
    assert second["outcomes"] == ["completed"] * 4
    assert [completions(job_id) for job_id in ids] == [1] * 4
    assert run_jobs([ids[0]])[0] == "already completed"


def _demo_photos(count: int) -> list[dict]:
    return list(photos.DemoSource(app_name="food_jobs").fetch_batch(count))


# --- photos at hand: claim and finish in one write -------------------------------


def _stock(now, count: int) -> None:
    photos.pool().store.add(_demo_photos(count), now())


def test_jobs_with_photos_at_hand_go_from_pending_to_completed_in_one_write(now, fake_unsplash):
    ids = due_jobs(now, 6)
    _stock(now, 6)
    steps: list[tuple[str, str]] = []
    atomic.hooks.before = lambda step, path: steps.append((step, str(path)))

    assert run_jobs(ids) == ["completed"] * 6

    # One rename per job, straight to its final name: no running document.
    job_renames = [path for step, path in steps if step == "rename" and "/jobs/" in path]
    assert len(job_renames) == 6
    assert all(path.endswith("_completed.json") for path in job_renames)
    assert fake_unsplash.requests == []  # the pool served them all
    for job_id in ids:
        job = read(job_id)
        assert job.status is Status.COMPLETED and job.attempts == 1 and job.lease is None
        assert [event.event for event in job.history][-2:] == ["started", "completed"]
    assert photos.pool().size() == 0


def test_the_photos_claims_are_flushed_with_the_jobs_before_any_job_shows_one(
    now, fake_unsplash, monkeypatch
):
    ids = due_jobs(now, 3)
    _stock(now, 3)
    pool_dir = photos.pool().claim_paths()
    flushes: list[list[str]] = []
    real_sync = repository.sync
    monkeypatch.setattr(
        repository,
        "sync",
        lambda paths: flushes.append([str(p) for p in paths]) or real_sync(paths),
    )
    monkeypatch.setattr(photo_pool, "fsync_dir", lambda path: flushes.append([f"alone: {path}"]))
    steps: list[tuple[str, str]] = []
    atomic.hooks.before = lambda step, path: steps.append((step, str(path)))

    assert run_jobs(ids) == ["completed"] * 3

    # No flush of its own: the pool's directory goes with the jobs' new documents,
    # in the flush made before the first of them is renamed into place.
    first, directories = flushes
    assert first[: len(pool_dir)] == pool_dir and len(first) == len(pool_dir) + 3
    assert all(path.endswith(".tmp") for path in first[len(pool_dir) :])
    flush_step = steps.index(("fsync_dir", pool_dir[0]))
    first_rename = next(i for i, (step, path) in enumerate(steps) if "/jobs/" in path)
    assert flush_step < first_rename
    assert len(directories) == 1  # the jobs' leaf


def test_a_photo_taken_for_a_job_claimed_elsewhere_goes_back_to_the_pool(now, fake_unsplash):
    done, cancelled, fresh = due_jobs(now, 3)
    _stock(now, 1)
    assert run_jobs([done]) == ["completed"]
    services.job_cancel(job_id=cancelled)
    _stock(now, 3)

    outcomes = run_jobs([done, cancelled, fresh])

    assert outcomes == ["already completed", "already cancelled", "completed"]
    assert photos.pool().size() == 2  # the two not used are back
    assert completions(done) == 1 and completions(fresh) == 1


def test_jobs_beyond_the_photos_at_hand_are_claimed_then_fetched_for(now, fake_unsplash):
    ids = due_jobs(now, 5)
    _stock(now, 2)

    assert run_jobs(ids) == ["completed"] * 5

    assert len(fake_unsplash.requests) == 1  # one call for the three without a photo
    assert len({read(job_id).result["photo_id"] for job_id in ids}) == 5
    assert [completions(job_id) for job_id in ids] == [1] * 5


def test_a_crash_writing_jobs_finished_at_their_claim_runs_them_once_on_the_next_delivery(
    now, fake_unsplash
):
    ids = due_jobs(now, 4)
    _stock(now, 4)

    def crash_at_the_first_job_rename(step: str, path: str) -> None:
        if step == "rename" and "/jobs/" in str(path):
            raise WorkerKilled

    atomic.hooks.before = crash_at_the_first_job_rename
    with pytest.raises(WorkerKilled):
        run_jobs(ids)
    atomic.hooks.reset()
    assert {read(job_id).status for job_id in ids} == {Status.PENDING}

    # The message is delivered again after its lease: every job runs once.
    now.advance(run_lease_seconds() + 1)
    assert run_jobs(ids) == ["completed"] * 4
    assert [completions(job_id) for job_id in ids] == [1] * 4
