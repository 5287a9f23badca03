"""The recovery pass and the worker's supervisor loop: no job a client was told about
stays pending (or running) forever without a message that will run it."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from django_q.signing import SignedPackage

from filestore.ids import new_id
from jobs import clock, health, services, store
from jobs.model import Job
from jobs.recovery import GRACE_SECONDS, recover_jobs
from jobs.tasks import run_jobs
from jobs.worker import Supervisor


def stored_without_message(
    now: Callable[[], float], *, age: float, status: str = "pending", **fields
) -> str:
    """A job whose writer died after writing its file and before enqueuing its message."""
    written = now() - age
    document = {
        **Job.new(new_id(written), delay=5, now=written).to_document(),
        "status": status,
        **fields,
    }
    return store.repository().create(Job.from_document(document)).id


def messages(job_id: str) -> list:
    return store.broker().find(job_id)


def test_it_enqueues_a_pending_job_that_has_no_message(now):
    job_id = stored_without_message(now, age=GRACE_SECONDS + 1)
    assert messages(job_id) == []

    report = recover_jobs()

    assert report.requeued == [job_id]
    [message] = messages(job_id)
    assert message.state == "ready"
    assert message.due_at == pytest.approx(clock.from_iso(store.repository().get(job_id).run_at))
    # The message is a real task for the worker: it runs this job.
    [(_ack_id, package)] = store.broker().dequeue()
    task = SignedPackage.loads(package)
    assert (task["func"], task["args"]) == ("jobs.tasks.run_jobs", ([job_id],))
    assert run_jobs([job_id])[0] == "completed"


def test_a_waiting_job_is_enqueued_for_its_next_attempt(now):
    next_attempt = clock.to_iso(now() + 40)
    job_id = stored_without_message(
        now, age=GRACE_SECONDS + 1, attempts=1, next_attempt_at=next_attempt
    )

    assert recover_jobs().requeued == [job_id]

    [message] = messages(job_id)
    assert message.due_at == pytest.approx(clock.from_iso(next_attempt))


def test_it_leaves_jobs_inside_the_grace_period_alone(now):
    job_id = stored_without_message(now, age=GRACE_SECONDS - 1)

    report = recover_jobs()

    assert report.requeued == [] and messages(job_id) == []
    now.advance(1.001)
    assert recover_jobs().requeued == [job_id]


def test_it_leaves_a_job_with_a_message_alone(now):
    job_id = services.job_create(delay_seconds=5).job["id"]
    now.advance(GRACE_SECONDS + 60)

    report = recover_jobs()

    assert report.requeued == report.restarted == report.dead_lettered == []
    assert len(messages(job_id)) == 1


def test_a_running_job_whose_lease_ran_out_and_has_no_message_runs_again(now):
    job_id = stored_without_message(
        now,
        age=GRACE_SECONDS + 120,
        status="running",
        attempts=1,
        lease={"token": "dead-worker", "until": now() - 1},
    )

    report = recover_jobs()

    assert report.restarted == [job_id]
    job = store.repository().get(job_id)
    assert job.status == "pending"
    assert job.lease is None
    assert job.next_attempt_at == clock.to_iso(now())
    assert "worker stopped" in job.pending_reason
    assert job.history[-1].event == "requeued"
    [message] = messages(job_id)
    assert message.due_at == pytest.approx(now(), abs=0.002)
    assert run_jobs([job_id])[0] == "completed"


def test_a_running_job_under_a_live_lease_is_left_alone(now):
    job_id = stored_without_message(
        now,
        age=GRACE_SECONDS + 1,
        status="running",
        attempts=1,
        lease={"token": "busy-worker", "until": now() + 30},
    )

    report = recover_jobs()

    assert report.restarted == [] and messages(job_id) == []
    assert store.repository().get(job_id).status == "running"


def test_a_job_whose_message_is_dead_is_failed(now, settings):
    job_id = services.job_create(delay_seconds=5).job["id"]
    queue = store.broker().connection
    queue.clock = now
    queue.on_dead = None  # the process died before the dead-letter handler ran
    now.advance(5)
    [(ack_id, _payload)] = queue.dequeue(1)
    queue.fail(ack_id)
    assert store.repository().get(job_id).status == "pending"
    now.advance(GRACE_SECONDS)

    report = recover_jobs()

    assert report.dead_lettered == [job_id]
    job = store.repository().get(job_id)
    assert job.status == "failed"
    assert job.error.code == "delivery_failed"
    assert "deliveries" in job.error.message


def test_an_old_dead_message_does_not_fail_a_job_that_was_retried_since(now):
    job_id = services.job_create(delay_seconds=5).job["id"]
    queue = store.broker().connection
    queue.clock = now
    now.advance(5)
    [(ack_id, _payload)] = queue.dequeue(1)
    queue.fail(ack_id)  # the dead-letter handler runs and fails the job
    assert store.repository().get(job_id).status == "failed"
    now.advance(60)
    services.job_retry(job_id=job_id)
    # Its new message is lost: the process died between a write and an enqueue.
    [live] = [m for m in messages(job_id) if m.state == "ready"]
    store.broker().delete(live.message_id)
    now.advance(GRACE_SECONDS)

    report = recover_jobs()

    assert report.dead_lettered == [] and report.requeued == [job_id]
    assert store.repository().get(job_id).status == "pending"
    assert run_jobs([job_id])[0] == "completed"


# --- the supervisor loop of the worker's main process -------------------------------


def test_a_tick_writes_a_heartbeat_and_runs_recovery_when_it_is_due(now, settings):
    supervisor = Supervisor()
    first = stored_without_message(now, age=GRACE_SECONDS + 1)

    supervisor.tick()

    beat = health.latest_heartbeat()
    assert beat["at"] == now() and beat["pid"] == os.getpid()
    assert beat["workers"] == settings.Q_CLUSTER["workers"]
    assert len(messages(first)) == 1

    second = stored_without_message(now, age=GRACE_SECONDS + 1)
    now.advance(supervisor.heartbeat_every)
    supervisor.tick()
    assert health.latest_heartbeat()["at"] == now()
    assert messages(second) == [], "recovery runs once a minute, not on every heartbeat"

    now.advance(supervisor.recover_every - supervisor.heartbeat_every)
    supervisor.tick()
    assert len(messages(second)) == 1


def test_a_failing_recovery_pass_does_not_stop_the_heartbeat(now, monkeypatch):
    def broken():
        raise OSError("disk on fire")

    monkeypatch.setattr("jobs.worker.recover_jobs", broken)

    Supervisor().tick()

    assert health.latest_heartbeat()["at"] == now()


def test_a_heartbeat_that_cannot_be_written_does_not_stop_the_loop(now, monkeypatch):
    job_id = stored_without_message(now, age=GRACE_SECONDS + 1)

    def disk_full(**details):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(health, "write_heartbeat", disk_full)

    Supervisor().tick()

    assert len(messages(job_id)) == 1, "the recovery pass still ran"


def test_the_loop_ends_when_the_cluster_dies_and_removes_its_heartbeat(now):
    job_id = stored_without_message(now, age=GRACE_SECONDS + 1)
    answers = iter([True, False])

    Supervisor().run(lambda: next(answers, False))

    assert len(messages(job_id)) == 1
    assert health.latest_heartbeat() is None


def test_a_retried_job_keeps_no_dead_message_of_its_earlier_run(data_dir):
    from jobs import services, store

    job_id = services.job_create(delay_seconds=5).job_id
    broker = store.broker()
    for info in broker.find(job_id):
        broker.delete(info.message_id)
    broker.enqueue("unreadable", key=job_id)
    [(ack_id, _)] = broker.connection.dequeue(1)
    broker.fail(ack_id)  # dead-lettered: the handler fails the job
    assert services.job_get(job_id=job_id).status == "failed"

    services.job_retry(job_id=job_id)

    states = [info.state for info in broker.find(job_id)]
    assert states == ["ready"]
    assert services.job_get(job_id=job_id).status == "pending"
