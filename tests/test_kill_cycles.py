"""Kill cycles: a stream of creates while the web server and the worker are killed and restarted.

The real system runs as two process groups on the test's data directory: the
web server (granian, as ``manage.py serve`` starts it) on a loopback port, and
``manage.py qcluster`` with the offline demo photo source. Client threads send
creates, each with its own ``Idempotency-Key``, and retry every one that was not
acknowledged with the same key, as the page's outbox does. Meanwhile two killer
threads ``kill -9`` the web server's and the worker's whole process group at
random moments (a seeded RNG) and start them again.

Then the killing stops, every create is retried until it is acknowledged, every
job runs, and the tally must show nothing lost and nothing done twice:

- lost: a job a client was told about (a ``202``) that is missing or not final;
- duplicated: two jobs for one key, a job no key was answered with, or a job
  whose history shows more than one final state.

``JOBS_KILL_CYCLES`` (default 20) sets how many times each process is killed,
``JOBS_KILL_SEED`` the RNG's seed. Run with ``-s`` to see the tally.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobs import store
from jobs.management.commands.serve import Command as ServeCommand
from tests.django_process import manage
from tests.system import free_port
from tests.worker_harness import BASE_DIR, WorkerCluster, cluster_env, wait_for

pytestmark = pytest.mark.slow

CYCLES = int(os.environ.get("JOBS_KILL_CYCLES", "20"))
SEED = int(os.environ.get("JOBS_KILL_SEED", "20240611"))
CLIENTS = 3
# Each client's pace: about 15 creates a second in all, well under the throttle.
CLIENT_INTERVAL = 0.2
FINAL = {"completed", "failed", "cancelled"}
# A claim whose request died with the web server is taken over after 30 s
# (filestore.idempotency): the drain allows for that, then for the last runs.
DRAIN_SECONDS = 90


class WebServer:
    """The web server alone, in its own process group, as ``manage.py serve`` runs it."""

    def __init__(self, port: int, env: dict[str, str], log_path: Path) -> None:
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30) -> None:
        command = ServeCommand().web_command("127.0.0.1", self.port, 1)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=BASE_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._answers, timeout=timeout, what=f"the web server on {self.port}")

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the web server exited: {self.log_path.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/api/health")
            connection.getresponse().read()  # 200, or 503 while the worker is down
            connection.close()
            return True
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None


@dataclass
class Tally:
    """What the clients sent and were told, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    keys: list[str] = field(default_factory=list)
    answers: dict[str, set[str]] = field(default_factory=dict)  # key -> job ids it was given
    requests: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "202", "409", "refused", ...
    refused: list[str] = field(default_factory=list)  # answers a retry cannot fix
    server_errors: list[str] = field(default_factory=list)

    def unacknowledged(self) -> list[str]:
        with self.lock:
            return [key for key in self.keys if key not in self.answers]


