"""GET /api/events: one event per job change, resumable, with heartbeats."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections import Counter

import pytest

from filestore.eventlog import FileEventLog
from jobs import live, services
from jobs.api import events as events_api
from jobs.api.events import StreamSlots, stream, stream_async
from jobs.live import EventFeed
from jobsite.rsgi import WSGIGateway


def parse(chunks: list[bytes]) -> list[dict]:
    """The events in a list of SSE chunks, as {id, event, data} dicts."""
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            events.append(fields)
    return events


def take(iterator, count: int, *, deadline: float = 5.0) -> list[bytes]:
    chunks = []
    end = time.monotonic() + deadline
    while len(parse(chunks)) < count:
        assert time.monotonic() < end, f"only {len(parse(chunks))} of {count} events arrived"
        chunks.append(next(iterator))
    return chunks


@pytest.fixture
def feed(data_dir):
    following = EventFeed(FileEventLog(data_dir / "events"), poll_seconds=0.01, tick_seconds=0.01)
    yield following
    following.close()


def test_it_sends_one_event_per_job_change_with_increasing_ids(feed):
    events = stream(feed, None, heartbeat=0.05)
    assert next(events) == b"retry: 3000\n\n"
    created = services.job_create(delay_seconds=5).job
    services.job_cancel(job_id=created["id"])

    received = parse(take(events, 2))

    assert [e["data"]["status"] for e in received] == ["pending", "cancelled"]
    assert {e["event"] for e in received} == {"job"}
    assert int(received[0]["id"]) < int(received[1]["id"])
    assert received[1]["data"]["id"] == created["id"]


def test_it_only_sends_changes_made_after_the_stream_opened(feed):
    services.job_create(delay_seconds=5)
    events = stream(feed, None, heartbeat=0.05)
    next(events)
    newer = services.job_create(delay_seconds=10).job

    [event] = parse(take(events, 1))

    assert event["data"]["id"] == newer["id"]


def test_it_replays_what_a_client_missed_after_last_event_id(feed):
    first = services.job_create(delay_seconds=5).job
    events = stream(feed, None, heartbeat=0.05)
    next(events)
    services.job_cancel(job_id=first["id"])
    [seen] = parse(take(events, 1))
    events.close()
    # While the client is away:
    second = services.job_create(delay_seconds=5).job
    services.job_retry(job_id=first["id"])

    resumed = stream(feed, int(seen["id"]), heartbeat=0.05)
    next(resumed)
    missed = parse(take(resumed, 2))

    assert [(e["data"]["id"], e["data"]["status"]) for e in missed] == [
        (second["id"], "pending"),
        (first["id"], "pending"),
    ]


def test_it_replays_from_the_log_when_memory_does_not_reach_back(data_dir):
    log = FileEventLog(data_dir / "events")
    job = services.job_create(delay_seconds=5).job
    start = 0  # before every event: older than anything the feed holds
    feed = EventFeed(log, poll_seconds=0.01)

    events = stream(feed, start, heartbeat=0.05)
    next(events)
    [event] = parse(take(events, 1))
    feed.close()

    assert event["data"]["id"] == job["id"]


def test_it_tells_a_client_too_far_behind_to_start_over(data_dir):
    log = FileEventLog(data_dir / "events", segment_bytes=200, keep_segments=2)
    for n in range(20):
        log.append({"type": "job-deleted", "id": f"{n:026d}"})
    feed = EventFeed(log, poll_seconds=0.01)

    events = stream(feed, 5, heartbeat=0.05)
    next(events)
    [reset] = parse(take(events, 1))
    feed.close()

    assert reset["event"] == "reset"


def test_it_sends_a_heartbeat_comment_when_nothing_happens(feed):
    events = stream(feed, None, heartbeat=0.01)
    next(events)

    assert next(events) == b": ping\n\n"


def test_it_announces_deleted_jobs(feed):
    job = services.job_create(delay_seconds=5).job
    events = stream(feed, None, heartbeat=0.05)
    next(events)
    services.job_delete(job_id=job["id"])

    [event] = parse(take(events, 1))

    assert event["event"] == "job-deleted"
    assert event["data"] == {"id": job["id"]}


def test_the_stream_ends_by_itself_so_no_thread_is_held_forever(feed):
    chunks = list(stream(feed, None, heartbeat=0.01, lifetime=0.05))

    assert chunks[0] == b"retry: 3000\n\n"
    assert chunks[-1] == b": ping\n\n"


@pytest.mark.django_db
def test_the_endpoint_streams_text_event_stream(client):
    response = client.get("/api/events")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert next(iter(response.streaming_content)) == b"retry: 3000\n\n"
    response.close()


def test_the_endpoint_refuses_other_methods_as_a_problem(client):
    response = client.post("/api/events")

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET"


def test_a_client_resuming_after_an_id_the_log_never_reached_starts_over_from_now(feed):
    """Its Last-Event-ID is from before the data directory was reset or restored."""
    services.job_create(delay_seconds=5)
    beyond_the_end = feed.position + 10_000

    events = stream(feed, beyond_the_end, heartbeat=0.05)
    next(events)
    [reset] = parse(take(events, 1))
    created = services.job_create(delay_seconds=10).job
    [event] = parse(take(events, 1))

    assert reset["event"] == "reset"
    assert int(reset["id"]) < beyond_the_end
    assert event["data"]["id"] == created["id"]


def test_an_open_stream_starts_over_when_the_log_does(data_dir, feed):
    events = stream(feed, None, heartbeat=0.05)
    next(events)
    for _ in range(3):
        services.job_create(delay_seconds=5)
    # Received: the server has followed the log that far before it starts over.
    assert len(parse(take(events, 3))) == 3
    shutil.rmtree(data_dir / "events")  # the data directory reset under the server
    FileEventLog(data_dir / "events").append({"type": "job-deleted", "id": "0" * 26})

    [reset] = parse(take(events, 1))
    created = services.job_create(delay_seconds=10).job
    [event] = parse(take(events, 1))

    assert reset["event"] == "reset"
    assert event["data"]["id"] == created["id"]


async def _take_async(chunks_of, count: int, *, deadline: float = 5.0) -> list[bytes]:
    chunks: list[bytes] = []
    async with asyncio.timeout(deadline):
        while len(parse(chunks)) < count:
            chunks.append(await anext(chunks_of))
    return chunks


def test_a_stream_on_an_event_loop_sends_each_job_change(feed):
    async def scenario():
        events = stream_async(feed, None, heartbeat=0.05)
        first = await anext(events)
        created = await asyncio.to_thread(lambda: services.job_create(delay_seconds=5).job)
        await asyncio.to_thread(services.job_cancel, job_id=created["id"])
        return first, created, parse(await _take_async(events, 2))

    first, created, received = asyncio.run(scenario())

    assert first == b"retry: 3000\n\n"
    assert [(e["data"]["id"], e["data"]["status"]) for e in received] == [
        (created["id"], "pending"),
        (created["id"], "cancelled"),
    ]


def test_many_streams_on_one_event_loop_all_get_the_change_and_heartbeats(feed):
    async def scenario():
        streams = [stream_async(feed, None, heartbeat=0.2) for _ in range(200)]
        for events in streams:
            await anext(events)
        created = await asyncio.to_thread(lambda: services.job_create(delay_seconds=5).job)
        received = await asyncio.gather(*(_take_async(events, 1) for events in streams))
        pings = await asyncio.gather(*(anext(events) for events in streams))
        return created, [parse(chunks)[0]["data"]["id"] for chunks in received], pings

    created, received, pings = asyncio.run(scenario())

    assert received == [created["id"]] * 200
    assert set(pings) == {b": ping\n\n"}


def test_a_stream_on_an_event_loop_ends_by_itself(feed):
    async def scenario():
        return [chunk async for chunk in stream_async(feed, None, heartbeat=0.01, lifetime=0.1)]

    chunks = asyncio.run(scenario())

    assert chunks[0] == b"retry: 3000\n\n"
    assert chunks[-1] == b": ping\n\n"


def test_a_closed_stream_gives_its_slot_back(feed):
    slots = StreamSlots(1)
    assert slots.take()
    events = stream(feed, None, heartbeat=0.01, slots=slots)
    next(events)

    events.close()
    events.close()

    assert slots.open == 0


def test_the_endpoint_refuses_streams_beyond_the_limit_with_a_quick_problem(client, monkeypatch):
    monkeypatch.setattr(events_api, "THREAD_SLOTS", StreamSlots(0))

    response = client.get("/api/events")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    assert response.json()["type"].endswith("/too_many_streams")


def _job_ids(chunks: list[bytes]) -> list[str]:
    return [event["data"]["id"] for event in parse(chunks) if event["event"] == "job"]


@pytest.mark.parametrize("count", [1, 200])
def test_an_event_is_encoded_once_however_many_streams_send_it(data_dir, monkeypatch, count):
    log = FileEventLog(data_dir / "events")
    older = services.job_create(delay_seconds=5).job
    missed = services.job_create(delay_seconds=5).job  # only in the log: before the feed
    [(older_id, _), (missed_id, _)] = log.read_after(0)[0]
    encoded: Counter[int] = Counter()
    encode = live.sse_block

    def counting(event_id, event):
        encoded[event_id] += 1
        return encode(event_id, event)

    monkeypatch.setattr(live, "sse_block", counting)
    feed = EventFeed(log, poll_seconds=0.01, tick_seconds=0.01)

    async def scenario():
        # Half resume after the older event (read back from the log), half start now.
        resuming = [stream_async(feed, older_id, heartbeat=5) for _ in range(count)]
        fresh = [stream_async(feed, None, heartbeat=5) for _ in range(count)]
        for events in resuming + fresh:
            await anext(events)
        caught_up = await asyncio.gather(*(_take_async(events, 1) for events in resuming))
        created = await asyncio.to_thread(lambda: services.job_create(delay_seconds=10).job)
        received = await asyncio.gather(*(_take_async(events, 1) for events in resuming + fresh))
        for events in resuming + fresh:
            events.close()
        return caught_up, created, received

    try:
        caught_up, created, received = asyncio.run(scenario())
    finally:
        feed.close()

    assert [_job_ids(chunks) for chunks in caught_up] == [[missed["id"]]] * count
    assert [_job_ids(chunks) for chunks in received] == [[created["id"]]] * 2 * count
    [created_id] = [event_id for event_id in encoded if event_id > missed_id]
    assert encoded == {missed_id: 1, created_id: 1}
    # The same bytes went to every stream: joined once, too.
    assert len({id(chunks[-1]) for chunks in received}) == 1
    assert older["id"] not in {job_id for chunks in caught_up for job_id in _job_ids(chunks)}


class StreamTransport:
    """What the gateway uses of granian's stream transport: it records the writes."""

    def __init__(self, on_event) -> None:
        self.chunks: list[bytes] = []
        self.on_event = on_event

    async def send_bytes(self, data: bytes) -> None:
        self.chunks.append(data)
        if b"event: job" in data:
            self.on_event()


