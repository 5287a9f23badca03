"""The file queue's own behaviour: its files, sharding, crashes and concurrency.

What every queue must do (delayed visibility, leases, dead letters, keys) is
the contract in tests/contract/test_queue_contract.py, run against the file
queue and the Redis queue alike.
"""

from __future__ import annotations

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


# -- leases -----------------------------------------------------------------------


def test_it_checks_leases_at_most_about_once_a_second(tmp_path, clock):
    queue = make_queue(tmp_path, clock=clock, lease_seconds=0.1)
    queue.enqueue(b"job")
    assert len(queue.dequeue(10)) == 1  # checks leases now, next check in 1 s

    clock.advance(0.5)
    assert queue.dequeue(10) == []  # the lease ran out, but no check is due

    clock.advance(0.5)
    assert payloads(queue.dequeue(10)) == [b"job"]


# -- dead letters -----------------------------------------------------------------


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


def test_a_message_enqueued_without_durability_skips_every_fsync(queue, monkeypatch):
    from filestore import atomic

    queue.enqueue(b"first")  # makes the bucket (a new directory is always made durable)
    steps: list[str] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append(step))

    queue.enqueue(b"second", durable=False)

    assert "fsync" not in steps and "fsync_dir" not in steps
    assert sorted(payloads(queue.dequeue(10))) == [b"first", b"second"]
