"""``GET /api/events``: job changes as Server-Sent Events.

Each event carries its id (increasing); a client that reconnects with
``Last-Event-ID`` gets what it missed, or an ``event: reset`` when that is
no longer kept, or when the id is beyond the end of the log (the data
directory was reset or restored); then it should refetch the list. A
comment line every 15 s keeps proxies from closing an idle stream and
reveals dead clients. A stream ends after a while by itself; EventSource
reconnects at once and resumes.

Served by ``jobsite.rsgi`` (what ``manage.py serve`` runs), a stream is an
asynchronous iterator sent from the event loop: it holds no thread. Under
a plain WSGI server (the development server, the test client) it is a
plain iterator and holds a thread, so far fewer may be open at once. Past
the limit of open streams a request gets a quick ``503`` with
``Retry-After``, and the page polls the list meanwhile.
"""

from __future__ import annotations

import threading
import time

from django.http import StreamingHttpResponse

from filestore.eventlog import EventsLost
from jobs.api.problems import problem_response
from jobs.live import EventFeed, feed

HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 300.0
# Open streams per web process. On the event loop a stream costs a
# coroutine and a socket (see the README's "Serving" section for what
# was measured); on a WSGI server it costs a thread of the pool the API
# needs, so only a few.
MAX_ASYNC_STREAMS = 10_000
MAX_THREAD_STREAMS = 64
# Set by jobsite.rsgi in the environ of each request it serves.
ASYNC_STREAMING = "jobs.async_streaming"
RETRY_MESSAGE = b"retry: 3000\n\n"
PING = b": ping\n\n"


class StreamSlots:
    """A count of the open streams of one kind, up to a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


ASYNC_SLOTS = StreamSlots(MAX_ASYNC_STREAMS)
THREAD_SLOTS = StreamSlots(MAX_THREAD_STREAMS)


class _Stream:
    """What the two kinds of streams share: where they are and when they end."""

    def __init__(
        self,
        source: EventFeed,
        last_event_id: int | None,
        *,
        heartbeat: float,
        lifetime: float,
        slots: StreamSlots | None,
    ) -> None:
        self.source = source
        self.heartbeat = heartbeat
        self.end = time.monotonic() + lifetime
        self._slots = slots
        self._started = False
        self._closed = False
        # The starting point is fixed now, when the request arrives, not when
        # the server first pulls from the stream.
        self.generation = source.generation
        current = source.position
        self.position = current if last_event_id is None else last_event_id
        # An id the log never reached: the log was reset or restored since.
        self._lost = last_event_id is not None and last_event_id > current

    def _first(self) -> bytes | None:
        """The chunk to send before waiting, if any."""
        if not self._started:
            self._started = True
            return RETRY_MESSAGE
        if self._lost:
            self._lost = False
            return self._reset()
        if self._closed or time.monotonic() >= self.end:
            self.close()
            return None
        return b""

    def _reset(self) -> bytes:
        self.generation = self.source.generation
        self.position = self.source.position
        return f"id: {self.position}\nevent: reset\ndata: {{}}\n\n".encode()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._slots is not None:
                self._slots.give_back()


class EventStream(_Stream):
    """A stream for a thread: each ``next()`` blocks until there is something to send."""

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        chunk = self._first()
        if chunk is None:
            raise StopIteration
        if chunk:
            return chunk
        try:
            blocks, self.position = self.source.wait(
                self.position, self.heartbeat, generation=self.generation
            )
        except EventsLost:
            return self._reset()
        return blocks or PING


class AsyncEventStream(_Stream):
    """A stream for an event loop: it waits without holding a thread."""

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        chunk = self._first()
        if chunk is None:
            raise StopAsyncIteration
        if chunk:
            return chunk
        try:
            blocks, self.position = await self.source.wait_async(
                self.position, self.heartbeat, generation=self.generation
            )
        except EventsLost:
            return self._reset()
        return blocks or PING


def stream(
    source: EventFeed,
    last_event_id: int | None,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    lifetime: float = STREAM_SECONDS,
    slots: StreamSlots | None = None,
) -> EventStream:
    return EventStream(source, last_event_id, heartbeat=heartbeat, lifetime=lifetime, slots=slots)


def stream_async(
    source: EventFeed,
    last_event_id: int | None,
    *,
    heartbeat: float = HEARTBEAT_SECONDS,
    lifetime: float = STREAM_SECONDS,
    slots: StreamSlots | None = None,
) -> AsyncEventStream:
    return AsyncEventStream(
        source, last_event_id, heartbeat=heartbeat, lifetime=lifetime, slots=slots
    )


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
    on_loop = bool(request.META.get(ASYNC_STREAMING))
    slots = ASYNC_SLOTS if on_loop else THREAD_SLOTS
    if not slots.take():
        return problem_response(
            503,
            "Too many event streams",
            "This server has as many event streams open as it can serve; "
            "poll GET /api/jobs meanwhile.",
            code="too_many_streams",
            headers={"Retry-After": "30"},
        )
    make = stream_async if on_loop else stream
    response = StreamingHttpResponse(
        make(feed(), _last_event_id(request), slots=slots), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
