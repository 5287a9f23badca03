"""Redis going away and coming back: one clear error meanwhile, no reconnect code after.

These tests stop the session's redis-server and start it again on the
same port and data directory, as an operator's restart does.
"""

from __future__ import annotations

import time

import pytest
from django.test import override_settings
from django_q.conf import Conf

from redisstore import Unavailable, connect
from redisstore.broker import RECONNECT_PAUSE_SECONDS, RedisBroker
from redisstore.eventlog import RedisEventLog
from redisstore.queue import RedisQueue
from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]

JOB_ID = "01JABCDEFGHJKMNPQRSTVWXYZ0"


@pytest.fixture
def stopped(redis_server, redis_url):
    """Stops the server for the test's body; ``stopped()`` starts it again."""
    redis_server.stop()
    yield redis_server.start
    if not redis_server.running:  # the test failed before starting it again
        redis_server.start()


@pytest.fixture
def client(redis_url):
    client = connect(redis_url, timeout=1.0)
    yield client
    client.close()


@pytest.fixture
def queue(client) -> RedisQueue:
    return RedisQueue(client, "test", lease_seconds=30, max_deliveries=3)


def test_it_is_an_os_error_so_storage_errors_are_handled_alike():
    assert issubclass(Unavailable, ConnectionError)
    assert issubclass(Unavailable, OSError)


def test_queue_operations_raise_unavailable_and_ping_says_no(queue, stopped):
    started = time.monotonic()

    with pytest.raises(Unavailable, match=r"127\.0\.0\.1"):
        queue.enqueue(b"job", key=JOB_ID)
    with pytest.raises(Unavailable):
        queue.dequeue(10)
    with pytest.raises(Unavailable):
        queue.counts()
    with pytest.raises(Unavailable):
        queue.find(JOB_ID)
    assert queue.ping() is False

    # Refused at once, not after a client's retries with backoff.
    assert time.monotonic() - started < 5


def test_the_event_log_raises_unavailable(client, stopped):
    log = RedisEventLog(client)

    with pytest.raises(Unavailable):
        log.append({"type": "job"})
    with pytest.raises(Unavailable):
        log.read_after(0)
    with pytest.raises(Unavailable):
        log.latest_id()


def test_the_same_client_works_again_once_redis_is_back(queue, client, stopped):
    start_again = stopped
    with pytest.raises(Unavailable):
        queue.counts()

    start_again()

    queue.enqueue(b"job", key=JOB_ID)
    [(ack_id, payload)] = queue.dequeue(10)
    assert payload == b"job"
    queue.acknowledge(ack_id)
    log = RedisEventLog(client)
    log.append({"n": 1})
    assert [event for _, event in log.read_after(0)[0]] == [{"n": 1}]


def test_a_restart_keeps_what_was_acknowledged(queue, redis_server):
    """Redis runs with its append-only file: an enqueue it answered survives a restart."""
    message_id = queue.enqueue(b"job", key=JOB_ID)
    log = RedisEventLog(queue.client)
    log.append({"n": 1})

    redis_server.stop()
    redis_server.start()

    assert [info.message_id for info in queue.find(JOB_ID)] == [message_id]
    assert [event for _, event in log.read_after(0)[0]] == [{"n": 1}]


def test_the_worker_side_of_the_broker_waits_instead_of_failing(redis_url, stopped, monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setattr(Conf, "RETRY", 60)
    with override_settings(JOBS_REDIS_URL=redis_url):
        broker = RedisBroker(list_key="test")

    # django-q2's pusher would stop for good on an exception from dequeue.
    assert broker.dequeue() is None
    assert sleeps == [RECONNECT_PAUSE_SECONDS]
    broker.acknowledge(f"{'0' * 20}-1")  # the lease will run out instead
    broker.fail(f"{'0' * 20}-1")
    # The side that answers a client must not pretend: nothing was queued.
    with pytest.raises(Unavailable):
        broker.enqueue("task", key=JOB_ID)

    stopped()

    broker.enqueue("task", key=JOB_ID)
    [(_, payload)] = broker.dequeue()
    assert payload == "task"
