"""POST /api/jobs: accept a job at once, refuse bad input clearly, honour idempotency keys."""

from __future__ import annotations

import json
import threading

import pytest
from django.test import Client

from jobs import clock, services, store
from jobs.model import Job

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers

NOW = 1_790_000_000.25
# Every field of a job in the API, in order (the contract the page, the
# commands and the tests share).
PUBLIC_FIELDS = (
    "id",
    "url",
    "status",
    "created_at",
    "run_at",
    "updated_at",
    "delay_seconds",
    "started_at",
    "finished_at",
    "attempts",
    "pending_reason",
    "next_attempt_at",
    "result",
    "error",
)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)


def _post(client, body="", content_type="application/json", path="/api/jobs", **headers):
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    # CONTENT_TYPE too: the test client drops the content type of an empty body.
    return client.post(
        path, data=body, content_type=content_type, headers=headers, CONTENT_TYPE=content_type
    )


def _stored_jobs() -> list[Job]:
    return store.repository().list(limit=500)[0]


def _files_under(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def _assert_problem(response, status: int, *detail_words: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["type"]
    for word in detail_words:
        assert word in problem["detail"]
    return problem


# --- accepted --------------------------------------------------------------------


def test_it_accepts_a_job_and_says_where_and_when(client):
    response = _post(client, {"delay_seconds": 30})

    assert response.status_code == 202
    job = response.json()
    assert tuple(job) == PUBLIC_FIELDS
    assert response["Location"] == f"/api/jobs/{job['id']}" == job["url"]
    assert response["Retry-After"] == "30"
    assert job["status"] == "pending"
    assert job["delay_seconds"] == 30
    assert job["created_at"] == job["updated_at"] == "2026-09-21T14:13:20.250Z"
    assert job["run_at"] == "2026-09-21T14:13:50.250Z"
    assert job["attempts"] == 0
    for field in ("started_at", "finished_at", "pending_reason", "next_attempt_at"):
        assert job[field] is None
    assert job["result"] is None and job["error"] is None


def test_it_stores_and_queues_the_job_it_accepts(client):
    job = _post(client, {"delay_seconds": 45}).json()

    assert client.get(job["url"]).json() == job
    assert [stored.id for stored in _stored_jobs()] == [job["id"]]
    messages = store.broker().find(job["id"])
    assert [message.due_at for message in messages] == [pytest.approx(NOW + 45, abs=0.001)]


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/"])
def test_it_answers_with_and_without_a_trailing_slash(client, path):
    response = _post(client, {"delay_seconds": 5}, path=path)

    assert response.status_code == 202
    assert response["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("", "application/json"), ({}, "application/json")],
    ids=["no body", "empty object"],
)
def test_it_picks_a_random_delay_when_none_is_given(client, body, content_type):
    response = _post(client, body, content_type=content_type)

    assert response.status_code == 202
    delay = response.json()["delay_seconds"]
    assert delay in range(5, 301, 5)
    assert response["Retry-After"] == str(delay)


def test_it_takes_a_null_delay_as_no_delay_given(client):
    delays = {_post(client, {"delay_seconds": None}).json()["delay_seconds"] for _ in range(30)}

    assert delays <= set(range(5, 301, 5))
    assert len(delays) > 1  # random, not one fixed default


def test_it_takes_the_delay_bounds_from_the_settings(client, settings):
    settings.JOBS_MIN_DELAY, settings.JOBS_MAX_DELAY, settings.JOBS_DELAY_STEP = 10, 20, 10

    assert _post(client, {"delay_seconds": 10}).status_code == 202
    assert _post(client, {"delay_seconds": 20}).status_code == 202
    for refused in (5, 15, 25, 30):
        _assert_problem(_post(client, {"delay_seconds": refused}), 400, "10", "20")
    random_delays = {_post(client).json()["delay_seconds"] for _ in range(20)}
    assert random_delays <= {10, 20}


# --- refused ---------------------------------------------------------------------

BAD_REQUESTS = {
    "malformed JSON": ('{"delay_seconds": 3', "application/json", 400, "JSON"),
    "not UTF-8": (b"\xff\xfe{}", "application/json", 400, "JSON"),
    "NaN": ('{"delay_seconds": NaN}', "application/json", 400, "JSON"),
    "a string": ('{"delay_seconds": "30"}', "application/json", 400, "delay_seconds"),
    "a boolean": ('{"delay_seconds": true}', "application/json", 400, "delay_seconds"),
    "a fraction": ('{"delay_seconds": 30.5}', "application/json", 400, "delay_seconds"),
    "a float": ('{"delay_seconds": 30.0}', "application/json", 400, "delay_seconds"),
    "huge": ('{"delay_seconds": 1e400}', "application/json", 400, "delay_seconds"),
    "an object": ('{"delay_seconds": {"s": 30}}', "application/json", 400, "delay_seconds"),
    "zero": ('{"delay_seconds": 0}', "application/json", 400, "between 5 and 300"),
    "negative": ('{"delay_seconds": -5}', "application/json", 400, "between 5 and 300"),
    "too short": ('{"delay_seconds": 4}', "application/json", 400, "between 5 and 300"),
    "too long": ('{"delay_seconds": 305}', "application/json", 400, "between 5 and 300"),
    "enormous": ('{"delay_seconds": 1' + "0" * 40 + "}", "application/json", 400, "300"),
    "off step": ('{"delay_seconds": 7}', "application/json", 400, "multiple of 5"),
    "unknown field": ('{"delay": 30}', "application/json", 400, "delay"),
    "unknown and known": ('{"delay_seconds": 30, "x": 1}', "application/json", 400, "x"),
    "an array": ("[30]", "application/json", 400, "JSON object"),
    "a number": ("30", "application/json", 400, "JSON object"),
    "null": ("null", "application/json", 400, "JSON object"),
    "oversized": (
        '{"delay_seconds": 30, "x": "' + "a" * 20_000 + '"}',
        "application/json",
        413,
        "at most",
    ),
    "plain text": ('{"delay_seconds": 30}', "text/plain", 415, "application/json"),
    "a form": ("delay_seconds=30", "application/x-www-form-urlencoded", 415, "application/json"),
}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "hint"), BAD_REQUESTS.values(), ids=list(BAD_REQUESTS)
)
def test_it_refuses_a_bad_request_and_writes_nothing(
    client, data_dir, body, content_type, status, hint
):
    before = _files_under(data_dir)

    response = _post(client, body, content_type=content_type, **{"Idempotency-Key": "k-1"})

    _assert_problem(response, status, hint)
    assert _files_under(data_dir) == before
    assert not (data_dir / "jobs").exists() or _files_under(data_dir / "jobs") == []


