"""The web server as ``manage.py serve`` runs it, over real sockets: request
bodies however they are sent, and event streams that leave the API alone."""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from bench.sse import ChunkedDecoder, EventStreams
from tests.system import System, parse_response, raw_exchange, wait_for


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    running = System(tmp_path_factory.mktemp("serving") / "data").start()
    yield running
    running.stop()


def _post_chunked(system: System, chunks: list[bytes]) -> tuple[int, dict, bytes]:
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    return _post_raw(system, b"Transfer-Encoding: chunked\r\n", body)


def _post_raw(system: System, headers: bytes, body: bytes) -> tuple[int, dict, bytes]:
    head = (
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + headers
        + b"Connection: close\r\n\r\n"
    )
    return parse_response(raw_exchange(system.port, head + body))


def _job_count(system: System) -> int:
    return len(system.jobs())


def test_a_chunked_body_is_read_and_honoured(system):
    status, _headers, body = _post_chunked(system, [b'{"delay_', b'seconds": 7}'])

    assert status == 202
    job = json.loads(body)
    assert job["delay_seconds"] == 7
    assert system.get(f"/api/jobs/{job['id']}")[1]["delay_seconds"] == 7


def test_an_invalid_chunked_body_is_refused_and_creates_nothing(system):
    before = _job_count(system)

    status, headers, body = _post_chunked(system, [b'{"delay_seconds": '])

    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["detail"]
    assert _job_count(system) == before


def test_a_chunked_body_over_the_size_limit_is_refused(system):
    before = _job_count(system)
    too_big = b'{"delay_seconds": 7, "padding": "' + b"x" * 20_000 + b'"}'

    status, headers, body = _post_chunked(
        system, [too_big[i : i + 1000] for i in range(0, len(too_big), 1000)]
    )

    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert "at most" in json.loads(body)["detail"]
    assert _job_count(system) == before


def test_a_body_with_broken_chunk_framing_is_refused(system):
    status, headers, _ = _post_raw(
        system, b"Transfer-Encoding: chunked\r\n", b'5\r\n{"del\r\nZZ\r\nnot a chunk\r\n'
    )

    assert status == 400
    assert headers["content-type"] == "application/problem+json"


class SSEReader:
    """Reads the events of one ``GET /api/events`` response from a socket."""

    def __init__(self, port: int, headers: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        self.decoder, self.text = ChunkedDecoder(), b""
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._recv(time.monotonic() + 5)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        self.text = self.decoder.feed(rest)

    def _recv(self, deadline: float) -> bytes:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        assert data, "the server closed the stream"
        return data

    def events(self, want: int, *, timeout: float = 5.0) -> list[dict]:
        """The next ``want`` events (comments skipped)."""
        events: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\n\n" in self.text and len(events) < want:
                block, self.text = self.text.split(b"\n\n", 1)
                lines = block.decode().splitlines()
                fields = dict(line.split(": ", 1) for line in lines if ": " in line)
                if "event" in fields:
                    events.append(fields)
            if len(events) == want:
                return events
            assert time.monotonic() < deadline, f"only {events} arrived"
            self.text += self.decoder.feed(self._recv(deadline))

    def close(self) -> None:
        self.sock.close()


def test_a_last_event_id_the_log_never_reached_gets_a_reset_then_new_events(system):
    system.request("POST", "/api/jobs", {"delay_seconds": 9})
    reader = SSEReader(system.port, b"Last-Event-ID: 99999999999999\r\n")
    try:
        [reset] = reader.events(1)
        _, created = system.request("POST", "/api/jobs", {"delay_seconds": 9})
        [event] = reader.events(1)
    finally:
        reader.close()

    assert reset["event"] == "reset"
    assert int(reset["id"]) < 99999999999999
    assert json.loads(event["data"])["id"] == created["id"]


def _timed_get(system: System) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(system.url + "/api/jobs?limit=20", timeout=10) as response:
        response.read()
        assert response.status == 200
    return time.monotonic() - started


def _p90(samples: list[float]) -> float:
    return sorted(samples)[int(0.9 * (len(samples) - 1))]


@pytest.mark.slow
def test_a_slow_body_holds_no_thread_and_is_cut_off(system):
    head = (
        b"POST /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 30\r\n\r\n{"delay'
    )
    slow = [socket.create_connection(("127.0.0.1", system.port)) for _ in range(200)]
    try:
        for sock in slow:
            sock.sendall(head)
        # More waiting bodies than the server has threads: the API still answers.
        assert max(_timed_get(system) for _ in range(10)) < 2.0
        slow[0].settimeout(30)
        status, headers, _body = parse_response(slow[0].recv(65536))
    finally:
        for sock in slow:
            sock.close()

    assert status == 408
    assert headers["content-type"] == "application/problem+json"


@pytest.mark.slow
def test_hundreds_of_open_streams_leave_the_api_fast_and_all_get_events(system):
    idle = [_timed_get(system) for _ in range(20)]
    streams = EventStreams("127.0.0.1", system.port, 400)
    try:
        streams.open(timeout=30)
        assert streams.subscribed == 400, streams.failed[:3]

        busy = [_timed_get(system) for _ in range(20)]
        _, created = system.request("POST", "/api/jobs", {"delay_seconds": 9})
        wait_for(
            lambda: sum(a.job_id == created["id"] for a in list(streams.arrivals)) == 400,
            timeout=5,
            message="the new job's event at every stream",
        )
    finally:
        streams.close()

    # Generous against a busy machine; with a thread per stream the requests
    # queued behind the streams instead.
    assert _p90(busy) < max(0.5, 4 * _p90(idle))
