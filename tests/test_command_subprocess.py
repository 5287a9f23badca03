"""The operator commands as real processes: exit statuses, stdout and stderr, a real worker.

Each test points the commands at its own data directory, with delays of 1
to 5 seconds so that ``--wait`` against a real ``manage.py qcluster``
finishes in a few seconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from jobs import clock, services, store, tasks
from jobs.errors import JobNotFound
from tests.django_process import PROJECT, environment, manage
from tests.fake_unsplash import FakeUnsplash

DAY = 86400.0


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return environment(
        data_dir,
        JOBS_MIN_DELAY="1",
        JOBS_MAX_DELAY="5",
        JOBS_DELAY_STEP="1",
        DJANGO_SECRET_KEY=str(settings.SECRET_KEY),
        PYTHONUNBUFFERED="1",
    )


def status_of(job_id: str) -> str | None:
    try:
        return services.job_get(job_id=job_id).status
    except JobNotFound:
        return None


# --- createjob -----------------------------------------------------------------------


def test_it_creates_a_job(env):
    done = manage("createjob", "--delay", "3", env=env)

    assert done.returncode == 0, done.stderr
    [job] = services.job_list().jobs
    assert job.delay_seconds == 3
    assert f"Created job {job.id} (pending, due in 3 s" in done.stdout


def test_a_bad_delay_exits_2_with_the_api_message(env):
    done = manage("createjob", "--delay", "7", env=env)

    assert done.returncode == 2
    assert "delay_seconds must be between 1 and 5 and a multiple of 1." in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert services.job_list().jobs == []


def test_bad_usage_exits_2(env):
    done = manage("createjob", "--count", "several", env=env)
    assert done.returncode == 2
    assert "--count: invalid int value" in done.stderr

    done = manage("jobs", "prune", "--older-than", "a week", env=env)
    assert done.returncode == 2
    assert "is not a duration" in done.stderr


def test_json_output_is_nothing_but_json(env):
    done = manage("createjob", "--count", "2", "--json", env=env)

    assert done.returncode == 0, done.stderr
    jobs = json.loads(done.stdout)
    assert sorted(job["id"] for job in jobs) == sorted(job.id for job in services.job_list().jobs)
    assert done.stderr.count("Created job") == 2

    listing = manage("jobs", "list", "--json", env=env)
    assert [job["id"] for job in json.loads(listing.stdout)["results"]] == [
        job["id"] for job in reversed(jobs)
    ]


def test_an_unknown_job_exits_2(env):
    done = manage("jobs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV", env=env)
    assert done.returncode == 2
    assert "There is no job with id '01ARZ3NDEKTSV4RRFFQ69G5FAV'" in done.stderr


def test_prune_removes_only_old_finished_jobs(env, monkeypatch):
    start = clock.now()
    monkeypatch.setattr(clock, "now", lambda: start - 8 * DAY)
    old_cancelled = services.job_create(delay_seconds=5).job["id"]
    old_failed = services.job_create(delay_seconds=5).job["id"]
    old_pending = services.job_create(delay_seconds=5).job["id"]
    services.job_cancel(job_id=old_cancelled)
    tasks.dead_letter(old_failed, b"")
    monkeypatch.setattr(clock, "now", lambda: start)
    recent = services.job_create(delay_seconds=5).job["id"]
    services.job_cancel(job_id=recent)

    dry = manage("jobs", "prune", "--older-than", "7d", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 finished job(s)" in dry.stdout
    assert status_of(old_cancelled) == "cancelled"

    done = manage("jobs", "prune", "--older-than", "7d", "--json", env=env)

    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(done.stdout)["job_ids"]) == sorted([old_cancelled, old_failed])
    assert status_of(old_cancelled) is None
    assert status_of(old_failed) is None
    assert store.broker().find(old_failed) == []
    assert status_of(old_pending) == "pending"
    assert status_of(recent) == "cancelled"


# --- --wait against a real worker -------------------------------------------------------


@pytest.fixture
def worker(env, tmp_path) -> Iterator[callable]:
    """Start ``manage.py qcluster`` with the test's settings; stop it with SIGTERM."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(**extra_env: str) -> subprocess.Popen:
        log = tmp_path / "worker.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=PROJECT,
                env={**env, **extra_env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        started.append((process, log))
        return process

    yield start

    for process, log in started:
        process.send_signal(signal.SIGTERM)  # the main process only: it stops its children
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"qcluster did not stop on SIGTERM; its log:\n{log.read_text()}")


def wait_and_read(env: dict[str, str], *args: str) -> tuple[int, list[dict], str]:
    done = manage("createjob", "--wait", "--json", "--timeout", "60", *args, timeout=90, env=env)
    return done.returncode, json.loads(done.stdout), done.stderr


@pytest.mark.slow
def test_wait_follows_jobs_to_completion_with_a_real_worker(env, worker):
    worker()

    returncode, jobs, stderr = wait_and_read(env, "--count", "3", "--delay", "1")

    assert returncode == 0, stderr
    assert [job["status"] for job in jobs] == ["completed"] * 3
    for job in jobs:
        assert job["result"]["source"] == "demo"
        assert f"{job['id']} completed: {job['result']['urls']['regular']}" in stderr
    assert "3 job(s): 3 completed" in stderr


@pytest.mark.slow
def test_wait_with_unsplash_prints_the_photo_urls(env, worker):
    with FakeUnsplash() as fake:
        worker(UNSPLASH_ACCESS_KEY="test", UNSPLASH_API_URL=fake.url)

        returncode, jobs, stderr = wait_and_read(env, "--count", "2", "--delay", "1")
        assert returncode == 0, stderr
        assert fake.calls >= 1
    for job in jobs:
        assert job["status"] == "completed"
        assert job["result"]["source"] == "unsplash"
        assert job["result"]["urls"]["regular"].startswith(fake.url)


@pytest.mark.slow
def test_wait_exits_1_when_a_job_fails(env, worker):
    with FakeUnsplash("unauthorized_401") as fake:
        worker(UNSPLASH_ACCESS_KEY="test", UNSPLASH_API_URL=fake.url)

        returncode, jobs, stderr = wait_and_read(env, "--delay", "1")

    assert returncode == 1
    [job] = jobs
    assert job["status"] == "failed"
    assert f"{job['id']} failed: " in stderr
    assert "1 of 1 job(s) did not complete (1 failed)" in stderr
