"""A disk that fails at any step of a create: the right answer, nothing half-written, nothing lost.

Each test records the storage steps (write, fsync, rename, link, directory
fsync, unlink) that one create with an ``Idempotency-Key`` makes across the
job store, the queue and the idempotency records, then makes exactly one of
them fail with ``ENOSPC`` or ``EIO`` and checks what the client is told and
what is left on disk once the disk is healthy again.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from filestore import atomic
from jobs import store
from jobs.recovery import GRACE_SECONDS, recover_jobs

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers

KEY = "io-fault-key"


@pytest.fixture(autouse=True)
def reset_hooks():
    yield
    atomic.hooks.reset()


def _create(client, key: str = KEY):
    return client.post(
        "/api/jobs",
        data=json.dumps({"delay_seconds": 30}),
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


def _steps_of_one_create(client) -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    atomic.hooks.before = lambda step, path: steps.append((step, path))
    assert _create(client, key="counting").status_code == 202
    atomic.hooks.reset()
    return steps


def _fail_at(index: int, code: int) -> None:
    seen = {"count": 0}

    def before(step: str, path: str) -> None:
        if seen["count"] == index:
            seen["count"] += 1
            raise OSError(code, os.strerror(code), path)
        seen["count"] += 1

    atomic.hooks.before = before


def _stored_ids() -> list[str]:
    return [entry.id for entry in store.repository().entries()]


def _temp_files(data_dir: Path) -> list[str]:
    return sorted(os.listdir(data_dir / "tmp"))


def test_a_create_makes_durable_steps_in_every_store(client):
    steps = {step for step, _ in _steps_of_one_create(client)}

    assert {"write", "fsync", "link", "fsync_dir"} <= steps


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO], ids=["ENOSPC", "EIO"])
def test_a_failure_at_any_step_is_answered_clearly_and_the_retry_gets_one_job(
    client, data_dir, now, code
):
    steps = _steps_of_one_create(client)
    counted = set(_stored_ids())

    for index, (step, path) in enumerate(steps):
        key = f"{KEY}-{code}-{index}"
        _fail_at(index, code)
        first = _create(client, key=key)
        atomic.hooks.reset()

        where = f"step {index} ({step} {Path(path).parent.name}/{Path(path).name})"
        assert first.status_code in (202, 503), (where, first.status_code, first.content[:300])
        if first.status_code == 503:
            assert first["Content-Type"] == "application/problem+json", where
            assert first.has_header("Retry-After"), where
            assert "storage" in first.json()["detail"].lower(), where
        # Nothing half-written: no temp file left, every stored job readable.
        assert _temp_files(data_dir) == [], where
        for job_id in _stored_ids():
            store.repository().get(job_id)

        # The client retries with the same key once the disk is healthy again:
        # one job, the same one it may already have been told about. A claim
        # that outlived its request is taken over once it is stale.
        retry = _create(client, key=key)
        if retry.status_code == 409:
            now.advance(31)
            retry = _create(client, key=key)
        assert retry.status_code == 202, (where, retry.status_code, retry.content[:300])
        if first.status_code == 202:
            assert retry.json()["id"] == first.json()["id"], where
        new = set(_stored_ids()) - counted
        assert new == {retry.json()["id"]}, (where, new)
        counted |= new

    # Every job is queued, now or by the recovery pass. (A retry that takes
    # over a stale claim queues the job again without looking for the first
    # message: a second delivery finds the job claimed or finished and does
    # nothing, so a duplicate costs a delivery, never a second run.)
    now.advance(GRACE_SECONDS + 1)
    recover_jobs()
    for job_id in counted:
        states = {message.state for message in store.broker().find(job_id)}
        assert states == {"ready"}, (job_id, states)


def test_a_finished_request_is_replayed_on_a_full_disk(client):
    first = _create(client)
    assert first.status_code == 202

    def full(step: str, path: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", path)

    atomic.hooks.before = full
    replay = _create(client)

    assert replay.status_code == 202
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"


def test_a_job_stored_before_its_queue_failed_keeps_its_key(client, now, monkeypatch):
    from jobs import services

    working_queue = services.enqueue_jobs

    def broken_queue(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(services, "enqueue_jobs", broken_queue)
    first = _create(client)
    monkeypatch.setattr(services, "enqueue_jobs", working_queue)
    retry = _create(client)

    assert first.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert _stored_ids() == [first.json()["id"]]
    # The job has no message yet: the recovery pass queues it.
    assert store.broker().find(first.json()["id"]) == []
    now.advance(GRACE_SECONDS + 1)
    assert recover_jobs().requeued == [first.json()["id"]]
