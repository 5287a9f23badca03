"""Every error of the API as ``application/problem+json`` (RFC 9457)."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    code: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {
        "type": f"/api/problems/{code}" if code else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if extra:
        body.update(extra)
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def not_found_problem() -> HttpResponse:
    """The one answer for an API address that names nothing."""
    return problem_response(404, "Not found", "There is nothing at this address.", code="not_found")


SERVER_ERROR_DETAIL = "Something went wrong on our side; the error has been logged."


def server_error_problem() -> HttpResponse:
    """The one answer for an error of ours; the details go to the log, never to the client."""
    return problem_response(500, "Internal server error", SERVER_ERROR_DETAIL, code="server_error")


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")
