"""Hostile HTTP against the real server (``manage.py serve``) over raw sockets.

Whatever a client sends (oversized or broken headers, lengths that lie,
bodies that never finish, methods and request lines that are not HTTP, ids
and cursors built to escape or to crash, a thousand idle connections), the
server answers with a ``4xx`` or closes the connection cleanly: never a
``5xx``, never a hang, and the API keeps answering everyone else.

tests/test_serving.py already covers chunked bodies (valid, invalid, too
large, broken framing), a Content-Length body that never finishes while 200
others wait, and hundreds of open event streams; this module does not repeat
them.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from tests.system import System, parse_response

# How long any answer may take: the body read timeout (10 s, jobsite.rsgi)
# plus room for a busy machine. Longer than that is a hang.
ANSWER_SECONDS = 20
HEAD = b"Host: 127.0.0.1\r\nConnection: close\r\n"
MARKER = "outside-the-data-directory"


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    # Something an id that climbs out of the data directory would find.
    (root / "secret_pending.json").write_text(json.dumps({"id": MARKER}))
    running = System(root / "data").start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def still_serving(system):
    """After each attack the API still answers a plain request at once."""
    yield
    _assert_api_answers(system)


@dataclass
class Exchange:
    """What came back for one raw request: nothing (a clean close) or one response."""

    raw: bytes
    seconds: float

    def __post_init__(self) -> None:
        # An interim answer (100 Continue) comes before the one that counts.
        while self.raw.startswith(b"HTTP/1.1 1"):
            self.raw = self.raw.partition(b"\r\n\r\n")[2]

    @property
    def status(self) -> int | None:
        return parse_response(self.raw)[0] if self.raw else None

    @property
    def headers(self) -> dict[str, str]:
        return parse_response(self.raw)[1]

    @property
    def body(self) -> bytes:
        return parse_response(self.raw)[2]


def exchange(system: System, data: bytes, *, timeout: float = ANSWER_SECONDS) -> Exchange:
    """Send ``data`` and read until the server closes the connection.

    Every request here asks for ``Connection: close`` (or is one the server
    must refuse), so a server that neither answers nor closes within
    ``timeout`` has hung.
    """
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", system.port), timeout=timeout) as sock:
        # It may stop reading what it refuses: then read what it said.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # closed with unread data on its side: a close all the same
        except TimeoutError:
            raise AssertionError(
                f"no answer and no close within {timeout:g} s; got {received[:300]!r}"
            ) from None
    return Exchange(received, time.monotonic() - started)


def assert_refused_or_closed(
    result: Exchange, sent: bytes, *, allowed: Iterable[int] = range(400, 500)
) -> None:
    """A 4xx (a problem when the API wrote it) or a clean close; never a 5xx."""
    if result.status is None:
        return
    where = sent[:60]
    assert result.status in allowed, (where, result.raw[:400])
    target = sent.split(b" ")[1] if sent.count(b" ") >= 2 else b""
    if result.status >= 400 and result.body and target.startswith(b"/api/"):
        # The HTTP layer refuses what it cannot parse with an empty 4xx;
        # whatever has a body under /api/ was written by the API.
        assert result.headers.get("content-type") == "application/problem+json", (
            where,
            result.raw[:400],
        )
        assert json.loads(result.body)["detail"], where


def _assert_api_answers(system: System, *, within: float = 5.0) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(system.url + "/api/jobs?limit=5", timeout=within) as response:
        assert response.status == 200
        json.loads(response.read())
    took = time.monotonic() - started
    assert took < within
    return took


def get(path: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\n" + HEAD + headers + b"\r\n"


def post_jobs(headers: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST /api/jobs HTTP/1.1\r\n"
        + HEAD
        + b"Content-Type: application/json\r\n"
        + headers
        + b"\r\n"
        + body
    )


@pytest.mark.parametrize(
    "request_bytes",
    [
        get(b"/api/jobs", b"X-Big: " + b"a" * 1_000_000 + b"\r\n"),
        get(b"/api/jobs", b"X-Huge: " + b"a" * 10_000_000 + b"\r\n"),
        get(b"/api/jobs", b"".join(b"X-%d: 1\r\n" % i for i in range(5000))),
        get(b"/api/jobs", b"Cookie: " + b"c=" * 100_000 + b"\r\n"),
        get(b"/api/jobs?limit=" + b"9" * 200_000),
        get(b"/api/jobs/" + b"A" * 200_000),
    ],
    ids=["1 MB header", "10 MB header", "5000 headers", "200 KB cookie", "long query", "long id"],
)
def test_oversized_heads_are_refused_or_closed(system, request_bytes):
    result = exchange(system, request_bytes)

    # Refused, or read and answered as a plain request: either way, no 5xx.
    assert_refused_or_closed(result, request_bytes, allowed=range(200, 500))


@pytest.mark.parametrize("length", [b"1000000", b"1000000000000", b"9" * 30])
def test_an_enormous_content_length_with_no_body_is_refused_at_once(system, length):
    result = exchange(system, post_jobs(b"Content-Length: " + length + b"\r\n"))

    assert result.status in (400, 413), result.raw[:300]
    assert result.seconds < 5, "it waited for a body it would refuse anyway"
    assert_refused_or_closed(result, b"POST /api/jobs ")


@pytest.mark.parametrize(
    "headers",
    [
        b"Content-Length: -5\r\n",
        b"Content-Length: 2\r\nContent-Length: 20\r\n",
        b"Content-Length: 0x10\r\n",
        b"Content-Length: 2, 3\r\n",
    ],
    ids=["negative", "two lengths", "hex", "a list"],
)
def test_a_content_length_that_lies_is_refused(system, headers):
    before = len(system.jobs())

    result = exchange(system, post_jobs(headers, b"{}"))

    assert result.status == 400 or result.status is None, result.raw[:300]
    assert len(system.jobs()) == before


@pytest.mark.parametrize(
    "head",
    [
        b'Transfer-Encoding: chunked\r\n\r\n8\r\n{"delay_',
        b"Content-Length: 5000\r\n\r\n" + b" " * 4000,
        b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=["chunked", "most of a long body", "expect-continue"],
)
def test_a_body_that_never_finishes_is_cut_off_with_a_408(system, head):
    data = b"POST /api/jobs HTTP/1.1\r\n" + HEAD + b"Content-Type: application/json\r\n" + head

    result = exchange(system, data)

    assert result.status == 408, result.raw[:300]
    assert result.headers["content-type"] == "application/problem+json"


def test_a_request_head_that_never_finishes_is_closed(system):
    result = exchange(system, b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")

    assert_refused_or_closed(result, b"GET /api/jobs ")


REFUSED = range(400, 500)
# Parsers differ on what they tolerate: where one reads the request as a
# plain GET, an answer is fine too.
TOLERATED = range(200, 500)


@pytest.mark.parametrize(
    ("request_bytes", "allowed"),
    [
        pytest.param(b"FOO /api/jobs HTTP/1.1\r\n" + HEAD + b"\r\n", REFUSED, id="unknown method"),
        pytest.param(
            b"A" * 10_000 + b" /api/jobs HTTP/1.1\r\n" + HEAD + b"\r\n", REFUSED, id="10 KB method"
        ),
        pytest.param(b"DELETE /api/jobs HTTP/1.1\r\n" + HEAD + b"\r\n", REFUSED, id="DELETE"),
        pytest.param(b"TRACE /api/jobs HTTP/1.1\r\n" + HEAD + b"\r\n", REFUSED, id="TRACE"),
        # Not under /api/: Django's own page answers it.
        pytest.param(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\n" + HEAD + b"\r\n", REFUSED, id="CONNECT"),
        pytest.param(
            b"PROPFIND /api/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV HTTP/1.1\r\n" + HEAD + b"\r\n",
            REFUSED,
            id="PROPFIND",
        ),
        pytest.param(
            b"POST /api/events HTTP/1.1\r\n" + HEAD + b"Content-Length: 0\r\n\r\n",
            REFUSED,
            id="POST on the stream",
        ),
        pytest.param(b"\x00\x01\x02 garbage\r\n\r\n", REFUSED, id="binary garbage"),
        pytest.param(b"GET /api/jobs\r\n\r\n", REFUSED, id="HTTP/0.9"),
        pytest.param(b"GET /api/jobs HTTP/2.0\r\n" + HEAD + b"\r\n", REFUSED, id="HTTP/2.0 line"),
        pytest.param(b"GET /api/jobs HTTP/9.9\r\n" + HEAD + b"\r\n", REFUSED, id="HTTP/9.9"),
        pytest.param(
            b"GET  /api/jobs  HTTP/1.1\r\n" + HEAD + b"\r\n", TOLERATED, id="extra spaces"
        ),
        pytest.param(
            b"GET /api/jobs HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n",
            TOLERATED,
            id="bare newlines",
        ),
        pytest.param(get(b"/api/jobs", b"X-A: a\r\n folded\r\n"), TOLERATED, id="folded header"),
        pytest.param(get(b"/api/jobs", b"Bad Header: x\r\n"), REFUSED, id="space in a name"),
        pytest.param(get(b"/api/jobs", b"X-A: a\x00b\r\n"), REFUSED, id="NUL in a header"),
        pytest.param(
            b"GET /api/jobs HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            REFUSED,
            id="a host it does not serve",
        ),
    ],
)
def test_bad_methods_lines_and_headers_get_a_4xx_or_a_close(system, request_bytes, allowed):
    result = exchange(system, request_bytes)

    assert_refused_or_closed(result, request_bytes, allowed=allowed)


HOSTILE_IDS = [
    b"../secret",
    b"..%2fsecret",
    b"%2e%2e%2fsecret",
    b"..%252fsecret",
    b"....//secret",
    b"..\\secret",
    b"%2e%2e",
    b"01ARZ3NDEKTSV4RRFFQ69G5FA%00",
    b"01ARZ3NDEKTSV4RRFFQ69G5FAV%00.json",
    b"01arz3ndektsv4rrffq69g5fav",
    b"01ARZ3NDEKTSV4RRFFQ69G5FAVX",
    b"A" * 5000,
    "ñø☃😀".encode(),
    b"%F0%9F%98%80",
    b"%FF%FE",
    b"%C0%AE%C0%AE%2fsecret",
    b"01ARZ3NDEKTSV4RRFFQ69G5FAV;rm",
    b"01ARZ3NDEKTSV4RRFFQ69G5FAV%0d%0aX-Injected:%201",
]


@pytest.mark.parametrize("job_id", HOSTILE_IDS, ids=lambda raw: raw[:30].decode(errors="replace"))
def test_hostile_job_ids_are_not_found_and_reach_no_file(system, job_id):
    result = exchange(system, get(b"/api/jobs/" + job_id))

    assert result.status in (400, 404), result.raw[:300]
    assert_refused_or_closed(result, b"GET /api/jobs/" + job_id)
    assert MARKER.encode() not in result.raw
    assert "x-injected" not in result.headers


def test_a_raw_nul_in_the_path_is_refused(system):
    result = exchange(system, get(b"/api/jobs/01ARZ3NDEKTSV4RR\x00FFQ69G5FAV"))

    assert_refused_or_closed(result, b"GET /api/jobs/ ")


BROKEN_QUERIES = [
    b"cursor=%FF%00abc",
    b"cursor=" + b"Z" * 5000,
    b"cursor=../../secret",
    b"cursor=%00",
    b"cursor=" + "☃".encode(),
    b"cursor=00000000000000000000000000",
    b"cursor=ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
    b"cursor=01ARZ3NDEKTSV4RRFFQ69G5FAV&cursor=x",
    b"limit=-1",
    b"limit=0",
    b"limit=1e9",
    b"limit=99999999999999999999999",
    b"limit=%00",
    b"limit=" + "٣".encode(),
    b"status=nope",
    b"status=%00",
    b"status=" + b",".join([b"pending"] * 500),
    b"&".join([b"status=pending"] * 2000),
    b"&".join(b"x%d=1" % i for i in range(2000)),
]


@pytest.mark.parametrize("query", BROKEN_QUERIES, ids=lambda raw: raw[:30].decode(errors="replace"))
def test_broken_cursors_limits_and_filters_are_answered_without_a_5xx(system, query):
    result = exchange(system, get(b"/api/jobs?" + query))

    # A cursor is a position: one that matches no job may give an empty page.
    assert_refused_or_closed(result, b"GET /api/jobs?" + query, allowed=(200, 400))
    if result.status == 200:
        assert "results" in json.loads(result.body)


@pytest.mark.parametrize(
    "ask",
    [
        b"Last-Event-ID: abc\r\n",
        b"Last-Event-ID: -1\r\n",
        b"Last-Event-ID: 1e99\r\n",
        b"Last-Event-ID: " + b"9" * 5000 + b"\r\n",
        b"Last-Event-ID: \xff\xfe\r\n",
        b"Last-Event-ID: 1\r\nLast-Event-ID: 2\r\n",
    ],
    ids=["letters", "negative", "exponent", "5000 digits", "not UTF-8", "twice"],
)
def test_broken_last_event_ids_get_a_stream_or_a_problem(system, ask):
    with socket.create_connection(("127.0.0.1", system.port), timeout=ANSWER_SECONDS) as sock:
        sock.sendall(b"GET /api/events HTTP/1.1\r\n" + HEAD + ask + b"\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
    if not head:
        return  # closed
    status, headers, _ = parse_response(head)
    if status == 200:
        assert headers["content-type"].startswith("text/event-stream")
    else:
        assert 400 <= status < 500, head[:300]
        assert headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "headers",
    [
        b"Idempotency-Key: " + b"k" * 8000 + b"\r\n",
        b"Idempotency-Key: a\x01b\r\n",
        b"Idempotency-Key: \r\n",
        b"Idempotency-Key: ../../secret\r\n",
        b"Content-Type: application/json; charset=\xff\xfe\r\n",
        b"Content-Type: application/json; charset=bogus-9\r\n",
        b"Content-Type: text/plain\r\n",
        b"Accept: \xff/\xfe;q=abc\r\n",
        b"If-None-Match: " + b'"x",' * 5000 + b"\r\n",
    ],
    ids=[
        "8 KB key",
        "control character in the key",
        "empty key",
        "a path as the key",
        "charset not UTF-8",
        "unknown charset",
        "text/plain",
        "broken Accept",
        "5000 ETags",
    ],
)
def test_hostile_create_headers_are_answered_without_a_5xx(system, headers):
    body = b'{"delay_seconds": 9}'
    data = (
        b"POST /api/jobs HTTP/1.1\r\n"
        + HEAD
        + (b"" if b"Content-Type" in headers else b"Content-Type: application/json\r\n")
        + headers
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )

    result = exchange(system, data)

    assert_refused_or_closed(result, data, allowed=range(200, 500))
    assert result.status is not None


# How long the server lets a connection go without a whole request head: a
# new one, one that stopped in its request line or head, one idle between
# requests (granian's --http1-header-read-timeout, manage.py serve).
HEAD_SECONDS = 10
# Requests that stop before their head ends. The first ones are prefixes of
# HTTP/2's preface, which an HTTP/1-or-2 server waits on to tell the two apart.
HALF_SENT = [
    b"P",
    b"PRI * HTTP/2.0\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET /api/jo",
    b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty",
]


class Connections:
    """Raw connections that say nothing more, and when the server closes each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.open_since: dict[socket.socket, tuple[str, float]] = {}

    def open(self, kind: str, data: bytes = b"") -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if data:
            sock.sendall(data)
        self._watch(sock, kind)

    def open_kept_alive(self) -> None:
        """A connection that gets one answer and asks for nothing more."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(b"GET /api/jobs?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received or len(parse_response(received)[2]) < int(
            parse_response(received)[1]["content-length"]
        ):
            chunk = sock.recv(65536)
            assert chunk, "closed before the answer"
            received += chunk
        assert parse_response(received)[0] == 200
        assert parse_response(received)[1].get("connection") != "close"
        self._watch(sock, "kept alive")

    def _watch(self, sock: socket.socket, kind: str) -> None:
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ)
        self.open_since[sock] = (kind, time.monotonic())

    def wait_closed(self, deadline: float) -> dict[str, int]:
        """Wait until the server closed them all or ``deadline``; what is still open, by kind."""
        while self.open_since and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=max(0.0, deadline - time.monotonic())):
                sock = key.fileobj
                try:
                    if sock.recv(65536):
                        continue  # an answer (a 4xx) before the close
                except BlockingIOError:
                    continue
                except OSError:
                    pass  # reset: closed all the same
                self._forget(sock)
        return dict(Counter(kind for kind, _ in self.open_since.values()))

    def _forget(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.open_since[sock]
        sock.close()

    def close(self) -> None:
        for sock in list(self.open_since):
            self._forget(sock)
        self.selector.close()


@pytest.mark.slow
def test_silent_half_sent_and_idle_connections_are_closed_and_hold_up_nobody(system):
    idle_baseline = max(_assert_api_answers(system) for _ in range(5))
    connections = Connections(system.port)
    try:
        for _ in range(1000):
            connections.open("silent")
        for data in HALF_SENT:
            for _ in range(20):
                connections.open(data.decode()[:20], data)
        for _ in range(50):
            connections.open_kept_alive()
        opened = time.monotonic()

        busy = [_assert_api_answers(system) for _ in range(10)]
        _, created = system.request("POST", "/api/jobs", {"delay_seconds": 9})
        assert system.get(f"/api/jobs/{created['id']}")[0] == 200
        # Room for a busy machine; without a bound they stay open for good.
        still_open = connections.wait_closed(opened + HEAD_SECONDS + 10)
    finally:
        connections.close()

    assert still_open == {}, f"still open {HEAD_SECONDS + 10} s after they went quiet"
    assert max(busy) < max(2.0, 10 * idle_baseline), (idle_baseline, busy)
