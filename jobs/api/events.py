"""``GET /api/events``: job changes as Server-Sent Events.

Each event carries its id (increasing); a client that reconnects with
``Last-Event-ID`` gets what it missed, or an ``event: reset`` when that is
no longer kept (then it should refetch the list). A comment line every 15 s
keeps proxies from closing an idle stream and reveals dead clients. A
stream ends after a while by itself; EventSource reconnects at once and
resumes, so no thread is held forever by a client that vanished.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from filestore.eventlog import EventsLost
from jobs.api.problems import problem_response
from jobs.live import EventFeed, feed

HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 300.0


def stream(
    source: EventFeed,
    last_event_id: int | None,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    lifetime: float = STREAM_SECONDS,
) -> Iterator[bytes]:
    # The starting point is fixed now, when the request arrives, not when
    # the server first pulls from the generator.
    position = source.position if last_event_id is None else last_event_id
    return _events(source, position, heartbeat=heartbeat, lifetime=lifetime)


def _events(
    source: EventFeed, position: int, *, heartbeat: float, lifetime: float
) -> Iterator[bytes]:
    yield b"retry: 3000\n\n"
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        try:
            blocks, position = source.wait(position, timeout=heartbeat)
        except EventsLost:
            position = source.position
            yield f"id: {position}\nevent: reset\ndata: {{}}\n\n".encode()
            continue
        yield blocks or b": ping\n\n"


def _last_event_id(request) -> int | None:
    value = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id")
    if value and value.isdigit() and len(value) < 20:
        return int(value)
    return None


def events(request):
    if request.method != "GET":
        return problem_response(
            405,
            "Method not allowed",
            f'Method "{request.method}" not allowed.',
            code="method_not_allowed",
            headers={"Allow": "GET"},
        )
    response = StreamingHttpResponse(
        stream(feed(), _last_event_id(request)), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
