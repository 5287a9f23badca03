"""POST /api/jobs takes JSON only, so that no other site can make a browser create jobs.

A browser sends a cross-site request without asking first (no CORS
preflight) only with a form's content type, or with no body and no content
type at all; the API refuses both with a 415.
"""

from __future__ import annotations

import pytest

from jobs import store

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers

FORM_LIKE = {
    "an empty form": ("", "application/x-www-form-urlencoded"),
    "a form": ("delay_seconds=30", "application/x-www-form-urlencoded"),
    "plain text holding JSON": ('{"delay_seconds": 30}', "text/plain"),
    "a multipart form": (
        "--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--\r\n",
        "multipart/form-data; boundary=b",
    ),
    "no body, no content type (a beacon)": ("", None),
    "a JSON look-alike": ('{"delay_seconds": 30}', "application/jsonx"),
}


def _post(client, body: str, content_type: str | None):
    extra = {"CONTENT_TYPE": content_type} if content_type is not None else {}
    return client.generic("POST", "/api/jobs", body, **extra)


def _stored_jobs() -> list:
    return store.repository().list(limit=10)[0]


@pytest.mark.parametrize(("body", "content_type"), FORM_LIKE.values(), ids=list(FORM_LIKE))
def test_it_refuses_a_create_that_is_not_json_with_415(client, body, content_type):
    response = _post(client, body, content_type)

    assert response.status_code == 415
    assert response["Content-Type"] == "application/problem+json"
    assert "application/json" in response.json()["detail"]
    assert _stored_jobs() == []


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
@pytest.mark.parametrize("body", ["", "{}", '{"delay_seconds": 30}'])
def test_it_accepts_json_with_or_without_a_body(client, body, content_type):
    response = _post(client, body, content_type)

    assert response.status_code == 202
    assert len(_stored_jobs()) == 1


def test_a_wrong_method_is_still_a_405_whatever_the_content_type(client):
    response = client.generic("PUT", "/api/jobs", "a=1", CONTENT_TYPE="text/plain")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
