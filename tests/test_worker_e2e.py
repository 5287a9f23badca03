"""The worker end to end: a real ``manage.py qcluster`` subprocess on the test's data
directory, jobs created by this process, the result read back from the job files."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs import clock, services, store
from jobs.model import Job
from jobs.recovery import GRACE_SECONDS
from tests.fake_unsplash import FakeUnsplash
from tests.test_recovery import stored_without_message
from tests.worker_harness import WorkerCluster, cluster_env, wait_for

pytestmark = pytest.mark.slow

FINAL = ("completed", "failed", "cancelled")


@pytest.fixture
def short_delays(settings) -> None:
    # The same bounds as the cluster's environment (see cluster_env).
    settings.JOBS_MIN_DELAY, settings.JOBS_MAX_DELAY, settings.JOBS_DELAY_STEP = 1, 5, 1


@pytest.fixture
def start_cluster(data_dir, tmp_path, settings, short_delays) -> Iterator:
    """Start clusters on the test's data directory; every process is killed afterwards."""
    clusters: list[WorkerCluster] = []

    def start(*, fake: FakeUnsplash | None = None, **env: str) -> WorkerCluster:
        if fake is not None:
            env.update(UNSPLASH_ACCESS_KEY="test", UNSPLASH_API_URL=fake.url)
        cluster = WorkerCluster(
            data_dir,
            tmp_path / f"qcluster-{len(clusters) + 1}.log",
            env=cluster_env(data_dir, secret_key=str(settings.SECRET_KEY), overrides=env),
        )
        clusters.append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.kill()


@pytest.fixture
def fake() -> Iterator[FakeUnsplash]:
    with FakeUnsplash() as server:
        yield server


def create_jobs(delays) -> list[str]:
    return [services.job_create(delay_seconds=delay).job["id"] for delay in delays]


def finished(job_ids: list[str]) -> list[Job] | None:
    jobs = [store.repository().get(job_id) for job_id in job_ids]
    return jobs if all(job.status in FINAL for job in jobs) else None


def job_files(data_dir: Path, job_id: str) -> list[str]:
    return sorted(path.name for path in (data_dir / "jobs").rglob(f"{job_id}_*.json"))


