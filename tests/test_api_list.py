"""GET /api/jobs: newest first, cursor pages, status filters, ETag."""

from __future__ import annotations

import os

import pytest

from filestore.ids import new_id
from jobs import services, store
from jobs.model import Job
from tests.clocks import FakeClock

T0 = 1_790_000_000.0


@pytest.fixture(autouse=True)
def quick_writes(monkeypatch):
    """Skip fsync while filling the store: these tests are about reads."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture(autouse=True)
def start_at_t0(now: FakeClock) -> None:
    now.now = T0


def _create(now: FakeClock, count: int, step: float = 0.5) -> list[dict]:
    jobs = []
    for _ in range(count):
        now.now += step
        jobs.append(services.job_create(delay_seconds=60).job)
    return jobs


def _set_status(job_id: str, status: str, **fields) -> Job:
    def change(job: Job) -> Job:
        return Job.from_document({**job.to_document(), "status": status, **fields})

    return store.repository().update(job_id, change)


def _ids(response) -> list[str]:
    return [job["id"] for job in response.json()["results"]]


def _follow(client, url: str, between=None) -> list[str]:
    seen: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += _ids(response)
        url = response.json()["next"]
        pages += 1
        if between:
            between()
    return seen


def test_it_lists_jobs_newest_first_with_every_field(client, now):
    jobs = _create(now, 3)
    photo = {"photo_id": "abc", "source": "demo"}
    done = _set_status(jobs[0]["id"], "completed", result=photo)

    response = client.get("/api/jobs")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["next"] is None
    assert _ids(response) == [jobs[2]["id"], jobs[1]["id"], jobs[0]["id"]]
    assert body["results"][0] == client.get(f"/api/jobs/{jobs[2]['id']}").json()
    assert body["results"][2]["status"] == "completed"
    assert body["results"][2]["result"] == photo == done.result
    assert all(set(job) == set(body["results"][0]) for job in body["results"])
    assert client.get("/api/jobs/").json() == body


def test_it_lists_nothing_in_an_empty_store(client):
    response = client.get("/api/jobs")

    assert response.json() == {"results": [], "next": None}


def test_it_pages_by_50_and_follows_next_to_the_end(client, now):
    jobs = _create(now, 120, step=0.3)

    first = client.get("/api/jobs")

    assert len(first.json()["results"]) == 50
    assert first.json()["next"].startswith("/api/jobs?")
    assert _follow(client, "/api/jobs") == [job["id"] for job in reversed(jobs)]
    assert _follow(client, "/api/jobs?limit=7") == [job["id"] for job in reversed(jobs)]


def test_it_skips_and_repeats_nothing_while_jobs_are_created(client, now):
    jobs = _create(now, 30)

    seen = _follow(client, "/api/jobs?limit=4", between=lambda: _create(now, 2))

    assert seen == [job["id"] for job in reversed(jobs)]
    assert len(_ids(client.get("/api/jobs?limit=500"))) == 30 + 2 * 8


def test_it_serves_pages_of_up_to_500(client):
    repository = store.repository()
    for i in range(501):
        repository.create(Job.new(new_id(T0 + i), delay=60, now=T0 + i))

    page = client.get("/api/jobs?limit=500").json()

    assert len(page["results"]) == 500
    last = client.get(page["next"]).json()
    assert (len(last["results"]), last["next"]) == (1, None)


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1.5", "1e3"])
def test_it_refuses_a_bad_limit(client, limit):
    response = client.get(f"/api/jobs?limit={limit}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("cursor", ["nope", "01arz3ndektsv4rrffq69g5fav", "../../etc", "0" * 27])
def test_it_refuses_a_bad_cursor(client, cursor):
    response = client.get("/api/jobs", {"cursor": cursor})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "cursor" in response.json()["detail"]


@pytest.fixture
def mixed(now) -> dict[str, list[str]]:
    """Jobs of every status, newest first per status."""
    by_status: dict[str, list[str]] = {}
    statuses = ["pending", "running", "completed", "failed", "cancelled"]
    for i, job in enumerate(_create(now, 25)):
        status = statuses[i % 5]
        if status != "pending":
            _set_status(job["id"], status)
        by_status.setdefault(status, []).insert(0, job["id"])
    return by_status


def test_it_filters_by_one_status(client, mixed):
    response = client.get("/api/jobs?status=failed")

    assert _ids(response) == mixed["failed"]
    assert {job["status"] for job in response.json()["results"]} == {"failed"}


@pytest.mark.parametrize(
    "query",
    ["status=failed,pending", "status=failed&status=pending", "status=failed,&status=pending"],
)
def test_it_filters_by_several_statuses(client, mixed, query):
    response = client.get(f"/api/jobs?{query}")

    assert _ids(response) == sorted(mixed["failed"] + mixed["pending"], reverse=True)


def test_it_keeps_the_filter_across_pages(client, mixed):
    seen = _follow(client, "/api/jobs?status=running,cancelled&limit=2")

    assert seen == sorted(mixed["running"] + mixed["cancelled"], reverse=True)


@pytest.mark.parametrize("query", ["status=done", "status=pending,Done", "status=PENDING"])
def test_it_refuses_an_unknown_status(client, query):
    response = client.get(f"/api/jobs?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "pending" in response.json()["detail"]  # it names the statuses to use


# --- conditional requests ------------------------------------------------------------------


def test_it_answers_304_while_the_page_is_unchanged(client, now):
    _create(now, 3)
    first = client.get("/api/jobs")
    etag = first["ETag"]

    again = client.get("/api/jobs", headers={"If-None-Match": etag})
    among_others = client.get("/api/jobs", headers={"If-None-Match": f'"other", {etag}'})

    assert etag.startswith('"') and not etag.startswith("W/")
    assert again.status_code == among_others.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    assert client.get("/api/jobs")["ETag"] == etag


def test_it_changes_the_etag_when_a_job_changes(client, now):
    jobs = _create(now, 3)
    etag = client.get("/api/jobs")["ETag"]

    services.job_cancel(job_id=jobs[0]["id"])
    changed = client.get("/api/jobs", headers={"If-None-Match": etag})

    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.json()["results"][2]["status"] == "cancelled"


def test_it_changes_the_etag_when_a_job_arrives(client, now):
    _create(now, 3)
    etag = client.get("/api/jobs")["ETag"]

    _create(now, 1)

    assert client.get("/api/jobs", headers={"If-None-Match": etag}).status_code == 200


def test_it_gives_each_filter_and_page_its_own_etag(client, mixed):
    etags = {
        client.get(url)["ETag"]
        for url in ("/api/jobs", "/api/jobs?status=failed", "/api/jobs?limit=3")
    }

    assert len(etags) == 3
