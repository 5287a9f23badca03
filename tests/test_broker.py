"""The django-q2 broker adapter over the file queue."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import tempfile
import time
from pathlib import Path

import django
import pytest
from django.conf import settings

# django_q reads its settings when it is imported. The project's conftest
# provides them; on its own this module configures the minimum it needs.
if not settings.configured:
    settings.configure(
        SECRET_KEY="test-broker",
        INSTALLED_APPS=["django_q"],
        Q_CLUSTER={
            "name": "test",
            "broker_class": "filestore.broker.FileBroker",
            "retry": 60,
            "timeout": 30,
            "poll": 0.05,
        },
        JOBS_DATA_DIR=Path(tempfile.gettempdir()) / "filestore-broker-tests",
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_q.conf import Conf
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django_q.worker import worker

from filestore.broker import FileBroker
from filestore.queue_api import SchedulingBroker
from tests.clocks import FakeClock

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
RECORD_RUN = f"{__name__}.record_run"
DEAD_LETTERS: list[tuple[str | None, bytes]] = []
RUNS: list[str] = []


def record_dead_letter(key: str | None, payload: bytes) -> None:
    DEAD_LETTERS.append((key, payload))


def record_run(job_id: str) -> str:
    RUNS.append(job_id)
    return f"ran {job_id}"


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(Conf, "RETRY", 60)
    monkeypatch.setattr(Conf, "POLL", 0.05)
    monkeypatch.setattr(Conf, "BULK", 1)
    DEAD_LETTERS.clear()
    RUNS.clear()
    with override_settings(
        JOBS_DATA_DIR=tmp_path,
        JOBS_MAX_DELIVERIES=2,
        JOBS_DEAD_LETTER_HANDLER=f"{__name__}.record_dead_letter",
    ):
        yield tmp_path


@pytest.fixture
def settings_without_max_deliveries():
    with override_settings():
        del settings.JOBS_MAX_DELIVERIES
        yield


@pytest.fixture
def broker() -> FileBroker:
    return FileBroker(list_key="test")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


def test_it_keeps_messages_under_the_data_dir_by_queue_name(broker, data_dir):
    broker.enqueue("task")

    assert broker.connection.root == data_dir / "queue" / "test"
    assert broker.info() == f"File queue {data_dir / 'queue' / 'test'}"


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


def test_it_leases_for_retry_seconds(broker):
    broker.enqueue("task", key=JOB_ID)
    before = time.time()

    broker.dequeue()

    [info] = broker.find(JOB_ID)
    assert info.state == "leased"
    assert before + Conf.RETRY - 1 <= info.lease_until <= time.time() + Conf.RETRY


def test_acknowledge_removes_the_message_and_is_idempotent(broker):
    broker.enqueue("task")
    [(ack_id, _)] = broker.dequeue()

    broker.acknowledge(ack_id)
    broker.acknowledge(ack_id)

    assert broker.counts()["leased"] == broker.counts()["ready"] == 0


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


def test_a_message_the_pusher_cannot_read_is_dead_lettered_to_the_handler(broker):
    broker.enqueue("not a signed package", key=JOB_ID)
    tasks = multiprocessing.Queue()
    stop = multiprocessing.Event()
    stop.set()

    pusher(tasks, stop, broker=broker)

    assert DEAD_LETTERS == [(JOB_ID, b"not a signed package")]
    assert [info.state for info in broker.find(JOB_ID)] == ["dead"]
    assert broker.dead_keys() == {JOB_ID}


def test_it_takes_the_lease_and_max_deliveries_from_the_settings(broker, monkeypatch):
    assert broker.connection.lease_seconds == 60
    assert broker.connection.max_deliveries == 2

    monkeypatch.setattr(Conf, "RETRY", 90)
    with override_settings(JOBS_MAX_DELIVERIES=7):
        other = FileBroker(list_key="test")

    assert other.connection.lease_seconds == 90
    assert other.connection.max_deliveries == 7


def test_max_deliveries_defaults_to_five(settings_without_max_deliveries):
    assert FileBroker(list_key="test").connection.max_deliveries == 5


def test_it_survives_pickling_into_another_process(broker):
    broker.enqueue("task", key=JOB_ID)

    clone = pickle.loads(pickle.dumps(broker))

    assert clone.list_key == "test"
    assert clone.connection.root == broker.connection.root
    [(ack_id, payload)] = clone.dequeue()
    assert payload == "task"
    broker.acknowledge(ack_id)
    assert clone.keys() == set()


def test_ping_reports_whether_the_data_dir_is_writable(broker, data_dir):
    assert broker.ping() is True

    (data_dir / "tmp").rmdir()
    (data_dir / "tmp").write_text("not a directory")

    assert broker.ping() is False


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


def test_it_refuses_to_start_without_a_data_dir():
    with override_settings(JOBS_DATA_DIR=None), pytest.raises(ImproperlyConfigured):
        FileBroker(list_key="test")


@pytest.mark.parametrize("value", [0, "5"])
def test_it_refuses_a_bad_max_deliveries(value):
    with override_settings(JOBS_MAX_DELIVERIES=value), pytest.raises(ImproperlyConfigured):
        FileBroker(list_key="test")


def test_it_refuses_a_dead_letter_handler_that_cannot_be_imported():
    with (
        override_settings(JOBS_DEAD_LETTER_HANDLER="nowhere.handler"),
        pytest.raises(ImproperlyConfigured, match=r"nowhere\.handler"),
    ):
        FileBroker(list_key="test")


def test_it_refuses_a_queue_name_that_is_not_a_directory_name():
    with pytest.raises(ImproperlyConfigured):
        FileBroker(list_key="../escape")


# --- scheduling a task for a job --------------------------------------------------------


def push_once(broker: FileBroker) -> list[dict]:
    """One pass of django-q2's own pusher: the tasks it would hand to the workers."""

    class Pushed(list):
        put = list.append  # all the pusher does with its task queue

    pushed = Pushed()
    stop = multiprocessing.Event()
    stop.set()  # one pass of the pusher's loop
    pusher(pushed, stop, broker=broker)
    return pushed


