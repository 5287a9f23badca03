"""Touches to the generated OpenAPI document."""

from __future__ import annotations

from jobs.api.problems import PROBLEM_CONTENT_TYPE

EVENTS_PATH = {
    "get": {
        "operationId": "events_stream",
        "summary": "Job changes as Server-Sent Events",
        "description": (
            "One `event: job` (data: the job) per change and `event: job-deleted` "
            "(data: {id}) per deletion, each with an increasing `id`. Send `Last-Event-ID` "
            "(or `?last_event_id=`) to get what was missed; `event: reset` means it is no "
            "longer kept and the list should be fetched again. A `: ping` comment every 15 s."
        ),
        "tags": ["events"],
        "parameters": [
            {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            {"name": "last_event_id", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "The event stream (never ends by itself for long).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }
        },
    }
}


PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}

# Answers a create may get besides those its view declares: they come from
# the throttle, the backpressure and the storage layer, not from the view.
CREATE_PROBLEMS = {
    "429": "Too many creates from this client; `Retry-After` says when to try again.",
    "503": (
        "The worker is behind or storage is unavailable; nothing was stored. "
        "`Retry-After` says when to try again."
    ),
}


def finish_schema(result, generator, request, public):
    """Name paths as clients use them (no trailing slash), add the event stream, and
    document every problem as what it is on the wire, ``application/problem+json``."""
    result["paths"] = {
        (path.rstrip("/") if path != "/" else path): item for path, item in result["paths"].items()
    }
    result["paths"]["/api/events"] = EVENTS_PATH
    jobs = result["paths"].get("/api/jobs", {})
    listing = jobs.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
    if "application/json" in listing:
        # drf-spectacular takes a ViewSet's list action to answer an array of
        # its serializer; ours answers one page (results and the next link).
        listing["application/json"]["schema"] = {"$ref": "#/components/schemas/JobPage"}
    create = jobs.get("post")
    if create is not None:
        for status, description in CREATE_PROBLEMS.items():
            create["responses"].setdefault(
                status, {"description": description, "content": _problem_content()}
            )
    for item in result["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if any(media.get("schema") == PROBLEM_SCHEMA for media in content.values()):
                    response["content"] = _problem_content()
    return result


def _problem_content() -> dict:
    return {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA}}
