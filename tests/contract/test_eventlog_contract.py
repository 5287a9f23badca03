"""What every event log backend promises: every change once, in order, resumable by id.

Each test runs against the file log and the Redis Stream log.
"""

from __future__ import annotations

import multiprocessing

import pytest

from filestore.eventlog import FileEventLog
from redisstore import connect
from redisstore.eventlog import RedisEventLog
from storage.events import EventsLost


@pytest.fixture
def make_log(backend, request, tmp_path):
    """Opens the test log; each call is a new client of the same stored log.

    ``small=True`` keeps only a few hundred bytes (files) or events (Redis),
    so that old events are dropped within a test.
    """
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    clients = []

    def make(*, small: bool = False):
        if url is None:
            if small:
                return FileEventLog(tmp_path / "events", segment_bytes=300, keep_segments=3)
            return FileEventLog(tmp_path / "events")
        client = connect(url)
        clients.append(client)
        return RedisEventLog(client, max_events=20 if small else 20_000)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def log(make_log):
    return make_log()


def _events(n: int, start: int = 0) -> list[dict]:
    return [{"type": "job", "n": i, "text": "é" * (i % 3)} for i in range(start, start + n)]


def _read_all(log, position: int = 0, limit: int = 1000) -> tuple[list, int]:
    everything = []
    while True:
        events, position = log.read_after(position, limit=limit)
        if not events:
            return everything, position
        everything += events


def test_it_reads_an_empty_log_as_no_events(log):
    assert log.read_after(0) == ([], 0)
    assert log.read_after(log.latest_id()) == ([], 0)


def test_it_returns_events_in_order_with_increasing_ids(log):
    for event in _events(20):
        log.append(event)

    events, position = log.read_after(0)

    assert [event for _, event in events] == _events(20)
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(set(ids))
    assert position == ids[-1] == log.latest_id()


def test_it_appends_a_batch_in_order_after_the_events_before_it(log):
    log.append(_events(1)[0])
    log.append_many([])  # nothing: no write, no error
    log.append_many(_events(5)[1:])

    events, position = log.read_after(0)

    assert [event for _, event in events] == _events(5)
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(set(ids))
    assert position == ids[-1] == log.latest_id()


def test_it_reads_only_events_after_the_latest_id(log):
    for event in _events(5):
        log.append(event)
    position = log.latest_id()
    for event in _events(3, start=5):
        log.append(event)

    events, position = log.read_after(position)

    assert [event for _, event in events] == _events(3, start=5)
    assert log.read_after(position) == ([], position)


def test_it_resumes_after_any_event_id_without_repeating(log):
    """An event's id is what a client sends back as Last-Event-ID."""
    for event in _events(12):
        log.append(event)
    events, _ = _read_all(log)

    for index, (event_id, _) in enumerate(events):
        resumed, _ = _read_all(log, event_id)
        assert resumed == events[index + 1 :]


def test_its_ids_fit_a_last_event_id_header(log):
    for event in _events(3):
        log.append(event)

    events, _ = log.read_after(0)

    # The event stream accepts up to 19 decimal digits from a client.
    assert all(0 < event_id < 10**19 for event_id, _ in events)


def test_it_pages_with_a_limit(log):
    for event in _events(25):
        log.append(event)

    everything, _ = _read_all(log, limit=4)

    assert [event for _, event in everything] == _events(25)


def test_it_keeps_the_newest_events_and_reports_lost_ones(make_log):
    log = make_log(small=True)
    log.append({"n": 0})
    first_position = log.latest_id()
    reader_position = 0
    seen = []
    for event in _events(300, start=1):
        log.append(event)
        events, reader_position = log.read_after(reader_position)
        seen += [event for _, event in events]

    assert seen == [{"n": 0}, *_events(300, start=1)]  # a reader keeping up misses nothing
    with pytest.raises(EventsLost):
        log.read_after(first_position)
    kept, _ = _read_all(log)
    assert [event for _, event in kept] == _events(300, start=1)[-len(kept) :]
    assert 0 < len(kept) < 300


def test_it_reads_from_the_oldest_kept_event_at_position_zero(make_log):
    log = make_log(small=True)
    for event in _events(300):
        log.append(event)

    kept, _ = _read_all(log, 0)

    assert 0 < len(kept) < 300
    assert kept[-1][1] == _events(300)[-1]


def test_it_reports_a_position_beyond_the_newest_event_as_lost(log):
    """A position from another log (a wiped data directory, another Redis) is not ours."""
    for event in _events(3):
        log.append(event)

    with pytest.raises(EventsLost):
        log.read_after(log.latest_id() + 1000)


def test_a_new_client_sees_the_same_events_and_ids(make_log):
    before = make_log()
    for event in _events(5):
        before.append(event)
    events, position = before.read_after(0)

    after = make_log()

    assert after.read_after(0) == (events, position)
    assert after.latest_id() == before.latest_id()
    after.append({"n": 5})
    [(new_id, event)] = before.read_after(position)[0]
    assert event == {"n": 5} and new_id > position


def _append_many(make_log, writer: int, count: int, start) -> None:
    log = make_log()
    start.wait()
    for n in range(count):
        log.append({"writer": writer, "n": n, "pad": "x" * (n % 50)})


def test_it_keeps_every_event_of_concurrent_writers(make_log):
    fork = multiprocessing.get_context("fork")
    start = fork.Barrier(4)
    writers = [fork.Process(target=_append_many, args=(make_log, w, 300, start)) for w in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=30)
        assert writer.exitcode == 0

    everything, _ = _read_all(make_log(), limit=500)

    ids = [event_id for event_id, _ in everything]
    assert ids == sorted(set(ids))
    for w in range(4):
        assert [e["n"] for _, e in everything if e["writer"] == w] == list(range(300))
