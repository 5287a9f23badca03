"""Several machines on one Redis and one data directory, with real processes.

Each "machine" is a process tree of its own with a host name of its own
(``unshare --uts`` where the system allows it), sharing a real
``redis-server`` and one data directory, as hosts mounting one volume do.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django_q.conf import Conf

from jobs import services, store
from jobs.model import Status
from redisstore import connect
from tests.contract.redis_server import redis_server, redis_url
from tests.system import System
from tests.worker_harness import WorkerCluster, cluster_env, wait_for

__all__ = ["redis_server", "redis_url"]

pytestmark = pytest.mark.slow

# Enough that the machines are still mid-batch when a fifth are done,
# however fast a batch runs.
JOBS = 3000
# The queue's lease (JOBS_QUEUE_RETRY), short so that a killed machine's
# work comes back within the test; a task is killed after TASK_TIMEOUT.
LEASE = 6
TASK_TIMEOUT = 4


@pytest.fixture(scope="module")
def machine_prefix() -> Iterator[object]:
    """``prefix(name)``: the command prefix that runs a process as host ``name``.

    Empty (the same host name for every machine) where new UTS namespaces
    are not allowed; the machines then differ only by process ids, which is
    all the stores rely on.
    """
    candidates = [["unshare", "--uts"], ["unshare", "--uts", "--map-root-user"]]
    chosen = None
    if shutil.which("unshare"):
        for candidate in candidates:
            probe = [*candidate, "sh", "-c", "hostname probe-host && hostname"]
            with contextlib.suppress(OSError):
                result = subprocess.run(probe, capture_output=True, text=True, timeout=10)
                if result.returncode == 0 and result.stdout.strip() == "probe-host":
                    chosen = candidate
                    break

    def prefix(name: str) -> list[str]:
        if chosen is None:
            return []
        # sh sets the host name of its new namespace, then becomes the command.
        return [*chosen, "sh", "-c", f'hostname {name} && exec "$@"', "sh"]

    prefix.separate_hosts = chosen is not None  # type: ignore[attr-defined]
    yield prefix


@pytest.fixture
def shared(settings, redis_url, data_dir, monkeypatch):
    """This test process as one more host: the shared data directory and Redis."""
    settings.JOBS_REDIS_URL = redis_url
    monkeypatch.setattr(Conf, "BROKER_CLASS", "redisstore.broker.RedisBroker")
    client = connect(redis_url)
    yield client
    client.close()


class Machine(WorkerCluster):
    """A worker cluster on Redis, up once its heartbeat is in Redis."""

    def __init__(self, name: str, redis_client, **options) -> None:
        super().__init__(**options)
        self.name = name
        self.redis = redis_client

    def _started(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
            )
        return self.heartbeat() is not None

    def heartbeat(self) -> dict | None:
        for worker in self.redis.zrange("jobs:heartbeats", 0, -1):
            if worker.decode().endswith(f"-{self.pid}"):
                stored = self.redis.get(f"jobs:heartbeat:{worker.decode()}")
                return None if stored is None else json.loads(stored)
        return None


def _held_by(machine: Machine) -> set[str]:
    """The jobs ``machine`` holds right now: their messages leased to it, or their
    runs (a running job whose lease names it)."""
    beat = machine.heartbeat()
    owner = beat and beat.get("owner")
    if not owner:
        return set()
    held: set[str] = set()
    # A job whose photo is at hand is claimed and finished in one write: while
    # its batch runs, only its message's lease says who holds it.
    for owners in machine.redis.keys("*:queue:*:owner"):
        ids = [m for m, o in machine.redis.hgetall(owners).items() if o.decode() == owner]
        if ids:
            keys = machine.redis.hmget(owners[: -len(b"owner")] + b"key", ids)
            held.update(key.decode() for key in keys if key)
    for entry in store.repository().entries(statuses=("running",)):
        try:
            lease = store.repository().get(entry.id).lease
        except Exception:
            continue  # finished and renamed meanwhile
        if lease is not None and lease.owner == owner:
            held.add(entry.id)
    return held


def _counts() -> dict[str, int]:
    counts = dict.fromkeys((status.value for status in Status), 0)
    for entry in store.repository().entries():
        counts[str(entry.status)] += 1
    return counts


def test_two_machines_run_each_job_once_and_one_finishes_when_the_other_is_killed(
    shared, data_dir, tmp_path, settings, machine_prefix
):
    env = cluster_env(
        data_dir,
        secret_key=str(settings.SECRET_KEY),
        overrides={
            "JOBS_REDIS_URL": settings.JOBS_REDIS_URL,
            "JOBS_WORKERS": "2",
            "JOBS_QUEUE_RETRY": str(LEASE),
            "JOBS_TASK_TIMEOUT": str(TASK_TIMEOUT),
        },
    )
    machines = [
        Machine(
            name,
            shared,
            data_dir=data_dir,
            log_path=tmp_path / f"{name}.log",
            env=env,
            command_prefix=machine_prefix(name),
        )
        for name in ("machine-a", "machine-b")
    ]
    try:
        for machine in machines:
            machine.start()
        if machine_prefix.separate_hosts:
            assert {machine.heartbeat()["host"] for machine in machines} == {
                "machine-a",
                "machine-b",
            }

        # Due within seconds of each other: the machines share a backlog.
        ids = [services.job_create(delay_seconds=5).job_id for _ in range(JOBS)]
        killed, survivor = machines

        def unfinished() -> set[str]:
            return {j for j in _held_by(killed) if not store.repository().get(j).is_final}

        def frozen_mid_batch() -> set[str]:
            """Freeze machine-a and read what it holds unfinished (nothing changes
            while it is read); if nothing, let it go on and look again."""
            if _counts()["completed"] < JOBS // 5:
                return set()
            os.killpg(killed.pid, signal.SIGSTOP)
            held = unfinished()
            if not held:
                os.killpg(killed.pid, signal.SIGCONT)
            return held

        # Then kill -9 of the whole process tree, mid-batch.
        try:
            left = wait_for(
                frozen_mid_batch,
                timeout=60,
                what="a fifth of the jobs to complete, and machine-a to be mid-batch",
            )
        except AssertionError as timed_out:
            # Say what the machines were doing: the jobs' states, whether
            # machine-a still beats, and the end of each machine's log.
            raise AssertionError(
                f"{timed_out}; jobs: {_counts()}; machine-a's heartbeat: "
                f"{killed.heartbeat()}; machine-a's log:\n{killed.log()[-2000:]}\n"
                f"machine-b's log:\n{survivor.log()[-2000:]}"
            ) from None
        killed.kill()
        killed_at = time.time()

        wait_for(
            lambda: _counts()["completed"] == JOBS,
            timeout=LEASE + 60,
            what=f"the survivor to complete every job; {_counts()}; log:\n{survivor.log()[-3000:]}",
        )
        finished_at = time.time()
        survivor.stop()
    finally:
        for machine in machines:
            machine.kill()

    for job_id in ids:
        job = store.repository().get(job_id)
        outcomes = [event.event for event in job.history]
        assert outcomes.count("completed") == 1, (job_id, outcomes)
        assert "failed" not in outcomes, (job_id, outcomes)
    # The kill landed mid-batch: jobs the killed machine held and had not
    # finished were run, to one completion (above), by the other.
    assert left
    counts = store.broker().counts()
    assert (counts["ready"], counts["leased"], counts["dead"]) == (0, 0, 0)
    # What the killed machine held came back after one lease, not later.
    assert finished_at - killed_at < LEASE + 15


def _request(
    base: str, method: str, path: str, body: object = None, headers: dict | None = None
) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class EventStream:
    """``GET /api/events`` of one server, read event by event."""

    def __init__(self, port: int, *, timeout: float) -> None:
        # A read that waits longer than ``timeout`` fails the test.
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.connection.request("GET", "/api/events", headers={"Accept": "text/event-stream"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200

    def until(self, wanted, *, timeout: float = 30) -> dict:
        """Read events until ``wanted(data)`` holds for one; return its data.

        Checked between lines: the server's ping every 15 s ends any wait.
        """
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        while line := self.response.readline():
            if time.monotonic() > deadline:
                raise AssertionError(f"no such event within {timeout} s")
            line = line.decode().rstrip("\n")
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if fields.get("event") == "job" and wanted(data := json.loads(fields["data"])):
                return data
            fields = {}
        raise AssertionError("the event stream ended")

    def close(self) -> None:
        self.connection.close()


def test_two_web_servers_share_jobs_events_and_idempotency_keys(redis_url, tmp_path):
    data_dir = tmp_path / "shared-data"
    env = {"JOBS_REDIS_URL": redis_url, "JOBS_WORKERS": "1"}
    first, second = System(data_dir, env=env), System(data_dir, env=env)
    try:
        first.start()
        second.start()
        stream = EventStream(second.port, timeout=30)
        key = str(uuid.uuid4())

        status, created = _request(
            first.url, "POST", "/api/jobs", {"delay_seconds": 1}, {"Idempotency-Key": key}
        )
        assert status == 202

        # Streamed live by the other server: the job as created, then done.
        assert stream.until(lambda job: job["id"] == created["id"])["status"] == "pending"
        done = stream.until(lambda job: job["id"] == created["id"] and job["status"] == "completed")
        assert done["result"]["photo_id"]
        stream.close()

        status, page = _request(second.url, "GET", "/api/jobs")
        assert status == 200
        assert [job["id"] for job in page["results"]] == [created["id"]]
        status, fetched = _request(second.url, "GET", f"/api/jobs/{created['id']}")
        assert (status, fetched["status"]) == (200, "completed")

        status, replayed = _request(
            second.url, "POST", "/api/jobs", {"delay_seconds": 1}, {"Idempotency-Key": key}
        )
        assert status == 202
        assert replayed["id"] == created["id"]
        status, page = _request(first.url, "GET", "/api/jobs")
        assert len(page["results"]) == 1, "the replay made no second job"
    finally:
        first.stop()
        second.stop()


def test_the_data_directory_holds_no_queue_events_or_heartbeats_with_redis(redis_url, tmp_path):
    """What moved to Redis leaves no files behind that a second host would not see."""
    data_dir = tmp_path / "shared-data"
    system = System(data_dir, env={"JOBS_REDIS_URL": redis_url, "JOBS_WORKERS": "1"})
    try:
        system.start()
        status, created = system.request("POST", "/api/jobs", {"delay_seconds": 1})
        assert status == 202
        wait_for(
            lambda: system.get(f"/api/jobs/{created['id']}")[1]["status"] == "completed",
            timeout=30,
            what="the job to complete",
        )
    finally:
        system.stop()

    leftovers = {path.name for path in Path(data_dir).iterdir()}
    assert not leftovers & {"queue", "events", "worker", "photos"}, leftovers
