"""The shared photo pool: one batch serves many jobs, each photo goes to one job, and
a rate-limited source is probed by one caller at growing intervals."""

from __future__ import annotations

import itertools
import json
import math
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from filestore import photo_pool as photo_pool_module
from filestore.photo_pool import FilePhotoPoolStore
from jobs.photos import (
    BATCH_SIZE,
    KEEP_UNUSED_SECONDS,
    PermanentPhotoError,
    PhotoBatch,
    PhotoPool,
    RateLimited,
    TransientPhotoError,
    UnsplashSource,
)
from tests.clocks import FakeClock
from tests.concurrency import said_by_a_child
from tests.fake_unsplash import FakeUnsplash
from tests.pools import take, take_one

START = 1_700_000_000.0
_ids = itertools.count()


class Source:
    """A fetch that makes new photos, or raises what it is told to, and counts its calls."""

    def __init__(self, *, remaining: int | None = None) -> None:
        self.calls = 0
        self.remaining = remaining
        self.errors: list[Exception] = []
        self.ids: list[str] | None = None  # ids of the next batch, when a test wants them
        self.batches: list[list[str]] = []

    def __call__(self, count: int) -> PhotoBatch:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        ids = self.ids or [f"photo-{next(_ids)}" for _ in range(count)]
        self.ids = None
        self.batches.append(ids)
        return PhotoBatch(
            [{"photo_id": photo_id, "source": "test"} for photo_id in ids],
            source="test",
            remaining=self.remaining,
            limit=50 if self.remaining is not None else None,
        )


@pytest.fixture
def clock():
    return FakeClock(START)


def make_pool(
    tmp_path: Path, clock=time.time, *, ttl_seconds: float = KEEP_UNUSED_SECONDS, **options
) -> PhotoPool:
    store = FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=ttl_seconds)
    return PhotoPool(store, clock=clock, **options)


@pytest.fixture
def pool(tmp_path, clock):
    return make_pool(tmp_path, clock, jitter=0)


@pytest.fixture
def fetch():
    return Source()


def take_ids(pool: PhotoPool, fetch, times: int, **options) -> list[str]:
    return [take(pool, fetch, **options)["photo_id"] for _ in range(times)]


# --- The store: what any backend of the pool keeps ---


@pytest.fixture
def store(tmp_path):
    return FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=600)


def test_the_store_hands_out_the_oldest_photos_first_and_each_once(tmp_path, store):
    store.add([{"photo_id": "old-1"}, {"photo_id": "old-2"}], START)
    store.add([{"photo_id": "new-1"}], START + 1)
    other = FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=600)

    taken = [take_one(store, START + 2), take_one(other, START + 2), take_one(store, START + 2)]

    assert [photo["photo_id"] for photo in taken] == ["old-1", "old-2", "new-1"]
    assert take_one(store, START + 2) is None
    assert other.size(START + 2) == 0


def test_the_store_keeps_photos_for_its_time_to_live(store):
    store.add([{"photo_id": "a"}, {"photo_id": "b"}], START)

    assert store.size(START + 599) == 2
    assert store.size(START + 600) == 0
    assert take_one(store, START + 600) is None


def test_the_gate_state_is_shared_and_starts_empty(tmp_path, store):
    assert store.read_gate() == {}

    with store.fetch_lock():
        store.write_gate({"strikes": 2, "blocked_until": START + 30})

    other = FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=600)
    assert other.read_gate() == {"strikes": 2, "blocked_until": START + 30}


# --- Sharing one batch ---


def test_one_batch_serves_many_takes(pool, fetch):
    ids = take_ids(pool, fetch, BATCH_SIZE)

    assert fetch.calls == 1
    assert len(set(ids)) == BATCH_SIZE
    assert pool.size() == 0

    take(pool, fetch)
    assert fetch.calls == 2


def test_it_asks_for_the_batch_size(pool):
    asked = []

    def fetch(count):
        asked.append(count)
        return [{"photo_id": f"p{i}"} for i in range(count)]

    take(pool, fetch, batch_size=7)

    assert asked == [7]
    assert pool.size() == 6


