"""The API's surface: every error is problem+json, whatever DEBUG is; the schema lists it all."""

from __future__ import annotations

import logging

import pytest
import yaml

from jobs import services


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