def settled_job_files(data_dir: Path, job_id: str, expected: list[str]) -> list[str]:
    """The job's file names once they are ``expected``, or as they are after 5 s.

    A new state is written and flushed before the previous state's name is
    removed (so a crash never leaves a job without a name), so a reader may
    see both names for a moment: the higher revision wins meanwhile.
    """
    deadline = time.monotonic() + 5
    while (names := job_files(data_dir, job_id)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return names


def started_at(job: Job) -> list[float]:
    return [clock.from_iso(e.at) for e in job.history if e.event == "started"]


def test_jobs_complete_with_photos_and_none_starts_before_its_run_at(start_cluster, fake):
    cluster = start_cluster(fake=fake)
    job_ids = create_jobs([1, 2, 3, 4, 5] * 2)

    jobs = wait_for(lambda: finished(job_ids), timeout=30, what="the jobs to finish")

    for job in jobs:
        assert job.status == "completed", job
        assert job.result["source"] == "unsplash"
        assert job.result["urls"]["regular"].startswith(fake.url)
        assert job.result["photographer_name"]
        run_at = clock.from_iso(job.run_at)
        assert all(start >= run_at for start in started_at(job)), job.history
        # ...and not much later either: the delay is the broker's, not a poll's.
        assert clock.from_iso(job.started_at) - run_at < 3
    assert len({job.result["photo_id"] for job in jobs}) == len(jobs)
    assert fake.calls == 1  # one batch of 30 serves all ten

    assert cluster.stop() == 0
    assert not cluster.heartbeat_path().exists()
    assert cluster.census().pids == ()


def test_a_killed_cluster_leaves_every_job_one_final_state_after_a_restart(
    start_cluster, fake, data_dir
):
    # Runs hang in the fetch, so that the kill lands mid-job.
    fake.behaviour, fake.slow_seconds = "slow", 60
    env = {"JOBS_QUEUE_RETRY": "6", "JOBS_TASK_TIMEOUT": "4", "JOBS_WORKERS": "2"}
    first = start_cluster(fake=fake, **env)
    job_ids = create_jobs([1] * 6)

    def running() -> list[str]:
        return [j for j in job_ids if store.repository().get(j).status == "running"]

    # Jobs due together run in batches: two or more are mid-run.
    wait_for(lambda: len(running()) >= 2, timeout=20, what="the workers to be mid-job")
    first.kill()
    interrupted = running()
    assert {store.repository().get(j).status for j in interrupted} == {"running"}

    fake.behaviour = "ok"
    restarted_at = time.monotonic()
    second = start_cluster(fake=fake, **env)
    # A leased message comes back when its lease (JOBS_QUEUE_RETRY) runs out.
    jobs = wait_for(lambda: finished(job_ids), timeout=6 + 20, what="every job to finish")
    took = time.monotonic() - restarted_at

    for job in jobs:
        assert job.status == "completed", job
        expected = [f"{job.id}_completed.json"]
        assert settled_job_files(data_dir, job.id, expected) == expected
        events = [entry.event for entry in job.history]
        assert events.count("completed") == 1
        if job.id in interrupted:
            assert "lease-expired" in events, events  # taken over from the killed run
            assert job.attempts == 2
    assert took < 6 + 20
    assert second.stop() == 0


def test_a_restarted_cluster_takes_over_the_killed_clusters_jobs_at_once(
    start_cluster, fake, data_dir
):
    # The default lease (90 s): the interrupted jobs must not wait it out.
    fake.behaviour, fake.slow_seconds = "slow", 60
    first = start_cluster(fake=fake, JOBS_WORKERS="2")
    job_ids = create_jobs([1] * 4)

    def running() -> list[str]:
        return [j for j in job_ids if store.repository().get(j).status == "running"]

    # Jobs due together run in batches: two or more are mid-run.
    wait_for(lambda: len(running()) >= 2, timeout=20, what="the workers to be mid-job")
    first.kill()
    interrupted = running()

    fake.behaviour = "ok"
    restarted_at = time.monotonic()
    second = start_cluster(fake=fake, JOBS_WORKERS="2")
    jobs = wait_for(lambda: finished(job_ids), timeout=20, what="every job to finish")
    took = time.monotonic() - restarted_at

    assert took < 20, "far below the 90 s lease"
    for job in jobs:
        assert job.status == "completed", job
        events = [entry.event for entry in job.history]
        assert events.count("completed") == 1, events
        if job.id in interrupted:
            [taken_over] = [e for e in job.history if e.event == "lease-expired"]
            assert "owner died" in taken_over.detail, job.history
            assert job.attempts == 2, job.history
    assert "released" in second.log() and "leases of dead workers" in second.log()
    assert second.stop() == 0


def test_the_clusters_processes_die_with_its_main_process(start_cluster):
    cluster = start_cluster(JOBS_WORKERS="2")
    processes = cluster.census().pids
    assert len(processes) == 6

    os.kill(cluster.pid, signal.SIGKILL)
    cluster.process.wait()

    # Orphans would go on leasing and running jobs under an owner known dead.
    wait_for(lambda: not cluster.census().pids, timeout=10, what="the orphans to die")


def test_a_sigterm_mid_job_stops_the_cluster_cleanly_and_loses_nothing(start_cluster, fake):
    fake.behaviour, fake.slow_seconds = "slow", 60
    env = {"JOBS_QUEUE_RETRY": "6", "JOBS_TASK_TIMEOUT": "4", "JOBS_WORKERS": "2"}
    first = start_cluster(fake=fake, **env)
    job_ids = create_jobs([1] * 4)
    # Jobs due together run in batches: how many are running at once depends
    # on how their due times fell into deliveries; two or more are mid-run.
    wait_for(
        lambda: [store.repository().get(j).status for j in job_ids].count("running") >= 2,
        timeout=20,
        what="the workers to be mid-job",
    )

    # The running tasks are cut off at their timeout; the stop waits for them.
    assert first.stop(timeout=4 + 10) == 0
    assert first.census().pids == ()

    fake.behaviour = "ok"
    second = start_cluster(fake=fake, **env)
    jobs = wait_for(lambda: finished(job_ids), timeout=6 + 20, what="every job to finish")
    assert [job.status for job in jobs] == ["completed"] * 4
    assert second.stop() == 0


def test_a_job_stored_without_its_message_runs_after_a_restart(start_cluster, data_dir):
    # The web process died between writing the job file and enqueuing its message.
    job_id = stored_without_message(time.time, age=GRACE_SECONDS + 1)
    assert store.broker().find(job_id) == []

    cluster = start_cluster()

    [job] = wait_for(lambda: finished([job_id]), timeout=20, what="the orphaned job to run")
    assert job.status == "completed"
    assert job.result["source"] == "demo"
    assert "requeued 1 pending" in cluster.log()
    assert cluster.stop() == 0


def test_a_thousand_pending_jobs_cost_files_not_processes_or_threads(start_cluster, settings):
    cluster = start_cluster(JOBS_WORKERS="2")
    idle = cluster.census()
    # The main process, django-q2's sentinel, pusher and monitor, and two workers.
    assert idle.processes == 6, idle

    # Long enough for a loaded machine to create them all before the first is due.
    settings.JOBS_MAX_DELAY = delay = 15  # in this process only
    created_at = time.monotonic()
    # Created by a few clients at once, as the web page would.
    with ThreadPoolExecutor(max_workers=8) as clients:
        job_ids = list(clients.map(lambda _: create_jobs([delay])[0], range(1000)))
    assert time.monotonic() - created_at < delay - 2, "the jobs fell due before they were counted"
    assert store.repository().counts()["pending"] == 1000
    while_pending = [cluster.census() for _ in range(5)]
    assert store.repository().counts()["pending"] == 1000, "counted while all were pending"

    censuses = []

    def all_finished_counting() -> bool:
        censuses.append(cluster.census())
        counts = store.repository().counts()  # from file names: cheap enough to poll
        return counts["pending"] == counts["running"] == 0

    wait_for(all_finished_counting, timeout=120, what="1,000 jobs to finish")
    jobs = [store.repository().get(job_id) for job_id in job_ids]

    for census in while_pending + censuses:
        # Equal or fewer: a worker recycled after Q_CLUSTER["recycle"] tasks is
        # replaced by a new one.
        assert census.processes <= idle.processes, (idle, census)
        # A thousand waiting jobs must not cost a thread each. A few threads
        # do start once work flows (django-q2's queue feeder threads on first
        # use, a recycled worker's replacement starting while the old one
        # exits), so the bound is a small constant per process, not one per job.
        assert census.threads <= idle.threads + 2 * idle.processes, (idle, census)
    assert all(job.status == "completed" for job in jobs)
    assert all(clock.from_iso(job.started_at) >= clock.from_iso(job.run_at) for job in jobs)
    assert store.repository().counts() == {
        "pending": 0,
        "running": 0,
        "completed": 1000,
        "failed": 0,
        "cancelled": 0,
    }
    assert cluster.stop() == 0
