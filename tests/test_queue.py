"""The file queue: delayed visibility, leases, dead letters, sharding, concurrency."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from filestore import atomic
from filestore.queue import FileQueue
from tests.clocks import FakeClock

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
OTHER_JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ1"
START = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def dead_letters() -> list[tuple[str | None, bytes]]:
    return []


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock, dead_letters: list) -> FileQueue:
    return make_queue(
        tmp_path, clock=clock, on_dead=lambda key, payload: dead_letters.append((key, payload))
    )


def make_queue(tmp_path: Path, **options) -> FileQueue:
    options.setdefault("lease_seconds", 30)
    options.setdefault("max_deliveries", 3)
    return FileQueue(tmp_path / "queue" / "test", tmp_path / "tmp", **options)


def payloads(messages: list[tuple[str, bytes]]) -> list[bytes]:
    return [payload for _, payload in messages]


# -- visibility and order -------------------------------------------------------


def test_it_hands_out_a_message_only_at_its_due_time(queue, clock):
    queue.enqueue(b"later", due_at=START + 60)

    clock.advance(59.999)
    assert queue.dequeue(10) == []

    clock.advance(0.001)
    assert payloads(queue.dequeue(10)) == [b"later"]


def test_it_makes_a_message_without_due_time_visible_at_once(queue):
    queue.enqueue("now")

    assert payloads(queue.dequeue(10)) == [b"now"]


def test_it_hands_out_the_oldest_due_first(queue, clock):
    queue.enqueue(b"c", due_at=START - 5)
    queue.enqueue(b"a", due_at=START - 300)
    queue.enqueue(b"future", due_at=START + 5)
    queue.enqueue(b"b", due_at=START - 30)

    assert payloads(queue.dequeue(2)) == [b"a", b"b"]
    assert payloads(queue.dequeue(10)) == [b"c"]


def test_it_hands_out_at_most_limit_messages(queue):
    for n in range(5):
        queue.enqueue(f"m{n}")

    assert len(queue.dequeue(3)) == 3
    assert len(queue.dequeue(3)) == 2
    assert queue.dequeue(3) == []


def test_it_never_hands_out_a_leased_message_again_while_leased(queue, clock):
    queue.enqueue(b"once")
    assert len(queue.dequeue(10)) == 1

    clock.advance(29)
    assert queue.dequeue(10) == []


def test_it_rejects_a_key_that_is_not_a_job_id(queue):
    with pytest.raises(ValueError):
        queue.enqueue(b"x", key="../../etc")


# -- leases -----------------------------------------------------------------------


def test_it_delivers_again_when_the_lease_runs_out(queue, clock):
    queue.enqueue(b"job", key=JOB_ID)
    [(first_ack, _)] = queue.dequeue(10)
    assert [m.deliveries for m in queue.find(JOB_ID)] == [1]

    clock.advance(30)
    [(second_ack, payload)] = queue.dequeue(10)

    assert payload == b"job"
    assert second_ack != first_ack
    [info] = queue.find(JOB_ID)
    assert (info.state, info.deliveries) == ("leased", 2)
    assert info.lease_until == clock.now + 30


def test_it_checks_leases_at_most_about_once_a_second(tmp_path, clock):
    queue = make_queue(tmp_path, clock=clock, lease_seconds=0.1)
    queue.enqueue(b"job")
    assert len(queue.dequeue(10)) == 1  # checks leases now, next check in 1 s

    clock.advance(0.5)
    assert queue.dequeue(10) == []  # the lease ran out, but no check is due

    clock.advance(0.5)
    assert payloads(queue.dequeue(10)) == [b"job"]


def test_it_ignores_a_late_acknowledgement_of_a_lease_that_ran_out(queue, clock):
    queue.enqueue(b"job", key=JOB_ID)
    [(stale_ack, _)] = queue.dequeue(10)
    clock.advance(30)
    assert len(queue.dequeue(10)) == 1

    queue.acknowledge(stale_ack)

    [info] = queue.find(JOB_ID)
    assert (info.state, info.deliveries) == ("leased", 2)


def test_acknowledge_removes_the_message_and_is_idempotent(queue, clock):
    queue.enqueue(b"job", key=JOB_ID)
    [(ack_id, _)] = queue.dequeue(10)

    queue.acknowledge(ack_id)
    queue.acknowledge(ack_id)

    assert queue.find(JOB_ID) == []
    clock.advance(3600)
    assert queue.dequeue(10) == []


def test_it_rejects_a_malformed_ack_id(queue):
    with pytest.raises(ValueError):
        queue.acknowledge("../ready/anything")
    with pytest.raises(ValueError):
        queue.fail("")


# -- dead letters -----------------------------------------------------------------


def test_it_dead_letters_a_message_delivered_max_deliveries_times(queue, clock, dead_letters):
    queue.enqueue(b"poison", key=JOB_ID)
    for _ in range(3):
        assert payloads(queue.dequeue(10)) == [b"poison"]
        clock.advance(30)

    assert queue.dequeue(10) == []

    assert dead_letters == [(JOB_ID, b"poison")]
    [info] = queue.find(JOB_ID)
    assert (info.state, info.deliveries, info.dead_at) == ("dead", 3, clock.now)
    assert queue.counts()["dead"] == 1
    assert queue.keys() == set()
    assert queue.dead_keys() == {JOB_ID}


def test_fail_dead_letters_at_once(queue, dead_letters):
    queue.enqueue(b"unreadable")
    [(ack_id, _)] = queue.dequeue(10)

    queue.fail(ack_id)
    queue.fail(ack_id)  # already dead: nothing more happens

    assert dead_letters == [(None, b"unreadable")]
    assert queue.counts()["dead"] == 1


def test_it_keeps_handing_out_messages_when_the_dead_letter_handler_raises(tmp_path, clock):
    def broken_handler(key, payload):
        raise RuntimeError("job layer is down")

    queue = make_queue(tmp_path, clock=clock, max_deliveries=1, on_dead=broken_handler)
    queue.enqueue(b"poison")
    assert len(queue.dequeue(10)) == 1
    clock.advance(30)
    queue.enqueue(b"fine")

    assert payloads(queue.dequeue(10)) == [b"fine"]
    assert queue.counts()["dead"] == 1


# -- sharding and files on disk --------------------------------------------------------


def test_it_does_not_list_buckets_that_are_not_due(queue, clock, monkeypatch):
    queue.enqueue(b"due")
    for n in range(50):
        queue.enqueue(f"future {n}", due_at=START + 3600 + n * 60)
    buckets = sorted((queue.root / "ready").iterdir())
    assert len(buckets) == 51
    listed: list[Path] = []
    real_listdir = os.listdir

    def spy(path="."):
        # Other threads (an event feed of an earlier test) list their own
        # directories meanwhile: only this queue's listings count.
        if Path(path).is_relative_to(queue.root):
            listed.append(Path(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", spy)

    assert payloads(queue.dequeue(10)) == [b"due"]

    # No future bucket is listed; the consumer may sleep until the first starts.
    assert set(listed) <= {queue.root / "ready", queue.root / "leased", buckets[0]}
    assert queue.next_due_at == START + 3600


def test_it_tells_when_the_next_message_falls_due(queue, clock):
    queue.enqueue(b"later", due_at=START + 2.5)
    queue.enqueue(b"much later", due_at=START + 100)

    assert queue.dequeue(10) == []
    assert queue.next_due_at == START + 2  # the start of its bucket: no listing of it yet
    clock.advance(2)
    assert queue.dequeue(10) == []
    assert queue.next_due_at == START + 2.5  # now its bucket is due and listed
    clock.advance(0.5)
    assert payloads(queue.dequeue(10)) == [b"later"]


def test_it_lists_a_bucket_once_while_draining_it(queue, clock, monkeypatch):
    for n in range(50):
        queue.enqueue(f"job {n}".encode())
    listings: list[Path] = []
    real_listdir = os.listdir

    def spy(path="."):
        if Path(path).is_relative_to(queue.root / "ready") and Path(path) != queue.root / "ready":
            listings.append(Path(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", spy)

    drained = [payload for _ in range(50) for payload in payloads(queue.dequeue(1))]

    assert sorted(drained) == sorted(f"job {n}".encode() for n in range(50))
    assert len(listings) == 1


def test_it_sees_a_message_enqueued_for_now_while_a_later_one_waits_in_the_bucket(queue, clock):
    queue.enqueue(b"in a moment", due_at=START + 0.5)
    assert queue.dequeue(10) == []

    queue.enqueue(b"now")

    assert payloads(queue.dequeue(10)) == [b"now"]


def test_it_removes_empty_buckets_whose_time_has_passed(queue, clock):
    queue.enqueue(b"job")
    [(ack_id, _)] = queue.dequeue(10)
    queue.acknowledge(ack_id)
    assert len(list((queue.root / "ready").iterdir())) == 1

    clock.advance(60)
    assert queue.dequeue(10) == []

    assert list((queue.root / "ready").iterdir()) == []


def test_enqueue_survives_its_bucket_vanishing(queue, monkeypatch):
    queue.enqueue(b"first")
    [(ack_id, _)] = queue.dequeue(10)
    queue.acknowledge(ack_id)
    [bucket] = (queue.root / "ready").iterdir()
    real_rename = os.rename
    removed = []

    def rename_after_a_consumer_removed_the_bucket(source, target):
        if not removed and Path(target).parent == bucket:
            os.rmdir(bucket)  # what a concurrent dequeue does to an empty past bucket
            removed.append(bucket)
        return real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename_after_a_consumer_removed_the_bucket)

    queue.enqueue(b"second")

    assert removed == [bucket]
    assert payloads(queue.dequeue(10)) == [b"second"]


def test_enqueue_writes_durably_and_leaves_no_temp_file(queue, monkeypatch):
    steps: list[tuple[str, str]] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append((step, path)))

    queue.enqueue(b"job")

    [bucket] = (queue.root / "ready").iterdir()
    [message] = bucket.iterdir()
    assert [step for step, _ in steps[:2]] == ["write", "fsync"]
    assert steps[-2:] == [("rename", str(message)), ("fsync_dir", str(bucket))]
    assert message.read_bytes() == b"job"
    assert list(queue.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("failing_step", ["write", "fsync", "rename"])
def test_a_crash_before_the_rename_leaves_nothing_behind(queue, monkeypatch, failing_step):
    def crash(step, path):
        if step == failing_step:
            raise OSError("disk gone")

    monkeypatch.setattr(atomic.hooks, "before", crash)

    with pytest.raises(OSError):
        queue.enqueue(b"job")

    assert list((queue.root / "ready").rglob("*")) == []
    assert list(queue.tmp_dir.iterdir()) == []


# -- introspection ------------------------------------------------------------------


def test_counts_reports_each_state_and_how_late_the_oldest_due_message_is(queue, clock):
    queue.enqueue(b"late", due_at=START - 12)
    queue.enqueue(b"due")
    queue.enqueue(b"future", due_at=START + 60)
    queue.enqueue(b"leased", due_at=START - 100)
    queue.dequeue(1)

    assert queue.counts() == {
        "ready": 3,
        "due": 2,
        "leased": 1,
        "dead": 0,
        "oldest_due_lateness_seconds": 12.0,
    }


def test_keys_and_find_report_messages_by_job(queue, clock):
    first_id = queue.enqueue(b"a", key=JOB_ID, due_at=START + 60)
    queue.enqueue(b"b", key=OTHER_JOB_ID)
    queue.enqueue(b"no key")
    queue.dequeue(10)

    assert queue.keys() == {JOB_ID, OTHER_JOB_ID}
    [info] = queue.find(JOB_ID)
    assert (info.message_id, info.state, info.due_at, info.deliveries) == (
        first_id,
        "ready",
        START + 60,
        0,
    )
    assert [m.state for m in queue.find(OTHER_JOB_ID)] == ["leased"]


def test_delete_key_removes_every_message_of_a_job(queue):
    queue.enqueue(b"a", key=JOB_ID)
    queue.enqueue(b"b", key=JOB_ID, due_at=START + 600)
    queue.enqueue(b"other", key=OTHER_JOB_ID)
    queue.dequeue(1)

    assert queue.delete_key(JOB_ID) == 2

    assert queue.keys() == {OTHER_JOB_ID}


def test_delete_removes_one_message_by_id(queue):
    message_id = queue.enqueue(b"a")
    queue.enqueue(b"b")

    assert queue.delete(message_id) is True
    assert queue.delete(message_id) is False

    assert payloads(queue.dequeue(10)) == [b"b"]


def test_purge_removes_ready_and_leased_but_keeps_dead_letters(queue):
    queue.enqueue(b"ready", due_at=START + 60)
    queue.enqueue(b"leased")
    queue.enqueue(b"dead")
    [_, (ack_dead, _)] = queue.dequeue(2)
    queue.fail(ack_dead)

    assert queue.purge() == 2

    counts = queue.counts()
    assert (counts["ready"], counts["leased"], counts["dead"]) == (0, 0, 1)


def test_ping_reports_a_writable_queue(queue):
    assert queue.ping() is True


# -- concurrency ----------------------------------------------------------------------


def drain(root: Path, tmp_dir: Path, barrier, results: Path) -> None:
    queue = FileQueue(root, tmp_dir, lease_seconds=60, max_deliveries=5)
    received = []
    barrier.wait()
    while batch := queue.dequeue(3):
        for ack_id, payload in batch:
            received.append(payload.decode())
            queue.acknowledge(ack_id)
    results.write_text("\n".join(received))


def test_two_consumer_processes_each_get_every_message_exactly_once(tmp_path):
    queue = make_queue(tmp_path)
    sent = {f"message {n}" for n in range(300)}
    for payload in sent:
        queue.enqueue(payload)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = [tmp_path / f"consumer-{n}.txt" for n in range(2)]
    consumers = [
        context.Process(target=drain, args=(queue.root, queue.tmp_dir, barrier, path))
        for path in results
    ]

    for consumer in consumers:
        consumer.start()
    for consumer in consumers:
        consumer.join(timeout=60)

    assert [consumer.exitcode for consumer in consumers] == [0, 0]
    received = [line for path in results for line in path.read_text().splitlines()]
    assert len(received) == len(sent)
    assert set(received) == sent
    assert queue.counts()["ready"] == queue.counts()["leased"] == 0


def test_a_message_enqueued_without_durability_skips_every_fsync(queue, monkeypatch):
    from filestore import atomic

    queue.enqueue(b"first")  # makes the bucket (a new directory is always made durable)
    steps: list[str] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append(step))

    queue.enqueue(b"second", durable=False)

    assert "fsync" not in steps and "fsync_dir" not in steps
    assert sorted(payloads(queue.dequeue(10))) == [b"first", b"second"]


def test_it_counts_the_messages_falling_due_soon(queue, clock):
    queue.enqueue(b"due", due_at=START - 1)
    queue.enqueue(b"soon", due_at=START + 3)
    queue.enqueue(b"later", due_at=START + 60)

    assert queue.due_within(5) == 2
    assert queue.due_within(0) == 1
    assert queue.due_within(120) == 3
