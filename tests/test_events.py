"""GET /api/events: one event per job change, resumable, with heartbeats."""

from __future__ import annotations

import json
import time

import pytest

from filestore.eventlog import EventLog
from jobs import services
from jobs.api.events import stream
from jobs.live import EventFeed


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
    following = EventFeed(EventLog(data_dir / "events"), poll_seconds=0.01)
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
    log = EventLog(data_dir / "events")
    job = services.job_create(delay_seconds=5).job
    start = 0  # before every event: older than anything the feed holds
    feed = EventFeed(log, poll_seconds=0.01)

    events = stream(feed, start, heartbeat=0.05)
    next(events)
    [event] = parse(take(events, 1))
    feed.close()

    assert event["data"]["id"] == job["id"]


def test_it_tells_a_client_too_far_behind_to_start_over(data_dir):
    log = EventLog(data_dir / "events", segment_bytes=200, keep_segments=2)
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
