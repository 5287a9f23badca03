"""Taking back the leases of dead workers: which owners are known dead, and what the
supervisor and the task do with their leases (the queue's side: the contract tests)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jobs import backends, clock, services, store
from jobs.liveness import DeadOwners, owner_is_dead
from jobs.model import Status
from jobs.tasks import run_jobs
from jobs.worker import Supervisor
from storage.owners import OWNER_ENV, PID_SCOPE, current_owner, owner_for, parse_owner, pid_alive

OTHER_SCOPE = "fedcba987654"
MAX_AGE = 30.0
NOW = 1_790_000_000.0


def is_dead(owner: str, *, heartbeats=None, alive=(), me="0123456789ab-1") -> bool:
    return owner_is_dead(
        owner,
        heartbeats=heartbeats or {},
        now=NOW,
        max_age=MAX_AGE,
        scope="0123456789ab",
        me=me,
        is_pid_alive=lambda pid: pid in alive,
    )


def test_an_owner_of_this_host_is_dead_when_its_pid_is_gone_whatever_its_heartbeat():
    assert is_dead("0123456789ab-42")
    assert is_dead("0123456789ab-42", heartbeats={"0123456789ab-42": NOW})


def test_an_owner_of_this_host_whose_pid_lives_is_alive_even_with_a_stale_heartbeat():
    stale = {"0123456789ab-42": NOW - 3600}
    assert not is_dead("0123456789ab-42", heartbeats=stale, alive={42})


def test_a_worker_never_declares_itself_dead():
    assert not is_dead("0123456789ab-1", me="0123456789ab-1")


def test_an_owner_of_another_host_is_judged_by_its_heartbeat_whatever_its_pid():
    owner = f"{OTHER_SCOPE}-42"
    assert not is_dead(owner, heartbeats={owner: NOW - MAX_AGE}), "fresh: alive"
    assert is_dead(owner, heartbeats={owner: NOW - MAX_AGE - 0.001}), "stale: dead"
    assert not is_dead(owner), "no heartbeat (a clean stop removes it) proves nothing"
    assert not is_dead(owner, heartbeats={owner: NOW}, alive=set())


@pytest.mark.parametrize("owner", ["", "somebody", "0123456789ab-0", "0123456789ab-x"])
def test_something_that_is_not_an_owner_is_never_dead(owner):
    assert not is_dead(owner)


def test_pid_alive_tells_a_live_process_from_a_reaped_one():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert pid_alive(os.getpid())
    assert not pid_alive(child.pid)


def test_the_owner_is_the_clusters_main_process_in_every_process_of_the_cluster(monkeypatch):
    monkeypatch.delenv(OWNER_ENV, raising=False)
    assert current_owner() == owner_for(os.getpid()) == f"{PID_SCOPE}-{os.getpid()}"
    assert parse_owner(current_owner()) == (PID_SCOPE, os.getpid())

    monkeypatch.setenv(OWNER_ENV, owner_for(os.getppid()))
    assert current_owner() == owner_for(os.getppid())


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_owners_are_found_among_the_heartbeats(now, settings):
    settings.JOBS_HEARTBEAT_MAX_AGE = 30
    beats = backends.heartbeats()
    gone_here, here = owner_for(dead_pid()), owner_for(os.getppid())
    stale_there, fresh_there = f"{OTHER_SCOPE}-7", f"{OTHER_SCOPE}-8"
    beats.beat("gone-here", {"at": now(), "owner": gone_here})
    beats.beat("here", {"at": now() - 3600, "owner": here})
    beats.beat("stale-there", {"at": now() - 31, "owner": stale_there})
    beats.beat("fresh-there", {"at": now() - 29, "owner": fresh_there})
    beats.beat("old-version", {"at": now() - 3600})

    assert DeadOwners().among_heartbeats() == {gone_here, stale_there}


def leased_by(owner: str) -> str:
    """A job whose message a cluster ``owner`` leased and whose run it claimed."""
    job_id = services.job_create(delay_seconds=5).job_id
    due = clock.now() + 5
    queue = store.broker().connection
    queue.clock = lambda: due
    assert len(queue.dequeue(10, owner=owner)) == 1
    store.repository().apply(
        job_id, lambda job: job.claim(token="first", lease_seconds=90, now=due, owner=owner)
    )
    return job_id


def test_the_supervisor_takes_back_the_leases_of_a_dead_cluster_at_once(now):
    dead = owner_for(dead_pid())
    backends.heartbeats().beat("dead-cluster", {"at": now(), "owner": dead})
    job_id = leased_by(dead)
    live_job_id = leased_by(owner_for(os.getppid()))

    Supervisor().tick()

    [message] = store.broker().find(job_id)
    assert (message.state, message.deliveries) == ("ready", 1)
    assert [m.state for m in store.broker().find(live_job_id)] == ["leased"]


def test_the_run_of_a_dead_owner_is_taken_over_and_says_so(now):
    job_id = leased_by(owner_for(dead_pid()))

    assert run_jobs([job_id])[0] == "completed"

    job = store.repository().get(job_id)
    events = [event.event for event in job.history]
    assert events.count("completed") == 1 and job.attempts == 2
    [taken_over] = [event for event in job.history if event.event == "lease-expired"]
    assert "owner died" in taken_over.detail


def test_the_run_of_a_live_owner_is_left_alone(now):
    job_id = leased_by(owner_for(os.getppid()))

    assert run_jobs([job_id])[0] == "running elsewhere"

    job = store.repository().get(job_id)
    assert job.status is Status.RUNNING and job.holds("first")
