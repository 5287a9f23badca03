"""The web server's entry point: granian's RSGI interface in front of the WSGI app.

``manage.py serve`` runs ``granian --interface rsgi jobsite.rsgi:application``.
Every request still goes through Django's WSGI handler, on a small pool of
threads, because the synchronous API views are several times faster that
way than behind Django's ASGI handler. What the event loop adds in front:

- The request body is read on the loop, whole, before a thread is taken:
  a client that sends its body slowly holds a coroutine, not a thread,
  and is cut off after ``BODY_SECONDS``. A chunked body is read like any
  other and handed to Django with its ``CONTENT_LENGTH``; a body larger
  than ``JOBS_MAX_BODY_BYTES`` is refused with ``413`` before it is read
  to the end.
- The response is read from Django in the thread, whole, and sent by
  granian: no thread waits on a slow reader either.
- When more requests wait for a thread than ``JOBS_WEB_QUEUE_LIMIT``, a
  new one is answered ``503`` with ``Retry-After`` at once, from the loop,
  without entering Django: under overload a request is refused in
  microseconds instead of waiting seconds behind the others, and those
  already queued are answered in time. (Arrivals do not slow down when the
  server does; see the README's "Backpressure".)
- ``POST /api/jobs``, the API's hot path, is answered without entering
  Django: a thread calls the create endpoint (:mod:`jobs.api.create`),
  the same rules the Django view applies, without the framework's cost
  per request. Creates are handed to the threads in batches: those that
  arrive while ``CREATE_BATCHES`` batches are running wait for the next,
  which takes them all, so under load a batch of creates costs one
  hand-off to a thread, one wake of the loop and one round of flushes for
  their durable writes, where each create used to cost its own.
- A create that arrives soon after another (within ``JOBS_CREATE_GATHER_MS``)
  waits up to that long for more to join its batch. A batch's two flushes
  and its hand-offs cost the same for one create as for dozens, and
  without the wait creates arriving a few milliseconds apart each made a
  batch of one: at 600 creates/s, waiting 10 ms cut the web's CPU per
  create by about 40 %. A create arriving alone, after a quiet gap, is
  handed over at once: at a low rate nothing waits. Nor does a batch wait
  once every connection that sent a create in the last second has one
  waiting or running: a client that sends its next create only after the
  last one's answer (one script, or sixteen connections in a loop) would
  otherwise wait the whole window for company that cannot come.
- A response whose content is an asynchronous iterator (the event
  streams, see :mod:`jobs.api.events`) is returned to the loop after the
  middleware ran, and streamed from there: thousands of open streams cost
  coroutines, not threads. An event stream is handed the transport and
  written by the loop's fan-out, a hundred streams at a time with a pause
  in between, so requests are served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import resource
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from granian.rsgi import ProtocolClosed, ProtocolError

from jobsite.hot_threads import HotThreads
from jobsite.wsgi import application as wsgi_application

if TYPE_CHECKING:
    from jobs.api.create import CreateEndpoint

# Threads per process running Django. The views are CPU-bound apart from
# fsyncs (a few milliseconds each): beyond a few dozen threads, requests only
# wait longer for the interpreter lock.
API_THREADS = 32
# How long a thread may hold the interpreter lock while another waits for
# it: Python's default. A shorter interval (0.5 ms) let an API thread get
# the lock back sooner while the loop sent events to thousands of streams,
# but under a stream of creates it made the threads trade the lock ten
# times as often: at 600 creates/s the web's CPU per create was a third
# higher and the jobs ran 2-3 s late instead of 0.3-0.7 s.
SWITCH_SECONDS = 0.005
# The whole body of a request must arrive within this time.
BODY_SECONDS = 10.0
# A connection that sent a create within this many seconds counts as one
# that may send another soon (see WSGIGateway._gather).
ACTIVE_SECONDS = 1.0
# Batches of creates running at once per process, and the most creates in one.
# Two or more: one batch's Python runs while another waits for its flush.
CREATE_BATCHES = 4
CREATE_BATCH_SIZE = 256

logger = logging.getLogger(__name__)

_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_STREAMS = "/api/events"


def _wsgi_text(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


class BodyTooLarge(Exception):
    pass


class BadLength(Exception):
    pass


def _problem(
    status: int, title: str, detail: str, code: str, *, close: bool = True
) -> tuple[list, bytes]:
    body = {"type": f"/api/problems/{code}", "title": title, "status": status, "detail": detail}
    headers = [("content-type", "application/problem+json")]
    if close:
        headers.append(("connection", "close"))
    return headers, json.dumps(body).encode()


class WSGIGateway:
    """An RSGI application that runs a WSGI application on a thread pool."""

    def __init__(
        self,
        app,
        *,
        threads: int = API_THREADS,
        max_body_bytes: int,
        queue_limit: int = 0,
        body_seconds: float = BODY_SECONDS,
        environ: dict[str, Any] | None = None,
        create: CreateEndpoint | None = None,
        gather_seconds: float = 0.0,
    ) -> None:
        self.app = app
        self.create = create
        # How long a create arriving soon after another waits for company.
        self.gather_seconds = gather_seconds
        self.max_body_bytes = max_body_bytes
        self.body_seconds = body_seconds
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="web")
        # Batches of creates run on threads of their own, the same one
        # again while batches come one at a time (see jobsite.hot_threads).
        self.create_threads = HotThreads(CREATE_BATCHES, name="create")
        # Requests handed to the pool and not finished; only the loop changes it.
        self.in_flight = 0
        self.limit = threads + queue_limit if queue_limit else 0
        self.shed = 0  # requests refused for it (for tests and logs)
        # Creates waiting for a batch, and the batches running; only the loop changes them.
        self.creates: list[tuple[dict[str, Any], bytes, Any, asyncio.Future]] = []
        self.create_batches = 0
        self._last_create = float("-inf")  # the loop's time of the latest create
        self._gather_until = 0.0  # the waiting creates are held until then
        self._gather_timer: asyncio.TimerHandle | None = None
        # Connections that sent a create lately (address -> loop time), and
        # the creates in the batches running.
        self._active: dict[str, float] = {}
        self._active_checked = 0.0
        self._running_creates = 0
        self.base_environ: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": "granian-rsgi",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            **(environ or {}),
        }

    async def __rsgi__(self, scope, proto) -> None:
        if scope.proto != "http":
            return
        try:
            body = await self._read_body(scope, proto)
        except BodyTooLarge:
            headers, content = _problem(
                413,
                "Request body too large",
                f"The request body may be at most {self.max_body_bytes} bytes.",
                "too_large",
            )
            proto.response_bytes(413, headers, content)
            return
        except BadLength:
            headers, content = _problem(
                400, "Bad request", "Content-Length is not a number.", "bad_request"
            )
            proto.response_bytes(400, headers, content)
            return
        except TimeoutError:
            headers, content = _problem(
                408,
                "Request timeout",
                f"The request body did not arrive within {self.body_seconds:g} s.",
                "request_timeout",
            )
            proto.response_bytes(408, headers, content)
            return
        except (ProtocolClosed, ProtocolError, OSError, RuntimeError):
            # The client went away, or sent a body that is not valid HTTP
            # (e.g. broken chunk framing): nothing sensible can be answered.
            headers, content = _problem(
                400, "Bad request", "The request body could not be read.", "bad_request"
            )
            with contextlib.suppress(ProtocolClosed, ProtocolError, RuntimeError):
                proto.response_bytes(400, headers, content)
            return
        # Event streams are exempt: they hold a thread only for the middleware
        # and are capped on their own (jobs.api.events), with their own 503.
        if self.limit and self.in_flight >= self.limit and not scope.path.startswith(_STREAMS):
            self.shed += 1
            headers, content = _problem(
                503,
                "Too busy",
                "The server has more requests than it can answer in time; retry shortly.",
                "busy",
                close=False,
            )
            proto.response_bytes(503, [*headers, ("retry-after", "1")], content)
            return
        environ = self._environ(scope, body)
        loop = asyncio.get_running_loop()
        create = self.create
        self.in_flight += 1
        try:
            if create is not None and create.serves(scope.method, scope.path, environ):
                done = loop.create_future()
                self._gather(loop.time(), scope.client)
                self.creates.append((environ, body, proto, done))
                self._start_create_batch(loop)
                await done
                return
            stream = await loop.run_in_executor(self.pool, self._call, environ, proto)
        finally:
            self.in_flight -= 1
        if stream is not None:
            await self._send_stream(proto, *stream)

    async def _read_body(self, scope, proto) -> bytes:
        headers = scope.headers
        length = headers.get("content-length")
        if (
            scope.method in _NO_BODY_METHODS
            and length is None
            and ("transfer-encoding" not in headers)
        ):
            return b""
        if length is not None and not length.isdigit():
            # granian's HTTP layer refuses it first; the gateway does not rely on that.
            raise BadLength
        if length is not None and int(length) > self.max_body_bytes:
            raise BodyTooLarge
        if length == "0":
            return b""
        parts: list[bytes] = []
        size = 0
        async with asyncio.timeout(self.body_seconds):
            if length is not None:
                # Its length is known and allowed: one read takes it whole.
                return await proto()
            async for chunk in proto:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise BodyTooLarge
                parts.append(chunk)
        return b"".join(parts)

    def _environ(self, scope, body: bytes) -> dict[str, Any]:
        server_host, _, server_port = scope.server.rpartition(":")
        client_host = scope.client.rpartition(":")[0]
        environ = {
            **self.base_environ,
            "REQUEST_METHOD": scope.method,
            # WSGI carries the path's and query's bytes as latin-1 text;
            # granian hands over the percent-decoded path, and the query as
            # sent (raw bytes above 0x7f included), as UTF-8 text.
            "PATH_INFO": _wsgi_text(scope.path),
            "QUERY_STRING": _wsgi_text(scope.query_string),
            "SERVER_NAME": server_host.strip("[]"),
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host.strip("[]"),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
        }
        for name, value in scope.headers.items():
            if "_" in name:
                # Header names with underscores would be indistinguishable
                # from the dashed ones in the environ (a spoofing trick).
                continue
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
                continue  # the body is read whole: its length is known
            if key != "CONTENT_TYPE":
                key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call(self, environ: dict[str, Any], proto):
        """Run the WSGI app in a pool thread; send its answer, or hand back a
        stream to be sent from the loop."""
        started: list = []

        def start_response(status: str, headers: list, exc_info=None) -> None:
            started[:] = [int(status.split(" ", 1)[0]), headers]

        result = self.app(environ, start_response)
        if getattr(result, "is_async", False):
            return started[0], started[1], result
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        # Sent from this thread: the loop need not wake up for it. A client
        # that is gone makes this fail, which changes nothing.
        with contextlib.suppress(ProtocolClosed, ProtocolError, RuntimeError):
            proto.response_bytes(started[0], started[1], content)
        return None

    def _gather(self, now: float, client: str) -> None:
        """Note a create's arrival; the first to wait is held for company if it
        came within ``gather_seconds`` of the one before (more are then likely)."""
        if not self.creates:
            recent = now - self._last_create < self.gather_seconds
            self._gather_until = now + self.gather_seconds if recent else now
        self._last_create = now
        self._active[client] = now
        if now - self._active_checked >= ACTIVE_SECONDS:
            self._active_checked = now
            since = now - ACTIVE_SECONDS
            self._active = {key: at for key, at in self._active.items() if at >= since}

    def _company_expected(self, now: float) -> bool:
        """Whether the waiting creates should wait on for others (see :meth:`_gather`)."""
        if self._gather_until <= now or len(self.creates) >= CREATE_BATCH_SIZE:
            return False
        # Every connection lately active is waiting or running already: nobody else is coming.
        return len(self.creates) + self._running_creates < len(self._active)

    def _gathered(self, loop: asyncio.AbstractEventLoop) -> None:
        self._gather_timer = None
        self._start_create_batch(loop)

    def _start_create_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the waiting creates to a thread, unless ``CREATE_BATCHES`` are running
        or they are still gathering (see :meth:`_gather`)."""
        if not self.creates or self.create_batches >= CREATE_BATCHES:
            return
        if self._company_expected(loop.time()):
            if self._gather_timer is None:
                self._gather_timer = loop.call_at(self._gather_until, self._gathered, loop)
            return
        batch = self.creates[:CREATE_BATCH_SIZE]
        del self.creates[:CREATE_BATCH_SIZE]
        self.create_batches += 1
        self._running_creates += len(batch)
        running = loop.run_in_executor(self.create_threads, self._create_batch, batch)
        running.add_done_callback(lambda _: self._create_batch_done(loop, batch))

    def _create_batch_done(self, loop: asyncio.AbstractEventLoop, batch: list) -> None:
        self.create_batches -= 1
        self._running_creates -= len(batch)
        for *_, done in batch:
            if not done.done():
                done.set_result(None)
        self._start_create_batch(loop)

    def _create_batch(self, batch: list) -> None:
        """Answer a batch of creates on a create thread, without Django (:mod:`jobs.api.create`)."""
        assert self.create is not None
        try:
            answers = [
                (answer.status, answer.headers, answer.body)
                for answer in self.create.many([(environ, body) for environ, body, *_ in batch])
            ]
        except Exception:
            from jobs.api.problems import server_error_problem

            logger.exception("A batch of %d creates failed", len(batch))
            error = server_error_problem()
            answers = [(error.status_code, list(error.items()), error.content)] * len(batch)
        for (_, _, proto, _), (status, headers, content) in zip(batch, answers, strict=True):
            # Sent from this thread: the loop need not wake up for each.
            with contextlib.suppress(ProtocolClosed, ProtocolError, RuntimeError):
                proto.response_bytes(status, headers, content)

    async def _send_stream(self, proto, status: int, headers: list, response) -> None:
        try:
            transport = proto.response_stream(status, headers)
            send_to = getattr(response, "send_to", None)
            if send_to is not None:
                # An event stream: the loop's fan-out writes it with all the
                # others (jobs.live.Fanout), instead of a wake-up per stream.
                await send_to(transport.send_bytes)
                return
            async for chunk in response:
                await transport.send_bytes(chunk)
        except (ProtocolClosed, ProtocolError, OSError, RuntimeError):
            pass  # the client went away
        finally:
            response.close()


os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")


def _raise_open_files_limit() -> None:
    """Each open event stream is a socket: allow as many as the system lets us."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _application() -> WSGIGateway:
    # Imported once Django is set up (by jobsite.wsgi).
    from django.conf import settings

    from jobs.api.create import CreateEndpoint
    from jobs.api.events import ASYNC_STREAMING

    _raise_open_files_limit()
    sys.setswitchinterval(SWITCH_SECONDS)
    return WSGIGateway(
        wsgi_application,
        max_body_bytes=settings.JOBS_MAX_BODY_BYTES,
        queue_limit=settings.JOBS_WEB_QUEUE_LIMIT,
        # Tells the event stream view that its asynchronous iterator will be
        # sent from the loop, not drained into a list as a WSGI server would.
        environ={ASYNC_STREAMING: True},
        create=CreateEndpoint(),
        gather_seconds=settings.JOBS_CREATE_GATHER_SECONDS,
    )


application = _application()
