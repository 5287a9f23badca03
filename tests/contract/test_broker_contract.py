"""What every django-q2 broker promises: due times, leases, dead letters, batches, django-q2's loop.

Each test runs against the file broker and the Redis broker through the
broker's own interface: django-q2's ``Broker`` and
:class:`storage.protocols.SchedulingBroker`, configured by the settings.
What only one of them has (where the file broker keeps its messages, how
the Redis broker names its server and checks its URL) is tested beside it,
in ``tests/test_broker.py`` and ``tests/test_redis_broker.py``.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import time

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_q.conf import Conf
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django_q.worker import worker

from filestore.broker import FileBroker
from redisstore.broker import RedisBroker
from storage import dead_letters
from storage.protocols import SchedulingBroker
from tests.clocks import FakeClock

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
START = 1_700_000_000.0
LEASE = 60  # Q_CLUSTER["retry"]
MAX_DELIVERIES = 2
BROKERS = {"file": FileBroker, "redis": RedisBroker}

RECORD_RUN = f"{__name__}.record_run"
RECORD_BATCH = f"{__name__}.record_batch"
DEAD_LETTERS: list[tuple[str | None, bytes]] = []
RUNS: list[str] = []


def record_dead_letter(key: str | None, payload: bytes) -> None:
    DEAD_LETTERS.append((key, payload))


def record_run(job_id: str) -> str:
    RUNS.append(job_id)
    return f"ran {job_id}"


def record_batch(job_ids: list[str]) -> None:
    """The batch task function; the tests look at the packages the pusher builds for it."""


@pytest.fixture
def broker_class(backend, request, monkeypatch):
    """The broker class of the backend, with the settings every broker reads."""
    monkeypatch.setattr(Conf, "RETRY", LEASE)
    monkeypatch.setattr(Conf, "POLL", 0.05)
    monkeypatch.setattr(Conf, "BULK", 1)
    DEAD_LETTERS.clear()
    RUNS.clear()
    # The file broker keeps its messages in the test's data directory
    # (tests/conftest.py); the Redis broker in an empty Redis.
    where = {"JOBS_REDIS_URL": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    previous = dead_letters.register(record_dead_letter)
    try:
        with override_settings(JOBS_MAX_DELIVERIES=MAX_DELIVERIES, **where):
            yield BROKERS[backend]
    finally:
        dead_letters.register(previous)


@pytest.fixture
def broker(broker_class):
    return broker_class(list_key="test")


def under_test_clock(broker) -> FakeClock:
    """Put the broker's time (its queue's clock) under the test's control, at ``START``."""
    broker.connection.clock = FakeClock(START)
    return broker.connection.clock


@pytest.fixture
def clock(broker) -> FakeClock:
    return under_test_clock(broker)


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


def push_once(broker) -> list[dict]:
    """One pass of django-q2's own pusher: the tasks it would hand to the workers."""

    class Pushed(list):
        put = list.append  # all the pusher does with its task queue

    pushed = Pushed()
    stop = multiprocessing.Event()
    stop.set()  # one pass of the pusher's loop
    pusher(pushed, stop, broker=broker)
    return pushed


def states(broker, key: str = JOB_ID) -> list[str]:
    return [info.state for info in broker.find(key)]


# --- handing out ----------------------------------------------------------------------


def test_it_hands_out_a_delayed_task_only_when_due(broker, sleeps):
    broker.enqueue("later", due_at=time.time() + 3600)
    assert broker.dequeue() is None

    broker.enqueue("now")
    [(_, payload)] = broker.dequeue()

    assert payload == "now"
    assert broker.queue_size() == 1
    assert broker.lock_size() == 1


def test_dequeue_sleeps_poll_when_nothing_is_due(broker, sleeps):
    assert broker.dequeue() is None
    assert sleeps == [Conf.POLL]

    broker.enqueue("task")
    assert broker.dequeue() is not None
    assert sleeps == [Conf.POLL]


def test_an_idle_dequeue_really_waits(broker):
    started = time.monotonic()

    assert broker.dequeue() is None

    assert time.monotonic() - started >= Conf.POLL


def test_dequeue_hands_out_up_to_bulk_messages(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 3)
    for n in range(5):
        broker.enqueue(f"task {n}")

    assert len(broker.dequeue()) == 3
    assert len(broker.dequeue()) == 2