def test_the_rest_of_a_batch_is_kept_on_disk_for_other_processes(tmp_path, clock, fetch):
    first = take(make_pool(tmp_path, clock), fetch)

    other = make_pool(tmp_path, clock)
    ids = take_ids(other, fetch, BATCH_SIZE - 1)

    assert fetch.calls == 1
    assert first["photo_id"] not in ids
    assert len(set(ids)) == BATCH_SIZE - 1
    entries = sorted((tmp_path / "photos" / "pool").iterdir())
    assert entries == []
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_entry_holds_the_photo_and_its_fetch_time(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock)
    take(pool, fetch, batch_size=2)

    [entry] = (tmp_path / "photos" / "pool").iterdir()
    document = json.loads(entry.read_bytes())
    assert entry.name.startswith(f"{int(START * 1000):013d}-")
    assert entry.name.endswith("-1.json")  # the rest of the batch: one photo
    assert document["fetched_at"] == START
    [photo] = document["photos"]
    assert photo["photo_id"].startswith("photo-")


def test_a_batch_with_repeats_hands_each_photo_out_once(pool, fetch):
    fetch.ids = ["a", "b", "a", "c", "b", "a"]

    ids = take_ids(pool, fetch, 3)

    assert sorted(ids) == ["a", "b", "c"]
    assert fetch.calls == 1
    assert pool.size() == 0


def test_an_empty_batch_is_a_transient_error(pool):
    with pytest.raises(TransientPhotoError):
        take(pool, lambda count: [])


def test_an_unreadable_entry_is_skipped(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock)
    take(pool, fetch, batch_size=3)
    # An older entry (its name sorts first) that cannot be read.
    (tmp_path / "photos" / "pool" / "0000000000001-0badf00d-000-5.json").write_text("{not json")
    (tmp_path / "photos" / "pool" / "notes.txt").write_text("not an entry")

    photo = take(pool, fetch)

    assert photo["photo_id"].startswith("photo-")
    assert fetch.calls == 1
    assert pool.size() == 1


def test_clear_empties_the_pool(pool, fetch):
    take(pool, fetch)

    assert pool.clear() == BATCH_SIZE - 1
    assert pool.size() == 0
    take(pool, fetch)
    assert fetch.calls == 2


# --- Freshness ---


def test_entries_are_served_until_the_ttl(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock, ttl_seconds=600)
    take(pool, fetch)

    clock.advance(599)
    assert pool.size() == BATCH_SIZE - 1
    take(pool, fetch)

    assert fetch.calls == 1


def test_expired_entries_are_discarded_not_handed_out(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock, ttl_seconds=600)
    take(pool, fetch)

    clock.advance(600)
    assert pool.size() == 0
    later = take_ids(pool, fetch, BATCH_SIZE)

    assert fetch.calls == 2
    assert sorted(later) == sorted(fetch.batches[1])
    assert not set(fetch.batches[0]) & set(later)
    assert pool.size() == 0
    assert list((tmp_path / "photos" / "pool").iterdir()) == []


# --- The rate-limit gate ---


def rate_limited(**options) -> RateLimited:
    return RateLimited("test_rate_limited", "The test source is out of requests.", **options)


def test_a_rate_limit_closes_the_gate_for_every_caller(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock, jitter=0)
    fetch.errors = [rate_limited()]

    with pytest.raises(RateLimited) as first:
        take(pool, fetch)
    assert first.value.retry_after == 15
    assert first.value.code == "test_rate_limited"

    clock.advance(5)
    other = make_pool(tmp_path, clock, jitter=0)  # another process
    with pytest.raises(RateLimited) as second:
        take(other, fetch)

    assert second.value.retry_after == 10
    assert second.value.code == "test_rate_limited"
    assert second.value.message == "The test source is out of requests."
    assert fetch.calls == 1


def test_the_probe_interval_grows_to_a_cap(pool, clock, fetch):
    waits = []
    for _ in range(8):
        fetch.errors = [rate_limited()]
        with pytest.raises(RateLimited) as caught:
            take(pool, fetch)
        waits.append(caught.value.retry_after)
        clock.advance(caught.value.retry_after)

    assert waits == [15, 30, 60, 120, 240, 300, 300, 300]
    assert fetch.calls == 8