class StreamProto:
    def __init__(self, on_event) -> None:
        self.transport = StreamTransport(on_event)

    def response_stream(self, status: int, headers: list) -> StreamTransport:
        return self.transport


def test_a_loop_writes_its_streams_a_few_hundred_at_a_time_serving_requests_in_between(
    feed, monkeypatch, rf
):
    """A request that arrives while an event goes out to a thousand streams
    waits for a few hundred writes at most, not for all of them."""
    monkeypatch.setattr(events_api, "feed", lambda: feed)
    monkeypatch.setattr(events_api, "ASYNC_SLOTS", StreamSlots(10_000))
    gateway = WSGIGateway(lambda environ, start: [], threads=1, max_body_bytes=1024)
    count = 1000

    async def scenario():
        loop = asyncio.get_running_loop()
        protos: list[StreamProto] = []
        seen_by_request: list[int] = []
        arrived: list[bool] = []

        def a_request_arrives() -> None:
            if not arrived:
                arrived.append(True)
                # Runs once the loop gets to what was scheduled after the first write.
                loop.call_soon(
                    lambda: seen_by_request.append(
                        sum(b"event: job" in b"".join(p.transport.chunks) for p in protos)
                    )
                )

        senders = []
        for _ in range(count):
            request = rf.get("/api/events")
            request.META[events_api.ASYNC_STREAMING] = True
            response = events_api.events(request)
            proto = StreamProto(a_request_arrives)
            protos.append(proto)
            senders.append(
                asyncio.ensure_future(
                    gateway._send_stream(proto, 200, list(response.items()), response)
                )
            )
        for _ in range(10):
            await asyncio.sleep(0.01)  # every stream opened and waiting
        await asyncio.to_thread(services.job_create, delay_seconds=5)
        async with asyncio.timeout(10):
            while not all(b"event: job" in b"".join(p.transport.chunks) for p in protos):
                await asyncio.sleep(0.01)
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        return seen_by_request

    [seen] = asyncio.run(scenario())

    assert seen <= 300, f"the request waited for {seen} of {count} streams"
    assert events_api.ASYNC_SLOTS.open == 0
