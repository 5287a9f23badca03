"""GET /api/health: storage writable, broker reachable, worker alive (a fresh heartbeat)."""

from __future__ import annotations

import errno
import shutil

import pytest

from filestore import atomic
from jobs import clock, health, store
from tests.clocks import FakeClock


@pytest.fixture
def now(monkeypatch) -> FakeClock:
    fake_clock = FakeClock()
    monkeypatch.setattr(clock, "now", fake_clock)
    return fake_clock


def get_health(client):
    response = client.get("/api/health")
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store"
    return response


def test_it_is_healthy_with_a_fresh_heartbeat(client, now):
    health.write_heartbeat(workers=2)
    now.advance(5)

    response = get_health(client)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"storage": True, "broker": True, "worker": True}
    assert body["failures"] == {}
    assert body["worker_heartbeat_age_seconds"] == 5.0
    assert body["photo_source"] == "demo"


def test_it_is_unhealthy_without_a_heartbeat(client, now):
    response = get_health(client)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"] == {"storage": True, "broker": True, "worker": False}
    assert set(body["failures"]) == {"worker"}
    assert "No worker heartbeat" in body["failures"]["worker"]
    assert body["worker_heartbeat_age_seconds"] is None


def test_it_is_unhealthy_when_the_last_heartbeat_is_old(client, now, settings):
    health.write_heartbeat(workers=2)
    now.advance(settings.JOBS_HEARTBEAT_MAX_AGE)
    assert get_health(client).status_code == 200

    now.advance(1)
    response = get_health(client)

    assert response.status_code == 503
    assert response.json()["checks"]["worker"] is False
    assert response.json()["worker_heartbeat_age_seconds"] == settings.JOBS_HEARTBEAT_MAX_AGE + 1
    assert f"{settings.JOBS_HEARTBEAT_MAX_AGE + 1} s old" in response.json()["failures"]["worker"]


def test_the_newest_of_several_heartbeats_counts(client, now, data_dir):
    health.write_heartbeat(workers=2)
    stale = data_dir / "worker" / "other-host-1.json"
    stale.write_text('{"at": 1000, "pid": 1, "host": "other-host"}')
    (data_dir / "worker" / "torn.json").write_text("{not json")
    (data_dir / "worker" / "odd.json").write_text('{"at": "yesterday"}')

    assert get_health(client).status_code == 200


GARBAGE_HEARTBEATS = {
    "deeply nested JSON": b'{"at": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "not an object": b"[1, 2, 3]",
    "a number": b"12",
    "no time": b'{"pid": 1, "host": "h"}',
    "a time as text": b'{"at": "yesterday"}',
    "a time as a boolean": b'{"at": true}',
    "a time too large for a float": b'{"at": 1' + b"0" * 400 + b"}",
    "NaN": b'{"at": NaN}',
    "Infinity": b'{"at": Infinity}',
    "not UTF-8": b"\xff\xfe",
    "empty": b"",
}


@pytest.mark.parametrize("garbage", GARBAGE_HEARTBEATS.values(), ids=list(GARBAGE_HEARTBEATS))
def test_it_reports_a_stale_worker_when_the_only_heartbeat_is_garbage(
    client, now, data_dir, garbage
):
    (data_dir / "worker").mkdir()
    (data_dir / "worker" / "host-1.json").write_bytes(garbage)

    response = get_health(client)

    assert response.status_code == 503
    assert response.json()["checks"] == {"storage": True, "broker": True, "worker": False}


@pytest.mark.parametrize("garbage", GARBAGE_HEARTBEATS.values(), ids=list(GARBAGE_HEARTBEATS))
def test_a_garbage_heartbeat_beside_a_fresh_one_changes_nothing(client, now, data_dir, garbage):
    health.write_heartbeat(workers=2)
    (data_dir / "worker" / "host-1.json").write_bytes(garbage)
    (data_dir / "worker" / "a-directory.json").mkdir()

    assert get_health(client).status_code == 200


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (errno.ENOSPC, "ENOSPC"),
        (errno.EROFS, "EROFS"),
        (errno.EACCES, "EACCES"),
        (errno.EIO, "EIO"),
    ],
)
def test_it_says_why_storage_cannot_be_written(client, now, monkeypatch, code, name):
    health.write_heartbeat(workers=2)

    def fail(step, path):
        raise OSError(code, "the disk says no", path)

    monkeypatch.setattr(atomic.hooks, "before", fail)
    response = get_health(client)

    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["storage"] is False
    assert name in body["failures"]["storage"]
    assert body["failures"]["storage"].startswith("The data directory cannot be written")


def test_it_says_when_the_queue_cannot_be_reached(client, now, monkeypatch):
    health.write_heartbeat(workers=2)

    class Unreachable:
        def ping(self):
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(store, "broker", Unreachable)
    response = get_health(client)

    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"storage": True, "broker": False, "worker": True}
    assert body["failures"] == {
        "broker": "The queue cannot be reached: Connection refused (ECONNREFUSED)."
    }


def test_it_is_unhealthy_when_storage_is_not_writable(client, now, data_dir):
    health.write_heartbeat(workers=2)
    # Every write goes through tmp/ (temp file, then rename): a tmp/ that
    # cannot hold files is storage that cannot be written.
    shutil.rmtree(data_dir / "tmp")
    (data_dir / "tmp").write_text("not a directory")

    response = get_health(client)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["storage"] is False
    assert body["checks"]["worker"] is True


def test_it_prunes_heartbeats_of_workers_long_gone(data_dir):
    import os
    import time

    from jobs import health

    health.write_heartbeat()
    gone = data_dir / "worker" / "oldhost-1.json"
    gone.write_text('{"at": 1}')
    old = time.time() - 2 * 24 * 3600
    os.utime(gone, (old, old))

    assert health.prune_heartbeats() == 1
    assert not gone.exists()
    assert health.heartbeat_path().exists()
