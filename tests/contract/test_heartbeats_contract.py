"""What every heartbeat store promises: the newest beat of any worker, shared, forgettable.

Each test runs against the file store and the Redis store; the Redis
store's time to live is tested beside them.
"""

from __future__ import annotations

import time

import pytest

from filestore.heartbeats import FileHeartbeats
from redisstore import connect
from redisstore.heartbeats import RedisHeartbeats
from tests.worker_harness import wait_for

START = 1_700_000_000.0


@pytest.fixture
def make_store(backend, request, tmp_path):
    """Opens the test store; each call is a new client of the same stored heartbeats."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    clients = []

    def make():
        if url is None:
            (tmp_path / "tmp").mkdir(exist_ok=True)
            return FileHeartbeats(tmp_path / "worker", tmp_path / "tmp")
        client = connect(url)
        clients.append(client)
        return RedisHeartbeats(client)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def store(make_store):
    return make_store()


def test_no_worker_has_beaten_yet(store):
    assert store.latest() is None


def test_the_newest_beat_of_any_worker_counts(make_store):
    make_store().beat("host-a-1", {"at": START + 5, "host": "host-a"})
    make_store().beat("host-b-1", {"at": START + 9, "host": "host-b"})
    make_store().beat("host-a-2", {"at": START + 7, "host": "host-a"})

    assert make_store().latest() == {"at": START + 9, "host": "host-b"}


def test_beats_lists_the_last_beat_of_every_worker(make_store):
    assert make_store().beats() == []
    make_store().beat("host-a-1", {"at": START + 5, "owner": "a"})
    make_store().beat("host-b-1", {"at": START + 9, "owner": "b"})
    make_store().beat("host-a-1", {"at": START + 6, "owner": "a"})

    beats = sorted(make_store().beats(), key=lambda beat: beat["owner"])
    assert beats == [{"at": START + 6, "owner": "a"}, {"at": START + 9, "owner": "b"}]

    make_store().remove("host-a-1")
    assert make_store().beats() == [{"at": START + 9, "owner": "b"}]


def test_a_beat_replaces_the_workers_last_one(store):
    store.beat("host-a-1", {"at": START, "workers": 2})
    store.beat("host-b-1", {"at": START + 1})

    store.beat("host-a-1", {"at": START + 2, "workers": 3})

    assert store.latest() == {"at": START + 2, "workers": 3}
    store.remove("host-a-1")
    assert store.latest() == {"at": START + 1}, "one worker, one heartbeat"


def test_a_worker_that_stops_is_forgotten(make_store):
    store = make_store()
    store.beat("host-a-1", {"at": START})

    store.remove("host-a-1")
    store.remove("host-a-1")  # twice, or never seen: nothing to do

    assert make_store().latest() is None


def test_prune_forgets_workers_silent_since_before_a_time(store):
    now = time.time()
    store.beat("gone-1", {"at": now - 3 * 24 * 3600})
    store.beat("alive-1", {"at": now})

    assert store.prune(before=now - 24 * 3600) == 1

    assert store.latest() == {"at": now}
    store.remove("alive-1")
    assert store.latest() is None


@pytest.mark.parametrize("worker", ["", "../escape", "a/b", "x" * 300])
def test_it_refuses_a_worker_id_that_is_not_a_name(store, worker):
    with pytest.raises(ValueError):
        store.beat(worker, {"at": START})


def test_redis_forgets_a_killed_workers_heartbeat_after_its_time_to_live(redis_url):
    """A killed worker never removes its heartbeat: Redis expires it."""
    client = connect(redis_url)
    try:
        store = RedisHeartbeats(client, ttl_seconds=0.2)
        store.beat("killed-1", {"at": START})
        assert store.latest() == {"at": START}

        wait_for(lambda: store.latest() is None, timeout=5, what="the heartbeat to expire")

        assert client.zcard(store.index) == 0, "its entry in the index goes too"
    finally:
        client.close()
