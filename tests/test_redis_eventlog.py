"""The Redis event log's positions: stream entry ids as integers, in order, never too long."""

from __future__ import annotations

import pytest

from redisstore import connect
from redisstore.eventlog import SEQ_BITS, RedisEventLog, entry_id_of, position_of
from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]


@pytest.fixture
def log(redis_url):
    client = connect(redis_url)
    yield RedisEventLog(client)
    client.close()


@pytest.mark.parametrize("entry_id", ["0-1", "1700000000000-0", "1700000000000-7", "9-1048575"])
def test_a_position_turns_back_into_its_entry_id(entry_id):
    assert entry_id_of(position_of(entry_id)) == entry_id


def test_positions_order_as_entry_ids_do():
    ids = ["1700000000000-0", "1700000000000-1", "1700000000000-1048575", "1700000000001-0"]

    positions = [position_of(entry_id) for entry_id in ids]

    assert positions == sorted(positions)
    assert len(set(positions)) == len(ids)


def test_a_position_keeps_to_19_digits_for_two_centuries():
    year_2200_ms = 7_258_118_400_000

    assert len(str(position_of(f"{year_2200_ms}-{(1 << SEQ_BITS) - 1}"))) == 19


def test_the_event_id_is_the_stream_entry_id(log):
    event_id = log.append({"n": 1})

    [(entry_id, fields)] = log.client.xrange(log.key)
    assert position_of(entry_id) == event_id == log.latest_id()
    assert fields == {b"e": b'{"n":1}'}


def test_it_moves_to_the_next_millisecond_before_a_sequence_number_overflows(log):
    """Only a burst of a million events in one millisecond, or a server clock
    set back, gets there; a position must still hold the id."""
    far_ms = 99_999_999_999_999  # ahead of the server's clock: the next id stays in it
    log.client.xadd(log.key, {b"e": b'{"n":0}'}, id=f"{far_ms}-{(1 << SEQ_BITS) - 2}")

    first = log.append({"n": 1})
    second = log.append({"n": 2})

    assert entry_id_of(first) == f"{far_ms}-{(1 << SEQ_BITS) - 1}"
    assert entry_id_of(second) == f"{far_ms + 1}-0"
    events, _ = log.read_after(0)
    assert [event for _, event in events] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [event_id for event_id, _ in events][1:] == [first, second]


def test_a_batch_moves_to_the_next_millisecond_within_it_too(log):
    far_ms = 99_999_999_999_999
    log.client.xadd(log.key, {b"e": b'{"n":0}'}, id=f"{far_ms}-{(1 << SEQ_BITS) - 3}")

    log.append_many([{"n": n} for n in range(1, 5)])

    ids = [entry_id.decode() for entry_id, _ in log.client.xrange(log.key)]
    top = (1 << SEQ_BITS) - 1
    assert ids == [
        f"{far_ms}-{top - 2}",
        f"{far_ms}-{top - 1}",
        f"{far_ms}-{top}",
        f"{far_ms + 1}-0",
        f"{far_ms + 1}-1",
    ]
    events, _ = log.read_after(0)
    assert [event for _, event in events] == [{"n": n} for n in range(5)]


def test_a_batch_is_one_call_to_redis(log, monkeypatch):
    log.append({"n": -1})  # the script is loaded into the server on its first use
    calls = []
    execute = log.client.execute_command
    monkeypatch.setattr(
        log.client,
        "execute_command",
        lambda *args, **kw: calls.append(args[0]) or execute(*args, **kw),
    )

    log.append_many([{"n": n} for n in range(20)])

    assert calls == ["EVALSHA"]
    assert len(log.read_after(0)[0]) == 21


def test_it_caps_the_stream_near_max_events(redis_url):
    client = connect(redis_url)
    log = RedisEventLog(client, max_events=100)
    for n in range(1000):
        log.append({"n": n})

    # Whole internal nodes of 100 entries are dropped at a time.
    assert 100 <= client.xlen(log.key) <= 300
    client.close()