def test_after_less_than_a_full_load_the_next_dequeue_gathers_for_a_moment(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 10)
    with override_settings(JOBS_GATHER_SECONDS=0.3):
        broker.enqueue("first")
        assert len(broker.dequeue()) == 1
        # The moment counts from the end of that dequeue (however long the
        # enqueues below take on a busy machine).
        gathered_since = time.monotonic()
        # Two more fall due one after the other: handed out together, a
        # moment later, rather than one per dequeue.
        broker.enqueue("second")
        broker.enqueue("third")
        assert len(broker.dequeue()) == 2
        assert time.monotonic() - gathered_since >= 0.29


def test_after_a_full_load_the_next_dequeue_takes_at_once(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 2)
    with override_settings(JOBS_GATHER_SECONDS=30):
        for n in range(3):
            broker.enqueue(f"task {n}")
        assert len(broker.dequeue()) == 2
        started = time.monotonic()
        # A backlog is handed out as fast as it is asked for.
        assert len(broker.dequeue()) == 1
        assert time.monotonic() - started < 10


def test_acknowledge_removes_the_message_and_is_idempotent(broker):
    broker.enqueue("task")
    [(ack_id, _)] = broker.dequeue()

    broker.acknowledge(ack_id)
    broker.acknowledge(ack_id)

    assert broker.counts()["leased"] == broker.counts()["ready"] == 0


def test_counts_tell_waiting_due_leased_and_dead_messages(broker, clock):
    broker.enqueue("late", key=JOB_ID, due_at=START - 4)
    broker.enqueue("now", due_at=START)
    broker.enqueue("later", due_at=START + 3600)
    broker.enqueue("to fail", due_at=START - 10)
    [(failing, _)] = broker.dequeue()
    broker.fail(failing)
    broker.enqueue("leased", due_at=START - 20)
    broker.dequeue()

    assert broker.counts() == {
        "ready": 3,
        "due": 2,
        "leased": 1,
        "dead": 1,
        "oldest_due_lateness_seconds": 4.0,
    }
    assert (broker.queue_size(), broker.lock_size()) == (3, 1)
    assert broker.oldest_due_lateness() == 4.0
    assert broker.due_within(0) == 2
    assert broker.due_within(3600) == 3
    assert broker.scheduled_around(START + 3600.5) == 1


# --- leases and dead letters ----------------------------------------------------------


@pytest.mark.parametrize("retry", [LEASE, 90])
def test_a_lease_lasts_the_clusters_retry_seconds(broker_class, monkeypatch, retry):
    monkeypatch.setattr(Conf, "RETRY", retry)
    broker = broker_class(list_key="test")
    under_test_clock(broker)
    broker.enqueue("task", key=JOB_ID)

    broker.dequeue()

    [info] = broker.find(JOB_ID)
    assert info.state == "leased"
    assert info.lease_until == START + retry


@pytest.mark.parametrize(
    ("setting", "deliveries"),
    [(MAX_DELIVERIES, MAX_DELIVERIES), (7, 7), (None, 5)],
    ids=["setting", "another setting", "default"],
)
def test_a_message_is_dead_lettered_after_jobs_max_deliveries(
    broker_class, sleeps, setting, deliveries
):
    with override_settings():
        if setting is None:
            del settings.JOBS_MAX_DELIVERIES
        else:
            settings.JOBS_MAX_DELIVERIES = setting
        broker = broker_class(list_key="test")
    clock = under_test_clock(broker)
    broker.enqueue("task", key=JOB_ID)

    handed_out = 0
    while broker.dequeue() is not None and handed_out <= deliveries:
        handed_out += 1
        clock.advance(LEASE + 1)  # the worker died: its lease runs out

    assert handed_out == deliveries
    assert states(broker) == ["dead"]
    assert DEAD_LETTERS == [(JOB_ID, b"task")]


def test_a_message_the_pusher_cannot_read_is_dead_lettered_to_the_handler(broker):
    broker.enqueue("not a signed package", key=JOB_ID)

    assert push_once(broker) == []

    assert DEAD_LETTERS == [(JOB_ID, b"not a signed package")]
    assert states(broker) == ["dead"]
    assert broker.dead_keys() == {JOB_ID}


def test_with_no_handler_registered_a_message_is_still_dead_lettered(broker_class):
    dead_letters.register(None)  # the fixture puts the test's handler back
    broker = broker_class(list_key="test")
    broker.enqueue("poison", key=JOB_ID)
    [(ack_id, _)] = broker.dequeue()

    broker.fail(ack_id)

    assert states(broker) == ["dead"]
    assert DEAD_LETTERS == []


# --- django-q2's loop and processes ---------------------------------------------------


