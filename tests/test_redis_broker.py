"""The django-q2 broker on Redis: settings, the pusher, dead letters, another process."""

from __future__ import annotations

import multiprocessing
import pickle
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_q.conf import Conf
from django_q.pusher import pusher
from django_q.tasks import async_task

from redisstore.broker import RedisBroker
from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"
DEAD_LETTERS: list[tuple[str | None, bytes]] = []


def record_dead_letter(key: str | None, payload: bytes) -> None:
    DEAD_LETTERS.append((key, payload))


@pytest.fixture(autouse=True)
def redis_settings(redis_url, monkeypatch):
    monkeypatch.setattr(Conf, "RETRY", 60)
    monkeypatch.setattr(Conf, "POLL", 0.05)
    monkeypatch.setattr(Conf, "BULK", 1)
    DEAD_LETTERS.clear()
    with override_settings(
        JOBS_REDIS_URL=redis_url,
        JOBS_MAX_DELIVERIES=2,
        JOBS_DEAD_LETTER_HANDLER=f"{__name__}.record_dead_letter",
    ):
        yield


@pytest.fixture
def broker() -> RedisBroker:
    return RedisBroker(list_key="test")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(time, "sleep", recorded.append)
    return recorded


def test_it_names_the_server_and_the_queue(broker, redis_server):
    assert broker.info() == f"Redis queue 127.0.0.1:{redis_server.port}/0 jobs:queue:{{test}}"


def test_it_hands_out_a_delayed_task_only_when_due(broker, sleeps):
    broker.enqueue("later", due_at=time.time() + 3600)
    assert broker.dequeue() is None

    broker.enqueue("now")
    [(_, payload)] = broker.dequeue()

    assert payload == "now"
    assert broker.queue_size() == 1
    assert broker.lock_size() == 1


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
        other = RedisBroker(list_key="test")

    assert other.connection.lease_seconds == 90
    assert other.connection.max_deliveries == 7


def test_it_survives_pickling_into_another_process(broker):
    broker.enqueue("task", key=JOB_ID)

    clone = pickle.loads(pickle.dumps(broker))

    assert clone.list_key == "test"
    [(ack_id, payload)] = clone.dequeue()
    assert payload == "task"
    broker.acknowledge(ack_id)
    assert clone.keys() == set()


def test_it_refuses_to_start_without_a_redis_url():
    with (
        override_settings(JOBS_REDIS_URL=""),
        pytest.raises(ImproperlyConfigured, match="JOBS_REDIS_URL"),
    ):
        RedisBroker(list_key="test")


def test_it_refuses_a_url_that_is_not_redis_without_repeating_it():
    with (
        override_settings(JOBS_REDIS_URL="http://user:secret@example.invalid/"),
        pytest.raises(ImproperlyConfigured) as raised,
    ):
        RedisBroker(list_key="test")

    assert "secret" not in str(raised.value)


def test_it_refuses_a_queue_name_that_cannot_be_part_of_a_key():
    with pytest.raises(ImproperlyConfigured):
        RedisBroker(list_key="a}b")