class Client(threading.Thread):
    """Sends creates at a steady pace and retries each unacknowledged one with its key."""

    def __init__(self, port: int, tally: Tally, sending: threading.Event, done: threading.Event):
        super().__init__(daemon=True)
        self.port, self.tally, self.sending, self.done = port, tally, sending, done
        self.outbox: list[tuple[float, str, bytes, int]] = []  # (retry at, key, body, attempts)
        self.rng = random.Random()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:
            self.error = error

    def _run(self) -> None:
        next_new = time.monotonic()
        while not self.done.is_set():
            now = time.monotonic()
            due = [entry for entry in self.outbox if entry[0] <= now]
            if due:
                entry = min(due)
                self.outbox.remove(entry)
                _, key, body, attempts = entry
            elif self.sending.is_set() and now >= next_new:
                key, attempts = str(uuid.uuid4()), 0
                body = json.dumps({"delay_seconds": self.rng.randint(1, 3)}).encode()
                with self.tally.lock:
                    self.tally.keys.append(key)
                next_new = now + CLIENT_INTERVAL
            else:
                wake = min([entry[0] for entry in self.outbox] + [next_new, now + 0.2])
                self.done.wait(max(0.01, wake - now))
                continue
            retry_after = self._send(key, body)
            if retry_after is not None:
                # Capped exponential backoff with full jitter, at least what
                # the server asked for, as the page's outbox does.
                backoff = self.rng.uniform(0, min(4.0, 0.25 * 2**attempts))
                retry_at = time.monotonic() + max(retry_after, backoff)
                self.outbox.append((retry_at, key, body, attempts + 1))

    def _send(self, key: str, body: bytes) -> float | None:
        """One attempt; None when it needs no retry, else the least wait before one."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        retry_after = None
        try:
            connection.request(
                "POST",
                "/api/jobs",
                body=body,
                headers={"Content-Type": "application/json", "Idempotency-Key": key},
            )
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            retry_after = response.getheader("Retry-After")
            content_type = response.getheader("Content-Type")
        except (OSError, http.client.HTTPException) as error:
            status, payload, content_type = type(error).__name__, b"", None
        finally:
            connection.close()
        with self.tally.lock:
            self.tally.requests += 1
            self.tally.outcomes[str(status)] += 1
            if status == 202:
                self.tally.answers.setdefault(key, set()).add(json.loads(payload)["id"])
                return None
            # A 503 that says when to come back (the worker is behind) is an
            # answer; any other 5xx is a defect.
            answered_busy = (
                status == 503 and retry_after and content_type == "application/problem+json"
            )
            if isinstance(status, int) and status >= 500 and not answered_busy:
                self.tally.server_errors.append(f"{status} {payload[:300]!r}")
            if status in (400, 413, 415, 422):
                self.tally.refused.append(f"{key}: {status} {payload[:200]!r}")
                return None
        # Connection refused or cut, a timeout, 409 (the first attempt's claim
        # is still held), 429, 503: the outbox keeps the create and tries again.
        return float(retry_after) if retry_after and retry_after.isdigit() else 0.0


class Killer(threading.Thread):
    """Kills one process group at random moments and starts it again, ``cycles`` times."""

    def __init__(self, name: str, start, kill, rng: random.Random, cycles: int, stop):
        super().__init__(daemon=True, name=f"killer-{name}")
        self.start_process, self.kill_process = start, kill
        self.rng, self.cycles, self.stop = rng, cycles, stop
        self.kills = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for _ in range(self.cycles):
                # The random moment: somewhere in the next few seconds of work.
                if self.stop.wait(self.rng.uniform(0.3, 3.0)):
                    return
                self.kill_process()
                self.kills += 1
                if self.rng.random() < 0.3:  # sometimes it stays down a while
                    self.stop.wait(self.rng.uniform(0.1, 2.0))
                self.start_process()
        except BaseException as error:
            self.error = error


@pytest.fixture
def processes(data_dir, tmp_path, settings) -> Iterator[tuple[WebServer, WorkerCluster]]:
    env = cluster_env(
        data_dir,
        secret_key=str(settings.SECRET_KEY),
        overrides={
            "JOBS_MAX_DELAY": "3",
            # A restarted worker takes a killed worker's messages back once their
            # lease runs out: keep it short so the run ends in bounded time.
            "JOBS_QUEUE_RETRY": "6",
            "JOBS_TASK_TIMEOUT": "5",
            "DJANGO_LOG_LEVEL": "WARNING",
        },
    )
    migrated = manage("migrate", "--noinput", "-v0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    web = WebServer(free_port(), env, tmp_path / "web.log")
    worker = WorkerCluster(data_dir, tmp_path / "qcluster.log", env=env)
    try:
        yield web, worker
    finally:
        web.kill()
        worker.kill()


def _final_or_none(job_ids: set[str]) -> dict[str, object] | None:
    jobs = {}
    for job_id in job_ids:
        try:
            jobs[job_id] = store.repository().get(job_id)
        except Exception:
            return None
    return jobs if all(job.status in FINAL for job in jobs.values()) else None


@pytest.mark.timeout(300 + CYCLES * 10)
def test_kill_cycles_lose_nothing_and_run_nothing_twice(processes):
    web, worker = processes
    web.start()
    worker.start()

    tally = Tally()
    sending, done, stop_killing = threading.Event(), threading.Event(), threading.Event()
    sending.set()
    clients = [Client(web.port, tally, sending, done) for _ in range(CLIENTS)]
    rng = random.Random(SEED)

    def restart_worker() -> None:
        worker.start(timeout=60)

    killers = [
        Killer("web", web.start, web.kill, random.Random(rng.random()), CYCLES, stop_killing),
        Killer(
            "worker", restart_worker, worker.kill, random.Random(rng.random()), CYCLES, stop_killing
        ),
    ]
    started = time.monotonic()
    for thread in clients + killers:
        thread.start()
    try:
        for killer in killers:
            killer.join(timeout=CYCLES * 30)
            assert not killer.is_alive(), f"{killer.name} did not finish its cycles"
            assert killer.error is None, f"{killer.name}: {killer.error!r}"
        sending.clear()
        killed_for = time.monotonic() - started

        # Both processes are up: every create gets its answer...
        wait_for(
            lambda: not tally.unacknowledged(),
            timeout=DRAIN_SECONDS,
            what=f"every create to be acknowledged ({len(tally.unacknowledged())} left)",
        )
    finally:
        done.set()
        stop_killing.set()
        for thread in clients:
            thread.join(timeout=10)
    assert all(client.error is None for client in clients), [c.error for c in clients]

    acknowledged = {job_id for ids in tally.answers.values() for job_id in ids}
    # ...and every job it was told about finishes.
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: _final_or_none(acknowledged),
            timeout=DRAIN_SECONDS,
            what="every acknowledged job to finish",
        )
    drained_at = time.monotonic()

    stored = {entry.id: entry for entry in store.repository().entries()}
    jobs = {}
    for job_id in stored:
        with contextlib.suppress(Exception):
            jobs[job_id] = store.repository().get(job_id)
    lost = sorted(
        job_id for job_id in acknowledged if job_id not in jobs or jobs[job_id].status not in FINAL
    )
    two_jobs_for_one_key = sorted(key for key, ids in tally.answers.items() if len(ids) > 1)
    unasked_jobs = sorted(set(stored) - acknowledged)
    finished_twice = sorted(
        job_id
        for job_id, job in jobs.items()
        if sum(entry.event in FINAL for entry in job.history) > 1
    )
    statuses = Counter(job.status for job in jobs.values())
    duplicated = len(two_jobs_for_one_key) + len(unasked_jobs) + len(finished_twice)
    summary = (
        f"kill cycles: seed {SEED}, {killers[0].kills} web and {killers[1].kills} worker kills "
        f"in {killed_for:.0f} s, drained in {drained_at - started - killed_for:.0f} s; "
        f"sent {len(tally.keys)} / requests {tally.requests} / "
        f"acknowledged {len(tally.answers)} / completed {statuses['completed']} / "
        f"failed {statuses['failed']} / lost {len(lost)} / duplicated {duplicated}; "
        f"answers {dict(sorted(tally.outcomes.items()))}"
    )
    print("\n" + summary)

    assert killers[0].kills == killers[1].kills == CYCLES, summary
    assert tally.refused == [], (summary, tally.refused[:5])
    assert len(tally.answers) == len(tally.keys), summary
    assert lost == [], (summary, lost[:10])
    assert two_jobs_for_one_key == [], (summary, two_jobs_for_one_key[:10])
    assert unasked_jobs == [], (summary, unasked_jobs[:10])
    assert finished_twice == [], (summary, finished_twice[:10])
    assert statuses["completed"] == len(acknowledged), summary
    assert tally.server_errors == [], (summary, tally.server_errors[:5])
