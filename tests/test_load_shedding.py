"""Under overload the web server refuses new requests at once instead of queueing them."""

from __future__ import annotations

import asyncio
import json
import threading
from types import SimpleNamespace

import pytest

from jobs.api.create import CreateEndpoint
from jobsite import rsgi
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


def _scope(method: str = "GET") -> SimpleNamespace:
    return SimpleNamespace(
        proto="http",
        method=method,
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


class HeldCreates:
    """A create endpoint whose batches wait until released (a slow flush of the disk)."""

    may_serve = staticmethod(CreateEndpoint.may_serve)

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[int] = []

    def serves(self, method: str, path: str, environ) -> bool:
        return self.may_serve(method, path)

    def many(self, requests):
        self.batches.append(len(requests))
        self.release.wait(5)
        return [SimpleNamespace(status=202, headers=[], body=b"{}") for _ in requests]


def _ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b"{}"]


@pytest.fixture(autouse=True)
def _one_batch_at_a_time(monkeypatch):
    # The creates that arrive while the first batch is held wait for the next.
    monkeypatch.setattr(rsgi, "CREATE_BATCHES", 1)


def _held_gateway(*, create_queue_seconds: float) -> tuple[WSGIGateway, HeldCreates]:
    creates = HeldCreates()
    gateway = WSGIGateway(
        _ok,
        threads=1,
        max_body_bytes=1024,
        queue_limit=1,  # two requests for Django's threads at most
        create=creates,
        create_queue_seconds=create_queue_seconds,
    )
    return gateway, creates


async def _until(condition) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


def test_creates_held_by_a_short_pause_are_all_answered_however_many_wait():
    """Creates are answered in batches that take every waiting one: many
    waiting during a pause shorter than the limit are answered, not refused,
    and they leave Django's threads to the other requests."""
    gateway, creates = _held_gateway(create_queue_seconds=5.0)

    async def scenario():
        first = Proto()
        running = [asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), first))]
        await _until(lambda: creates.batches)
        protos = [Proto() for _ in range(10)]
        running += [asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), p)) for p in protos]
        await _until(lambda: len(gateway.creates) == 10)
        read = Proto()
        await gateway.__rsgi__(_scope(), read)  # the pool is free: served at once
        creates.release.set()
        await asyncio.gather(*running)
        return [first, *protos], read

    protos, read = asyncio.run(scenario())

    assert [p.answers[0][0] for p in protos] == [202] * 11
    assert read.answers[0][0] == 200
    assert creates.batches == [1, 10]
    assert gateway.shed == 0


def test_once_the_oldest_create_waited_too_long_new_creates_are_refused_at_the_door():
    wait = 0.2
    gateway, creates = _held_gateway(create_queue_seconds=wait)

    async def scenario():
        loop = asyncio.get_running_loop()
        first = Proto()
        started = loop.time()
        running = asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), first))
        await _until(lambda: creates.batches)
        young = Proto()
        joined = asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), young))
        await asyncio.sleep(max(0.0, started + wait * 1.2 - loop.time()))
        late = Proto()
        await gateway.__rsgi__(_scope("POST"), late)  # refused at once: it returns
        refused = list(late.answers)
        creates.release.set()
        await asyncio.gather(running, joined)
        again = Proto()
        await gateway.__rsgi__(_scope("POST"), again)  # answered: nothing waits now
        return first, young, refused, again

    first, young, refused, again = asyncio.run(scenario())

    [(status, headers, content)] = refused
    assert status == 503
    assert dict(headers)["retry-after"] == "1"
    assert json.loads(content)["type"] == "/api/problems/busy"
    assert first.answers[0][0] == young.answers[0][0] == again.answers[0][0] == 202
    assert gateway.shed == 1
    assert gateway._batch_arrivals == [] and gateway._running_creates == 0


def test_creates_beyond_what_the_batches_take_at_once_are_refused_however_young(monkeypatch):
    monkeypatch.setattr(rsgi, "CREATE_QUEUE_LIMIT", 3)
    gateway, creates = _held_gateway(create_queue_seconds=60.0)

    async def scenario():
        protos = [Proto() for _ in range(4)]
        running = [asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), protos[0]))]
        await _until(lambda: creates.batches)
        running += [asyncio.ensure_future(gateway.__rsgi__(_scope("POST"), p)) for p in protos[1:3]]
        await _until(lambda: len(gateway.creates) == 2)
        await gateway.__rsgi__(_scope("POST"), protos[3])
        creates.release.set()
        await asyncio.gather(*running)
        return protos

    protos = asyncio.run(scenario())

    assert [p.answers[0][0] for p in protos] == [202, 202, 202, 503]
    assert gateway.shed == 1