def test_the_pusher_delivers_a_task_made_by_async_task(broker):
    async_task("math.floor", 1.5, broker=broker)
    tasks = multiprocessing.Queue()
    stop = multiprocessing.Event()
    stop.set()  # one pass of the pusher's loop

    pusher(tasks, stop, broker=broker)

    task = tasks.get(timeout=5)
    assert (task["func"], task["args"]) == ("math.floor", (1.5,))
    assert broker.lock_size() == 1
    broker.acknowledge(task["ack_id"])
    assert broker.lock_size() == 0


def test_it_survives_pickling_into_another_process(broker):
    broker.enqueue("task", key=JOB_ID)

    clone = pickle.loads(pickle.dumps(broker))

    assert clone.list_key == "test"
    [(ack_id, payload)] = clone.dequeue()
    assert payload == "task"
    broker.acknowledge(ack_id)
    assert clone.keys() == set()


def test_it_answers_ping_while_its_store_is_reachable(broker):
    assert broker.ping() is True


# --- removing messages ----------------------------------------------------------------


def test_delete_removes_a_message_by_the_id_enqueue_returned(broker):
    message_id = broker.enqueue("task")

    assert broker.delete(message_id) is True
    assert broker.queue_size() == 0


def test_purge_queue_empties_ready_and_leased(broker):
    broker.enqueue("a")
    broker.enqueue("b", due_at=time.time() + 3600)
    broker.dequeue()

    assert broker.purge_queue() == 2
    assert broker.queue_size() == broker.lock_size() == 0


def test_keys_and_delete_key_find_the_messages_of_a_job(broker):
    broker.enqueue("a", key=JOB_ID, due_at=time.time() + 3600)

    assert broker.keys() == {JOB_ID}
    assert broker.delete_key(JOB_ID) == 1
    assert broker.keys() == set()


# --- settings it refuses --------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "5"])
def test_it_refuses_a_bad_max_deliveries(broker_class, value):
    with override_settings(JOBS_MAX_DELIVERIES=value), pytest.raises(ImproperlyConfigured):
        broker_class(list_key="test")


@pytest.mark.parametrize("name", ["../escape", "a}b"])
def test_it_refuses_a_queue_name_that_cannot_name_where_it_lives(broker_class, name):
    with pytest.raises(ImproperlyConfigured):
        broker_class(list_key=name)


# --- scheduling a task for a job ------------------------------------------------------


def test_it_is_a_scheduling_broker(broker):
    assert isinstance(broker, SchedulingBroker)


# django-q2's worker closes stale database connections: after other tests
# opened one, that needs database access.
@pytest.mark.django_db
def test_the_stock_pusher_worker_and_monitor_run_a_scheduled_task(broker):
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() - 1)

    [task] = push_once(broker)
    assert (task["func"], task["args"], task["kwargs"]) == (RECORD_RUN, (JOB_ID,), {})
    assert task["name"] == JOB_ID
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    tasks.put(task)
    tasks.put("STOP")
    worker(tasks, results, multiprocessing.Value("f", -1), timeout=30)
    assert RUNS == [JOB_ID]
    assert broker.lock_size() == 1  # leased until the monitor acknowledges it

    results.put("STOP")
    monitor(results, broker=broker)

    assert broker.find(JOB_ID) == []


def test_a_scheduled_task_is_handed_out_not_before_its_due_time(broker, clock, sleeps):
    # Inside a millisecond: the queue keeps whole milliseconds, and rounds up.
    due_at = START + 5.0504
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=due_at)

    clock.now = due_at
    assert broker.dequeue() is None
    clock.advance(0.001)
    [(_, package)] = broker.dequeue()

    assert SignedPackage.loads(package)["args"] == (JOB_ID,)


def test_schedule_many_schedules_each_run_for_its_own_time(broker, clock, sleeps):
    first, second = _job_ids(2)
    ids = broker.schedule_many(RECORD_RUN, [(first, START + 5.0504), (second, START + 60)])

    assert [info.message_id for info in broker.find(first)] == [ids[0]]
    assert [info.message_id for info in broker.find(second)] == [ids[1]]
    assert [info.due_at for info in broker.find(first)] == [START + 5.051]
    clock.now = START + 5.051
    [(_, package)] = broker.dequeue()
    assert SignedPackage.loads(package)["args"] == (first,)
    assert broker.dequeue() is None
    assert broker.schedule_many(RECORD_RUN, []) == []


def test_schedule_many_schedules_nothing_when_one_key_is_not_a_job_id(broker):
    with pytest.raises(ValueError):
        broker.schedule_many(RECORD_RUN, [(JOB_ID, time.time()), ("../etc", time.time())])

    assert broker.keys() == set()


def test_a_scheduled_task_survives_a_restart_of_the_broker(broker, broker_class):
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() - 1)

    restarted = broker_class(list_key="test")
    [task] = push_once(restarted)

    assert task["args"] == (JOB_ID,)


