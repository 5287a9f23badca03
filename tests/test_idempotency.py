"""Idempotency keys: a retried request gets the first answer, never a second job."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time

import pytest

from filestore import atomic
from filestore.idempotency import IdempotencyStore
from filestore.ids import new_id
from jobs import services, store
from jobs.errors import IdempotencyKeyInProgress
from tests.clocks import FakeClock

# Django's test client, then the web server's gateway (tests/api_clients.py).
pytestmark = pytest.mark.both_servers

T0 = 1_790_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def keys(data_dir, clock) -> IdempotencyStore:
    return IdempotencyStore(data_dir / "idempotency", data_dir / "tmp", stale_after=30, clock=clock)


# --- the store ---------------------------------------------------------------------


def test_it_claims_a_new_key_for_the_job_it_names(keys):
    job_id = new_id()

    claim = keys.begin("key-1", fingerprint="body-a", job_id=job_id)

    assert claim.outcome == "claimed"
    assert claim.record["job_id"] == job_id
    assert keys.count() == 1


def test_it_replays_the_answer_of_a_finished_request(keys):
    first = keys.begin("key-1", fingerprint="body-a", job_id=new_id())
    keys.complete("key-1", first.record, {"job": {"id": first.record["job_id"]}})

    again = keys.begin("key-1", fingerprint="body-a", job_id=new_id())

    assert again.outcome == "replay"
    assert again.record["response"] == {"job": {"id": first.record["job_id"]}}


def test_it_tells_a_request_still_in_progress(keys, clock):
    first = keys.begin("key-1", fingerprint="body-a", job_id=new_id())
    clock.now += 29

    again = keys.begin("key-1", fingerprint="body-a", job_id=new_id())

    assert again.outcome == "in_progress"
    assert again.record["job_id"] == first.record["job_id"]


def test_it_refuses_a_key_reused_with_another_body(keys):
    first = keys.begin("key-1", fingerprint="body-a", job_id=new_id())
    assert keys.begin("key-1", fingerprint="body-b", job_id=new_id()).outcome == "mismatch"

    keys.complete("key-1", first.record, {"job": {}})

    assert keys.begin("key-1", fingerprint="body-b", job_id=new_id()).outcome == "mismatch"


def test_it_hands_a_stale_claim_over_with_its_reserved_job_id(keys, clock):
    first = keys.begin("key-1", fingerprint="body-a", job_id=new_id())
    clock.now += 31

    takeover = keys.begin("key-1", fingerprint="body-a", job_id=new_id())

    assert takeover.outcome == "stale"
    assert takeover.record["job_id"] == first.record["job_id"]


def test_it_hands_a_stale_claim_to_one_retry_only(keys, clock):
    first = keys.begin("k", fingerprint="f", job_id="A" * 26)
    clock.now += 31

    taker = keys.begin("k", fingerprint="f", job_id="B" * 26)
    other = keys.begin("k", fingerprint="f", job_id="C" * 26)

    assert taker.outcome == "stale"
    assert taker.record["job_id"] == first.record["job_id"]
    assert other.outcome == "in_progress"
    assert sorted(p.name for p in keys.path_for("k").parent.iterdir()) == [keys.path_for("k").name]


def test_it_lets_a_released_key_be_claimed_again(keys):
    keys.begin("key-1", fingerprint="body-a", job_id=new_id())
    keys.release("key-1")

    assert keys.begin("key-1", fingerprint="body-b", job_id=new_id()).outcome == "claimed"


def test_it_keeps_keys_apart(keys):
    for key in ("a", "A", "a/b", "../a", "a" * 255):
        assert keys.begin(key, fingerprint="body", job_id=new_id()).outcome == "claimed"

    assert keys.count() == 5
    assert all(keys.path_for(key).parent.parent == keys.root for key in ("../a", "a/b"))


def test_it_prunes_old_keys_and_keeps_young_ones(keys, clock):
    old = keys.begin("old", fingerprint="body", job_id=new_id())
    keys.complete("old", old.record, {"job": {}})
    keys.begin("old-unfinished", fingerprint="body", job_id=new_id())
    clock.now += 3600
    young = keys.begin("young", fingerprint="body", job_id=new_id())
    keys.complete("young", young.record, {"job": {}})
    clock.now += 1000

    removed = keys.prune(older_than=3000)

    assert removed == 2
    assert keys.count() == 1
    assert keys.begin("young", fingerprint="body", job_id=new_id()).outcome == "replay"
    assert keys.begin("old", fingerprint="other", job_id=new_id()).outcome == "claimed"


def test_it_gives_a_key_to_exactly_one_of_many_racing_threads(keys):
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def race() -> None:
        start.wait()
        outcomes.append(keys.begin("key-1", fingerprint="body", job_id=new_id()).outcome)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["claimed"] + ["in_progress"] * 7


def test_it_gives_a_key_pruned_during_a_claim_to_one_request_only(keys, clock, monkeypatch):
    """The old record goes between a request's failed claim and its read, and
    another request claims the key right then: only one of them owns it."""
    keys.begin("key-1", fingerprint="body", job_id=new_id())
    clock.now += 10_000
    read, other, racing = IdempotencyStore._read, [], []

    def read_while_pruned_and_claimed(path):
        if racing:
            return read(path)
        racing.append(True)
        keys.prune(older_than=3600)
        record = read(path)
        other.append(keys.begin("key-1", fingerprint="body", job_id=new_id()))
        return record

    monkeypatch.setattr(IdempotencyStore, "_read", staticmethod(read_while_pruned_and_claimed))
    claim = keys.begin("key-1", fingerprint="body", job_id=new_id())

    assert other[0].outcome == "claimed"
    assert claim.outcome == "in_progress"
    assert claim.record["job_id"] == other[0].record["job_id"]
    assert read(keys.path_for("key-1"))["job_id"] == other[0].record["job_id"]


def test_it_lets_a_request_take_over_an_unreadable_record(keys):
    path = keys.path_for("key-1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00garbage")

    claim = keys.begin("key-1", fingerprint="body", job_id=new_id())

    assert claim.outcome == "claimed"
    assert keys.begin("key-1", fingerprint="body", job_id=new_id()).outcome == "in_progress"


# --- the create service ---------------------------------------------------------------


def _job_ids() -> list[str]:
    return [entry.id for entry in store.repository().entries()]


def _reserved_job_id(key: str) -> str:
    return json.loads(store.idempotency().path_for(key).read_bytes())["job_id"]


def _die_in_child(crash) -> None:
    """Run a create in a child process that dies at the point ``crash`` picks."""
    pid = os.fork()
    if pid == 0:
        try:
            crash()
            services.job_create(delay_seconds=30, idempotency_key="retry-me")
        finally:
            os._exit(3)  # the crash point was never reached
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 17


def _die_at_job_file_link() -> None:
    def hook(step: str, path: str) -> None:
        if step == "link" and f"{os.sep}jobs{os.sep}" in path:
            os._exit(17)

    atomic.hooks.before = hook


def _die_at_enqueue() -> None:
    def die(*args, **kwargs):
        os._exit(17)

    services.enqueue_jobs = die


@pytest.mark.parametrize(
    ("crash", "job_written"),
    [(_die_at_job_file_link, False), (_die_at_enqueue, True)],
    ids=["before the job file", "after the job file"],
)
def test_it_finishes_a_dead_request_with_its_reserved_job(monkeypatch, crash, job_written):
    _die_in_child(crash)
    reserved = _reserved_job_id("retry-me")
    assert _job_ids() == ([reserved] if job_written else [])

    with pytest.raises(IdempotencyKeyInProgress):
        services.job_create(delay_seconds=30, idempotency_key="retry-me")
    keys = store.idempotency()
    monkeypatch.setattr(keys, "clock", lambda: time.time() + keys.stale_after + 1)
    retried = services.job_create(delay_seconds=30, idempotency_key="retry-me")

    assert retried.job["id"] == reserved
    assert _job_ids() == [reserved]
    assert len(store.broker().find(reserved)) == 1
    replayed = services.job_create(delay_seconds=30, idempotency_key="retry-me")
    assert replayed.replayed
    assert replayed.job["id"] == reserved


def _create_with_key(start, results) -> None:
    start.wait()
    try:
        created = services.job_create(delay_seconds=60, idempotency_key="one-key")
        results.put(("created", created.job["id"]))
    except IdempotencyKeyInProgress:
        results.put(("in_progress", None))


def test_it_creates_one_job_for_one_key_sent_from_two_processes():
    fork = multiprocessing.get_context("fork")
    start, results = fork.Barrier(4), fork.Queue()
    workers = [fork.Process(target=_create_with_key, args=(start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    created = {job_id for outcome, job_id in outcomes if outcome == "created"}
    assert len(created) == 1
    assert _job_ids() == list(created)
    assert {outcome for outcome, _ in outcomes} <= {"created", "in_progress"}
