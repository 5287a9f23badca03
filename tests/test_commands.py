"""``manage.py createjob`` and ``manage.py jobs``, run in-process with call_command."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.core.management import CommandError, call_command

from jobs import clock, services, store, tasks
from jobs.errors import JobNotFound
from jobs.management.commands import createjob
from jobs.management.commands.jobs import parse_duration
from jobs.model import Job
from jobs.photos import PermanentPhotoError
from tests.test_api_create import PUBLIC_FIELDS

DAY = 86400.0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdout=None, stderr=None) -> tuple[str, str]:
    out, err = stdout or io.StringIO(), stderr or io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> tuple[CommandError, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command(*args, stdout=out, stderr=err)
    return raised.value, out.getvalue(), err.getvalue()


def all_jobs() -> list[Job]:
    return services.job_list(limit=services.MAX_PAGE).jobs


def status_of(job_id: str) -> str | None:
    try:
        return services.job_get(job_id=job_id).status
    except JobNotFound:
        return None


# --- createjob ----------------------------------------------------------------------


def test_createjob_creates_a_pending_job_and_says_when_it_is_due():
    out, _ = run("createjob", "--delay", "10")

    [job] = all_jobs()
    assert job.status == "pending"
    assert job.delay_seconds == 10
    assert clock.from_iso(job.run_at) - clock.from_iso(job.created_at) == pytest.approx(10)
    assert f"Created job {job.id} (pending, due in 10 s" in out
    assert store.broker().find(job.id)[0].state == "ready"


def test_createjob_creates_count_jobs_with_random_delays():
    run("createjob", "--count", "4")
    jobs = all_jobs()
    assert len(jobs) == 4
    assert all(job.delay_seconds in services.delay_choices() for job in jobs)


@pytest.mark.parametrize(
    ("delay", "message"),
    [
        ("7", "delay_seconds must be between 5 and 300 and a multiple of 5."),
        ("400", "delay_seconds must be between 5 and 300 and a multiple of 5."),
        ("ten", "delay_seconds must be a whole number of seconds."),
        ("7.5", "delay_seconds must be a whole number of seconds."),
    ],
)
def test_createjob_refuses_a_bad_delay_with_the_api_message(delay, message):
    error, _, _ = fails("createjob", "--delay", delay, "--count", "3")
    assert error.returncode == 2
    assert str(error) == message
    assert all_jobs() == []


@pytest.mark.parametrize(
    "args",
    [("--count", "0"), ("--count", "1001"), ("--timeout", "5"), ("--wait", "--timeout", "0")],
)
def test_createjob_refuses_bad_usage_with_exit_status_2(args):
    error, _, _ = fails("createjob", *args)
    assert error.returncode == 2
    assert all_jobs() == []


def test_createjob_json_prints_only_the_jobs_on_stdout():
    out, err = run("createjob", "--count", "2", "--delay", "5", "--json")

    jobs = json.loads(out)
    assert [job["id"] for job in jobs] == [job.id for job in all_jobs()][::-1]
    assert all(tuple(job) == PUBLIC_FIELDS for job in jobs)
    assert err.count("Created job") == 2


def run_due_jobs(move_clock):
    """A stand-in for the worker: each pause, the clock passes the due time and jobs run."""

    def pause(self) -> None:
        move_clock(400)
        for job in services.job_list(statuses=["pending"], limit=services.MAX_PAGE).jobs:
            tasks.run_jobs([job.id])[0]

    return pause


def test_createjob_wait_prints_each_photo_url(monkeypatch, move_clock):
    monkeypatch.setattr(createjob.Command, "pause", run_due_jobs(move_clock))

    out, err = run("createjob", "--count", "2", "--wait")

    jobs = all_jobs()
    assert {job.status for job in jobs} == {"completed"}
    for job in jobs:
        assert f"{job.id} completed: {job.result['urls']['regular']}" in out
    assert "2 job(s): 2 pending" in out  # plain progress lines, not a terminal
    assert "2 job(s): 2 completed" in out
    assert "\r" not in out
    assert "No worker seems to be running" in err


def test_createjob_wait_draws_one_live_line_on_a_terminal(monkeypatch, move_clock):
    monkeypatch.setattr(createjob.Command, "pause", run_due_jobs(move_clock))
    terminal = Terminal()

    run("createjob", "--wait", stdout=terminal)

    out = terminal.getvalue()
    assert "\r\033[K1 job(s): 1 pending - next due in" in out
    assert "completed: /static/jobs/demo/" in out


def test_createjob_wait_json_keeps_stdout_for_the_document(monkeypatch, move_clock):
    monkeypatch.setattr(createjob.Command, "pause", run_due_jobs(move_clock))

    out, err = run("createjob", "--count", "2", "--wait", "--json")

    jobs = json.loads(out)
    assert [job["status"] for job in jobs] == ["completed", "completed"]
    assert all(job["result"]["urls"]["regular"] for job in jobs)
    assert "completed: " in err
    assert "2 job(s): 2 completed" in err


def test_createjob_wait_exits_1_when_a_job_fails(monkeypatch, move_clock):
    monkeypatch.setattr(createjob.Command, "pause", run_due_jobs(move_clock))

    def refuse(count):
        error = PermanentPhotoError("unsplash_unauthorized", "Unsplash rejected the access key.")
        return [error] * count

    monkeypatch.setattr(tasks.photos, "take_photos", refuse)

    error, out, _ = fails("createjob", "--wait")

    assert error.returncode == 1
    assert "1 of 1 job(s) did not complete (1 failed)" in str(error)
    assert "failed: Unsplash rejected the access key." in out


def test_createjob_wait_gives_up_at_the_timeout(monkeypatch):
    ticks = iter(range(1000))
    monkeypatch.setattr(createjob.time, "monotonic", lambda: float(next(ticks)))
    monkeypatch.setattr(createjob.Command, "pause", lambda self: None)

    error, out, _ = fails("createjob", "--wait", "--timeout", "3", "--json")

    assert error.returncode == 1
    assert "Timed out: 1 of 1 job(s) not finished yet (1 pending)" in str(error)
    assert json.loads(out)[0]["status"] == "pending"


def test_createjob_wait_reports_a_job_deleted_meanwhile(monkeypatch):
    def delete_them(self) -> None:
        for job in all_jobs():
            services.job_delete(job_id=job.id)

    monkeypatch.setattr(createjob.Command, "pause", delete_them)

    error, out, _ = fails("createjob", "--wait")

    assert error.returncode == 1
    assert " deleted" in out


# --- jobs list / show / health ---------------------------------------------------------


def test_jobs_list_shows_jobs_newest_first_and_filters_by_status():
    older, newer = services.job_create().job["id"], services.job_create().job["id"]
    services.job_cancel(job_id=older)

    out, _ = run("jobs", "list")
    assert out.index(newer) < out.index(older)

    out, _ = run("jobs", "list", "--status", "cancelled", "--json")
    document = json.loads(out)
    assert [job["id"] for job in document["results"]] == [older]
    assert document["next_cursor"] is None


def test_jobs_list_pages_with_limit_and_cursor():
    ids = [services.job_create().job["id"] for _ in range(3)][::-1]

    first = json.loads(run("jobs", "list", "--limit", "2", "--json")[0])
    assert [job["id"] for job in first["results"]] == ids[:2]
    out, _ = run("jobs", "list", "--limit", "2", "--cursor", first["next_cursor"], "--json")
    assert [job["id"] for job in json.loads(out)["results"]] == ids[2:]

    text, _ = run("jobs", "list", "--limit", "2")
    assert f"--cursor {first['next_cursor']}" in text


@pytest.mark.parametrize(
    "args",
    [("--status", "lost"), ("--limit", "0"), ("--limit", "many"), ("--cursor", "../x")],
)
def test_jobs_list_refuses_bad_options_with_exit_status_2(args):
    error, _, _ = fails("jobs", "list", *args)
    assert error.returncode == 2


def test_jobs_show_prints_the_timeline_file_and_queue_message():
    job_id = services.job_create(delay_seconds=5).job["id"]

    out, _ = run("jobs", "show", job_id)
    assert f"Job {job_id}" in out
    # The summary of the admin's detail page, under the same labels.
    assert re.search(r"^  Delay +5 s$", out, re.MULTILINE)
    assert re.search(r"^  Attempts +0$", out, re.MULTILINE)
    assert "created" in out
    assert str(store.repository().path_for(job_id, "pending")) in out
    assert "ready   due at" in out

    document = json.loads(run("jobs", "show", job_id, "--json")[0])
    assert document["job"]["id"] == job_id
    assert document["job"]["history"][0]["event"] == "created"
    assert document["file"] == str(store.repository().path_for(job_id, "pending"))
    [message] = document["queue_messages"]
    assert message["state"] == "ready"
    assert message["key"] == job_id


def test_jobs_show_of_an_unknown_job_exits_2():
    error, _, _ = fails("jobs", "show", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert error.returncode == 2
    assert "There is no job with id" in str(error)


def test_jobs_health_reports_the_queue_and_photo_source():
    services.job_create(delay_seconds=5)
    document = json.loads(run("jobs", "health", "--json")[0])
    assert document["ready"] == 1
    assert document["photo_source"] == "demo"
    assert document["worker_alive"] is False

    out, _ = run("jobs", "health")
    assert "Queue: 1 ready" in out
    assert "no heartbeat" in out


# --- jobs cancel / retry / delete -----------------------------------------------------


def test_jobs_cancel_retry_and_delete_change_the_files(move_clock, caplog):
    job_id = services.job_create(delay_seconds=5).job["id"]

    with caplog.at_level(logging.INFO, logger="jobs.operations"):
        out, _ = run("jobs", "cancel", job_id)
    assert f"{job_id} cancelled" in out
    assert re.search(rf"Operator .+ cancelled job {job_id}", caplog.text)
    assert status_of(job_id) == "cancelled"
    move_clock(10)
    assert tasks.run_jobs([job_id])[0] == "already cancelled"

    run("jobs", "retry", job_id)
    assert status_of(job_id) == "pending"

    run("jobs", "delete", job_id)
    assert status_of(job_id) is None
    assert store.broker().find(job_id) == []


def test_jobs_changes_report_refusals_and_exit_2():
    pending = services.job_create().job["id"]
    missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

    error, out, _ = fails("jobs", "retry", pending, missing, "--json")

    assert error.returncode == 2
    document = json.loads(out)
    assert document["retry"] == []
    assert [(item["id"], item["code"]) for item in document["refused"]] == [
        (pending, "invalid_transition"),
        (missing, "not_found"),
    ]
    assert status_of(pending) == "pending"


# --- jobs recover --------------------------------------------------------------------


def test_jobs_recover_requeues_a_pending_job_that_lost_its_message(move_clock):
    job_id = services.job_create(delay_seconds=5).job["id"]
    store.broker().delete_key(job_id)
    move_clock(60)  # past the recovery grace period

    document = json.loads(run("jobs", "recover", "--json")[0])

    assert document["requeued"] == [job_id]
    assert [message.state for message in store.broker().find(job_id)] == ["ready"]


# --- jobs prune ----------------------------------------------------------------------


@pytest.fixture
def aged_jobs(move_clock):
    """Jobs of every kind created and finished 8 days ago, and some recent ones."""
    move_clock(-8 * DAY)
    old = {name: services.job_create(delay_seconds=5).job["id"] for name in ("done", "failed")}
    old["cancelled"] = services.job_create(delay_seconds=5).job["id"]
    old["pending"] = services.job_create(delay_seconds=5).job["id"]
    old["running"] = services.job_create(delay_seconds=5).job["id"]
    services.job_cancel(job_id=old["cancelled"])
    tasks.dead_letter(old["failed"], b"")
    move_clock(-8 * DAY + 10)
    assert tasks.run_jobs([old["done"]])[0] == "completed"
    store.repository().update(
        old["running"], lambda job: job.claim(token="run", lease_seconds=60, now=clock.now())
    )
    # An old idempotency key (the store's own clock) and a fresh one.
    keys = store.idempotency()
    real_clock = keys.clock
    keys.clock = lambda: real_clock() - 8 * DAY
    old["keyed"] = services.job_create(idempotency_key="old-key").job["id"]
    keys.clock = real_clock
    move_clock(0)
    recent = services.job_create(delay_seconds=5).job["id"]
    move_clock(10)
    assert tasks.run_jobs([recent])[0] == "completed"
    services.job_create(idempotency_key="fresh-key")
    return old, recent


def test_jobs_prune_deletes_only_old_finished_jobs_and_expired_keys(aged_jobs):
    old, recent = aged_jobs

    out, _ = run("jobs", "prune", "--older-than", "7d")

    assert "Deleted 3 finished job(s) older than 7d" in out
    assert "1 expired idempotency key(s)" in out
    for name in ("done", "failed", "cancelled"):
        assert status_of(old[name]) is None, name
        assert store.broker().find(old[name]) == [], name
    assert status_of(old["pending"]) == "pending"
    assert status_of(old["running"]) == "running"
    assert status_of(old["keyed"]) == "pending"
    assert status_of(recent) == "completed"
    assert store.idempotency().count() == 1
    assert not store.idempotency().path_for("old-key").exists()


def test_jobs_prune_dry_run_changes_nothing(aged_jobs):
    old, _ = aged_jobs
    before = {job.id: job.revision for job in all_jobs()}

    document = json.loads(run("jobs", "prune", "--older-than", "7d", "--dry-run", "--json")[0])

    assert sorted(document["job_ids"]) == sorted(
        old[name] for name in ("done", "failed", "cancelled")
    )
    assert document["dry_run"] is True
    assert document["older_than_seconds"] == 7 * DAY
    assert document["idempotency_keys_removed"] is None
    assert {job.id: job.revision for job in all_jobs()} == before
    assert store.idempotency().count() == 2


def test_jobs_prune_keeps_jobs_younger_than_the_age(aged_jobs):
    out, _ = run("jobs", "prune", "--older-than", "9d", "--json")
    assert json.loads(out)["job_ids"] == []


@pytest.mark.parametrize("age", ["7", "7w", "-1d", "d", ""])
def test_jobs_prune_refuses_an_age_it_cannot_read(age):
    error, _, _ = fails("jobs", "prune", f"--older-than={age}")
    assert error.returncode == 2
    assert "is not a duration" in str(error)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 7 * DAY),
        ("1d12h", 1.5 * DAY),
        ("1.5h", 5400),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds
