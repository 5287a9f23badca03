"""A real, small file system filling up under the creates: clear answers, nothing half-written.

The data directory is a tmpfs of a few hundred KiB mounted for the test
(root only; skipped where mounting is not allowed). Creates go on until the
disk is full; every answer is a ``202`` or a ``503`` problem, never a
``500``; every job stored is readable; once the disk has room again the
same keys get their jobs and nothing is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from jobs import store

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers


def _mount_small_fs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture
def small_data_dir(tmp_path, settings):
    mount_point = tmp_path / "small"
    if not _mount_small_fs(mount_point, "192k"):
        pytest.skip("mounting a small tmpfs needs root and a system that allows it")
    try:
        root = mount_point / "data"
        (root / "tmp").mkdir(parents=True)
        settings.JOBS_DATA_DIR = root
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _create(client, key: str):
    return client.post(
        "/api/jobs",
        data=json.dumps({"delay_seconds": 30}),
        content_type="application/json",
        headers={"Idempotency-Key": key},
    )


def test_a_full_disk_answers_503_and_loses_nothing_once_it_has_room(client, small_data_dir):
    mount_point = small_data_dir
    answers: dict[str, object] = {}
    for _ in range(2000):
        key = uuid.uuid4().hex
        answer = _create(client, key)
        answers[key] = answer
        assert answer.status_code in (202, 503), (answer.status_code, answer.content[:300])
        if answer.status_code == 503:
            break
    else:
        pytest.fail("the small file system never filled up")
    refused = [key for key, answer in answers.items() if answer.status_code == 503]
    accepted = {
        key: answer.json()["id"] for key, answer in answers.items() if answer.status_code == 202
    }
    problem = answers[refused[0]]
    assert problem["Content-Type"] == "application/problem+json"
    assert problem.has_header("Retry-After")
    assert "storage" in problem.json()["detail"].lower()
    # Nothing half-written: every job on disk reads back whole.
    stored = [entry.id for entry in store.repository().entries()]
    assert all(store.repository().get(job_id).id == job_id for job_id in stored)
    assert set(accepted.values()) <= set(stored)
    # A finished request is replayed even on the full disk.
    first_key = next(iter(accepted))
    replay = _create(client, first_key)
    assert replay.status_code == 202 and replay.json()["id"] == accepted[first_key]

    subprocess.run(["mount", "-o", "remount,size=4m", str(mount_point)], check=True)

    # The refused create, retried with its key, gets one job now.
    retried = _create(client, refused[0])
    assert retried.status_code in (202, 409), retried.content[:300]
    jobs_now = {entry.id for entry in store.repository().entries()}
    assert set(accepted.values()) <= jobs_now
    assert _create(client, uuid.uuid4().hex).status_code == 202
