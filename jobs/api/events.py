"""``GET /api/events``: job changes as Server-Sent Events.

Each event carries its id (increasing); a client that reconnects with
``Last-Event-ID`` gets what it missed, or an ``event: reset`` when that is
no longer kept, or when the id is beyond the end of the log (the data
directory was reset or restored); then it should refetch the list. A
comment line every 15 s keeps proxies from closing an idle stream and
reveals dead clients. A stream ends after a while by itself; EventSource
reconnects at once and resumes.

Served by ``jobsite.rsgi`` (what ``manage.py serve`` runs), a stream is
written from the event loop by the loop's fan-out (:class:`jobs.live.Fanout`),
with every other stream of the loop: it holds no thread, and an event is
encoded once for all of them. Under a plain WSGI server (the development
server, the test client) it is a plain iterator and holds a thread, so far
fewer may be open at once. Past the limit of open streams a request gets a
quick ``503`` with ``Retry-After``, and the page polls the list meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable

from django.http import StreamingHttpResponse

from jobs.api.problems import problem_response
from jobs.live import PING, EventFeed, Fanout, feed, reset_block
from storage.events import EventsLost

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
        self.closed = False
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
        if self.closed or time.monotonic() >= self.end:
            self.close()
            return None
        return b""

    def _reset(self) -> bytes:
        self.generation = self.source.generation
        self.position = self.source.position
        return reset_block(self.position)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
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
    """A stream for an event loop, written by the loop's fan-out: it holds no thread.

    ``jobsite.rsgi`` hands it the transport's write (:meth:`send_to`);
    anything else may iterate over it.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Set while the fan-out writes it (see jobs.live.Subscriber).
        self.last_sent = 0.0
        self.write: Callable[[bytes], Awaitable[object]] | None = None
        self._fanout: Fanout | None = None
        self._ended: asyncio.Future | None = None
        # For iteration: what the fan-out wrote and was not taken yet, and
        # the future that says something more came (or the end).
        self._queue: collections.deque[bytes] | None = None
        self._more: asyncio.Future | None = None

    def _opening(self) -> list[bytes]:
        chunks = [RETRY_MESSAGE]
        if self._lost:
            self._lost = False
            chunks.append(self._reset())
        return chunks

    def _subscribe(self, write: Callable[[bytes], Awaitable[object]]) -> None:
        self.write = write
        self._ended = asyncio.get_running_loop().create_future()
        self._fanout = self.source.fanout()
        self._fanout.add(self)

    async def send_to(self, write: Callable[[bytes], Awaitable[object]]) -> None:
        """Send the stream with ``write`` until it ends or its client goes away.

        ``write`` must not wait for the client to read (granian's
        ``send_bytes`` only queues the bytes); it raises once the client is gone.
        """
        try:
            for chunk in self._opening():
                await write(chunk)
            if time.monotonic() < self.end:
                self._subscribe(write)
                assert self._ended is not None
                await self._ended
        finally:
            self.close()

    def finish(self) -> None:
        """Its time is up or its client went away (called by the fan-out)."""
        self.close()

    def close(self) -> None:
        super().close()
        if self._fanout is not None:
            self._fanout.discard(self)
        for waiting in (self._ended, self._more):
            if waiting is not None and not waiting.done():
                waiting.set_result(None)

    def __aiter__(self):
        return self

    async def __anext__(self) -> bytes:
        if self._queue is None:
            self._queue = collections.deque(self._opening())
            self._subscribe(self._enqueue)
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._more = asyncio.get_running_loop().create_future()
            await self._more
        return self._queue.popleft()

    async def _enqueue(self, chunk: bytes) -> None:
        assert self._queue is not None
        self._queue.append(chunk)
        if self._more is not None and not self._more.done():
            self._more.set_result(None)


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
    events_stream = make(feed(), _last_event_id(request), slots=slots)
    response = StreamingHttpResponse(events_stream, content_type="text/event-stream")
    if on_loop:
        # jobsite.rsgi hands the transport's write to it, instead of
        # iterating over it: the loop's fan-out writes every stream.
        response.send_to = events_stream.send_to
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
