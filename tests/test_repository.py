"""The job repository: one file per job, listed newest first from names alone."""

from __future__ import annotations

import json
import logging
import os
import random

import pytest

from filestore.ids import new_id
from filestore.repository import LIST_LEAF_AT, JobExists, JobNotFound, JobRepository
from jobs.model import STATUSES

# The start of a 17-minute "middle" bucket (2**20 ms), so jobs spaced a few
# seconds apart from here share their top and middle directories.
BASE = (1_800_000_000_000 >> 20 << 20) / 1000


@pytest.fixture
def repo(data_dir) -> JobRepository:
    return JobRepository(data_dir, statuses=STATUSES)


def _make(repo: JobRepository, at: float, status: str = "pending", **fields) -> dict:
    return repo.create({"id": new_id(at), "status": status, **fields})


@pytest.fixture
def quick_writes(monkeypatch):
    """Skip fsync while filling a store: these tests are about reads."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


def json_bytes(document: dict) -> bytes:
    return json.dumps(document).encode()


def _ids(documents) -> list[str]:
    return [document["id"] for document in documents]


class ReadSpy:
    """Counts the job files and directories a call opens under ``root``."""

    def __init__(self, monkeypatch, root) -> None:
        self.files: list[str] = []
        self.listings = 0
        read, listdir = JobRepository._read, os.listdir
        # Only paths under root count: other threads may be at work meanwhile.
        inside = str(root) + os.sep

        def spy_read(repo, path):
            if os.fspath(path).startswith(inside):
                self.files.append(os.path.basename(path))
            return read(repo, path)

        def spy_listdir(path="."):
            if os.fspath(path).startswith(inside):
                self.listings += 1
            return listdir(path)

        monkeypatch.setattr(JobRepository, "_read", spy_read)
        monkeypatch.setattr(os, "listdir", spy_listdir)

    def reset(self) -> None:
        self.files.clear()
        self.listings = 0


# --- writes ----------------------------------------------------------------------


def test_it_stores_a_job_and_reads_it_back(repo):
    job_id = new_id()

    created = repo.create({"id": job_id, "status": "pending", "delay_seconds": 30})

    assert created == {"id": job_id, "status": "pending", "delay_seconds": 30, "revision": 1}
    assert repo.get(job_id) == created
    assert repo.path_for(job_id, "pending").is_file()


def test_it_refuses_a_second_job_with_the_same_id(repo):
    job = _make(repo, BASE)

    with pytest.raises(JobExists):
        repo.create({"id": job["id"], "status": "pending", "other": True})

    assert repo.get(job["id"]) == job


def test_it_refuses_a_second_job_for_a_reserved_id_whose_status_moved_on(repo):
    job = _make(repo, BASE)
    running = repo.update(job["id"], lambda doc: {**doc, "status": "running"})

    with pytest.raises(JobExists):
        repo.create({"id": job["id"], "status": "pending"}, may_exist=True)

    assert repo.get(job["id"]) == running
    assert os.listdir(repo.leaf_dir(job["id"])) == [f"{job['id']}_running.json"]


@pytest.mark.parametrize(
    "document",
    [
        {"id": "not-an-id", "status": "pending"},
        {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "status": "sleeping"},
        {"id": "../../../../etc/passwd_00", "status": "pending"},
    ],
)
def test_it_refuses_to_create_a_job_with_a_bad_id_or_status(repo, document):
    with pytest.raises(ValueError):
        repo.create(document)

    assert repo.counts() == dict.fromkeys(repo.counts(), 0)


def test_it_stores_the_statuses_its_caller_gives_and_no_other(data_dir):
    repo = JobRepository(data_dir, statuses=("draft", "published"))
    job = repo.create({"id": new_id(BASE), "status": "draft"})

    repo.update(job["id"], lambda doc: {**doc, "status": "published"})

    assert os.listdir(repo.leaf_dir(job["id"])) == [f"{job['id']}_published.json"]
    assert repo.counts() == {"draft": 0, "published": 1}
    with pytest.raises(ValueError):
        repo.create({"id": new_id(BASE + 1), "status": "pending"})
    with pytest.raises(ValueError):
        repo.update(job["id"], lambda doc: {**doc, "status": "pending"})


def test_it_does_not_take_a_file_named_with_a_status_it_was_not_given_for_a_job(data_dir):
    job = JobRepository(data_dir, statuses=STATUSES).create(
        {"id": new_id(BASE), "status": "failed"}
    )

    repo = JobRepository(data_dir, statuses=("pending", "running"))

    assert repo.list(limit=10) == ([], False)
    with pytest.raises(JobNotFound):
        repo.get(job["id"])


@pytest.mark.parametrize(
    "statuses", [(), ("pending", "pending"), ("a/b",), ("",), ("pending.json",), (1,)]
)
def test_it_refuses_statuses_that_cannot_name_a_file(data_dir, statuses):
    with pytest.raises(ValueError):
        JobRepository(data_dir, statuses=statuses)


def test_it_changes_a_job_and_counts_its_revisions(repo):
    job = _make(repo, BASE)

    running = repo.update(job["id"], lambda doc: {**doc, "status": "running"})
    done = repo.update(job["id"], lambda doc: {**doc, "status": "completed", "result": 1})

    assert (running["revision"], done["revision"]) == (2, 3)
    assert repo.get(job["id"]) == done
    assert os.listdir(repo.leaf_dir(job["id"])) == [f"{job['id']}_completed.json"]


def test_it_leaves_a_job_alone_when_a_change_declines_or_refuses(repo):
    job = _make(repo, BASE)

    def refuse(doc: dict) -> dict:
        raise RuntimeError("not in this state")

    assert repo.update(job["id"], lambda doc: None) == job
    with pytest.raises(RuntimeError):
        repo.update(job["id"], refuse)
    with pytest.raises(ValueError):
        repo.update(job["id"], lambda doc: {**doc, "id": new_id()})

    assert repo.get(job["id"]) == job


def test_it_deletes_a_job(repo):
    job = _make(repo, BASE)

    assert repo.delete(job["id"]) == job

    with pytest.raises(JobNotFound):
        repo.get(job["id"])
    with pytest.raises(JobNotFound):
        repo.delete(job["id"])
    with pytest.raises(JobNotFound):
        repo.update(job["id"], lambda doc: doc)
    assert repo.list(limit=10) == ([], False)


@pytest.mark.parametrize("job_id", ["", "..", "../../etc/passwd", "01arz3ndektsv4rrffq69g5fav"])
def test_it_finds_no_job_for_a_malformed_id(repo, job_id):
    with pytest.raises(JobNotFound):
        repo.get(job_id)


# --- unreadable files ----------------------------------------------------------------


def _bad_contents(job_id: str) -> dict[str, bytes]:
    return {
        "garbage bytes": b"\x00\xff\xfe not json at all",
        "cut short": b'{"id": "' + job_id.encode() + b'", "status": "pen',
        "empty": b"",
        "a list": b'["' + job_id.encode() + b'", "pending"]',
        "no revision": b'{"id": "' + job_id.encode() + b'", "status": "pending"}',
        "another id": b'{"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "status": "pending", "revision": 1}',
        "another status": b'{"id": "' + job_id.encode() + b'", "status": "failed", "revision": 1}',
    }


@pytest.mark.parametrize("kind", list(_bad_contents("X")))
def test_it_quarantines_an_unreadable_file_and_goes_on_listing(repo, caplog, kind):
    older = _make(repo, BASE)
    bad_id = new_id(BASE + 2)
    newer = _make(repo, BASE + 4)
    bad_path = repo.path_for(bad_id, "pending")
    bad_path.parent.mkdir(parents=True, exist_ok=True)
    bad_path.write_bytes(_bad_contents(bad_id)[kind])

    with caplog.at_level(logging.ERROR, logger="filestore.repository"):
        documents, more = repo.list(limit=10)

    assert (documents, more) == ([newer, older], False)
    assert not bad_path.exists()
    quarantined = list(repo.quarantine_dir.iterdir())
    assert [path.name.startswith(bad_path.name) for path in quarantined] == [True]
    assert quarantined[0].read_bytes() == _bad_contents(bad_id)[kind]
    assert any(bad_path.name in record.getMessage() for record in caplog.records)
    with pytest.raises(JobNotFound):
        repo.get(bad_id)
    assert repo.get(older["id"]) == older
    assert sum(repo.counts().values()) == 2


def test_a_named_pipe_under_a_job_name_is_quarantined_without_blocking_the_page(repo):
    job = _make(repo, BASE)
    pipe = repo.path_for(new_id(BASE + 2), "pending")
    pipe.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(pipe)  # no writer will ever come: opening it for reading must not wait for one

    assert repo.list(limit=10) == ([job], False)
    assert not pipe.exists()
    assert repo.quarantined() == 1


def test_it_quarantines_an_unreadable_file_found_by_get(repo, caplog):
    job_id = new_id(BASE)
    path = repo.path_for(job_id, "running")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"{{{{")

    with caplog.at_level(logging.ERROR, logger="filestore.repository"), pytest.raises(JobNotFound):
        repo.get(job_id)

    assert [p.name.split(".json")[0] for p in repo.quarantine_dir.iterdir()] == [path.stem]
    assert any(path.name in record.getMessage() for record in caplog.records)


def test_it_lists_around_stray_files_in_the_job_tree(repo):
    job = _make(repo, BASE)
    (repo.jobs_dir / "README").write_text("not a bucket")
    (repo.leaf_dir(job["id"]).parent / "notes.txt").write_text("not a leaf")
    (repo.leaf_dir(job["id"]) / "notes.txt").write_text("not a job")

    assert repo.list(limit=10) == ([job], False)
    assert repo.counts()["pending"] == 1
    repo.recover()
    assert repo.get(job["id"]) == job


# --- listing -------------------------------------------------------------------------


def _spread_over_buckets(repo: JobRepository) -> list[dict]:
    """Jobs in one leaf, in neighbouring leaves, middles and tops, made out of order."""
    times = [BASE + 0.001 * i for i in range(4)]  # one leaf, one after another
    times += [BASE + 3, BASE + 5, BASE + 64]  # other leaves
    times += [BASE + 1100, BASE + 2300]  # other middle buckets
    times += [BASE + 13 * 86400, BASE - 20 * 86400]  # other top buckets
    random.Random(4).shuffle(times)
    statuses = ["pending", "running", "completed", "failed", "cancelled"]
    return [_make(repo, at, statuses[i % 5]) for i, at in enumerate(times)]


def test_it_lists_newest_first(repo):
    jobs = _spread_over_buckets(repo)

    documents, more = repo.list(limit=100)

    assert documents == sorted(jobs, key=lambda job: job["id"], reverse=True)
    assert more is False
    assert len(set(_ids(documents))) == len(jobs)


def test_it_filters_by_status(repo):
    jobs = _spread_over_buckets(repo)

    for wanted in (["failed"], ["pending", "completed"], ["running", "cancelled", "failed"]):
        documents, _ = repo.list(statuses=wanted, limit=100)
        expected = [job for job in jobs if job["status"] in wanted]
        assert documents == sorted(expected, key=lambda job: job["id"], reverse=True)


def test_it_counts_jobs_by_status(repo):
    jobs = _spread_over_buckets(repo)

    counts = repo.counts()

    assert counts == {
        status: sum(job["status"] == status for job in jobs)
        for status in ("pending", "running", "completed", "failed", "cancelled")
    }


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7])
def test_it_pages_through_every_bucket_without_skipping_or_repeating(repo, limit):
    jobs = _spread_over_buckets(repo)
    seen: list[str] = []
    cursor = None
    while True:
        documents, more = repo.list(before=cursor, limit=limit)
        assert len(documents) == limit or not more
        seen += _ids(documents)
        if not more:
            break
        cursor = documents[-1]["id"]

    assert seen == sorted(_ids(jobs), reverse=True)


def test_it_pages_by_status_across_buckets(repo):
    jobs = _spread_over_buckets(repo) + _spread_over_buckets(repo)
    seen: list[str] = []
    cursor = None
    more = True
    while more:
        documents, more = repo.list(statuses=["pending", "failed"], before=cursor, limit=2)
        seen += _ids(documents)
        cursor = documents[-1]["id"] if documents else None

    wanted = [job["id"] for job in jobs if job["status"] in ("pending", "failed")]
    assert seen == sorted(wanted, reverse=True)


def test_it_deletes_only_when_the_condition_holds_for_the_current_state(repo):
    job = _make(repo, BASE)

    refused = repo.delete(job["id"], only_if=lambda current: current["status"] == "failed")

    assert refused is None
    assert repo.get(job["id"])["status"] == job["status"]
    removed = repo.delete(job["id"], only_if=lambda current: current["status"] == job["status"])
    assert removed["id"] == job["id"]
    with pytest.raises(JobNotFound):
        repo.get(job["id"])


def test_it_continues_a_page_after_a_cursor_that_was_deleted(repo):
    jobs = [_make(repo, BASE + i) for i in range(5)]
    repo.delete(jobs[2]["id"])

    documents, _ = repo.list(before=jobs[2]["id"], limit=10)

    assert documents == [jobs[1], jobs[0]]


def test_it_skips_nothing_when_jobs_are_created_between_pages(repo):
    at = BASE
    existing = []
    for _ in range(35):
        at += 0.7
        existing.append(_make(repo, at))
    seen: list[str] = []
    cursor = None
    more = True
    while more:
        documents, more = repo.list(before=cursor, limit=10)
        seen += _ids(documents)
        cursor = documents[-1]["id"]
        for _ in range(3):  # new jobs arrive while the client reads
            at += 0.7
            _make(repo, at)

    assert seen == sorted(_ids(existing), reverse=True)
    first_page, _ = repo.list(limit=10)
    assert first_page[0]["id"] > existing[-1]["id"]


def test_it_reads_only_the_files_of_the_page(repo, monkeypatch, quick_writes):
    jobs = [_make(repo, BASE + 2 * i, ["pending", "failed"][i % 7 == 0]) for i in range(60)]
    spy = ReadSpy(monkeypatch, repo.root)

    documents, _ = repo.list(limit=10)
    assert [path.split("_")[0] for path in spy.files] == _ids(documents)

    spy.reset()
    failed, _ = repo.list(statuses=["failed"], limit=3)
    assert [job["status"] for job in failed] == ["failed"] * 3
    assert [path.split("_")[0] for path in spy.files] == _ids(failed)

    spy.reset()
    repo.counts()
    repo.list(statuses=["completed"], limit=10)
    assert spy.files == []
    assert len(jobs) == 60


def _page_cost(repo: JobRepository, spy: ReadSpy, **query) -> tuple[int, int]:
    spy.reset()
    documents, _ = repo.list(**query)
    assert len(documents) == query["limit"]
    return len(spy.files), spy.listings


def test_it_reads_a_page_at_the_same_cost_whatever_the_store_size(
    data_dir, monkeypatch, quick_writes
):
    small, large = (
        JobRepository(data_dir / "small", statuses=STATUSES),
        JobRepository(data_dir / "large", statuses=STATUSES),
    )
    small_jobs = [_make(small, BASE + 2 * i) for i in range(30)]
    large_jobs = [_make(large, BASE + 2 * i) for i in range(400)]
    spy = ReadSpy(monkeypatch, data_dir)

    small_cost = _page_cost(small, spy, limit=10)
    large_cost = _page_cost(large, spy, limit=10)
    deep_cost = _page_cost(large, spy, limit=10, before=large_jobs[25]["id"])
    deeper_cost = _page_cost(large, spy, limit=10, before=large_jobs[12]["id"])

    assert small_cost == large_cost
    assert small_cost[0] == deep_cost[0] == deeper_cost[0] == 10
    # A cursor page also lists the cursor's own leaf, and nothing newer.
    assert deep_cost[1] == deeper_cost[1] == small_cost[1] + 1
    assert len(small_jobs) < len(large_jobs)


def test_it_serves_a_deep_cursor(repo, quick_writes):
    jobs = [_make(repo, BASE + 0.4 * i) for i in range(300)]

    documents, more = repo.list(before=jobs[7]["id"], limit=10)

    assert documents == list(reversed(jobs[:7]))
    assert more is False


def test_a_change_that_may_be_lost_is_written_without_fsync(repo, monkeypatch):
    from filestore import atomic

    job = _make(repo, BASE)
    steps: list[str] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append(step))

    repo.update(job["id"], lambda doc: {**doc, "status": "running"}, durable=False)

    assert "fsync" not in steps and "fsync_dir" not in steps
    assert repo.get(job["id"])["status"] == "running"
    assert [path.name for path in repo.leaf_dir(job["id"]).iterdir()] == [
        f"{job['id']}_running.json"
    ]


def test_writes_into_a_known_leaf_do_not_probe_it(repo, monkeypatch):
    from filestore import atomic

    first = _make(repo, BASE)
    probes = []
    real = atomic.ensure_dir
    monkeypatch.setattr(atomic, "ensure_dir", lambda path: probes.append(path) or real(path))

    _make(repo, BASE + 0.1)
    repo.update(first["id"], lambda job: {**job, "status": "running"})
    repo.apply_many([(first["id"], lambda job: {**job, "status": "completed"})])

    assert probes == []


def test_a_known_leaf_removed_since_is_made_again_by_a_create(repo):
    job = _make(repo, BASE)
    leaf = repo.leaf_dir(job["id"])
    # Emptied and removed by someone else (an operator tidying up) since it was made.
    os.unlink(repo.path_for(job["id"], "pending"))
    leaf.rmdir()

    again = repo.create({"id": job["id"], "status": "pending"})

    assert repo.get(job["id"]) == again


def test_a_known_leaf_removed_under_a_change_is_made_again(repo):
    from filestore import atomic

    job = _make(repo, BASE)
    leaf = repo.leaf_dir(job["id"])
    removed = []

    def remove_the_leaf_once(step: str, path: str) -> None:
        # The leaf vanishes after the new state is written, before it is renamed in.
        if step == "rename" and path.startswith(os.fspath(leaf)) and not removed:
            for name in os.listdir(leaf):
                os.unlink(leaf / name)
            leaf.rmdir()
            removed.append(path)

    atomic.hooks.before = remove_the_leaf_once
    try:
        [applied] = repo.apply_many([(job["id"], lambda current: {**current, "status": "running"})])
    finally:
        atomic.hooks.reset()

    assert removed
    assert repo.get(job["id"]) == applied.item
    assert applied.item["status"] == "running"


# --- batch changes: finding the jobs' names ------------------------------------


def _completed(job: dict) -> dict:
    return {**job, "status": "completed"}


def test_a_batch_spread_over_leaves_reads_its_jobs_by_name(repo, quick_writes, monkeypatch):
    # Jobs due together were created at different times: each in a leaf full of others.
    batch = [_make(repo, BASE + 2 * second) for second in range(3)]
    for second in range(3):
        for i in range(20):
            _make(repo, BASE + 2 * second + 0.01 * (i + 1))
    assert len({repo.leaf_dir(job["id"]) for job in batch}) == 3
    spy = ReadSpy(monkeypatch, repo.jobs_dir)

    applied = repo.apply_many([(job["id"], _completed) for job in batch])

    assert spy.listings == 0  # no leaf of twenty names listed for one job
    assert [result.item["status"] for result in applied] == ["completed"] * 3
    # Each job's name was tried for every status (only the pending one existed).
    assert sorted(spy.files) == sorted(
        f"{job['id']}_{status}.json" for job in batch for status in STATUSES
    )


def test_a_leaf_holding_many_jobs_of_a_batch_is_listed_once(repo, quick_writes, monkeypatch):
    batch = [_make(repo, BASE + 0.001 * i) for i in range(LIST_LEAF_AT)]
    assert len({repo.leaf_dir(job["id"]) for job in batch}) == 1
    spy = ReadSpy(monkeypatch, repo.jobs_dir)

    applied = repo.apply_many([(job["id"], _completed) for job in batch])

    assert spy.listings == 1
    assert sorted(spy.files) == sorted(f"{job['id']}_pending.json" for job in batch)
    assert all(result.item["status"] == "completed" for result in applied)


@pytest.mark.parametrize("batch_size", [1, LIST_LEAF_AT])
def test_a_batch_change_finds_both_names_a_crash_left_and_keeps_the_newer(repo, batch_size):
    jobs = [_make(repo, BASE + 0.001 * i) for i in range(batch_size)]
    job = jobs[0]
    # A crash between a status change's rename and the removal of the old name.
    newer = {**job, "status": "running", "revision": 2, "note": "newer"}
    repo.path_for(job["id"], "running").write_bytes(json_bytes(newer))

    applied = repo.apply_many([(each["id"], _completed) for each in jobs])

    assert applied[0].item["note"] == "newer"
    assert applied[0].item["revision"] == 3
    assert os.listdir(repo.leaf_dir(job["id"])).count(f"{job['id']}_completed.json") == 1
    assert not repo.path_for(job["id"], "pending").exists()
    assert not repo.path_for(job["id"], "running").exists()
