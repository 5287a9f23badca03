"""GET /api/jobs/<id>: one job with its ETag; anything else is a 404 problem."""

from __future__ import annotations

import threading

import pytest

from filestore.ids import new_id
from filestore.repository import JobRepository
from jobs import services


@pytest.fixture
def job() -> dict:
    return services.job_create(delay_seconds=60).response["job"]


def test_it_returns_one_job(client, job):
    response = client.get(f"/api/jobs/{job['id']}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == job
    assert client.get(f"/api/jobs/{job['id']}/").json() == job


def test_it_answers_304_while_the_job_is_unchanged(client, job):
    etag = client.get(job["url"])["ETag"]

    for header in (etag, f"W/{etag}", f'"stale", {etag}', "*"):
        response = client.get(job["url"], headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response["ETag"] == etag
    assert etag.startswith('"') and not etag.startswith("W/")


def test_it_changes_the_etag_when_the_job_changes(client, job):
    etag = client.get(job["url"])["ETag"]

    services.job_cancel(job_id=job["id"])
    response = client.get(job["url"], headers={"If-None-Match": etag})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response["ETag"] != etag
    assert client.get(job["url"], headers={"If-None-Match": response["ETag"]}).status_code == 304


def test_it_answers_404_for_a_job_that_does_not_exist(client, job):
    missing = new_id()

    response = client.get(f"/api/jobs/{missing}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert missing in response.json()["detail"]


def test_it_answers_404_for_a_deleted_job(client, job):
    services.job_delete(job_id=job["id"])

    assert client.get(job["url"]).status_code == 404


HOSTILE = {
    "dot dot": "/api/jobs/..",
    "dot dot encoded": "/api/jobs/%2e%2e",
    "parent path": "/api/jobs/../../etc/passwd",
    "encoded slashes": "/api/jobs/..%2F..%2F..%2Fetc%2Fpasswd",
    "encoded backslashes": "/api/jobs/..%5C..%5Cetc%5Cpasswd",
    "absolute path": "/api/jobs/%2Fetc%2Fpasswd",
    "NUL": "/api/jobs/%00",
    "id then NUL": "/api/jobs/{id}%00",
    "id then suffix": "/api/jobs/{id}_pending.json",
    "id then path": "/api/jobs/{id}/../../../x",
    "lowercase id": "/api/jobs/{lower}",
    "overlong": "/api/jobs/" + "A" * 5000,
    "27 characters": "/api/jobs/{id}Z",
    "glob": "/api/jobs/*",
    "non-ASCII": "/api/jobs/%C3%A9%C3%A9",
}


@pytest.mark.parametrize("template", HOSTILE.values(), ids=list(HOSTILE))
def test_it_answers_404_for_a_hostile_id_without_building_a_path(
    client, job, monkeypatch, template
):
    touched = []
    this_thread = threading.get_ident()  # the test client serves the request here
    for method in ("path_for", "leaf_dir", "_resolve", "_read"):
        original = getattr(JobRepository, method)

        def spy(self, *args, _original=original, _method=method):
            if threading.get_ident() == this_thread:
                touched.append((_method, args))
            return _original(self, *args)

        monkeypatch.setattr(JobRepository, method, spy)
    url = template.format(id=job["id"], lower=job["id"].lower())

    response = client.get(url)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 404
    assert len(problem["detail"]) < 200
    assert touched == []