def test_the_probe_interval_has_jitter(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock, jitter=0.2)
    waits = set()
    for _ in range(10):
        pool.store.write_gate({})  # back to the first interval
        fetch.errors = [rate_limited()]
        with pytest.raises(RateLimited) as caught:
            take(pool, fetch)
        waits.add(caught.value.retry_after)
        assert 15 <= caught.value.retry_after <= 18

    assert len(waits) > 1


def test_one_caller_probes_when_the_gate_opens(pool, clock, fetch):
    fetch.errors = [rate_limited()]
    with pytest.raises(RateLimited):
        take(pool, fetch)

    clock.advance(15)
    fetch.errors = [rate_limited()]
    with pytest.raises(RateLimited) as probe:
        take(pool, fetch)
    with pytest.raises(RateLimited) as next_caller:
        take(pool, fetch)

    assert fetch.calls == 2
    assert probe.value.retry_after == 30
    assert next_caller.value.retry_after == 30


def test_concurrent_callers_send_one_probe(tmp_path, clock):
    calls = []

    def slow_rate_limited_fetch(count):
        calls.append(count)
        time.sleep(0.1)  # keeps the lock held while the other threads arrive
        raise rate_limited()

    pool = make_pool(tmp_path, clock, jitter=0)
    outcomes = []

    def take_in_thread():
        try:
            take(make_pool(tmp_path, clock, jitter=0), slow_rate_limited_fetch)
        except RateLimited as exc:
            outcomes.append(exc.retry_after)

    threads = [threading.Thread(target=take_in_thread) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(calls) == 1
    assert outcomes == [15] * 8
    assert pool.rate_limit_state()["blocked"]


def test_a_success_resets_the_interval(pool, clock, fetch):
    for _ in range(3):
        fetch.errors = [rate_limited()]
        with pytest.raises(RateLimited) as caught:
            take(pool, fetch)
        clock.advance(caught.value.retry_after)

    take(pool, fetch)
    assert pool.rate_limit_state()["blocked"] is False
    pool.clear()

    fetch.errors = [rate_limited()]
    with pytest.raises(RateLimited) as caught:
        take(pool, fetch)
    assert caught.value.retry_after == 15


def test_a_longer_retry_after_from_the_source_wins(pool, fetch):
    fetch.errors = [rate_limited(retry_after=120)]

    with pytest.raises(RateLimited) as caught:
        take(pool, fetch)

    assert caught.value.retry_after == 120


def test_pooled_photos_are_served_while_the_gate_is_closed(pool, clock, fetch):
    take(pool, fetch)
    pool.gate.close_for_rate_limit(pool.gate.read(), "test_rate_limited", "Out of requests.")

    ids = take_ids(pool, fetch, BATCH_SIZE - 1)

    assert len(set(ids)) == BATCH_SIZE - 1
    with pytest.raises(RateLimited):
        take(pool, fetch)
    assert fetch.calls == 1


def test_a_spent_budget_gates_the_next_fetch(pool, clock):
    fetch = Source(remaining=0)

    take_ids(pool, fetch, BATCH_SIZE)
    with pytest.raises(RateLimited) as caught:
        take(pool, fetch)

    assert fetch.calls == 1
    assert caught.value.code == "test_rate_limited"
    assert caught.value.retry_after == 15


def test_rate_limit_state_reports_the_budget(pool, clock):
    assert pool.rate_limit_state() == {
        "remaining": None,
        "limit": None,
        "observed_at": None,
        "blocked": False,
        "blocked_until": None,
        "retry_after": None,
        "reason": None,
        "code": None,
        "message": None,
        "consecutive_rate_limits": 0,
    }

    take(pool, Source(remaining=41))
    state = pool.rate_limit_state()
    assert (state["remaining"], state["limit"], state["observed_at"]) == (41, 50, START)
    assert state["blocked"] is False

    pool.clear()
    fetch = Source()
    fetch.errors = [rate_limited()]
    with pytest.raises(RateLimited):
        take(pool, fetch)
    clock.advance(5)
    state = pool.rate_limit_state()
    assert state["remaining"] == 0
    assert state["blocked"] is True
    assert state["blocked_until"] == START + 15
    assert state["retry_after"] == 10
    assert state["reason"] == "rate_limited"
    assert state["consecutive_rate_limits"] == 1


def test_an_open_gate_notes_the_budget_at_most_once_a_second(pool, clock, monkeypatch):
    writes = []
    write_gate = pool.store.write_gate
    monkeypatch.setattr(
        pool.store, "write_gate", lambda state: (writes.append(state), write_gate(state))
    )

    pool.refill(Source(remaining=41), want=1)
    clock.advance(0.5)
    pool.refill(Source(remaining=40), want=2 * BATCH_SIZE)  # younger than a second: not written
    assert [state["remaining"] for state in writes] == [41]
    assert pool.rate_limit_state()["remaining"] == 41

    clock.advance(0.5)
    pool.refill(Source(remaining=39), want=3 * BATCH_SIZE)
    assert [state["remaining"] for state in writes] == [41, 39]

    # Spending the budget closes the gate, however recent the note.
    pool.refill(Source(remaining=0), want=4 * BATCH_SIZE)
    assert writes[-1]["remaining"] == 0
    assert pool.rate_limit_state()["blocked"] is True


def test_an_unreadable_state_file_leaves_the_gate_open(tmp_path, clock, fetch):
    pool = make_pool(tmp_path, clock)
    (tmp_path / "photos" / "rate_limit.json").write_text("{broken")

    take(pool, fetch)

    assert fetch.calls == 1


def test_other_transient_failures_hold_callers_back_briefly(pool, clock, fetch):
    fetch.errors = [TransientPhotoError("test_unavailable", "The test source is down.")]
    with pytest.raises(TransientPhotoError) as first:
        take(pool, fetch)
    assert first.value.retry_after == 5

    clock.advance(2)
    with pytest.raises(TransientPhotoError) as second:
        take(pool, fetch)
    assert not isinstance(second.value, RateLimited)
    assert second.value.code == "test_unavailable"
    assert second.value.retry_after == 3
    assert fetch.calls == 1

    clock.advance(3)
    take(pool, fetch)
    assert fetch.calls == 2


def test_a_permanent_failure_is_not_remembered(pool, fetch):
    fetch.errors = [
        PermanentPhotoError("test_unauthorized", "Bad key."),
        PermanentPhotoError("test_unauthorized", "Bad key."),
    ]
    for _ in range(2):
        with pytest.raises(PermanentPhotoError):
            take(pool, fetch)

    take(pool, fetch)
    assert fetch.calls == 3


# --- With the real client and the fake Unsplash ---


def test_a_budget_of_50_calls_completes_500_takes(tmp_path, clock):
    with FakeUnsplash(remaining=50) as fake:
        source = UnsplashSource(api_url=fake.url, access_key="k", app_name="jobs_test")
        pool = make_pool(tmp_path, clock)

        ids = take_ids(pool, source.fetch_batch, 500)

        assert len(set(ids)) == 500
        assert fake.calls == math.ceil(500 / BATCH_SIZE)
        assert fake.remaining == 50 - fake.calls
        # The clock stood still: the open gate noted the budget of its first
        # call only (RateLimitGate.NOTE_SECONDS).
        assert pool.rate_limit_state()["remaining"] == 49


def test_a_spent_budget_is_probed_and_recovers(tmp_path, clock):
    with FakeUnsplash(remaining=2) as fake:
        source = UnsplashSource(api_url=fake.url, access_key="k", app_name="jobs_test")
        pool = make_pool(tmp_path, clock, jitter=0)

        take_ids(pool, source.fetch_batch, 2 * BATCH_SIZE)
        with pytest.raises(RateLimited) as gated:
            take(pool, source.fetch_batch)
        assert gated.value.retry_after == 15
        assert fake.calls == 2  # the second answer said remaining 0: no third call

        clock.advance(15)
        with pytest.raises(RateLimited) as probed:
            take(pool, source.fetch_batch)
        assert probed.value.code == "unsplash_rate_limited"
        assert probed.value.retry_after == 30
        assert fake.calls == 3

        fake.remaining = 50  # the hourly window starts over
        clock.advance(30)
        take(pool, source.fetch_batch)
        assert fake.calls == 4
        assert pool.rate_limit_state()["blocked"] is False
        assert pool.rate_limit_state()["consecutive_rate_limits"] == 0


def _assert_batches_shared(calls: int, *, taken: int, left: int) -> None:
    """One fetch serves many takes, and no fetched photo is lost.

    A caller that finds the pool empty while another puts back the rest of
    a batch it split may fetch the next batch a moment early (a batch is one
    entry, see filestore.photo_pool); its photos then wait in the pool.
    """
    assert calls <= math.ceil(taken / BATCH_SIZE) + 1
    assert calls * BATCH_SIZE == taken + left


def test_threads_share_one_pool(tmp_path):
    with FakeUnsplash() as fake:
        taken: list[str] = []

        def work():
            source = UnsplashSource(api_url=fake.url, access_key="k", app_name="jobs_test")
            pool = make_pool(tmp_path)
            taken.extend(take_ids(pool, source.fetch_batch, 25))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert len(taken) == 200
        assert len(set(taken)) == 200
        _assert_batches_shared(fake.calls, taken=200, left=make_pool(tmp_path).size())


def test_a_name_in_the_pool_that_cannot_be_read_does_not_hold_a_take(tmp_path, store):
    store.add([{"photo_id": "a"}], START)
    (store.entries_dir / f"{round(START * 1000) - 1:013d}-0badf00d-000-5.json").symlink_to(
        tmp_path / "nowhere"
    )
    taken: list[list[dict]] = []
    taker = threading.Thread(
        target=lambda: taken.append(store.take_many(2, START + 1)), daemon=True
    )

    taker.start()
    taker.join(timeout=10)

    assert not taker.is_alive()
    assert [[photo["photo_id"] for photo in photos] for photos in taken] == [["a"]]


def test_a_take_waits_for_a_batch_another_thread_is_splitting(tmp_path, store, monkeypatch):
    """Between a split's claim and the write-back of its rest the pool looks
    empty; another thread looking then waits for the rest instead of coming
    back short (and fetching a batch early)."""
    store.add([{"photo_id": "a"}, {"photo_id": "b"}], START)
    other = FilePhotoPoolStore(tmp_path / "photos", tmp_path / "tmp", ttl_seconds=600)
    other_listed = threading.Event()
    listed = FilePhotoPoolStore._entries

    def listing(self):
        entries = listed(self)
        if self is other:
            other_listed.set()
        return entries

    monkeypatch.setattr(FilePhotoPoolStore, "_entries", listing)
    taken_by_other: list[list[dict]] = []
    looker = threading.Thread(target=lambda: taken_by_other.append(other.take_many(1, START + 1)))
    claim = photo_pool_module.retire

    def claim_then_let_the_other_look(path, **options):
        won = claim(path, **options)
        if threading.current_thread() is looker:
            return won
        looker.start()
        assert other_listed.wait(timeout=10)  # it looked while the pool held no entry
        return won

    monkeypatch.setattr(photo_pool_module, "retire", claim_then_let_the_other_look)

    first = store.take_many(1, START + 1)
    looker.join(timeout=10)

    assert [photo["photo_id"] for photo in first] == ["a"]
    assert [[photo["photo_id"] for photo in taken] for taken in taken_by_other] == [["b"]]
    assert store.size(START + 1) == 0


def test_a_take_waits_for_the_splits_begun_before_it_not_for_later_ones():
    splits = photo_pool_module._Splits()
    first = splits.splitting("pool")
    first.__enter__()
    answers: list[bool | None] = []
    waiter = threading.Thread(
        target=lambda: answers.append(splits.waited_for("pool", None, timeout=30)), daemon=True
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while not splits._changed._waiters and time.monotonic() < deadline:
        time.sleep(0.001)  # until the waiter waits (threading.Condition's own list)
    later = splits.splitting("pool")
    later.__enter__()

    first.__exit__(None, None, None)
    waiter.join(timeout=10)

    assert answers == [True]  # while the later split is still under way
    later.__exit__(None, None, None)
    assert splits.mark("pool") is not None
    assert splits.waited_for("pool", splits.mark("pool"), timeout=30) is None  # nothing since


def test_a_child_forked_during_a_split_takes_photos(tmp_path, store, monkeypatch):
    store.add([{"photo_id": "a"}, {"photo_id": "b"}, {"photo_id": "c"}], START)
    claim = photo_pool_module.retire
    said: list[str] = []

    def claim_then_fork(path, **options):
        won = claim(path, **options)
        if not said:  # forked while this split holds its place
            said.append(said_by_a_child(lambda: _split_seen_and_taken(store))[1])
        return won

    monkeypatch.setattr(photo_pool_module, "retire", claim_then_fork)

    first = store.take_many(1, START + 1)

    assert [photo["photo_id"] for photo in first] == ["a"]
    # The child finds no split under way (it goes on in the parent only, so
    # it would wait for nothing), and no entry: the rest was not in place yet.
    assert said == ["no split under way; took []"]


def _split_seen_and_taken(store: FilePhotoPoolStore) -> str:
    under_way = photo_pool_module._splits.mark(store._key) is None
    taken = [photo["photo_id"] for photo in store.take_many(1, START + 1)]
    return f"{'a split under way' if under_way else 'no split under way'}; took {taken}"


def _take_in_process(root: str, api_url: str, times: int, start, out: str) -> None:
    source = UnsplashSource(api_url=api_url, access_key="k", app_name="jobs_test")
    pool = make_pool(Path(root))
    start.wait(timeout=30)
    ids = take_ids(pool, source.fetch_batch, times)
    Path(out).write_text(json.dumps(ids))


def test_processes_share_one_pool_and_never_share_a_photo(tmp_path):
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    with FakeUnsplash() as fake:
        outputs = [tmp_path / f"taken-{n}.json" for n in range(4)]
        processes = [
            context.Process(
                target=_take_in_process, args=(str(tmp_path), fake.url, 50, start, str(out))
            )
            for out in outputs
        ]
        for process in processes:
            process.start()
        start.set()
        for process in processes:
            process.join(timeout=60)

        assert [process.exitcode for process in processes] == [0, 0, 0, 0]
        taken = [photo_id for out in outputs for photo_id in json.loads(out.read_text())]
        assert len(taken) == 200
        assert len(set(taken)) == 200
        _assert_batches_shared(fake.calls, taken=200, left=make_pool(tmp_path).size())


# --- Fetching ahead ---


def test_it_fetches_ahead_until_the_wanted_photos_wait(pool, fetch):
    calls = pool.refill(fetch, want=BATCH_SIZE + BATCH_SIZE // 2)

    assert calls == 2
    assert [len(batch) for batch in fetch.batches] == [BATCH_SIZE, BATCH_SIZE]
    assert pool.size() == 2 * BATCH_SIZE
    taken = take_ids(pool, fetch, 2 * BATCH_SIZE)
    assert len(set(taken)) == 2 * BATCH_SIZE
    assert fetch.calls == 2  # every take was served by what was fetched ahead


def test_fetching_ahead_counts_the_pool_once(pool, fetch, monkeypatch):
    pool.refill(fetch, want=10)
    counts = []
    real_size = pool.store.size
    monkeypatch.setattr(pool.store, "size", lambda now: counts.append(now) or real_size(now))

    assert pool.refill(fetch, want=3 * BATCH_SIZE + 1) == 3
    # The pool held one batch, three more were added: counted before the first call only.
    assert len(counts) == 1
    assert pool.size() == 4 * BATCH_SIZE


def test_it_does_not_fetch_ahead_when_enough_photos_wait(pool, fetch):
    pool.refill(fetch, want=10)

    assert pool.refill(fetch, want=BATCH_SIZE) == 0
    assert fetch.calls == 1


def test_it_does_not_fetch_ahead_through_a_closed_gate(pool, fetch):
    fetch.errors = [rate_limited()]

    assert pool.refill(fetch, want=100) == 1  # the call that closed it
    assert pool.refill(fetch, want=100) == 0
    assert fetch.calls == 1
    assert pool.rate_limit_state()["blocked"]