# --- idempotency keys -------------------------------------------------------------------


def test_it_replays_a_retry_with_the_same_key(client):
    first = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-1"})
    again = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert len(_stored_jobs()) == 1
    assert len(store.broker().find(first.json()["id"])) == 1


def test_a_replay_says_how_long_is_left_to_wait(client, monkeypatch):
    first = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-2"})
    monkeypatch.setattr(clock, "now", lambda: NOW + 25)

    again = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-2"})

    assert first["Retry-After"] == "60"
    assert again["Retry-After"] == "35"
    assert again.json() == first.json()


def test_it_creates_a_job_per_key(client):
    first = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-1"})
    second = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-2"})
    unkeyed = _post(client, {"delay_seconds": 60})

    assert len({first.json()["id"], second.json()["id"], unkeyed.json()["id"]}) == 3
    assert len(_stored_jobs()) == 3


def test_it_refuses_a_key_reused_with_another_body(client):
    first = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "order-1"})

    response = _post(client, {"delay_seconds": 90}, **{"Idempotency-Key": "order-1"})

    _assert_problem(response, 422, "Idempotency-Key")
    assert [job.id for job in _stored_jobs()] == [first.json()["id"]]


def test_it_answers_409_while_the_first_request_is_still_running(client, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    enqueue = services.enqueue_jobs

    def slow_enqueue(*args, **kwargs):
        entered.set()
        assert release.wait(timeout=10)
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(services, "enqueue_jobs", slow_enqueue)
    results = {}
    first = threading.Thread(
        target=lambda: results.update(
            first=_post(Client(), {"delay_seconds": 60}, **{"Idempotency-Key": "slow"})
        )
    )
    first.start()
    try:
        assert entered.wait(timeout=10)
        busy = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "slow"})
        other = _post(client, {"delay_seconds": 30}, **{"Idempotency-Key": "slow"})
    finally:
        release.set()
        first.join(timeout=10)

    _assert_problem(busy, 409, "still being processed")
    assert int(busy["Retry-After"]) >= 1
    _assert_problem(other, 422)
    assert results["first"].status_code == 202
    replay = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "slow"})
    assert replay.json()["id"] == results["first"].json()["id"]
    assert len(_stored_jobs()) == 1


def test_it_creates_one_job_for_simultaneous_requests_with_one_key(monkeypatch):
    start = threading.Barrier(6)
    responses = []

    def send():
        client = Client()
        start.wait(timeout=10)
        responses.append(_post(client, {"delay_seconds": 60}, **{"Idempotency-Key": "same"}))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(responses) == 6
    assert {response.status_code for response in responses} <= {202, 409}
    accepted = {response.json()["id"] for response in responses if response.status_code == 202}
    assert len(accepted) == 1
    assert [job.id for job in _stored_jobs()] == list(accepted)


@pytest.mark.parametrize(
    "key",
    ["", "has space", "ünïcode", "semi;colon", 'quote"d', "k" * 256],
    ids=["empty", "space", "non-ASCII", "semicolon", "quote", "too long"],
)
def test_it_refuses_a_malformed_idempotency_key(client, data_dir, key):
    response = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": key})

    _assert_problem(response, 400, "Idempotency-Key")
    assert _stored_jobs() == []
    assert not (data_dir / "idempotency").exists() or _files_under(data_dir / "idempotency") == []


def test_it_accepts_a_key_of_255_allowed_characters(client):
    key = ("Ab9._:~+/=-" * 24)[:255]

    response = _post(client, {"delay_seconds": 60}, **{"Idempotency-Key": key})

    assert response.status_code == 202