def test_an_unacknowledged_scheduled_task_is_delivered_again_then_dead_lettered(
    broker, clock, sleeps
):
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=START - 1)

    deliveries = []
    for _ in range(MAX_DELIVERIES):
        [task] = push_once(broker)
        deliveries.append(task["ack_id"])
        clock.advance(Conf.RETRY + 1)  # the worker died: its lease runs out

    assert broker.dequeue() is None
    assert len(set(deliveries)) == MAX_DELIVERIES
    assert states(broker) == ["dead"]
    [(key, payload)] = DEAD_LETTERS
    assert (key, json.loads(payload)["func"]) == (JOB_ID, RECORD_RUN)


@pytest.mark.parametrize(
    "content",
    [
        json.dumps({"v": 99, "func": "x.y", "key": JOB_ID}),
        '{"v": 1, "func": "x.y"}',
        json.dumps({"v": 1, "func": "len", "key": JOB_ID}),
        "{" * 100_000,
    ],
    ids=["version", "no key", "no module", "deep"],
)
def test_a_scheduled_message_that_cannot_be_run_is_dead_lettered_at_once(broker, content):
    broker.enqueue(content, key=JOB_ID)

    assert push_once(broker) == []

    assert states(broker) == ["dead"]
    assert [key for key, _ in DEAD_LETTERS] == [JOB_ID]


@pytest.mark.parametrize("func", ["len", "os.system; rm", "", "a..b"])
def test_it_refuses_to_schedule_something_that_is_not_a_function_path(broker, func):
    with pytest.raises(ValueError):
        broker.schedule(func, key=JOB_ID, due_at=time.time())

    assert broker.keys() == set()


@pytest.mark.parametrize("key", ["", "../escape", "01jabcdefghjkmnpqrstvwxyz0"])
def test_it_refuses_to_schedule_for_a_key_that_is_not_a_job_id(broker, key):
    with pytest.raises(ValueError):
        broker.schedule(RECORD_RUN, key=key, due_at=time.time())

    assert broker.keys() == set()


# --- jobs due together are delivered together -----------------------------------------


def _job_ids(count: int) -> list[str]:
    # Valid, distinct job ids (the key names the message).
    return [f"01JABCDEFGHJKMNPQRSTVWX{index:03d}" for index in range(count)]


def _push_a_batch(broker, monkeypatch, job_ids: list[str], *, workers: int = 1) -> list[dict]:
    """Schedule ``job_ids`` for one batch function, due now; what one pass of the pusher
    hands to ``workers`` workers, taking up to 100 messages."""
    monkeypatch.setattr(Conf, "BULK", 100)
    monkeypatch.setattr(Conf, "WORKERS", workers)
    broker.schedule_many(
        RECORD_BATCH, [(job_id, time.time() - 1) for job_id in job_ids], batch=True
    )
    return push_once(broker)


def test_messages_scheduled_as_a_batch_are_delivered_in_one_package(broker, monkeypatch):
    ids = _job_ids(5)

    [task] = _push_a_batch(broker, monkeypatch, ids)

    assert task["func"] == RECORD_BATCH
    [keys] = task["args"]
    assert sorted(keys) == ids
    # One acknowledgement settles every message of the batch.
    assert broker.lock_size() == 5
    broker.acknowledge(task["ack_id"])
    assert broker.lock_size() == 0
    assert all(broker.find(job_id) == [] for job_id in ids)


def test_a_burst_is_spread_over_the_workers_in_batches_of_at_most_the_batch_size(
    broker, monkeypatch
):
    with override_settings(JOBS_BATCH_SIZE=20):
        tasks = _push_a_batch(broker, monkeypatch, _job_ids(50), workers=2)

    sizes = sorted(len(task["args"][0]) for task in tasks)
    assert sizes == [10, 20, 20]
    assert sorted(key for task in tasks for key in task["args"][0]) == _job_ids(50)


def test_a_failed_batch_is_dead_lettered_message_by_message(broker, monkeypatch):
    ids = _job_ids(3)
    [task] = _push_a_batch(broker, monkeypatch, ids)

    broker.fail(task["ack_id"])

    assert [state for job_id in ids for state in states(broker, job_id)] == ["dead"] * 3
    assert broker.dead_keys() == set(ids)
    assert sorted(key for key, _ in DEAD_LETTERS) == ids


def test_a_single_message_of_a_batch_function_gets_a_list(broker, monkeypatch):
    [task] = _push_a_batch(broker, monkeypatch, [JOB_ID])

    assert task["args"] == ([JOB_ID],)