def test_it_is_a_scheduling_broker(broker):
    assert isinstance(broker, SchedulingBroker)


def test_a_scheduled_message_is_a_few_bytes_naming_the_task_unsigned(broker, monkeypatch):
    def no_signing(*args, **kwargs):
        raise AssertionError("scheduling must not build or sign a django-q2 package")

    monkeypatch.setattr(SignedPackage, "dumps", no_signing)

    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() + 60)

    [message] = (broker.connection.root / "ready").glob("*/*")
    assert message.name.endswith(f"_{JOB_ID}")
    assert json.loads(message.read_bytes()) == {"v": 1, "func": RECORD_RUN, "key": JOB_ID}
    assert message.stat().st_size < 100


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


def test_a_scheduled_task_is_handed_out_not_before_its_due_time(broker, sleeps):
    start = 1_700_000_000.0
    broker.connection.clock = FakeClock(start)
    # Inside a millisecond: the queue keeps whole milliseconds, and rounds up.
    due_at = start + 5.0504
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=due_at)

    broker.connection.clock.now = due_at
    assert broker.dequeue() is None
    broker.connection.clock.advance(0.001)
    [(_, package)] = broker.dequeue()

    assert SignedPackage.loads(package)["args"] == (JOB_ID,)


def test_a_scheduled_task_survives_a_restart_of_the_broker(broker):
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=time.time() - 1)

    restarted = FileBroker(list_key="test")
    [task] = push_once(restarted)

    assert task["args"] == (JOB_ID,)


def test_an_unacknowledged_scheduled_task_is_delivered_again_then_dead_lettered(broker, sleeps):
    clock = broker.connection.clock = FakeClock()
    broker.schedule(RECORD_RUN, key=JOB_ID, due_at=clock.now - 1)

    deliveries = []
    for _ in range(2):  # JOBS_MAX_DELIVERIES
        [task] = push_once(broker)
        deliveries.append(task["ack_id"])
        clock.advance(Conf.RETRY + 1)  # the worker died: its lease runs out

    assert broker.dequeue() is None
    assert len(set(deliveries)) == 2
    assert [info.state for info in broker.find(JOB_ID)] == ["dead"]
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

    assert [info.state for info in broker.find(JOB_ID)] == ["dead"]
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


# --- jobs due together are delivered together --------------------------------------

RECORD_BATCH = f"{__name__}.record_batch"
BATCHES: list[list[str]] = []


def record_batch(job_ids: list[str]) -> None:
    BATCHES.append(list(job_ids))


def _job_ids(count: int) -> list[str]:
    # Valid, distinct job ids (the key names the message's file).
    return [f"01JABCDEFGHJKMNPQRSTVWX{index:03d}" for index in range(count)]


def test_messages_scheduled_as_a_batch_are_delivered_in_one_package(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 100)
    monkeypatch.setattr(Conf, "WORKERS", 1)
    ids = _job_ids(5)
    for job_id in ids:
        broker.schedule(RECORD_BATCH, key=job_id, due_at=time.time() - 1, batch=True)

    [task] = push_once(broker)

    assert task["func"] == RECORD_BATCH
    [keys] = task["args"]
    assert sorted(keys) == ids
    # One acknowledgement settles every message of the batch.
    assert broker.lock_size() == 5
    broker.acknowledge(task["ack_id"])
    assert broker.lock_size() == 0
    assert all(broker.find(job_id) == [] for job_id in ids)


def test_a_burst_is_spread_over_the_workers_in_batches_of_at_most_the_batch_size(
    broker, monkeypatch, settings
):
    monkeypatch.setattr(Conf, "BULK", 100)
    monkeypatch.setattr(Conf, "WORKERS", 2)
    settings.JOBS_BATCH_SIZE = 20
    for job_id in _job_ids(50):
        broker.schedule(RECORD_BATCH, key=job_id, due_at=time.time() - 1, batch=True)

    tasks = push_once(broker)

    sizes = sorted(len(task["args"][0]) for task in tasks)
    assert sizes == [10, 20, 20]
    assert sorted(key for task in tasks for key in task["args"][0]) == _job_ids(50)


def test_a_failed_batch_comes_back_message_by_message(broker, monkeypatch):
    monkeypatch.setattr(Conf, "BULK", 100)
    monkeypatch.setattr(Conf, "WORKERS", 1)
    ids = _job_ids(3)
    for job_id in ids:
        broker.schedule(RECORD_BATCH, key=job_id, due_at=time.time() - 1, batch=True)
    [task] = push_once(broker)

    broker.fail(task["ack_id"])

    # Failed messages are counted as deliveries and handed out again, each on its own.
    states = [info.state for job_id in ids for info in broker.find(job_id)]
    assert states and set(states) <= {"ready", "dead"}
    assert len(states) == 3


def test_a_single_message_of_a_batch_function_gets_a_list(broker):
    broker.schedule(RECORD_BATCH, key=JOB_ID, due_at=time.time() - 1, batch=True)

    [task] = push_once(broker)

    assert task["args"] == ([JOB_ID],)
