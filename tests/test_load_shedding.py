"""Under overload the web server refuses new requests at once instead of queueing them."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

from jobsite.rsgi import WSGIGateway


class Proto:
    """What the gateway uses of granian's RSGI protocol object, for a request without a body."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str], bytes]] = []

    def response_bytes(self, status: int, headers: list, content: bytes) -> None:
        self.answers.append((status, dict(headers), content))

    def __aiter__(self):
        return self

    async def __anext__(self):
        raise StopAsyncIteration


def _scope() -> SimpleNamespace:
    return SimpleNamespace(
        proto="http",
        method="GET",
        path="/api/jobs",
        query_string="",
        headers={},
        server="127.0.0.1:8000",
        client="127.0.0.1:50000",
        scheme="http",
        http_version="1.1",
    )


def test_requests_beyond_the_queue_limit_get_an_immediate_503_and_the_others_are_served():
    release = threading.Event()

    def slow_app(environ, start_response):
        release.wait(5)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    gateway = WSGIGateway(slow_app, threads=1, max_body_bytes=1024, queue_limit=1)

    async def scenario():
        protos = [Proto() for _ in range(4)]
        # One request runs, one waits for the thread: the limit is reached.
        running = [asyncio.ensure_future(gateway.__rsgi__(_scope(), p)) for p in protos[:2]]
        while gateway.in_flight < 2:
            await asyncio.sleep(0.001)
        await gateway.__rsgi__(_scope(), protos[2])  # refused at once: it returns
        refused = protos[2].answers
        release.set()
        await asyncio.gather(*running)
        await gateway.__rsgi__(_scope(), protos[3])  # room again
        return protos, refused

    protos, refused = asyncio.run(scenario())

    [(status, headers, content)] = refused
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/problem+json"
    assert "connection" not in headers  # the client keeps its connection for the retry
    assert json.loads(content)["type"] == "/api/problems/busy"
    assert [p.answers[0][0] for p in protos[:2]] == [200, 200]
    assert protos[3].answers[0][0] == 200
    assert gateway.shed == 1


def test_without_a_limit_nothing_is_refused():
    gateway = WSGIGateway(lambda environ, start: [], threads=1, max_body_bytes=1024)

    assert gateway.limit == 0
