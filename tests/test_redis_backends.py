"""JOBS_REDIS_URL: one setting moves the queue, events, photo pool and heartbeats to Redis;
with Redis down, a create is either accepted and stored (recovery queues it) or answered
503 with nothing stored, and nothing acknowledged is lost."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_q.conf import Conf

from filestore.eventlog import FileEventLog
from filestore.heartbeats import FileHeartbeats
from filestore.photo_pool import FilePhotoPoolStore
from jobs import backends, health, photos, services, store
from jobs.recovery import recover_jobs
from jobsite.env import envredisurl
from redisstore import connect
from redisstore.broker import RedisBroker
from redisstore.eventlog import RedisEventLog
from redisstore.heartbeats import RedisHeartbeats
from redisstore.photo_pool import RedisPhotoPoolStore
from tests.contract.redis_server import redis_server, redis_url

__all__ = ["redis_server", "redis_url"]


# --- the setting ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://:secret@redis.internal:6380/2",
        "rediss://user:secret@redis.example.com",
        "unix:///run/redis/redis.sock?db=1",
    ],
)
def test_it_takes_redis_urls(url):
    assert envredisurl("JOBS_REDIS_URL", environ={"JOBS_REDIS_URL": f" {url} "}) == url


def test_unset_or_empty_means_files():
    assert envredisurl("JOBS_REDIS_URL", environ={}) is None
    assert envredisurl("JOBS_REDIS_URL", environ={"JOBS_REDIS_URL": ""}) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:6379", "must start with redis://"),
        ("127.0.0.1:6379", "must start with redis://"),
        ("redis://", "names no host"),
        ("redis://:hunter2@host:port/0", "is not a URL"),
        ("redis://:hunter2@host:6379/zero", "use a number"),
        ("unix://", "names no socket"),
    ],
)
def test_it_refuses_what_is_not_a_redis_url_without_showing_a_password(url, message):
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        envredisurl("JOBS_REDIS_URL", environ={"JOBS_REDIS_URL": url})

    assert "JOBS_REDIS_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)


# --- the backends -------------------------------------------------------------------


def test_without_redis_everything_is_files(settings):
    settings.JOBS_REDIS_URL = None

    assert backends.in_use() == "files"
    assert isinstance(backends.event_log(), FileEventLog)
    assert isinstance(backends.heartbeats(), FileHeartbeats)
    assert isinstance(photos.pool().store, FilePhotoPoolStore)


@pytest.fixture
def on_redis(settings, redis_url, monkeypatch):
    """This process configured as with JOBS_REDIS_URL set; yields a client of that Redis."""
    settings.JOBS_REDIS_URL = redis_url
    # django-q2 read the broker class when it was imported.
    monkeypatch.setattr(Conf, "BROKER_CLASS", "redisstore.broker.RedisBroker")
    client = connect(redis_url)
    yield client
    client.close()


def test_with_redis_the_moving_parts_are_in_redis(on_redis):
    assert backends.in_use() == "redis"
    assert isinstance(backends.event_log(), RedisEventLog)
    assert isinstance(backends.heartbeats(), RedisHeartbeats)
    assert isinstance(photos.pool().store, RedisPhotoPoolStore)
    assert isinstance(store.broker(), RedisBroker)


def test_a_created_job_is_queued_and_announced_in_redis(on_redis, data_dir):
    job = services.job_create(delay_seconds=5).job

    [message] = store.broker().find(job["id"])
    assert message.state == "ready"
    [(_, event)] = RedisEventLog(on_redis).read_after(0)[0]
    assert event == {"type": "job", "job": job}
    assert not (data_dir / "events").exists(), "no event goes to the files"
    assert store.repository().get(job["id"]).status == "pending", "the job itself is a file"


def test_the_health_report_reads_heartbeats_from_redis(on_redis, client, data_dir):
    assert client.get("/api/health").json()["checks"]["worker"] is False

    health.write_heartbeat(workers=2)

    body = client.get("/api/health").json()
    assert body["checks"] == {"storage": True, "broker": True, "worker": True}
    assert not (data_dir / "worker").exists()
    [worker] = on_redis.zrange("jobs:heartbeats", 0, -1)
    assert worker.decode() == health.worker_id()


def test_events_published_by_one_process_reach_the_feed_of_another(on_redis):
    """The web process's feed follows the Redis Stream that workers append to."""
    feed = backends.event_log()
    position = feed.latest_id()
    other_process_log = RedisEventLog(on_redis)

    other_process_log.append({"type": "job-deleted", "id": "0" * 26})

    [(_, event)] = feed.read_after(position)[0]
    assert event["type"] == "job-deleted"


