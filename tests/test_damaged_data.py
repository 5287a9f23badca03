"""A damaged data directory costs the damaged jobs, never the page or the pass reading them."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from filestore import atomic
from filestore.ids import new_id
from jobs import clock, services, store
from jobs.model import Job
from jobs.recovery import GRACE_SECONDS, recover_jobs
from jobs.tasks import run_jobs


def _good_jobs(count: int) -> list[str]:
    return [services.job_create(delay_seconds=60).job_id for _ in range(count)]


def _quarantined(data_dir: Path) -> list[str]:
    return sorted(path.name for path in (data_dir / "quarantine").iterdir())


def _plant(job_id: str, content: bytes | None, status: str = "pending") -> Path:
    """Put something under a job's file name: bytes, or a directory when ``content`` is None."""
    path = store.repository().path_for(job_id, status)
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    return path


DAMAGES = {
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    "truncated JSON": b'{"id": "',
    "not an object": b"[1, 2, 3]",
    "a directory": None,
    "a timestamp that is not one": "bad-timestamp",
    "no creation time": "no-created-at",
}


def _damaged(job_id: str, damage: str) -> bytes | None:
    content = DAMAGES[damage]
    if isinstance(content, str):
        document = Job.new(job_id, delay=60, now=clock.now()).to_document()
        document["revision"] = 1
        if content == "bad-timestamp":
            document["updated_at"] = "yesterday"
        else:
            del document["created_at"]
        return json.dumps(document).encode()
    return content


@pytest.mark.parametrize("damage", DAMAGES)
def test_one_damaged_job_file_leaves_the_list_serving_the_others(client, data_dir, damage):
    good = _good_jobs(3)
    bad_id = new_id()
    _plant(bad_id, _damaged(bad_id, damage))

    for query in ("", "?status=pending", "?limit=2"):
        response = client.get(f"/api/jobs{query}")
        assert response.status_code == 200, (query, response.content[:200])
    listed = [job["id"] for job in client.get("/api/jobs").json()["results"]]

    assert listed == good[::-1]
    assert client.get(f"/api/jobs/{bad_id}").status_code == 404
    [moved] = _quarantined(data_dir)
    assert moved.startswith(f"{bad_id}_pending.json.")


def test_a_file_that_cannot_be_read_is_quarantined_and_the_page_is_served(
    client, data_dir, monkeypatch
):
    good = _good_jobs(2)
    bad_id = new_id()
    bad_path = _plant(bad_id, b"{}")
    real_read = atomic.read_bytes

    def failing_read(file):
        if os.fspath(file) == os.fspath(bad_path):
            raise OSError(errno.EIO, "Input/output error", os.fspath(file))
        return real_read(file)

    monkeypatch.setattr(atomic, "read_bytes", failing_read)

    response = client.get("/api/jobs")

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["results"]] == good[::-1]
    assert _quarantined(data_dir)[0].startswith(bad_id)


def test_a_file_that_can_be_neither_read_nor_moved_is_skipped(client, data_dir, monkeypatch):
    good = _good_jobs(1)
    bad_id = new_id()
    _plant(bad_id, b"not json")
    monkeypatch.setattr(
        os, "rename", lambda *args: (_ for _ in ()).throw(OSError(errno.EROFS, "read-only"))
    )

    response = client.get("/api/jobs")

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["results"]] == good


def test_one_odd_job_does_not_stop_the_recovery_pass_for_the_others(now, data_dir):
    # Two pending jobs whose messages were lost, and one whose file is odd.
    lost = _good_jobs(2)
    for job_id in lost:
        store.broker().delete_key(job_id)
    odd_id = new_id(now())
    _plant(odd_id, _damaged(odd_id, "a timestamp that is not one"))
    now.advance(GRACE_SECONDS + 1)

    report = recover_jobs()

    assert sorted(report.requeued) == sorted(lost)
    for job_id in lost:
        assert [message.state for message in store.broker().find(job_id)] == ["ready"]
    assert _quarantined(data_dir)[0].startswith(odd_id)


def test_a_job_whose_recovery_fails_is_reported_and_the_pass_goes_on(now, monkeypatch):
    first, second = _good_jobs(2)
    for job_id in (first, second):
        store.broker().delete_key(job_id)
    now.advance(GRACE_SECONDS + 1)
    from jobs import recovery

    real_enqueue = recovery.enqueue_job

    def enqueue(job_id, **kwargs):
        if job_id == first:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_enqueue(job_id, **kwargs)

    monkeypatch.setattr(recovery, "enqueue_job", enqueue)

    report = recover_jobs()

    assert report.errors == [first]
    assert report.requeued == [second]


def test_a_job_deleted_under_its_queued_message_makes_the_delivery_do_nothing(now):
    [job_id] = _good_jobs(1)
    for path in store.repository().leaf_dir(job_id).iterdir():
        path.unlink()
    now.advance(61)

    assert run_jobs([job_id])[0] == "deleted"


def test_stray_temp_files_of_dead_writers_are_removed(data_dir, now):
    _good_jobs(1)
    stray = data_dir / "tmp" / "leftover.tmp"
    stray.write_bytes(b"half a job")
    old = now() - 3600
    os.utime(stray, (old, old))

    report = store.repository().recover()

    assert report["temp_files_removed"] == 1
    assert not stray.exists()
