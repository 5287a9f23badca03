"""What every store of the photo pool promises: each photo once, oldest first, fresh only,
and one gate and one fetch lock for all the processes sharing it.

Each test runs against the file store and the Redis store.
"""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from filestore.photo_pool import FilePhotoPoolStore
from jobs.photos import PhotoPool, RateLimited
from redisstore import connect
from redisstore.photo_pool import RedisPhotoPoolStore
from tests.clocks import FakeClock
from tests.pools import take, take_one

START = 1_700_000_000.0
TTL = 600
# Short for the tests of a holder that dies: Redis frees its lock after this.
LOCK_LEASE = 1.0


@pytest.fixture
def make_store(backend, request, tmp_path):
    """Opens the test store; each call is a new client of the same stored pool."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    clients = []

    def make(*, ttl_seconds: float = TTL):
        if url is None:
            return FilePhotoPoolStore(
                tmp_path / "photos", tmp_path / "tmp", ttl_seconds=ttl_seconds
            )
        client = connect(url)
        clients.append(client)
        return RedisPhotoPoolStore(client, ttl_seconds=ttl_seconds, lock_lease_seconds=LOCK_LEASE)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def store(make_store):
    return make_store()


def photos(*ids: str) -> list[dict]:
    return [
        {"photo_id": photo_id, "urls": {"small": f"https://example.test/{photo_id}"}}
        for photo_id in ids
    ]


def ids(taken: list[dict | None]) -> list[str | None]:
    return [None if photo is None else photo["photo_id"] for photo in taken]


# -- photos ---------------------------------------------------------------------


def test_an_empty_pool_has_nothing_to_take(store):
    assert take_one(store, START) is None
    assert store.size(START) == 0


def test_it_hands_out_the_oldest_photos_first_and_each_once(make_store):
    store, other = make_store(), make_store()
    store.add(photos("old-1", "old-2", "old-3"), START)
    store.add(photos("new-1"), START + 1)

    taken = [take_one(store, START + 2), take_one(other, START + 2), take_one(store, START + 2)]
    taken += [take_one(other, START + 2), take_one(store, START + 2)]

    assert ids(taken) == ["old-1", "old-2", "old-3", "new-1", None]


def test_it_hands_out_several_photos_at_once_oldest_first(make_store):
    store = make_store()
    store.add(photos("old-1", "old-2"), START)
    store.add(photos("new-1", "new-2"), START + 1)

    first = store.take_many(3, START + 2)
    rest = make_store().take_many(3, START + 2)

    assert ids(first) == ["old-1", "old-2", "new-1"]
    assert ids(rest) == ["new-2"]
    assert store.take_many(3, START + 2) == []


def test_claims_left_for_the_caller_to_flush_are_claims_all_the_same(make_store):
    store = make_store()
    store.add(photos("a", "b", "c"), START)

    first = store.take_many(2, START + 1, flush=False)
    rest = make_store().take_many(3, START + 1)

    assert ids(first) == ["a", "b"]
    assert ids(rest) == ["c"]
    # What the caller flushes: the pool's directory on files, nothing on Redis.
    assert all(os.path.isdir(path) for path in store.claim_paths())


def test_a_photo_comes_back_whole(store):
    [photo] = photos("a")

    store.add([photo], START)

    assert take_one(store, START) == photo


def test_it_keeps_photos_for_its_time_to_live(store):
    store.add(photos("a", "b"), START)

    assert store.size(START + TTL - 1) == 2
    assert store.size(START + TTL) == 0
    assert take_one(store, START + TTL) is None


def test_expired_photos_are_dropped_and_fresh_ones_still_served(store):
    store.add(photos("old"), START)
    store.add(photos("fresh"), START + TTL - 10)

    assert ids([take_one(store, START + TTL)]) == ["fresh"]
    assert store.size(START) == 0  # the expired one is gone, not just skipped


def test_size_counts_what_other_clients_added(make_store):
    make_store().add(photos("a", "b", "c"), START)

    store = make_store()
    assert store.size(START) == 3
    take_one(store, START)
    assert make_store().size(START) == 2


def test_clear_discards_every_photo(store):
    store.add(photos("a", "b"), START)
    store.add(photos("c"), START + 1)

    assert store.clear() == 3
    assert take_one(store, START + 1) is None
    assert store.clear() == 0


def _take_all(make_store, start, results) -> None:
    store = make_store()
    start.wait()
    taken = []
    # One at a time and several at once, mixed, as single jobs and batches take them.
    while batch := store.take_many(1 + len(taken) % 5, START):
        taken += [photo["photo_id"] for photo in batch]
    results.put(taken)


def test_processes_taking_at_once_never_get_the_same_photo(make_store):
    make_store().add(photos(*(f"p{i}" for i in range(300))), START)
    fork = multiprocessing.get_context("fork")
    start, results = fork.Barrier(4), fork.Queue()
    takers = [fork.Process(target=_take_all, args=(make_store, start, results)) for _ in range(4)]
    for taker in takers:
        taker.start()
    taken = [results.get(timeout=30) for _ in takers]
    for taker in takers:
        taker.join(timeout=30)

    every = [photo_id for part in taken for photo_id in part]
    assert sorted(every) == sorted(f"p{i}" for i in range(300))


# -- the gate and the fetch lock ----------------------------------------------------


def test_the_gate_state_starts_empty_and_is_shared(make_store):
    store = make_store()
    assert store.read_gate() == {}

    with store.fetch_lock():
        store.write_gate({"strikes": 2, "blocked_until": START + 30, "reason": "rate_limited"})

    assert make_store().read_gate() == {
        "strikes": 2,
        "blocked_until": START + 30,
        "reason": "rate_limited",
    }


def test_a_gate_write_replaces_the_whole_state(store):
    with store.fetch_lock():
        store.write_gate({"strikes": 2, "message": "slow down"})
        store.write_gate({"strikes": 0})

    assert store.read_gate() == {"strikes": 0}


def _hold_lock(make_store, inside, overlaps, entered, count: int) -> None:
    store = make_store()
    for _ in range(count):
        with store.fetch_lock():
            with inside.get_lock():
                inside.value += 1
                overlaps.value += inside.value > 1
                entered.value += 1
            # Long enough for another holder to show up if the lock let it in.
            time.sleep(0.002)
            with inside.get_lock():
                inside.value -= 1


def test_one_process_at_a_time_holds_the_fetch_lock(make_store):
    fork = multiprocessing.get_context("fork")
    inside, overlaps, entered = fork.Value("i", 0), fork.Value("i", 0), fork.Value("i", 0)
    holders = [
        fork.Process(target=_hold_lock, args=(make_store, inside, overlaps, entered, 20))
        for _ in range(4)
    ]
    for holder in holders:
        holder.start()
    for holder in holders:
        holder.join(timeout=60)
        assert holder.exitcode == 0

    assert entered.value == 80
    assert overlaps.value == 0


def _die_holding_the_lock(make_store, held) -> None:
    store = make_store()
    lock = store.fetch_lock()
    lock.__enter__()
    held.set()
    os._exit(0)  # no release: the process is gone, as after kill -9


def test_a_holder_that_dies_frees_the_fetch_lock(make_store):
    fork = multiprocessing.get_context("fork")
    held = fork.Event()
    holder = fork.Process(target=_die_holding_the_lock, args=(make_store, held))
    holder.start()
    assert held.wait(timeout=10)
    holder.join(timeout=10)

    started = time.monotonic()
    with make_store().fetch_lock():
        waited = time.monotonic() - started

    # At once for a file lock (the kernel drops it), within a lease for Redis.
    assert waited < LOCK_LEASE + 2


def test_a_lock_held_longer_than_its_lease_stays_held(make_store):
    """A slow fetch keeps the lock: its holder renews the lease while it works."""
    fork = multiprocessing.get_context("fork")
    held = fork.Event()
    # Started before the lock is taken: a child forked while it is held would
    # share the parent's flock.
    probe = fork.Process(target=_lock_once_held, args=(make_store, held))
    probe.start()
    with make_store().fetch_lock():
        held.set()
        # Two leases of the Redis store: a lock that expired would let the probe in.
        probe.join(timeout=LOCK_LEASE * 2)
        assert probe.is_alive(), "another process took the lock while it was held"
    probe.join(timeout=10)
    assert probe.exitcode == 0


def _lock_once_held(make_store, held) -> None:
    store = make_store()
    held.wait(timeout=10)
    with store.fetch_lock():
        pass


# -- the pool on each store ------------------------------------------------------------


class Source:
    def __init__(self) -> None:
        self.calls = 0
        self.refuse = False

    def __call__(self, count: int) -> list[dict]:
        self.calls += 1
        if self.refuse:
            raise RateLimited("test_rate_limited", "Rate limit exceeded.")
        return photos(*(f"batch{self.calls}-{i}" for i in range(count)))


def test_one_fetch_serves_every_client_and_a_rate_limit_stops_them_all(make_store):
    clock = FakeClock(START)
    pools = [PhotoPool(make_store(), clock=clock, jitter=0) for _ in range(3)]
    source = Source()

    taken = [take(pools[n % 3], source, batch_size=5)["photo_id"] for n in range(5)]

    assert source.calls == 1
    assert len(set(taken)) == 5
    source.refuse = True
    with pytest.raises(RateLimited):
        take(pools[0], source, batch_size=5)
    for pool in pools[1:]:
        with pytest.raises(RateLimited) as refused:
            take(pool, source, batch_size=5)
        assert refused.value.retry_after == pytest.approx(15)
    assert source.calls == 2, "the gate, not the source, refused the others"
