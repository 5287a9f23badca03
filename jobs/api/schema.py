"""Touches to the generated OpenAPI document."""

from __future__ import annotations

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


def finish_schema(result, generator, request, public):
    """Name paths as clients use them (no trailing slash) and add the event stream."""
    result["paths"] = {
        (path.rstrip("/") if path != "/" else path): item for path, item in result["paths"].items()
    }
    result["paths"]["/api/events"] = EVENTS_PATH
    return result
