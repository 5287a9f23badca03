"""Group commit: writes made together share their flushes, and lose nothing doing so."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from filestore import atomic
from filestore.group_commit import GroupCommitter, sync
from filestore.ids import new_id
from filestore.repository import JobRepository
from jobs.model import STATUSES


@pytest.fixture
def repo(tmp_path: Path) -> JobRepository:
    repository = JobRepository(tmp_path / "data", statuses=STATUSES)
    repository.setup()
    return repository


@pytest.fixture(autouse=True)
def reset_hooks():
    yield
    atomic.hooks.reset()


def _job(status: str = "pending") -> dict:
    return {"id": new_id(), "status": status}


def test_threads_committing_together_share_flushes():
    started = threading.Barrier(8)
    release = threading.Event()
    flushed: list[list[str]] = []

    def slow_flush(paths: list[str]) -> None:
        flushed.append(paths)
        release.wait(5)  # the first flush runs while the others arrive

    committer = GroupCommitter(slow_flush)

    def commit(name: str) -> None:
        started.wait(5)
        committer.commit([name])

    threads = [threading.Thread(target=commit, args=(f"p{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    # Every thread but the leader is queued behind the first flush.
    deadline = threading.Event()
    for _ in range(500):
        if len(committer._pending) == 7 or deadline.wait(0.01):
            break
    release.set()
    for thread in threads:
        thread.join(5)

    assert sorted(name for batch in flushed for name in batch) == sorted(f"p{i}" for i in range(8))
    assert len(flushed) == committer.flushes == 2


def test_a_failed_flush_fails_every_caller_it_carried_and_not_the_next():
    calls = {"count": 0}

    def flaky(paths: list[str]) -> None:
        calls["count"] += 1
        if calls["count"] == 1:
            raise OSError(5, "Input/output error")

    committer = GroupCommitter(flaky)

    with pytest.raises(OSError, match="Input/output"):
        committer.commit(["a"])
    committer.commit(["b"])  # a fresh flush, which works


def test_sync_flushes_files_and_directories_through_the_hooks(tmp_path: Path):
    first, second = tmp_path / "one", tmp_path / "two"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    steps: list[tuple[str, str]] = []
    atomic.hooks.before = lambda step, path: steps.append((step, Path(path).name))

    sync([first, second, tmp_path, first])

    assert steps == [("fsync", "one"), ("fsync", "two"), ("fsync_dir", tmp_path.name)]


def test_concurrent_creates_are_each_durable_and_readable(repo: JobRepository):
    jobs = [_job() for _ in range(40)]

    threads = [threading.Thread(target=repo.create, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert {repo.get(job["id"])["id"] for job in jobs} == {job["id"] for job in jobs}
    assert repo._committer.flushes <= 2 * len(jobs)


def test_apply_many_changes_each_job_and_reports_what_it_did(repo: JobRepository):
    pending, finished = repo.create(_job()), repo.create(_job("completed"))
    missing = new_id()

    def run(doc: dict) -> dict | None:
        return None if doc["status"] == "completed" else {**doc, "status": "running"}

    results = repo.apply_many([(pending["id"], run), (missing, run), (finished["id"], run)])

    assert [None if r is None else (r.item["status"], r.changed) for r in results] == [
        ("running", True),
        None,
        ("completed", False),
    ]
    assert repo.get(pending["id"])["revision"] == 2
    assert repo.get(finished["id"])["revision"] == 1


def test_apply_many_flushes_a_batch_twice_whatever_its_size(repo: JobRepository):
    jobs = [repo.create(_job("running")) for _ in range(20)]
    steps: list[str] = []
    atomic.hooks.before = lambda step, path: steps.append(step)

    repo.apply_many([(job["id"], lambda doc: {**doc, "status": "completed"}) for job in jobs])

    # One flush of 20 temp files and one of their directories (the fsync
    # steps are counted per path; the flush behind them is one syncfs).
    assert steps.count("rename") == 20
    assert all(repo.get(job["id"])["status"] == "completed" for job in jobs)


def test_apply_many_refuses_a_job_twice(repo: JobRepository):
    job = repo.create(_job())

    with pytest.raises(ValueError, match="distinct"):
        repo.apply_many([(job["id"], lambda doc: doc), (job["id"], lambda doc: doc)])


@pytest.mark.parametrize(("failing_step", "nth"), [("fsync", 3), ("rename", 3), ("fsync_dir", 1)])
def test_a_crash_in_the_middle_of_a_batch_leaves_each_job_one_correct_state(
    repo: JobRepository, failing_step: str, nth: int
):
    jobs = [repo.create(_job("running")) for _ in range(6)]
    seen = {"count": 0}

    def crash(step: str, path: str) -> None:
        if step == failing_step:
            seen["count"] += 1
            if seen["count"] == nth:
                raise OSError(5, "simulated crash")

    atomic.hooks.before = crash
    with pytest.raises(OSError, match="simulated crash"):
        repo.apply_many([(job["id"], lambda doc: {**doc, "status": "completed"}) for job in jobs])
    atomic.hooks.reset()

    states = [repo.get(job["id"]) for job in jobs]
    # Each job is either still running (revision 1) or completed (revision
    # 2), never both, never unreadable; a second run of the batch finishes it.
    assert all(
        (doc["status"], doc["revision"]) in {("running", 1), ("completed", 2)} for doc in states
    )
    repo.recover()
    assert all(len(list(repo.leaf_dir(job["id"]).glob(f"{job['id']}_*"))) == 1 for job in jobs)
    repo.apply_many(
        [
            (
                job["id"],
                lambda doc: (
                    None if doc["status"] == "completed" else {**doc, "status": "completed"}
                ),
            )
            for job in jobs
        ]
    )
    assert {repo.get(job["id"])["status"] for job in jobs} == {"completed"}
    assert list((repo.root / "tmp").iterdir()) == []
