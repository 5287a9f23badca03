"""Several processes writing one store at once lose nothing and never split a job."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections import Counter
from pathlib import Path

from filestore.ids import new_id
from filestore.repository import JobRepository
from jobs.model import STATUSES

CREATORS, CREATES_EACH = 4, 200
UPDATERS, UPDATES_EACH = 4, 100
SHARED_JOBS = 12

_fork = multiprocessing.get_context("fork")


def _create_jobs(root: Path, count: int, start, results) -> None:
    repo = JobRepository(root, statuses=STATUSES)
    start.wait()
    ids = [
        repo.create({"id": new_id(), "status": "pending", "bumps": 0})["id"] for _ in range(count)
    ]
    results.put(("created", ids))


def _bump(job: dict) -> dict:
    """One read-modify-write: a lost update shows as a missing bump."""
    status = "running" if job["status"] == "pending" else "pending"
    return {**job, "status": status, "bumps": job["bumps"] + 1}


def _update_jobs(root: Path, job_ids: list[str], count: int, seed: int, start, results) -> None:
    repo = JobRepository(root, statuses=STATUSES)
    rng = random.Random(seed)
    done: Counter[str] = Counter()
    start.wait()
    for _ in range(count):
        job_id = rng.choice(job_ids)
        repo.update(job_id, _bump)
        done[job_id] += 1
    results.put(("updated", dict(done)))


def _names_by_id(repo: JobRepository) -> Counter[str]:
    names: Counter[str] = Counter()
    for top in os.listdir(repo.jobs_dir):
        for mid in os.listdir(repo.jobs_dir / top):
            for leaf in os.listdir(repo.jobs_dir / top / mid):
                for name in os.listdir(repo.jobs_dir / top / mid / leaf):
                    names[name[:26]] += 1
    return names


def test_it_loses_nothing_under_concurrent_writers(data_dir):
    repo = JobRepository(data_dir, statuses=STATUSES)
    shared = [
        repo.create({"id": new_id(), "status": "pending", "bumps": 0})["id"]
        for _ in range(SHARED_JOBS)
    ]
    start = _fork.Barrier(CREATORS + UPDATERS + 1)
    results = _fork.Queue()
    workers = [
        _fork.Process(target=_create_jobs, args=(data_dir, CREATES_EACH, start, results))
        for _ in range(CREATORS)
    ] + [
        _fork.Process(
            target=_update_jobs, args=(data_dir, shared, UPDATES_EACH, seed, start, results)
        )
        for seed in range(UPDATERS)
    ]
    for worker in workers:
        worker.start()
    start.wait(timeout=30)

    # Read while they write: every job stays findable, its revision never
    # goes back, and a listing never shows one job twice.
    last_seen = dict.fromkeys(shared, 1)
    reads = 0
    while any(worker.is_alive() for worker in workers) or reads == 0:
        for job_id in shared:
            revision = repo.get(job_id)["revision"]
            assert revision >= last_seen[job_id]
            last_seen[job_id] = revision
        listed, _ = repo.list(limit=500)
        assert len({job["id"] for job in listed}) == len(listed)
        reads += 1
    reports = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0

    created = [job_id for kind, ids in reports if kind == "created" for job_id in ids]
    bumps: Counter[str] = Counter()
    for kind, done in reports:
        if kind == "updated":
            bumps.update(done)
    assert len(created) == len(set(created)) == CREATORS * CREATES_EACH
    assert sum(bumps.values()) == UPDATERS * UPDATES_EACH

    names = _names_by_id(repo)
    assert set(names) == set(created) | set(shared)
    assert set(names.values()) == {1}, "a job with two files"
    for job_id in created:
        assert repo.get(job_id)["revision"] == 1
    for job_id in shared:
        job = repo.get(job_id)
        assert job["bumps"] == bumps[job_id]
        assert job["revision"] == 1 + bumps[job_id]
        assert job["status"] == ("running" if bumps[job_id] % 2 else "pending")
    counts = repo.counts()
    assert sum(counts.values()) == len(created) + SHARED_JOBS
    documents, more = repo.list(limit=500)
    assert more is True
    assert [job["id"] for job in documents] == sorted(names, reverse=True)[:500]