# --- Redis down ------------------------------------------------------------------------


@pytest.fixture
def redis_down(on_redis, redis_server):
    """Stops Redis for the test's body; calling the fixture's value starts it again."""
    redis_server.stop()
    yield redis_server.start
    if not redis_server.running:
        redis_server.start()


def _create(client, **headers):
    return client.post(
        "/api/jobs",
        data=json.dumps({"delay_seconds": 5}),
        content_type="application/json",
        headers=headers,
    )


def stored_ids() -> set[str]:
    return {job.id for job in store.repository().list(limit=1000)[0]}


def test_a_job_stored_while_redis_is_down_is_accepted_and_queued_once_redis_is_back(
    redis_down, client
):
    """Answering 503 for a job already on disk would make a retry create a second one."""
    start_redis = redis_down
    response = _create(client)

    assert response.status_code == 202
    assert stored_ids() == {response.json()["id"]}

    start_redis()
    report = recover_jobs(grace=0)

    assert report.requeued == [response.json()["id"]]
    [message] = store.broker().find(response.json()["id"])
    assert message.state == "ready"


def test_a_create_admission_cannot_count_answers_503_with_retry_after_and_stores_nothing(
    redis_down, client, settings
):
    settings.JOBS_MAX_DUE_PER_SECOND = 100  # admission reads the queue's count for the second

    response = _create(client, **{"Idempotency-Key": "k-1"})

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    problem = response.json()
    assert problem["type"] == "/api/problems/queue_unavailable"
    assert "retry" in problem["detail"].lower()
    assert stored_ids() == set()

    # Nothing was stored, so the key is free: the retry makes the one job.
    start_redis = redis_down
    start_redis()
    retried = _create(client, **{"Idempotency-Key": "k-1"})

    assert retried.status_code == 202
    assert stored_ids() == {retried.json()["id"]}
    assert [message.state for message in store.broker().find(retried.json()["id"])] == ["ready"]


def test_a_retry_with_the_same_key_while_redis_is_down_answers_the_one_job(redis_down, client):
    first = _create(client, **{"Idempotency-Key": "k-1"})
    again = _create(client, **{"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert stored_ids() == {first.json()["id"]}


@pytest.mark.parametrize(
    "max_due",
    [
        pytest.param(0, id="admission-off"),  # every create stores its job, then queues it
        pytest.param(10_000, id="admission-reads-the-queue"),  # refused before storing
    ],
)
def test_redis_stopped_mid_stream_every_accepted_job_is_stored_and_queued_once(
    on_redis, redis_server, client, settings, max_due
):
    """A stream of creates without Idempotency-Key while the real server stops and starts:
    every job stored was answered 202 (none a client would create twice), every 202 is
    stored, and once Redis is back each stored job has exactly one message."""
    settings.JOBS_MAX_DUE_PER_SECOND = max_due
    answers: list[tuple[str, int, str | None]] = []

    def stream(phase: str, count: int) -> None:
        for _ in range(count):
            response = _create(client)
            job_id = response.json()["id"] if response.status_code == 202 else None
            answers.append((phase, response.status_code, job_id))

    stream("up", 10)
    redis_server.stop()
    try:
        stream("down", 20)
    finally:
        redis_server.start()
    stream("back", 10)
    recover_jobs(grace=0)

    assert {status for _, status, _ in answers} <= {202, 503}
    accepted = {job_id for _, status, job_id in answers if status == 202}
    assert stored_ids() == accepted
    assert [status for phase, status, _ in answers if phase != "down"] == [202] * 20
    for job_id in accepted:
        assert [message.state for message in store.broker().find(job_id)] == ["ready"]


def test_reading_pages_needs_no_redis(redis_down, client):
    """Job files stay files: listing and fetching work while Redis is down."""
    assert client.get("/api/jobs").status_code == 200
