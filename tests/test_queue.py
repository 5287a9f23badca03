"""The file queue's own behaviour: its files, sharding, crashes and concurrency.

What every queue must do (delayed visibility, leases, dead letters, keys) is
the contract in tests/contract/test_queue_contract.py, run against the file
queue and the Redis queue alike.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from filestore import atomic
from filestore import queue as queue_module
from filestore.queue import FileQueue
from filestore.queue_names import MessageName
from storage.messages import NewMessage
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


# -- messages stored empty (the implied payload) ------------------------------------


def implied(key: str) -> bytes:
    return f"run {key}".encode()


@pytest.fixture
def implying_queue(tmp_path: Path, clock: FakeClock, dead_letters: list) -> FileQueue:
    return make_queue(
        tmp_path,
        clock=clock,
        on_dead=lambda key, payload: dead_letters.append((key, payload)),
        implied_payload=implied,
    )


def test_the_implied_payload_is_stored_as_an_empty_file_made_in_its_bucket(
    implying_queue, monkeypatch
):
    steps: list[tuple[str, str]] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append((step, path)))

    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)

    [bucket] = (implying_queue.root / "ready").iterdir()
    [message] = bucket.iterdir()
    [shared] = (implying_queue.root / "empty").iterdir()
    assert message.read_bytes() == b""
    assert message.name.endswith(f"_{JOB_ID}")
    assert oct(message.stat().st_mode & 0o777) == oct(atomic.PRIVATE_FILE_MODE)
    # A name of the process's shared empty file, which was made and flushed first.
    assert message.stat().st_ino == shared.stat().st_ino
    assert steps[:3] == [
        ("create", str(shared)),
        ("fsync", str(shared)),
        ("fsync_dir", str(shared.parent)),
    ]
    # No temp file, no data to write or flush, no rename: a link, then its bucket's flush.
    assert steps[-2:] == [("link", str(message)), ("fsync_dir", str(bucket))]
    assert [step for step, _ in steps].count("write") == 0
    assert list(implying_queue.tmp_dir.iterdir()) == []
    assert implying_queue.dequeue(10) == [(_leased_name(implying_queue), implied(JOB_ID))]


def test_empty_messages_are_names_of_one_file_and_keyed_ones_are_never_spares(implying_queue):
    from filestore.spares import spares_of

    for key in (JOB_ID, OTHER_JOB_ID):
        implying_queue.enqueue(implied(key), key=key, durable=False)
    implying_queue.enqueue(b"package")
    [shared] = (implying_queue.root / "empty").iterdir()
    assert shared.stat().st_nlink == 3

    for ack_id, _ in implying_queue.dequeue(10):
        implying_queue.acknowledge(ack_id)

    # A spare is written into when reused, which would write into every
    # name of a shared file: a keyed message is never made one.
    [spare] = spares_of(implying_queue.tmp_dir).directory.iterdir()
    assert spare.read_bytes() == b"package"
    assert shared.stat().st_nlink == 1
    assert shared.read_bytes() == b""
    assert list((implying_queue.root / "leased").iterdir()) == []


def test_enqueue_many_flushes_each_bucket_once_after_its_messages(implying_queue, monkeypatch):
    steps: list[tuple[str, str]] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append((step, path)))

    implying_queue.enqueue_many(
        [
            NewMessage(implied(JOB_ID), START + 10, JOB_ID),
            NewMessage(b"a package", START + 10),
            NewMessage(implied(OTHER_JOB_ID), START + 10.5, OTHER_JOB_ID),
        ]
    )

    [bucket] = (implying_queue.root / "ready").iterdir()
    messages = sorted(bucket.iterdir())
    assert len(messages) == 3
    placed = [(step, path) for step, path in steps if step in ("link", "rename")]
    # (A link is tried again once the new bucket is made.)
    assert {path for _, path in placed} == {str(message) for message in messages}
    # The one flush of the bucket comes after the last message is in it.
    assert steps[-1] == ("fsync_dir", str(bucket))
    assert steps.count(("fsync_dir", str(bucket))) == 1
    # The package's own data was flushed before its rename, as with enqueue.
    write = next(index for index, (step, _) in enumerate(steps) if step == "write")
    assert steps[write + 1][0] == "fsync"
    assert list(implying_queue.tmp_dir.iterdir()) == []


def _leased_name(queue: FileQueue) -> str:
    [leased] = (queue.root / "leased").iterdir()
    return leased.name


def test_an_empty_message_without_durability_skips_the_bucket_flush(implying_queue, monkeypatch):
    implying_queue.enqueue(implied(OTHER_JOB_ID), key=OTHER_JOB_ID)  # the bucket, the shared file
    steps: list[str] = []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: steps.append(step))

    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID, durable=False)

    assert steps == ["link"]
    assert sorted(payloads(implying_queue.dequeue(10))) == sorted(
        [implied(OTHER_JOB_ID), implied(JOB_ID)]
    )


def test_other_payloads_of_an_implying_queue_keep_their_content(implying_queue):
    implying_queue.enqueue(implied(OTHER_JOB_ID), key=JOB_ID)  # another key's payload
    implying_queue.enqueue(implied(JOB_ID))  # no key: nothing is implied
    implying_queue.enqueue(b"package", key=JOB_ID)

    files = sorted(p.read_bytes() for p in (implying_queue.root / "ready").rglob("*_*"))
    assert files == sorted([implied(OTHER_JOB_ID), implied(JOB_ID), b"package"])
    assert sorted(payloads(implying_queue.dequeue(10))) == files


def test_an_implying_queue_refuses_an_empty_payload_of_its_own_with_a_key(implying_queue):
    with pytest.raises(ValueError, match="implied payload"):
        implying_queue.enqueue(b"", key=JOB_ID)

    assert list((implying_queue.root / "ready").rglob("*_*")) == []
    implying_queue.enqueue(b"")  # without a key an empty payload is just empty
    assert payloads(implying_queue.dequeue(10)) == [b""]


def test_an_empty_message_reads_as_empty_in_a_queue_without_an_implied_payload(tmp_path, clock):
    writer = make_queue(tmp_path, clock=clock, implied_payload=implied)
    writer.enqueue(implied(JOB_ID), key=JOB_ID)

    reader = make_queue(tmp_path, clock=clock)

    assert payloads(reader.dequeue(10)) == [b""]


def test_an_empty_message_is_dead_lettered_with_its_implied_payload(
    implying_queue, clock, dead_letters
):
    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    [(ack_id, _)] = implying_queue.dequeue(10)

    implying_queue.fail(ack_id)

    assert dead_letters == [(JOB_ID, implied(JOB_ID))]
    assert implying_queue.dead_keys() == {JOB_ID}


def test_a_message_is_leased_with_one_stat_when_it_is_empty(implying_queue, monkeypatch):
    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    implying_queue.enqueue(b"package", key=OTHER_JOB_ID)
    reads: list[str] = []
    real_read = queue_module.read_bytes
    monkeypatch.setattr(
        queue_module, "read_bytes", lambda path: reads.append(path) or real_read(path)
    )

    assert sorted(payloads(implying_queue.dequeue(10))) == sorted([implied(JOB_ID), b"package"])
    assert [os.path.basename(path).endswith(OTHER_JOB_ID) for path in reads] == [True]


@pytest.mark.parametrize("damage", ["a directory", "a read error"])
def test_a_message_that_cannot_be_read_is_dead_lettered_and_the_rest_delivered(
    implying_queue, clock, dead_letters, monkeypatch, damage
):
    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    [bucket] = (implying_queue.root / "ready").iterdir()
    [good] = bucket.iterdir()
    bad = MessageName.parse(good.name)
    bad = MessageName(bad.at_ms - 1, 0, "0" * len(bad.message_id), OTHER_JOB_ID)
    if damage == "a directory":
        (bucket / str(bad)).mkdir()
    else:
        (bucket / str(bad)).write_bytes(b"package")
        real_read = queue_module._read_payload

        def failing_read(path: str) -> bytes:
            if path.endswith(OTHER_JOB_ID):
                raise OSError(errno.EIO, "Input/output error")
            return real_read(path)

        monkeypatch.setattr(queue_module, "_read_payload", failing_read)

    [(ack_id, payload)] = implying_queue.dequeue(10)
    assert payload == implied(JOB_ID)
    implying_queue.acknowledge(ack_id)
    # Reported once (with what can be read of it), and out of the way of every later pass.
    reported = implied(OTHER_JOB_ID) if damage == "a directory" else b"package"
    assert dead_letters == [(OTHER_JOB_ID, reported)]
    assert implying_queue.dead_keys() == {OTHER_JOB_ID}
    clock.advance(60)
    assert implying_queue.dequeue(10) == []


def test_an_empty_message_comes_back_whole_when_its_lease_runs_out(implying_queue, clock):
    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    [(first_ack, _)] = implying_queue.dequeue(10)

    clock.advance(31)
    [(ack_id, payload)] = implying_queue.dequeue(10)

    assert payload == implied(JOB_ID) and ack_id != first_ack
    implying_queue.acknowledge(ack_id)
    counts = implying_queue.counts()
    assert (counts["ready"], counts["leased"], counts["dead"]) == (0, 0, 0)


def test_an_empty_message_survives_its_bucket_vanishing(implying_queue, monkeypatch):
    implying_queue.enqueue(b"first", key=OTHER_JOB_ID)
    [(ack_id, _)] = implying_queue.dequeue(10)
    implying_queue.acknowledge(ack_id)
    [bucket] = (implying_queue.root / "ready").iterdir()
    removed = []

    def create_after_a_consumer_removed_the_bucket(step, path):
        if step == "create" and not removed:
            os.rmdir(bucket)  # what a concurrent dequeue does to an empty past bucket
            removed.append(bucket)

    monkeypatch.setattr(atomic.hooks, "before", create_after_a_consumer_removed_the_bucket)

    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)

    assert removed == [bucket]
    assert payloads(implying_queue.dequeue(10)) == [implied(JOB_ID)]


def test_an_empty_message_leaves_the_spares_to_files_with_content(implying_queue, monkeypatch):
    from filestore import spares

    monkeypatch.setattr(spares, "REUSE_AFTER_SECONDS", 0)
    old = implying_queue.tmp_dir / "old-document.json"
    old.write_bytes(b'{"a document": "the store is done with"}')
    inode = old.stat().st_ino
    assert atomic.retire(old, tmp_dir=implying_queue.tmp_dir)

    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    implying_queue.enqueue(b"package", key=OTHER_JOB_ID)

    by_content = {
        path.read_bytes(): path.stat().st_ino
        for path in (implying_queue.root / "ready").glob("*/*")
    }
    assert by_content[b"package"] == inode
    assert by_content[b""] != inode
    assert list(implying_queue.tmp_dir.iterdir()) == []
    assert sorted(payloads(implying_queue.dequeue(10))) == sorted([implied(JOB_ID), b"package"])


@pytest.mark.parametrize("failing_step", ["create", "fsync", "fsync_dir", "link"])
def test_a_failure_while_making_an_empty_message_leaves_no_message_and_no_temp_file(
    implying_queue, monkeypatch, failing_step
):
    def crash(step, path):
        if step == failing_step:
            raise OSError("disk gone")

    monkeypatch.setattr(atomic.hooks, "before", crash)

    with pytest.raises(OSError):
        implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)

    assert list((implying_queue.root / "ready").rglob("*_*")) == []
    assert list(implying_queue.tmp_dir.iterdir()) == []
    monkeypatch.setattr(atomic.hooks, "before", lambda step, path: None)
    implying_queue.enqueue(implied(JOB_ID), key=JOB_ID)
    assert payloads(implying_queue.dequeue(10)) == [implied(JOB_ID)]
