"""The API's surface: every error is problem+json, whatever DEBUG is; the schema lists it all."""

from __future__ import annotations

import errno
import json
import logging

import pytest
import yaml
from django.test import Client

from filestore import atomic
from jobs import health, services

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers


@pytest.fixture(params=[False, True], ids=["DEBUG off", "DEBUG on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


def _assert_problem(response, status: int) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["detail"]
    assert "Traceback" not in response.content.decode()
    return problem


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api"),
        ("post", "/api"),
        ("get", "/api/"),
        ("get", "/api/nope"),
        ("post", "/api/nope"),
        ("delete", "/api/nope/deeper/"),
        ("get", "/api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/photo"),
        ("get", "/api/job"),
        ("get", "/api/jobsx"),
        ("options", "/api/nope"),
    ],
)
def test_it_answers_unknown_api_paths_with_a_404_problem(client, debug, method, path):
    problem = _assert_problem(getattr(client, method)(path), 404)

    assert problem["detail"] == "There is nothing at this address."


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/api/jobs", {"GET", "POST"}),
        ("put", "/api/jobs/", {"GET", "POST"}),
        ("patch", "/api/jobs", {"GET", "POST"}),
        ("put", "/api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", {"GET"}),
        ("post", "/api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV", {"GET"}),
        ("post", "/api/stats", {"GET"}),
        ("post", "/api/schema", {"GET"}),
    ],
)
def test_it_answers_a_wrong_method_with_405_and_allow(client, debug, method, path, allowed):
    response = getattr(client, method)(path)

    problem = _assert_problem(response, 405)
    assert method.upper() in problem["detail"]
    offered = {name.strip() for name in response["Allow"].split(",")}
    assert allowed <= offered
    assert method.upper() not in offered


def test_it_hides_a_server_error_behind_a_500_problem(client, debug, monkeypatch, caplog):
    def broken(**kwargs):
        raise RuntimeError("disk on fire: /secret/path")

    monkeypatch.setattr(services, "job_list", broken)

    with caplog.at_level(logging.ERROR):
        response = client.get("/api/jobs")

    problem = _assert_problem(response, 500)
    assert "/secret/path" not in response.content.decode()
    assert "logged" in problem["detail"]
    assert any("disk on fire" in str(record.exc_info) for record in caplog.records)


def test_it_refuses_a_content_length_that_is_not_a_number(client, debug):
    response = client.post(
        "/api/jobs", data="{}", content_type="application/json", CONTENT_LENGTH="abc"
    )

    _assert_problem(response, 400)


def test_it_answers_a_deeply_nested_body_with_a_400_problem(client, debug, settings):
    # About a thousand levels make Python's JSON parser raise RecursionError.
    body = '{"delay_seconds": ' + "[" * 100_000 + "]" * 100_000 + "}"
    settings.JOBS_MAX_BODY_BYTES = len(body)  # refused for its shape, not its size

    response = client.post("/api/jobs", data=body, content_type="application/json")

    problem = _assert_problem(response, 400)
    assert "nested" in problem["detail"]
    assert not list((settings.JOBS_DATA_DIR / "jobs").rglob("*.json"))


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_it_answers_unsafe_methods_on_the_event_stream_with_405(debug, method):
    # A client that checks CSRF as a browser's request would be checked.
    client = Client(enforce_csrf_checks=True)

    response = getattr(client, method)("/api/events")

    _assert_problem(response, 405)
    assert response["Allow"] == "GET"


def test_it_answers_a_host_it_does_not_serve_with_a_400_problem(client, debug):
    response = client.get("/api/jobs", headers={"Host": "evil.example"})

    problem = _assert_problem(response, 400)
    assert "Host" in problem["detail"]


def test_it_keeps_answering_other_hosts_with_django_pages_outside_the_api(client):
    response = client.get("/admin/login/", headers={"Host": "evil.example"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


API_PATHS = [
    "/api",
    "/api/",
    "/api/jobs",
    "/api/jobs/",
    "/api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "/api/jobs/not-an-id",
    "/api/stats",
    "/api/config",
    "/api/health",
    "/api/events",
    "/api/schema",
    "/api/nope",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]


@pytest.mark.parametrize("path", API_PATHS)
def test_every_api_path_answers_every_method_without_html(debug, path):
    health.write_heartbeat()  # a healthy system: every 5xx below is a defect
    client = Client(enforce_csrf_checks=True)
    for method in METHODS:
        if method == "GET" and path == "/api/events":
            continue  # the stream itself; tests/test_events.py
        for body, content_type in (("", ""), ("a=1", "application/x-www-form-urlencoded")):
            extra = {"CONTENT_TYPE": content_type} if content_type else {}
            response = client.generic(method, path, body, **extra)

            where = f"{method} {path} ({content_type or 'no body'})"
            assert response.status_code < 500, where
            if response.status_code >= 400:
                assert response["Content-Type"] == "application/problem+json", where
                assert b"<html" not in response.content.lower(), where


@pytest.mark.parametrize(
    "code", [errno.ENOSPC, errno.EROFS, errno.EPERM, errno.EACCES, errno.EIO, errno.EDQUOT]
)
def test_it_answers_503_with_retry_after_when_storage_fails(
    client, debug, monkeypatch, caplog, code
):
    def fail(step, path):
        if step == "write":
            raise OSError(code, "storage says no", path)

    monkeypatch.setattr(atomic.hooks, "before", fail)

    with caplog.at_level(logging.ERROR):
        response = client.post(
            "/api/jobs", data=json.dumps({"delay_seconds": 30}), content_type="application/json"
        )

    problem = _assert_problem(response, 503)
    assert problem["type"] == "/api/problems/storage_unavailable"
    assert "Storage is unavailable" in problem["detail"]
    assert int(response["Retry-After"]) > 0
    assert "storage says no" not in response.content.decode()  # no paths or internals
    assert any("Storage unavailable" in record.getMessage() for record in caplog.records)


def test_it_still_answers_500_for_other_os_errors(client, monkeypatch):
    def fail(step, path):
        raise OSError(errno.ENAMETOOLONG, "name too long", path)

    monkeypatch.setattr(atomic.hooks, "before", fail)

    response = client.post("/api/jobs", data="{}", content_type="application/json")

    _assert_problem(response, 500)


def test_it_describes_itself_in_openapi_3(client):
    response = client.get("/api/schema")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert {"/api/jobs", "/api/jobs/{id}", "/api/events", "/api/health", "/api/stats"} <= set(paths)
    assert "text/event-stream" in paths["/api/events"]["get"]["responses"]["200"]["content"]
    assert {"get", "post"} <= set(paths["/api/jobs"])
    assert "get" in paths["/api/jobs/{id}"]
    create = paths["/api/jobs"]["post"]
    assert {"202", "400", "409", "413", "415", "422"} <= set(create["responses"])
    assert "requestBody" in create
    listed = {parameter["name"] for parameter in paths["/api/jobs"]["get"]["parameters"]}
    assert {"status", "limit", "cursor"} <= listed
    assert "304" in paths["/api/jobs/{id}"]["get"]["responses"]


def test_it_serves_the_schema_as_json_on_request(client):
    response = client.get("/api/schema", headers={"Accept": "application/json"})

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")
