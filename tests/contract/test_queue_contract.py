"""What every queue backend promises: due times, leases, dead letters, one delivery at a time.

Each test runs against the file queue and the Redis queue. What only one
backend has (the file queue's buckets and fsyncs) is tested beside it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from pathlib import Path

import pytest

from filestore.queue import FileQueue
from redisstore import connect
from redisstore.queue import RedisQueue
from storage.messages import NewMessage
from tests.clocks import FakeClock

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
OTHER_JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ1"
START = 1_700_000_000.0
LEASE = 30


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def dead_letters() -> list[tuple[str | None, bytes]]:
    return []


@pytest.fixture
def make_queue(backend, request, tmp_path, clock, dead_letters) -> Callable[..., object]:
    """Opens the test queue; each call is a new client of the same stored queue."""
    url = request.getfixturevalue("redis_url") if backend == "redis" else None
    clients = []

    def make(**options):
        options.setdefault("lease_seconds", LEASE)
        options.setdefault("max_deliveries", 3)
        options.setdefault("clock", clock)
        options.setdefault("on_dead", lambda key, payload: dead_letters.append((key, payload)))
        if url is None:
            return FileQueue(tmp_path / "queue" / "test", tmp_path / "tmp", **options)
        client = connect(url)
        clients.append(client)
        return RedisQueue(client, "test", **options)

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def queue(make_queue):
    return make_queue()


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


def test_it_hands_out_the_oldest_due_first(queue):
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
    assert queue.dequeue(0) == []


def test_it_never_hands_out_a_leased_message_again_while_leased(queue, clock):
    queue.enqueue(b"once")
    assert len(queue.dequeue(10)) == 1

    clock.advance(LEASE - 1)
    assert queue.dequeue(10) == []


def test_it_sees_a_message_enqueued_for_now_while_a_later_one_waits(queue):
    queue.enqueue(b"in a moment", due_at=START + 0.5)
    assert queue.dequeue(10) == []

    queue.enqueue(b"now")

    assert payloads(queue.dequeue(10)) == [b"now"]


def test_it_tells_when_the_next_message_falls_due(queue, clock):
    queue.enqueue(b"later", due_at=START + 2.5)
    queue.enqueue(b"much later", due_at=START + 100)

    assert queue.dequeue(10) == []

    # The file queue may name the start of the message's bucket: never later.
    assert START < queue.next_due_at <= START + 2.5
    clock.advance(2.5)
    assert payloads(queue.dequeue(1)) == [b"later"]


def test_it_has_no_next_due_time_when_nothing_waits(queue):
    assert queue.dequeue(10) == []

    assert queue.next_due_at is None


def test_it_rejects_a_key_that_is_not_a_job_id(queue):
    with pytest.raises(ValueError):
        queue.enqueue(b"x", key="../../etc")


@pytest.mark.parametrize("durable", [True, False])
def test_enqueue_many_adds_each_message_as_enqueue_would(queue, clock, durable):
    ids = queue.enqueue_many(
        [
            NewMessage(b"later", START + 60, JOB_ID),
            NewMessage("now", None, OTHER_JOB_ID),
            NewMessage(b"no key", START - 5),
        ],
        durable=durable,
    )

    assert len(ids) == len(set(ids)) == 3
    assert [info.message_id for info in queue.find(JOB_ID)] == [ids[0]]
    assert [info.message_id for info in queue.find(OTHER_JOB_ID)] == [ids[1]]
    due = queue.dequeue(10)
    assert payloads(due) == [b"no key", b"now"]
    for ack_id, _ in due:
        queue.acknowledge(ack_id)
    clock.advance(60)
    assert payloads(queue.dequeue(10)) == [b"later"]


def test_enqueue_many_adds_nothing_when_one_key_is_bad(queue):
    with pytest.raises(ValueError):
        queue.enqueue_many([NewMessage(b"fine", None, JOB_ID), NewMessage(b"x", None, "../etc")])

    assert queue.dequeue(10) == []
    assert queue.keys() == set()


def test_enqueue_many_of_nothing_adds_nothing(queue):
    assert queue.enqueue_many([]) == []
    assert queue.dequeue(10) == []


def test_a_message_enqueued_without_durability_is_delivered_too(queue):
    queue.enqueue(b"fast", durable=False)

    assert payloads(queue.dequeue(10)) == [b"fast"]


# -- leases -----------------------------------------------------------------------


def test_it_delivers_again_when_the_lease_runs_out(queue, clock):
    queue.enqueue(b"job", key=JOB_ID)
    [(first_ack, _)] = queue.dequeue(10)
    assert [m.deliveries for m in queue.find(JOB_ID)] == [1]

    clock.advance(LEASE)
    [(second_ack, payload)] = queue.dequeue(10)

    assert payload == b"job"
    assert second_ack != first_ack
    [info] = queue.find(JOB_ID)
    assert (info.state, info.deliveries) == ("leased", 2)
    assert info.lease_until == clock.now + LEASE


def test_a_new_consumer_delivers_the_lease_of_a_consumer_that_died(make_queue, clock):
    """A worker killed mid-task: its lease runs out and another worker gets the message."""
    make_queue().enqueue(b"job", key=JOB_ID)
    assert len(make_queue().dequeue(10)) == 1  # that consumer is never heard from again

    survivor = make_queue()
    assert survivor.dequeue(10) == []
    clock.advance(LEASE)

    [(ack_id, payload)] = survivor.dequeue(10)
    assert payload == b"job"
    survivor.acknowledge(ack_id)
    assert survivor.find(JOB_ID) == []


DEAD_OWNER = "0123456789ab-4242"
LIVE_OWNER = "0123456789ab-4343"


def test_a_lease_records_its_owner(queue):
    queue.enqueue(b"job", key=JOB_ID, due_at=START - 1)
    queue.enqueue(b"other", key=OTHER_JOB_ID)
    queue.dequeue(1, owner=DEAD_OWNER)
    queue.dequeue(1)

    assert [m.owner for m in queue.find(JOB_ID)] == [DEAD_OWNER]
    assert [m.owner for m in queue.find(OTHER_JOB_ID)] == [None]


def test_release_leases_of_hands_out_the_dead_owners_messages_at_once(make_queue, clock):
    """A worker killed mid-task: its leases come back at once, not when they run out."""
    queue = make_queue()
    queue.enqueue(b"job", key=JOB_ID)
    queue.enqueue(b"other", key=OTHER_JOB_ID, due_at=START + 1)
    queue.enqueue(b"unowned", due_at=START + 2)
    [(dead_ack, _)] = make_queue().dequeue(1, owner=DEAD_OWNER)
    clock.advance(2)
    assert len(make_queue().dequeue(1, owner=LIVE_OWNER)) == 1
    assert len(make_queue().dequeue(1)) == 1  # a lease of no known owner

    survivor = make_queue()
    assert survivor.dequeue(10) == []
    assert survivor.release_leases_of([DEAD_OWNER]) == 1

    [info] = survivor.find(JOB_ID)
    assert (info.state, info.due_at, info.deliveries, info.owner) == ("ready", START + 2, 1, None)
    [(ack_id, payload)] = survivor.dequeue(10, owner=LIVE_OWNER)
    assert payload == b"job"
    [info] = survivor.find(JOB_ID)
    assert (info.state, info.deliveries, info.owner) == ("leased", 2, LIVE_OWNER)
    assert [m.state for m in survivor.find(OTHER_JOB_ID)] == ["leased"], "a live owner keeps its"
    assert survivor.counts()["leased"] == 3

    # The dead run's late acknowledgement cannot remove the message's next lease.
    survivor.acknowledge(dead_ack)
    assert [m.state for m in survivor.find(JOB_ID)] == ["leased"]
    survivor.acknowledge(ack_id)
    assert survivor.find(JOB_ID) == []


def test_release_leases_of_nobody_or_of_owners_without_leases_changes_nothing(queue):
    queue.enqueue(b"job", key=JOB_ID)
    queue.dequeue(10, owner=LIVE_OWNER)

    assert queue.release_leases_of([]) == 0
    assert queue.release_leases_of([DEAD_OWNER]) == 0
    assert [(m.state, m.owner) for m in queue.find(JOB_ID)] == [("leased", LIVE_OWNER)]


def test_release_leases_of_keeps_counting_deliveries_towards_the_dead_letter(queue, dead_letters):
    queue.enqueue(b"job", key=JOB_ID)
    for delivery in (1, 2):
        assert len(queue.dequeue(10, owner=DEAD_OWNER)) == 1
        assert queue.release_leases_of([DEAD_OWNER]) == 1
        [info] = queue.find(JOB_ID)
        assert (info.state, info.deliveries) == ("ready", delivery)

    # The third delivery (max_deliveries) dies too: the message is dead-lettered.
    assert len(queue.dequeue(10, owner=DEAD_OWNER)) == 1
    assert queue.release_leases_of([DEAD_OWNER]) == 1
    assert [(m.state, m.deliveries) for m in queue.find(JOB_ID)] == [("dead", 3)]
    assert dead_letters == [(JOB_ID, b"job")]
    assert queue.dequeue(10) == []


def test_it_ignores_a_late_acknowledgement_of_a_lease_that_ran_out(queue, clock):
    queue.enqueue(b"job", key=JOB_ID)
    [(stale_ack, _)] = queue.dequeue(10)
    clock.advance(LEASE)
    assert len(queue.dequeue(10)) == 1

    queue.acknowledge(stale_ack)
    queue.fail(stale_ack)

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
    assert queue.counts()["leased"] == 0


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
        clock.advance(LEASE)

    assert queue.dequeue(10) == []

    assert dead_letters == [(JOB_ID, b"poison")]
    [info] = queue.find(JOB_ID)
    assert (info.state, info.deliveries, info.dead_at) == ("dead", 3, clock.now)
    assert queue.counts()["dead"] == 1
    assert queue.keys() == set()
    assert queue.dead_keys() == {JOB_ID}


def test_a_dead_letter_is_reported_once_however_many_consumers_see_it(
    make_queue, clock, dead_letters
):
    consumers = [make_queue(max_deliveries=1) for _ in range(3)]
    consumers[0].enqueue(b"poison", key=JOB_ID)
    assert len(consumers[0].dequeue(10)) == 1
    clock.advance(LEASE)

    for consumer in consumers:
        assert consumer.dequeue(10) == []
    clock.advance(LEASE)
    for consumer in consumers:
        assert consumer.dequeue(10) == []

    assert dead_letters == [(JOB_ID, b"poison")]


def test_fail_dead_letters_at_once(queue, dead_letters):
    queue.enqueue(b"unreadable")
    [(ack_id, _)] = queue.dequeue(10)

    queue.fail(ack_id)
    queue.fail(ack_id)  # already dead: nothing more happens

    assert dead_letters == [(None, b"unreadable")]
    assert queue.counts()["dead"] == 1
    assert queue.counts()["leased"] == 0


def test_it_keeps_handing_out_messages_when_the_dead_letter_handler_raises(make_queue, clock):
    def broken_handler(key, payload):
        raise RuntimeError("job layer is down")

    queue = make_queue(max_deliveries=1, on_dead=broken_handler)
    queue.enqueue(b"poison")
    assert len(queue.dequeue(10)) == 1
    clock.advance(LEASE)
    queue.enqueue(b"fine")

    assert payloads(queue.dequeue(10)) == [b"fine"]
    assert queue.counts()["dead"] == 1


# -- introspection ------------------------------------------------------------------


def test_counts_reports_each_state_and_how_late_the_oldest_due_message_is(queue):
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


def test_counts_of_an_empty_queue(queue):
    assert queue.counts() == {
        "ready": 0,
        "due": 0,
        "leased": 0,
        "dead": 0,
        "oldest_due_lateness_seconds": 0.0,
    }


def test_keys_and_find_report_messages_by_job(queue):
    first_id = queue.enqueue(b"a", key=JOB_ID, due_at=START + 60)
    queue.enqueue(b"b", key=OTHER_JOB_ID)
    queue.enqueue(b"no key")
    queue.dequeue(10)

    assert queue.keys() == {JOB_ID, OTHER_JOB_ID}
    [info] = queue.find(JOB_ID)
    assert (info.message_id, info.key, info.state, info.due_at, info.deliveries) == (
        first_id,
        JOB_ID,
        "ready",
        START + 60,
        0,
    )
    assert [m.state for m in queue.find(OTHER_JOB_ID)] == ["leased"]
    assert queue.find("01JABCDEFGHJKMNPQRSTVWXYZ9") == []


def test_it_counts_the_messages_falling_due_soon(queue):
    queue.enqueue(b"due", due_at=START - 1)
    queue.enqueue(b"soon", due_at=START + 3)
    queue.enqueue(b"later", due_at=START + 60)

    assert queue.due_within(5) == 2
    assert queue.due_within(0) == 1
    assert queue.due_within(120) == 3


@pytest.mark.parametrize("seconds", [0, 0.2, 0.999, 1, 1.001, 2.5, 3, 4.75])
def test_the_count_of_messages_falling_due_is_exact_at_every_horizon(queue, seconds):
    # Due times on either side of whole seconds: a store counting whole
    # time buckets by their size must still stop at the horizon's millisecond.
    offsets = [-2.5, -1, 0, 0.2, 0.5, 0.999, 1, 1.001, 1.5, 2, 2.999, 3, 4.75, 6]
    for offset in offsets:
        queue.enqueue(b"x", due_at=START + offset)

    assert queue.due_within(seconds) == sum(offset <= seconds for offset in offsets)


# -- removal ------------------------------------------------------------------------


def test_delete_key_removes_every_message_of_a_job(queue):
    queue.enqueue(b"a", key=JOB_ID)
    queue.enqueue(b"b", key=JOB_ID, due_at=START + 600)
    queue.enqueue(b"other", key=OTHER_JOB_ID)
    queue.dequeue(1)

    assert queue.delete_key(JOB_ID) == 2

    assert queue.keys() == {OTHER_JOB_ID}
    assert queue.find(JOB_ID) == []
    assert queue.delete_key(JOB_ID) == 0


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


def test_ping_reports_a_working_queue(queue):
    assert queue.ping() is True


# -- restart and concurrency ----------------------------------------------------------


def test_a_new_client_sees_the_same_queue(make_queue, clock, dead_letters):
    before = make_queue()
    before.enqueue(b"leased", key=JOB_ID, due_at=START - 2)
    before.enqueue(b"dead", due_at=START - 1)
    before.enqueue(b"ready", key=OTHER_JOB_ID, due_at=START + 60)
    [(leased_ack, _), (dead_ack, _)] = before.dequeue(2)
    before.fail(dead_ack)

    after = make_queue()

    assert after.counts() == before.counts()
    assert after.keys() == {JOB_ID, OTHER_JOB_ID}
    after.acknowledge(leased_ack)  # a lease taken before the restart
    assert after.find(JOB_ID) == []
    clock.advance(60)
    assert payloads(after.dequeue(10)) == [b"ready"]


def _drain(make_queue, barrier, results: Path) -> None:
    queue = make_queue(lease_seconds=60, max_deliveries=5)
    received = []
    barrier.wait()
    while batch := queue.dequeue(3):
        for ack_id, payload in batch:
            received.append(payload.decode())
            queue.acknowledge(ack_id)
    results.write_text("\n".join(received))


def test_two_consumer_processes_each_get_every_message_exactly_once(make_queue, tmp_path):
    queue = make_queue()
    sent = {f"message {n}" for n in range(300)}
    for payload in sent:
        queue.enqueue(payload)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = [tmp_path / f"consumer-{n}.txt" for n in range(2)]
    consumers = [
        context.Process(target=_drain, args=(make_queue, barrier, path)) for path in results
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
